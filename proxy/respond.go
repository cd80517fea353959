package proxy

import (
	"embed"
	"encoding/json"
	"html/template"
	"net/http"
	"strconv"
	"strings"
)

//go:embed pages/*.html
var pageFS embed.FS

var pages = template.Must(template.ParseFS(pageFS, "pages/*.html"))

// problem is a refusal or failure, said once and rendered as JSON or
// HTML depending on who asked.
type problem struct {
	status int
	// code is stable: clients branch on it.
	code string
	// title heads the HTML page.
	title string
	// message is a sentence a person can act on.
	message string
	// retryAfter, in seconds, is sent as Retry-After when positive.
	retryAfter int
}

// errorBody is the JSON form of every error the proxy answers.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// wantsHTML reports whether r is a browser navigation that should get a
// page rather than JSON: a GET or HEAD that accepts HTML, is no
// websocket upgrade, and is not marked as a script's request.
func wantsHTML(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if isWebsocket(r) || r.Header.Get("X-Requested-With") != "" {
		return false
	}
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" && m != "navigate" {
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// isWebsocket reports whether r asks for a websocket upgrade.
func isWebsocket(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") &&
		headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h[name] {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// fail answers a problem as a page for a browser navigation, else as
// JSON.
func (p *Proxy) fail(w http.ResponseWriter, r *http.Request, pr problem) {
	p.metrics.outcome(pr.code)
	if pr.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(pr.retryAfter))
	}
	if !wantsHTML(r) {
		writeJSON(w, pr.status, errorBody{errorDetail{Code: pr.code, Message: pr.message}})
		return
	}
	p.page(w, pr.status, "error.html", pageData{
		Title:   pr.title,
		Message: pr.message,
		Code:    pr.code,
	})
}

// pageData is what the page templates show.
type pageData struct {
	Prefix  string
	Title   string
	Message string
	Code    string
	Refresh int

	// server pages
	ServerName string
	Reason     string
	Stopped    bool
	CanStart   bool
	StartURL   string
}

func (p *Proxy) page(w http.ResponseWriter, status int, name string, d pageData) {
	d.Prefix = p.prefix
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy",
		"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "+
			"connect-src 'self'; frame-ancestors 'none'")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, d); err != nil {
		p.log.Error("rendering page failed", "page", name, "err", err)
	}
}
