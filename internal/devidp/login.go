package devidp

import (
	"context"
	"html/template"
	"log/slog"
	"net/http"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// loginPage is the provider's sign-in form: GET shows it, POST checks the
// password (or cancels) and sends the browser back into the flow.
type loginPage struct {
	store    *storage
	provider *op.Provider
	users    []User
	password string
	log      *slog.Logger
}

var loginTmpl = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Sign in: development identity provider</title>
<style>
body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}
label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.4rem}
.err{color:#a00}.hint{color:#555;font-size:.9rem}button{margin-top:1rem;padding:.4rem 1rem}
</style></head><body>
<h1>Development sign-in</h1>
<p class="hint">This identity provider is for development only.</p>
{{if .Error}}<p class="err" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="">
<input type="hidden" name="id" value="{{.ID}}">
<label for="username">Username</label>
<input id="username" name="username" value="{{.Username}}" autofocus autocomplete="username">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password">
<button type="submit" name="action" value="login">Sign in</button>
<button type="submit" name="action" value="cancel">Cancel</button>
</form>
<p class="hint">Users: {{range $i, $u := .Users}}{{if $i}}, {{end}}<b>{{$u.Username}}</b>
({{if $u.Org}}{{$u.Org}}{{else}}no organization{{end}}{{range $u.Groups}}, {{.}}{{end}}){{end}}.
Password: <b>{{.Password}}</b></p>
</body></html>
`))

type loginData struct {
	ID       string
	Username string
	Error    string
	Users    []User
	Password string
}

func (l *loginPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		l.render(w, http.StatusOK, loginData{ID: r.URL.Query().Get("authRequestID")})
	case http.MethodPost:
		l.submit(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (l *loginPage) submit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "unreadable form", http.StatusBadRequest)
		return
	}
	id := r.PostForm.Get("id")
	username := r.PostForm.Get("username")

	// cancelling answers the client with access_denied, the way a real
	// provider reports a person who declined
	if r.PostForm.Get("action") == "cancel" {
		l.cancel(w, r, id)
		return
	}

	if err := l.store.checkPassword(id, username, r.PostForm.Get("password")); err != nil {
		l.log.Info("dev sign-in refused", "user", username)
		l.render(w, http.StatusUnauthorized, loginData{ID: id, Username: username, Error: err.Error()})
		return
	}
	l.log.Info("dev sign-in", "user", username)
	http.Redirect(w, r, op.AuthCallbackURL(l.provider)(r.Context(), id), http.StatusFound)
}

func (l *loginPage) cancel(w http.ResponseWriter, r *http.Request, id string) {
	req, err := l.store.AuthRequestByID(r.Context(), id)
	if err != nil {
		l.render(w, http.StatusBadRequest, loginData{ID: id, Error: "this sign-in has expired"})
		return
	}
	_ = l.store.DeleteAuthRequest(context.WithoutCancel(r.Context()), id)
	op.AuthRequestError(w, r, req,
		oidc.ErrAccessDenied().WithDescription("the person cancelled the sign-in"), l.provider)
}

func (l *loginPage) render(w http.ResponseWriter, status int, d loginData) {
	d.Users = l.users
	d.Password = l.password
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := loginTmpl.Execute(w, d); err != nil {
		l.log.Warn("rendering login page", "err", err)
	}
}

// signedOut is where the end-session endpoint sends people when the client
// named no post-logout address.
func signedOut(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write([]byte(`<!doctype html><html lang="en"><head><meta charset="utf-8">` +
		`<title>Signed out</title></head><body><h1>Signed out</h1>` +
		`<p>You are signed out of the development identity provider.</p></body></html>`))
}
