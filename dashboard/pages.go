package dashboard

import (
	"html/template"
	"net/http"
)

// pageRoutes registers the pages and the static assets.
func (s *Server) pageRoutes() {
}

var loginTmpl = template.Must(template.New("login").Parse(`<!doctype html><title>Warren: log in</title>
<form method="post" action="/login"><input type="hidden" name="next" value="{{.Next}}">
{{with .Error}}<p class="error">{{.}}</p>{{end}}
<label>User <input name="user" autocomplete="username"></label>
<label>Password or token <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Log in</button></form>`))

// renderLogin writes the login page.
func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, next, errMsg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = loginTmpl.Execute(w, struct{ Next, Error string }{next, errMsg})
}
