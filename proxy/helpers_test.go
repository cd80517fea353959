package proxy_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/studio-proxy/studio-proxy/internal/demoserver"
	"github.com/studio-proxy/studio-proxy/internal/testenv"
)

// call sends one request through c and returns the status and body.
func call(
	t *testing.T,
	c *http.Client,
	method, url string,
	hdr http.Header,
	body string,
) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// apiWrite sends a state-changing API call as a Studio page would.
func apiWrite(
	t *testing.T,
	env *testenv.Env,
	c *http.Client,
	base, method, path, body string,
) (int, []byte) {
	t.Helper()
	return call(t, c, method, base+env.Prefix+path, http.Header{
		"X-Studio-Csrf": {"1"},
		"Origin":        {env.ExternalURL},
		"Content-Type":  {"application/json"},
	}, body)
}

// errorCode returns the stable code of a JSON error body.
func errorCode(b []byte) string {
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	json.Unmarshal(b, &body)
	return body.Error.Code
}

// report decodes what the demo server saw.
func report(t *testing.T, b []byte) demoserver.Report {
	t.Helper()
	var rep demoserver.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("decoding report: %v: %s", err, b)
	}
	return rep
}

// dialWS opens a websocket through base with c's cookies.
func dialWS(
	t *testing.T,
	env *testenv.Env,
	c *http.Client,
	base, path string,
	hdr http.Header,
) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{Jar: c.Jar, HandshakeTimeout: 10 * time.Second}
	if hdr == nil {
		hdr = http.Header{"Origin": {env.ExternalURL}}
	}
	u := "ws" + strings.TrimPrefix(base, "http") + path
	conn, resp, err := d.Dial(u, hdr)
	if err == nil {
		t.Cleanup(func() { conn.Close() })
	}
	return conn, resp, err
}

// whoami asks the demo server behind a websocket who it thinks we are.
func whoami(t *testing.T, conn *websocket.Conn) demoserver.WhoAmI {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := conn.WriteMessage(websocket.TextMessage, []byte("!whoami")); err != nil {
		t.Fatalf("sending whoami: %v", err)
	}
	_, b, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("reading whoami: %v", err)
	}
	var w demoserver.WhoAmI
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatalf("decoding whoami: %v: %s", err, b)
	}
	return w
}

// waitClose reads conn until it closes and returns the close error, or
// fails after deadline.
func waitClose(t *testing.T, conn *websocket.Conn, deadline time.Duration) *websocket.CloseError {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(deadline))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		ce, ok := err.(*websocket.CloseError)
		if !ok {
			t.Fatalf("websocket ended with %v, want a close frame", err)
		}
		return ce
	}
}
