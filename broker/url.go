package broker

import (
	"net/url"
	"strings"
)

// ValidateURL checks rawURL as Dial reads it (one amqp:// or amqps:// URL,
// or a comma-separated list of a cluster's) without connecting, so that a
// caller can tell bad input from an unreachable broker. Its errors never
// contain a password.
func ValidateURL(rawURL string) error {
	_, err := parseURLs(rawURL)
	return err
}

// Secrets are the passwords of a broker URL in every form they may take in
// a message: decoded, and as written (percent-encoded).
type Secrets []string

// URLSecrets returns the passwords of raw: one URL, or a comma-separated
// list of a cluster's. Parts that do not parse, or carry no password,
// add none.
func URLSecrets(raw string) Secrets {
	var out Secrets
	for _, part := range strings.Split(raw, ",") {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil || u.User == nil {
			continue
		}
		pw, ok := u.User.Password()
		if !ok || pw == "" {
			continue
		}
		out = append(out, pw)
		if _, enc, ok := strings.Cut(u.User.String(), ":"); ok && enc != pw {
			out = append(out, enc)
		}
	}
	return out
}

// Redact returns text with every secret replaced by "xxxxx".
func (s Secrets) Redact(text string) string {
	for _, sec := range s {
		text = strings.ReplaceAll(text, sec, "xxxxx")
	}
	return text
}

// RedactError returns err with every secret removed from its message,
// still matching its cause with errors.Is and errors.As; err itself when
// its message holds none.
func (s Secrets) RedactError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := s.Redact(msg); red != msg {
		return &redacted{err: err, msg: red}
	}
	return err
}

type redacted struct {
	err error
	msg string
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }
