package dashboard

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	sessionCookie = "warren_session"
	csrfCookie    = "warren_csrf"
	// CSRFHeader carries the CSRF token of a mutating request made from a
	// page; a form posts it as the field csrf_token.
	CSRFHeader = "X-CSRF-Token"
	sessionTTL = 12 * time.Hour
)

// ErrNeedsAuth is returned by CheckListen for an address that is not
// loopback when no authentication is set.
var ErrNeedsAuth = errors.New("dashboard: listening beyond loopback needs authentication (a token or basic-auth file)")

// CheckListen refuses to serve addr without authentication unless every
// address it binds is loopback: "127.0.0.1:8080", "[::1]:8080" and
// "localhost:8080" are; ":8080" and "0.0.0.0:8080" are not.
func CheckListen(addr string, auth Authenticator) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("dashboard: listen address %q: want host:port, like 127.0.0.1:8080", addr)
	}
	if auth != nil {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrNeedsAuth, addr)
}

type ctxKey int

const userKey ctxKey = 0

// userOf returns who made r: the authenticated user, or "anonymous" when
// the dashboard has no authentication.
func userOf(r *http.Request) string {
	if u, ok := r.Context().Value(userKey).(string); ok {
		return u
	}
	return "anonymous"
}

// key signs sessions and CSRF tokens.
func (s *Server) key() []byte { return s.signKey }

func newRandomKey() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}

func (s *Server) sign(parts ...string) string {
	m := hmac.New(sha256.New, s.key())
	m.Write([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(m.Sum(nil))
}

// newSession returns a session cookie value for user.
func (s *Server) newSession(user string, now time.Time) string {
	u := base64.RawURLEncoding.EncodeToString([]byte(user))
	exp := strconv.FormatInt(now.Add(sessionTTL).Unix(), 10)
	return u + "." + exp + "." + s.sign("session", u, exp)
}

// checkSession returns the user of a session cookie value, if it is signed
// by this key and not expired.
func (s *Server) checkSession(v string, now time.Time) (string, bool) {
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return "", false
	}
	if !hmac.Equal([]byte(parts[2]), []byte(s.sign("session", parts[0], parts[1]))) {
		return "", false
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || now.Unix() > exp {
		return "", false
	}
	user, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return "", false
	}
	return string(user), true
}

// csrfToken returns the CSRF token the pages of r embed, setting the
// cookie it is bound to when r has none (a dashboard with no
// authentication).
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(sessionCookie); err == nil {
		return s.sign("csrf", c.Value)[:32]
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil || len(c.Value) < 16 {
		v := base64.RawURLEncoding.EncodeToString(newRandomKey())
		http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: v, Path: "/", HttpOnly: true,
			SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
		c = &http.Cookie{Value: v}
	}
	return s.sign("csrf", c.Value)[:32]
}

// validCSRF reports whether r carries the CSRF token of its cookie.
func (s *Server) validCSRF(r *http.Request) bool {
	got := r.Header.Get(CSRFHeader)
	if got == "" && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		got = r.PostFormValue("csrf_token")
	}
	if got == "" {
		return false
	}
	for _, name := range []string{sessionCookie, csrfCookie} {
		if c, err := r.Cookie(name); err == nil && hmac.Equal([]byte(got), []byte(s.sign("csrf", c.Value)[:32])) {
			return true
		}
	}
	return false
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// public routes need no credentials.
func public(path string) bool {
	return path == "/healthz" || path == "/login" || strings.HasPrefix(path, "/static/")
}

// secure wraps the mux with what every request goes through: security
// headers, authentication, the read-only mode and CSRF protection.
func (s *Server) secure(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, http.StatusForbidden, CodeCSRF, "cross-origin request refused")
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Content-Type-Options", "nosniff")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}

		viaHeader := false
		user := ""
		if s.cfg.Auth != nil && !public(r.URL.Path) {
			if r.Header.Get("Authorization") != "" {
				u, ok := s.cfg.Auth.Authenticate(r)
				if !ok {
					s.unauthorized(w, r, "wrong credentials")
					return
				}
				user, viaHeader = u, true
			} else if c, err := r.Cookie(sessionCookie); err == nil {
				u, ok := s.checkSession(c.Value, time.Now())
				if !ok {
					s.unauthorized(w, r, "the session expired: log in again")
					return
				}
				user = u
			} else {
				s.unauthorized(w, r, "authentication required")
				return
			}
		}
		if user != "" {
			r = r.WithContext(context.WithValue(r.Context(), userKey, user))
		}

		if !safeMethod(r.Method) {
			if err := cop.Check(r); err != nil {
				writeError(w, r, http.StatusForbidden, CodeCSRF, "cross-origin request refused")
				return
			}
			if r.URL.Path != "/login" && r.URL.Path != "/logout" {
				if s.cfg.ReadOnly {
					writeError(w, r, http.StatusForbidden, CodeReadOnly, "the dashboard is read-only")
					return
				}
				// A request that authenticated with its own Authorization
				// header is not riding on a browser's ambient cookie. One
				// that carries a cookie must prove it comes from our page.
				if !viaHeader && (s.cfg.Auth != nil || r.Header.Get("Cookie") != "") && !s.validCSRF(r) {
					writeError(w, r, http.StatusForbidden, CodeCSRF, "missing or invalid CSRF token (send the page's token in "+CSRFHeader+")")
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, msg string) {
	if wantsHTML(r) && r.Method == http.MethodGet {
		http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	// A page's own fetch (a browser sends Sec-Fetch-Site) gets no Basic
	// challenge: it would open the browser's password prompt instead of
	// the login page the page sends its user to.
	if _, ok := s.cfg.Auth.(*Basic); ok && (r.Header.Get("Sec-Fetch-Site") == "" || r.Header.Get("Authorization") != "") {
		w.Header().Set("WWW-Authenticate", `Basic realm="warren"`)
	} else {
		w.Header().Set("WWW-Authenticate", `Bearer realm="warren"`)
	}
	writeError(w, r, http.StatusUnauthorized, CodeUnauthorized, msg)
}

// login serves POST /login: a user and password (or a token) from the
// login form open a session.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	next := r.PostFormValue("next")
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		next = "/"
	}
	if s.cfg.Auth == nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	user, pass := r.PostFormValue("user"), r.PostFormValue("password")
	if !s.cfg.Auth.Login(user, pass) {
		s.log.Warn("dashboard: login refused", "user", user, "remote", r.RemoteAddr)
		w.WriteHeader(http.StatusUnauthorized)
		s.renderLogin(w, r, next, "Wrong user or password.")
		return
	}
	if user == "" {
		user = "token"
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.newSession(user, time.Now()), Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(sessionTTL.Seconds())})
	s.cfg.Audit.Info("audit", "user", user, "action", "login", "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.renderLogin(w, r, r.URL.Query().Get("next"), "")
}

// audit writes one audit line for a mutating action: who did what, on
// which queue, to how many.
func (s *Server) audit(r *http.Request, action, queue string, count int, attrs ...any) {
	args := append([]any{"user", userOf(r), "action", action, "queue", queue, "count", count, "remote", r.RemoteAddr}, attrs...)
	s.cfg.Audit.Info("audit", args...)
}
