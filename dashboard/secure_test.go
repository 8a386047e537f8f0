package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// secured returns the security middleware of a Server with cfg around a
// handler that answers 200 with the user it saw, and the audit log.
func secured(t *testing.T, cfg Config) (*Server, http.Handler, *bytes.Buffer) {
	t.Helper()
	var audit bytes.Buffer
	cfg.Audit = slog.New(slog.NewJSONHandler(&audit, nil))
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, log: slog.New(slog.DiscardHandler), signKey: newRandomKey()}
	if cfg.Auth != nil {
		s.signKey = cfg.Auth.Key()
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.audit(r, "test", "q", 1)
		_, _ = w.Write([]byte(userOf(r)))
	})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", s.login)
	mux.Handle("/", next)
	return s, s.secure(mux), &audit
}

func errCode(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var body ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body %q is not JSON: %v", rec.Body, err)
	}
	return body.Error.Code
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func TestCheckListen(t *testing.T) {
	tok, err := NewToken("0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		addr string
		auth Authenticator
		want error
	}{
		{"127.0.0.1:8080", nil, nil},
		{"[::1]:8080", nil, nil},
		{"localhost:8080", nil, nil},
		{":8080", nil, ErrNeedsAuth},
		{"0.0.0.0:8080", nil, ErrNeedsAuth},
		{"10.0.0.5:8080", nil, ErrNeedsAuth},
		{":8080", tok, nil},
	} {
		err := CheckListen(c.addr, c.auth)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("CheckListen(%q, auth=%v) = %v, want %v", c.addr, c.auth != nil, err, c.want)
		}
	}
	if err := CheckListen("8080", nil); err == nil || !strings.Contains(err.Error(), "host:port") {
		t.Errorf("CheckListen(8080) = %v, want a host:port error", err)
	}
}

func TestLoadCredentials(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := LoadToken(write("short", "abc\n")); err == nil || !strings.Contains(err.Error(), "16") {
		t.Errorf("short token: %v", err)
	}
	if _, err := LoadToken(write("empty", "\n")); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("empty token file: %v", err)
	}
	tok, err := LoadToken(write("tok", "  s3cret-token-0123456789  \nignored"))
	if err != nil {
		t.Fatal(err)
	}
	if !tok.Login("", "s3cret-token-0123456789") || tok.Login("", "s3cret-token-012345678") || tok.Login("alice", "s3cret-token-0123456789") {
		t.Error("token login accepts or refuses the wrong thing")
	}
	if _, err := LoadBasic(write("bad", "alice\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad basic file: %v", err)
	}
	if _, err := LoadBasic(write("none", "# nobody\n\n")); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("basic file with no users: %v", err)
	}
	b, err := LoadBasic(write("users", "# users\nalice:pa:ss\nbob:hunter2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !b.Login("alice", "pa:ss") || !b.Login("bob", "hunter2") || b.Login("bob", "pa:ss") || b.Login("carol", "hunter2") {
		t.Error("basic login accepts or refuses the wrong thing")
	}
	b2, _ := LoadBasic(write("users2", "# users\nalice:pa:ss\nbob:hunter2\n"))
	if !bytes.Equal(b.Key(), b2.Key()) {
		t.Error("two instances with the same credentials derive different keys")
	}
	b3, _ := LoadBasic(write("users3", "alice:other\n"))
	if bytes.Equal(b.Key(), b3.Key()) {
		t.Error("different credentials derive the same key")
	}
}

func TestSessions(t *testing.T) {
	s := &Server{signKey: newRandomKey()}
	now := time.Now()
	v := s.newSession("alice", now)
	if u, ok := s.checkSession(v, now); !ok || u != "alice" {
		t.Fatalf("checkSession(new) = %q, %v", u, ok)
	}
	if _, ok := s.checkSession(v, now.Add(sessionTTL+time.Second)); ok {
		t.Error("an expired session is accepted")
	}
	parts := strings.Split(v, ".")
	forged := "Ym9i." + parts[1] + "." + parts[2] // user bob, alice's signature
	if _, ok := s.checkSession(forged, now); ok {
		t.Error("a session with another user's signature is accepted")
	}
	other := &Server{signKey: newRandomKey()}
	if _, ok := other.checkSession(v, now); ok {
		t.Error("a session signed with another key is accepted")
	}
	for _, bad := range []string{"", "a.b", "a.b.c.d", "!!.1.x"} {
		if _, ok := s.checkSession(bad, now); ok {
			t.Errorf("checkSession(%q) accepted", bad)
		}
	}
}

func TestAuthRequired(t *testing.T) {
	tok, _ := NewToken("0123456789abcdef")
	_, h, _ := secured(t, Config{Auth: tok})

	rec := serve(h, httptest.NewRequest("GET", "/api/v1/queues", nil))
	if rec.Code != 401 || errCode(t, rec) != CodeUnauthorized || rec.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("no credentials: %d %s", rec.Code, rec.Body)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Accept", "text/html")
	if rec := serve(h, r); rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), "/login?next=") {
		t.Errorf("page without credentials: %d %v", rec.Code, rec.Header())
	}
	r = httptest.NewRequest("GET", "/api/v1/queues", nil)
	r.Header.Set("Authorization", "Bearer wrong-token-0123456")
	if rec := serve(h, r); rec.Code != 401 {
		t.Errorf("wrong token: %d", rec.Code)
	}
	r = httptest.NewRequest("GET", "/api/v1/queues", nil)
	r.Header.Set("Authorization", "Bearer 0123456789abcdef")
	if rec := serve(h, r); rec.Code != 200 || rec.Body.String() != "token" {
		t.Errorf("right token: %d %s", rec.Code, rec.Body)
	}
	// A bearer-authenticated POST needs no CSRF token: no cookie rides on it.
	r = httptest.NewRequest("POST", "/api/v1/queues/q/pause", nil)
	r.Header.Set("Authorization", "Bearer 0123456789abcdef")
	if rec := serve(h, r); rec.Code != 200 {
		t.Errorf("bearer POST: %d %s", rec.Code, rec.Body)
	}
	for _, p := range []string{"/healthz", "/static/app.js", "/login"} {
		if rec := serve(h, httptest.NewRequest("GET", p, nil)); rec.Code != 200 {
			t.Errorf("public %s: %d", p, rec.Code)
		}
	}
}

// login logs in through the form and returns the session cookie.
func login(t *testing.T, h http.Handler, user, pass string) *http.Cookie {
	t.Helper()
	r := httptest.NewRequest("POST", "/login", strings.NewReader("user="+user+"&password="+pass+"&next=/queues/q"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := serve(h, r)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/queues/q" {
		t.Fatalf("login: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == sessionCookie {
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("session cookie not HttpOnly and SameSite=Strict: %+v", c)
			}
			return c
		}
	}
	t.Fatal("login set no session cookie")
	return nil
}

func TestSessionAndCSRF(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "users")
	_ = os.WriteFile(p, []byte("alice:wonderland\n"), 0o600)
	b, err := LoadBasic(p)
	if err != nil {
		t.Fatal(err)
	}
	s, h, audit := secured(t, Config{Auth: b})

	r := httptest.NewRequest("POST", "/login", strings.NewReader("user=alice&password=nope"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if rec := serve(h, r); rec.Code != 401 {
		t.Errorf("wrong password: %d", rec.Code)
	}
	c := login(t, h, "alice", "wonderland")

	r = httptest.NewRequest("GET", "/api/v1/queues", nil)
	r.AddCookie(c)
	if rec := serve(h, r); rec.Code != 200 || rec.Body.String() != "alice" {
		t.Errorf("GET with session: %d %s", rec.Code, rec.Body)
	}

	post := func(token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/api/v1/queues/q/pause", nil)
		r.AddCookie(c)
		if token != "" {
			r.Header.Set(CSRFHeader, token)
		}
		return serve(h, r)
	}
	if rec := post(""); rec.Code != 403 || errCode(t, rec) != CodeCSRF {
		t.Errorf("POST without CSRF token: %d %s", rec.Code, rec.Body)
	}
	if rec := post("0000000000000000deadbeefdeadbeef"); rec.Code != 403 {
		t.Errorf("POST with a wrong CSRF token: %d", rec.Code)
	}
	r = httptest.NewRequest("GET", "/", nil)
	r.AddCookie(c)
	token := s.csrfToken(httptest.NewRecorder(), r)
	audit.Reset()
	if rec := post(token); rec.Code != 200 {
		t.Errorf("POST with the CSRF token: %d %s", rec.Code, rec.Body)
	}
	var line map[string]any
	if err := json.Unmarshal(audit.Bytes(), &line); err != nil || line["user"] != "alice" || line["action"] != "test" || line["queue"] != "q" {
		t.Errorf("audit line = %q (%v)", audit, err)
	}

	// Cross-origin, even with the token: refused.
	r = httptest.NewRequest("POST", "/api/v1/queues/q/pause", nil)
	r.AddCookie(c)
	r.Header.Set(CSRFHeader, token)
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	if rec := serve(h, r); rec.Code != 403 || errCode(t, rec) != CodeCSRF {
		t.Errorf("cross-site POST: %d %s", rec.Code, rec.Body)
	}
}

func TestReadOnly(t *testing.T) {
	_, h, audit := secured(t, Config{ReadOnly: true})
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		rec := serve(h, httptest.NewRequest(m, "/api/v1/queues/q/pause", nil))
		if rec.Code != 403 || errCode(t, rec) != CodeReadOnly {
			t.Errorf("%s in read-only mode: %d %s", m, rec.Code, rec.Body)
		}
	}
	if audit.Len() != 0 {
		t.Errorf("a refused action was audited: %s", audit)
	}
	if rec := serve(h, httptest.NewRequest("GET", "/api/v1/queues", nil)); rec.Code != 200 {
		t.Errorf("GET in read-only mode: %d", rec.Code)
	}
}

func TestNoAuthCSRF(t *testing.T) {
	s, h, _ := secured(t, Config{})
	// curl on loopback: no cookie, no Origin: allowed.
	if rec := serve(h, httptest.NewRequest("POST", "/api/v1/queues/q/pause", nil)); rec.Code != 200 {
		t.Errorf("cookie-less POST: %d %s", rec.Code, rec.Body)
	}
	// A page's request carries the csrf cookie and must carry its token.
	page := httptest.NewRecorder()
	token := s.csrfToken(page, httptest.NewRequest("GET", "/", nil))
	var c *http.Cookie
	for _, k := range page.Result().Cookies() {
		if k.Name == csrfCookie {
			c = k
		}
	}
	if c == nil {
		t.Fatal("no csrf cookie set")
	}
	r := httptest.NewRequest("POST", "/api/v1/queues/q/pause", nil)
	r.AddCookie(c)
	if rec := serve(h, r); rec.Code != 403 {
		t.Errorf("page POST without token: %d", rec.Code)
	}
	r = httptest.NewRequest("POST", "/api/v1/queues/q/pause", nil)
	r.AddCookie(c)
	r.Header.Set(CSRFHeader, token)
	if rec := serve(h, r); rec.Code != 200 {
		t.Errorf("page POST with token: %d %s", rec.Code, rec.Body)
	}
}

func TestLoginRedirectStaysOnSite(t *testing.T) {
	tok, _ := NewToken("0123456789abcdef")
	_, h, _ := secured(t, Config{Auth: tok})
	for _, next := range []string{"https://evil.example/", "//evil.example/", "/\\evil.example"} {
		r := httptest.NewRequest("POST", "/login", strings.NewReader("password=0123456789abcdef&next="+next))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if rec := serve(h, r); rec.Header().Get("Location") != "/" {
			t.Errorf("next=%q redirects to %q", next, rec.Header().Get("Location"))
		}
	}
}
