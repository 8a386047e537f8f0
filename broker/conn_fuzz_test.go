package broker

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseURLs feeds --url / WARREN_URL values (a comma-separated list)
// to the parser: it must never panic, and neither its errors nor the
// redacted form of what it accepts may show a password.
func FuzzParseURLs(f *testing.F) {
	for _, seed := range []string{
		"amqp://guest:guest@127.0.0.1:5672/",
		"amqps://app:s3cr3t-pass@rabbit1:5671/prod, amqp://app:s3cr3t-pass@rabbit2/prod",
		"amqp://user:hunter2hunter2@[::1",
		"amqp://user:hunter2hunter2@host:99999/",
		"amqp://user:p%zzassword1@host/",
		"http://user:password1@host/",
		",, ,",
		"",
		"amqp://h/%2F",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		eps, err := parseURLs(raw)
		secrets := passwords(raw)
		if err != nil {
			for _, s := range secrets {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("error %q shows the password %q", err, s)
				}
			}
			return
		}
		if len(eps) == 0 {
			t.Fatal("no error and no endpoint")
		}
		for _, ep := range eps {
			for _, s := range secrets {
				if strings.Contains(ep.redacted, s) {
					t.Fatalf("redacted URL %q shows the password %q", ep.redacted, s)
				}
			}
		}
	})
}

// fixedText is what the parser's errors and redacted URLs say whatever the
// input: a password that is part of it (say "asswor", inside "password")
// shows in every error without leaking.
const fixedText = "broker: invalid URL : want amqp://user:password@host:port/vhost broker: no broker URL given ://(unparseable URL) xxxxx"

// passwords returns the passwords of raw's parts that are distinctive
// enough to look for in an error: 6 or more bytes, found only once in raw,
// and not part of the parser's fixed text.
func passwords(raw string) []string {
	var out []string
	for _, part := range strings.Split(raw, ",") {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil || u.User == nil {
			continue
		}
		if p, ok := u.User.Password(); ok && len(p) >= 6 && strings.Count(raw, p) == 1 && !strings.Contains(u.User.Username(), p) &&
			!strings.Contains(fixedText, p) {
			out = append(out, p)
		}
	}
	return out
}
