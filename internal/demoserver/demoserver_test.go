package demoserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

const secret = "s3cret"

func newTestServer(t *testing.T) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(Config{BaseURL: "/servers/alice/", Secret: secret, Name: "alice"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

func TestNewRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no secret", Config{BaseURL: "/"}},
		{"base without leading slash", Config{BaseURL: "servers/", Secret: "x"}},
		{"base without trailing slash", Config{BaseURL: "/servers", Secret: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Fatalf("New(%+v): got no error, want one", tt.cfg)
			}
		})
	}
}

func TestAuthorization(t *testing.T) {
	_, ts := newTestServer(t)
	tests := []struct {
		name   string
		path   string
		auth   string
		status int
	}{
		{"right secret", "/servers/alice/x", "token " + secret, http.StatusOK},
		{"scheme in capitals", "/servers/alice/x", "Token " + secret, http.StatusOK},
		{"no header", "/servers/alice/x", "", http.StatusForbidden},
		{"wrong secret", "/servers/alice/x", "token nope", http.StatusForbidden},
		{"secret prefix", "/servers/alice/x", "token s3c", http.StatusForbidden},
		{"bearer scheme", "/servers/alice/x", "Bearer " + secret, http.StatusForbidden},
		{"outside base", "/servers/bob/x", "token " + secret, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", ts.URL+tt.path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("got status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
}

func TestReport(t *testing.T) {
	_, ts := newTestServer(t)
	req, _ := http.NewRequest("POST", ts.URL+"/servers/alice/api/contents?x=1",
		strings.NewReader("hello"))
	req.Header.Set("Authorization", "token "+secret)
	req.Header.Set(UserHeader, "bob")
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()

	var rep Report
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatalf("decoding report: %v", err)
	}
	checks := []struct{ what, got, want string }{
		{"server", rep.Server, "alice"},
		{"method", rep.Method, "POST"},
		{"path", rep.Path, "/servers/alice/api/contents"},
		{"query", rep.Query, "x=1"},
		{"user", rep.User, "bob"},
		{"body", rep.Body, "hello"},
		{"forwarded proto", rep.Header.Get("X-Forwarded-Proto"), "https"},
		{"authorization", rep.Header.Get("Authorization"), ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.what, c.got, c.want)
		}
	}
}

func TestPage(t *testing.T) {
	_, ts := newTestServer(t)
	req, _ := http.NewRequest("GET", ts.URL+"/servers/alice/", nil)
	req.Header.Set("Authorization", "token "+secret)
	req.Header.Set("Accept", "text/html")
	req.Header.Set(UserHeader, "<b>bob</b>")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading page: %v", err)
	}
	page := string(b)
	if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/html") {
		t.Errorf("got content type %q, want text/html", got)
	}
	if !strings.Contains(page, "&lt;b&gt;bob&lt;/b&gt;") {
		t.Errorf("page does not show the escaped user:\n%s", page)
	}
}

// dial opens a websocket to the test server with the secret.
func dial(
	t *testing.T,
	ts *httptest.Server,
	path string,
	protos ...string,
) (*websocket.Conn, *http.Response) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: protos, HandshakeTimeout: 5 * time.Second}
	h := http.Header{
		"Authorization": {"token " + secret},
		UserHeader:      {"bob"},
		"Origin":        {"https://studio.example"},
	}
	url := "ws" + strings.TrimPrefix(ts.URL, "http") + path
	c, resp, err := d.Dial(url, h)
	if err != nil {
		t.Fatalf("dialing %s: %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	return c, resp
}

func TestWebsocketEcho(t *testing.T) {
	_, ts := newTestServer(t)
	c, _ := dial(t, ts, "/servers/alice/api/kernels/k1/channels")

	tests := []struct {
		name string
		kind int
		msg  string
	}{
		{"text", websocket.TextMessage, "hello"},
		{"binary", websocket.BinaryMessage, "\x00\x01\x02"},
		{"empty", websocket.TextMessage, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.WriteMessage(tt.kind, []byte(tt.msg)); err != nil {
				t.Fatalf("writing: %v", err)
			}
			kind, msg, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("reading: %v", err)
			}
			if kind != tt.kind || string(msg) != tt.msg {
				t.Fatalf("got %d %q, want %d %q", kind, msg, tt.kind, tt.msg)
			}
		})
	}
}

func TestWebsocketWhoAmI(t *testing.T) {
	_, ts := newTestServer(t)
	c, resp := dial(t, ts, "/servers/alice/ws", "v1.kernel.websocket.jupyter.org", "other")
	if got := resp.Header.Get("Sec-Websocket-Protocol"); got != "v1.kernel.websocket.jupyter.org" {
		t.Errorf("got subprotocol %q, want the first offered", got)
	}

	if err := c.WriteMessage(websocket.TextMessage, []byte("!whoami")); err != nil {
		t.Fatalf("writing: %v", err)
	}
	var who WhoAmI
	if err := c.ReadJSON(&who); err != nil {
		t.Fatalf("reading whoami: %v", err)
	}
	want := WhoAmI{
		Server:      "alice",
		Path:        "/servers/alice/ws",
		User:        "bob",
		Origin:      "https://studio.example",
		Subprotocol: "v1.kernel.websocket.jupyter.org",
	}
	if who != want {
		t.Fatalf("got %+v, want %+v", who, want)
	}
}

func TestWebsocketRefusedWithoutSecret(t *testing.T) {
	_, ts := newTestServer(t)
	url := "ws" + strings.TrimPrefix(ts.URL, "http") + "/servers/alice/ws"
	_, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err == nil {
		t.Fatal("dial without secret: got no error, want a refusal")
	}
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("got response %v, want status 403", resp)
	}
}

func TestWebsocketCloseCodes(t *testing.T) {
	tests := []struct {
		name     string
		send     func(c *websocket.Conn) error
		wantCode int
		wantText string
	}{
		{
			name: "server closes on command",
			send: func(c *websocket.Conn) error {
				return c.WriteMessage(websocket.TextMessage, []byte("!close 4001 revoked"))
			},
			wantCode: 4001,
			wantText: "revoked",
		},
		{
			name: "bad code on command",
			send: func(c *websocket.Conn) error {
				return c.WriteMessage(websocket.TextMessage, []byte("!close nope"))
			},
			wantCode: websocket.CloseInternalServerErr,
			wantText: "bad close code",
		},
		{
			name: "client close is echoed",
			send: func(c *websocket.Conn) error {
				msg := websocket.FormatCloseMessage(4321, "bye")
				return c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			},
			wantCode: 4321,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ts := newTestServer(t)
			c, _ := dial(t, ts, "/servers/alice/ws")
			if err := tt.send(c); err != nil {
				t.Fatalf("sending: %v", err)
			}
			_, _, err := c.ReadMessage()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a close error", err)
			}
			if ce.Code != tt.wantCode || ce.Text != tt.wantText {
				t.Fatalf("got close %d %q, want %d %q", ce.Code, ce.Text, tt.wantCode, tt.wantText)
			}
		})
	}
}

func TestServeShutdownClosesWebsockets(t *testing.T) {
	s, err := New(Config{Secret: secret})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, l) }()

	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, _, err := d.Dial("ws://"+l.Addr().String()+"/ws",
		http.Header{"Authorization": {"token " + secret}})
	if err != nil {
		t.Fatalf("dialing: %v", err)
	}
	defer c.Close()
	// one echo round trip, so the server has registered the connection
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	c.WriteMessage(websocket.TextMessage, []byte("x"))
	if _, _, err := c.ReadMessage(); err != nil {
		t.Fatalf("echo: %v", err)
	}

	cancel()
	_, _, err = c.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("got %v, want close 1001 going away", err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: got %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}
