package session

import (
	"encoding/json"
	"html/template"
	"net/http"
)

// page is what the sign-in pages show. Every field is escaped by
// html/template: nothing a provider or a URL sends is written raw.
type page struct {
	Title   string
	Message string
	// Detail is secondary text, for example the provider's own words.
	Detail string
	// Code is the stable code of a refusal, for support and tests.
	Code string
	// Link and LinkText offer the next step.
	Link     string
	LinkText string
	// Form, when set, is the action of a POST form with one button.
	Form       string
	FormButton string
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;color:#222}
.detail{color:#555}.code{color:#777;font-size:.85rem}
a.button,button{display:inline-block;margin-top:1rem;padding:.5rem 1.1rem;border:1px solid #246;
border-radius:4px;background:#246;color:#fff;text-decoration:none;font-size:1rem;cursor:pointer}
</style></head><body>
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{if .Detail}}<p class="detail">{{.Detail}}</p>{{end}}
{{if .Form}}<form method="post" action="{{.Form}}">
<button type="submit">{{.FormButton}}</button></form>{{end}}
{{if .Link}}<p><a class="button" href="{{.Link}}">{{.LinkText}}</a></p>{{end}}
{{if .Code}}<p class="code" data-code="{{.Code}}">Reference: {{.Code}}</p>{{end}}
</body></html>
`))

// pageHeaders are set on every page: nothing cached, no referrer (a
// callback URL carries an authorization code), no scripts.
func pageHeaders(h http.Header) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy",
		"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
}

func (m *Manager) renderPage(w http.ResponseWriter, status int, p page) {
	pageHeaders(w.Header())
	w.WriteHeader(status)
	if err := pageTmpl.Execute(w, p); err != nil {
		m.log.Warn("rendering page", "err", err)
	}
}

// refuse shows a sign-in refusal with a way to start again.
func (m *Manager) refuse(w http.ResponseWriter, status int, code, title, msg, detail string) {
	m.renderPage(w, status, page{
		Title:    title,
		Message:  msg,
		Detail:   detail,
		Code:     code,
		Link:     m.cfg.PathPrefix + "login",
		LinkText: "Sign in again",
	})
}

// writeJSONError writes the API's error shape.
func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"error": map[string]string{"code": code, "message": msg},
	})
}
