package dashboard

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Authenticator checks a request's credentials.
type Authenticator interface {
	// Authenticate returns who r authenticates as, from its Authorization
	// header, and whether it does.
	Authenticate(r *http.Request) (user string, ok bool)
	// Login checks what a person typed on the login page: a user and a
	// password, or (user "") a token.
	Login(user, password string) bool
	// Key is the secret that signs sessions and CSRF tokens. Instances
	// with the same credentials derive the same key, so that a session
	// opened on one is good on every other behind a load balancer.
	Key() []byte
}

// ErrNoCredentials is returned by the loaders for a file that holds none.
var ErrNoCredentials = errors.New("dashboard: no credentials in the file")

// Token authenticates "Authorization: Bearer <token>", and the token typed
// on the login page (user "token").
type Token struct{ token []byte }

// NewToken returns a Token. It must be at least 16 bytes.
func NewToken(token string) (*Token, error) {
	if len(token) < 16 {
		return nil, errors.New("dashboard: the token is shorter than 16 characters")
	}
	return &Token{token: []byte(token)}, nil
}

// LoadToken reads a token from the first line of a file.
func LoadToken(path string) (*Token, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dashboard: token file: %w", err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoCredentials, path)
	}
	t, err := NewToken(string(line))
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return t, nil
}

func (t *Token) Authenticate(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	got, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return "", false
	}
	return "token", subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), t.token) == 1
}

func (t *Token) Login(user, password string) bool {
	return (user == "" || user == "token") && subtle.ConstantTimeCompare([]byte(password), t.token) == 1
}

func (t *Token) Key() []byte { return deriveKey(t.token) }

// Basic authenticates HTTP basic auth against users and passwords.
type Basic struct {
	users map[string][]byte
	key   []byte
}

// LoadBasic reads "user:password" lines from a file (blank lines and lines
// starting with # are skipped).
func LoadBasic(path string) (*Basic, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dashboard: basic-auth file: %w", err)
	}
	users := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, pass, ok := strings.Cut(line, ":")
		if !ok || user == "" || pass == "" {
			return nil, fmt.Errorf("dashboard: basic-auth file %s, line %d: want user:password", path, n)
		}
		users[user] = []byte(pass)
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoCredentials, path)
	}
	return &Basic{users: users, key: deriveKey(b)}, nil
}

func (a *Basic) Authenticate(r *http.Request) (string, bool) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	return user, a.Login(user, pass)
}

func (a *Basic) Login(user, password string) bool {
	want, ok := a.users[user]
	if !ok {
		// Compare anyway, so that a wrong user takes as long as a wrong password.
		want = []byte("\x00no such user\x00")
	}
	return subtle.ConstantTimeCompare([]byte(password), want) == 1 && ok
}

func (a *Basic) Key() []byte { return a.key }

func deriveKey(secret []byte) []byte {
	m := hmac.New(sha256.New, []byte("warren dashboard session key v1"))
	m.Write(secret)
	return m.Sum(nil)
}
