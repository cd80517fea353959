package demoserver

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// UserHeader is the header the proxy sets to the signed-in user's name.
const UserHeader = "X-Studio-User"

// maxBody is how much of a request body a Report echoes.
const maxBody = 1 << 20

// Config configures a demo server.
type Config struct {
	// BaseURL is the path the server is served under, with leading and
	// trailing slash, for example "/servers/alice/". Empty means "/".
	BaseURL string
	// Secret is the token every request must carry in its Authorization
	// header as "token <secret>". It must not be empty.
	Secret string
	// Name is shown on the page and in reports, for example the server
	// id. Empty shows nothing.
	Name string
	// Log receives one line per refused request and per websocket. Nil
	// means slog.Default().
	Log *slog.Logger
}

// Report is the JSON answer to every plain HTTP request.
type Report struct {
	Server string `json:"server,omitempty"`
	Method string `json:"method"`
	// Path is the request path as it reached the server, with the base URL.
	Path  string `json:"path"`
	Query string `json:"query,omitempty"`
	Host  string `json:"host"`
	// User is the X-Studio-User header received, empty when absent.
	User string `json:"user"`
	// Header holds the request headers, less Authorization.
	Header http.Header `json:"header"`
	// Body is the request body, cut at 1 MiB.
	Body string `json:"body,omitempty"`
}

// WhoAmI is the answer to the websocket command "!whoami".
type WhoAmI struct {
	Server      string `json:"server,omitempty"`
	Path        string `json:"path"`
	User        string `json:"user"`
	Origin      string `json:"origin"`
	Subprotocol string `json:"subprotocol"`
}

// Server is a demo notebook server; it is an http.Handler.
type Server struct {
	base   string
	secret string
	name   string
	log    *slog.Logger
	up     websocket.Upgrader

	mu    sync.Mutex
	conns map[*websocket.Conn]bool
}

// New returns a demo server, or an error when the configuration is
// unusable.
func New(cfg Config) (*Server, error) {
	if cfg.Secret == "" {
		return nil, errors.New("demo server needs a secret")
	}
	base := cfg.BaseURL
	if base == "" {
		base = "/"
	}
	if !strings.HasPrefix(base, "/") || !strings.HasSuffix(base, "/") {
		return nil, fmt.Errorf("base url %q must start and end with a slash", base)
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		base:   base,
		secret: cfg.Secret,
		name:   cfg.Name,
		log:    log,
		conns:  map[*websocket.Conn]bool{},
	}
	s.up = websocket.Upgrader{
		// Origins are the proxy's to check (it upgrades only from allowed
		// origins); a browser cannot reach this server without the secret.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return s, nil
}

// ServeHTTP serves the report, the page and the websocket echo.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, s.base) {
		writeError(w, http.StatusNotFound, "not_found", "nothing is served outside "+s.base)
		return
	}
	if !s.authorized(r) {
		s.log.Info("demo server refused request", "path", r.URL.Path,
			"remote_addr", r.RemoteAddr)
		writeError(w, http.StatusForbidden, "forbidden",
			"this server needs its secret in the Authorization header")
		return
	}

	switch {
	case websocket.IsWebSocketUpgrade(r):
		s.echo(w, r)
	case r.Method == http.MethodGet && r.URL.Path == s.base &&
		strings.Contains(r.Header.Get("Accept"), "text/html"):
		s.page(w, r)
	default:
		s.report(w, r)
	}
}

// authorized reports whether r carries the secret, comparing in constant
// time.
func (s *Server) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "token") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(token), []byte(s.secret)) == 1
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", "the request body could not be read")
		return
	}
	h := r.Header.Clone()
	h.Del("Authorization")
	rep := Report{
		Server: s.name,
		Method: r.Method,
		Path:   r.URL.Path,
		Query:  r.URL.RawQuery,
		Host:   r.Host,
		User:   r.Header.Get(UserHeader),
		Header: h,
		Body:   string(body),
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(rep)
}

func (s *Server) echo(w http.ResponseWriter, r *http.Request) {
	// accept the first subprotocol offered, as an echo would
	var resp http.Header
	proto := ""
	if offered := websocket.Subprotocols(r); len(offered) > 0 {
		proto = offered[0]
		resp = http.Header{"Sec-Websocket-Protocol": {proto}}
	}
	c, err := s.up.Upgrade(w, r, resp)
	if err != nil {
		return // the upgrader has answered
	}
	s.track(c, true)
	defer s.track(c, false)
	defer c.Close()

	who := WhoAmI{
		Server:      s.name,
		Path:        r.URL.Path,
		User:        r.Header.Get(UserHeader),
		Origin:      r.Header.Get("Origin"),
		Subprotocol: proto,
	}
	s.log.Info("demo server websocket opened", "user", who.User, "path", who.Path)

	// the default close handler answers a close frame with the same code
	for {
		kind, msg, err := c.ReadMessage()
		if err != nil {
			s.log.Info("demo server websocket closed", "user", who.User, "err", err)
			return
		}
		if kind == websocket.TextMessage {
			switch text := string(msg); {
			case text == "!whoami":
				b, _ := json.Marshal(who)
				msg = b
			case strings.HasPrefix(text, "!close "):
				closeWith(c, strings.TrimPrefix(text, "!close "))
				return
			}
		}
		if err := c.WriteMessage(kind, msg); err != nil {
			return
		}
	}
}

// closeWith sends a close frame with the code and reason in arg
// ("4001 bye") and waits briefly for the client's answer.
func closeWith(c *websocket.Conn, arg string) {
	codeText, reason, _ := strings.Cut(arg, " ")
	code, err := strconv.Atoi(codeText)
	if err != nil || code < 1000 || code > 4999 {
		code = websocket.CloseInternalServerErr
		reason = "bad close code"
	}
	deadline := time.Now().Add(time.Second)
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline)
	c.SetReadDeadline(deadline)
	for {
		if _, _, err := c.NextReader(); err != nil {
			return
		}
	}
}

func (s *Server) track(c *websocket.Conn, open bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if open {
		s.conns[c] = true
	} else {
		delete(s.conns, c)
	}
}

// CloseWebsockets closes every open websocket with "going away".
func (s *Server) CloseWebsockets() {
	s.mu.Lock()
	defer s.mu.Unlock()
	deadline := time.Now().Add(time.Second)
	msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server stopping")
	for c := range s.conns {
		c.WriteControl(websocket.CloseMessage, msg, deadline)
		c.Close()
	}
}

// Serve serves s on l until ctx ends, then shuts down: open websockets
// are closed with "going away" and requests get a few seconds to finish.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.CloseWebsockets()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"error": map[string]string{"code": code, "message": message},
	})
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	pageTmpl.Execute(w, map[string]string{
		"Name": s.name,
		"User": r.Header.Get(UserHeader),
		"Base": s.base,
	})
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Demo server {{.Name}}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; }
#log { border: 1px solid #ccc; min-height: 6rem; padding: .5rem; white-space: pre-wrap; }
</style>
</head>
<body>
<h1>Demo server {{.Name}}</h1>
<p>This stands in for a notebook server. You are <strong id="user">{{.User}}</strong>.</p>
<form id="form"><input id="msg" value="hello" aria-label="message">
<button>Send over websocket</button></form>
<div id="log" aria-live="polite"></div>
<script>
const base = {{.Base}};
const log = document.getElementById("log");
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const ws = new WebSocket(scheme + location.host + base + "ws");
ws.onopen = () => { log.textContent += "connected\n"; };
ws.onmessage = (e) => { log.textContent += "echo: " + e.data + "\n"; };
ws.onclose = (e) => { log.textContent += "closed: " + e.code + "\n"; };
document.getElementById("form").onsubmit = (e) => {
  e.preventDefault();
  ws.send(document.getElementById("msg").value);
};
</script>
</body>
</html>
`))
