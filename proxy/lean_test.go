package proxy

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/studio-proxy/studio-proxy/backend"
)

// forwarders are the two forwarding paths; every test here runs on both,
// and the lean one must behave as ReverseProxy does.
var forwarders = []struct {
	name string
	lean bool
}{
	{"lean", true},
	{"reverseproxy", false},
}

// forwardPair is a backend and a frontend that forwards every request to
// it as alice, pinned to server "alice", with the request context the
// frontend's cut function cancels.
type forwardPair struct {
	p     *Proxy
	front *httptest.Server
	back  *httptest.Server
	conns atomic.Int32 // backend connections opened

	mu  sync.Mutex
	cut context.CancelCauseFunc // of the latest request
}

func newForwardPair(t testing.TB, lean bool, backend http.HandlerFunc) *forwardPair {
	t.Helper()
	fp := &forwardPair{}
	fp.back = httptest.NewUnstartedServer(backend)
	fp.back.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			fp.conns.Add(1)
		}
	}
	fp.back.Start()
	t.Cleanup(fp.back.Close)

	cfg := Config{ReverseProxyOnly: !lean, ResponseHeaderTimeout: 500 * time.Millisecond}
	setDefaults(&cfg)
	cfg.Log = slog.New(slog.DiscardHandler)
	fp.p = &Proxy{cfg: cfg, log: cfg.Log, metrics: newMetrics(nil), prefix: DefaultPrefix}
	fp.p.initForwarding()

	addr, _ := url.Parse(fp.back.URL)
	e := serverEntry{s: testServer, addr: addr}
	fp.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt, err := parsePath(r.URL.EscapedPath(), DefaultPrefix)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithCancelCause(r.Context())
		defer cancel(nil)
		fp.mu.Lock()
		fp.cut = cancel
		fp.mu.Unlock()
		fp.p.forward(w, r.WithContext(ctx), "alice", rt, e)
	}))
	t.Cleanup(fp.front.Close)
	return fp
}

var testServer = backend.Server{ID: "alice", Secret: "s3cret", State: backend.Running}

// do sends a request to the frontend and returns the answer with its
// body read.
func (fp *forwardPair) do(
	t *testing.T,
	method, path string,
	h http.Header,
) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, fp.front.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := fp.front.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, string(b)
}

// TestLeanHeadersAsReverseProxy sends the same hostile request through
// both paths and compares what the backend saw and what the client got.
func TestLeanHeadersAsReverseProxy(t *testing.T) {
	type seen struct {
		request  string
		response http.Header
	}
	results := map[string]seen{}
	for _, f := range forwarders {
		var got string
		fp := newForwardPair(t, f.lean, func(w http.ResponseWriter, r *http.Request) {
			var b strings.Builder
			b.WriteString(r.Method + " " + r.RequestURI + " host=" + r.Host + "\n")
			r.Header.Write(&b)
			got = b.String()

			h := w.Header()
			h.Add("Set-Cookie", "studio_session=forged; Path=/")
			h.Add("Set-Cookie", "__Host-studio_server=bob; Path=/")
			h.Add("Set-Cookie", "_xsrf=kept; Path=/")
			h.Set("Access-Control-Allow-Origin", "https://evil.example")
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Connection", "X-Resp-Hop")
			h.Set("X-Resp-Hop", "dropped")
			h.Set("Keep-Alive", "timeout=5")
			h.Set("X-Kept", "yes")
			io.WriteString(w, "hello")
		})
		resp, body := fp.do(t, "GET", "/servers//ALICE//a%2Fb/c?x=1&y=%20", http.Header{
			"X-Studio-User":       {"mallory"},
			"X_Studio_User":       {"mallory"},
			"X-Forwarded-For":     {"10.9.9.9"},
			"X-Forwarded-Host":    {"evil.example"},
			"Forwarded":           {"for=10.9.9.9"},
			"Authorization":       {"token stolen"},
			"Proxy-Authorization": {"Basic x"},
			"X-Auth-Request-User": {"mallory"},
			"Cookie":              {"studio_session=abc; _xsrf=1; __Host-studio_server=x"},
			"Connection":          {"keep-alive, X-Hop"},
			"X-Hop":               {"dropped"},
			"Te":                  {"trailers"},
			"Accept-Encoding":     {"gzip"},
			"X-Other":             {"kept"},
		})
		if resp.StatusCode != http.StatusOK || body != "hello" {
			t.Fatalf("%s: got %d %q, want 200 hello", f.name, resp.StatusCode, body)
		}
		resp.Header.Del("Date")
		// the two pairs listen on ports of their own
		norm := strings.NewReplacer(fp.back.Listener.Addr().String(), "BACKEND",
			fp.front.Listener.Addr().String(), "FRONTEND")
		results[f.name] = seen{request: norm.Replace(got), response: resp.Header}

		for _, bad := range []string{"mallory", "10.9.9.9", "stolen", "studio_session",
			"studio_server", "X-Hop", "Basic"} {
			if strings.Contains(got, bad) {
				t.Errorf("%s: backend saw %q:\n%s", f.name, bad, got)
			}
		}
		for _, want := range []string{"X-Studio-User: alice", "Authorization: token s3cret",
			"Cookie: _xsrf=1", "GET /servers/alice/a%2Fb/c?x=1&y=%20 ", "X-Other: kept",
			"Te: trailers"} {
			if !strings.Contains(got, want) {
				t.Errorf("%s: backend did not see %q:\n%s", f.name, want, got)
			}
		}
		if v := resp.Header.Values("Set-Cookie"); len(v) != 1 || !strings.HasPrefix(v[0], "_xsrf") {
			t.Errorf("%s: got Set-Cookie %q, want only _xsrf", f.name, v)
		}
		for _, k := range []string{"Access-Control-Allow-Origin", "X-Resp-Hop", "Keep-Alive"} {
			if v := resp.Header.Get(k); v != "" {
				t.Errorf("%s: client got %s: %q, want none", f.name, k, v)
			}
		}
	}

	lean, rp := results["lean"], results["reverseproxy"]
	if lean.request != rp.request {
		t.Errorf("backend saw\n%s\nthrough the lean path, and\n%s\nthrough ReverseProxy",
			lean.request, rp.request)
	}
	var lb, rb strings.Builder
	lean.response.Write(&lb)
	rp.response.Write(&rb)
	if lb.String() != rb.String() {
		t.Errorf("client got\n%s\nthrough the lean path, and\n%s\nthrough ReverseProxy",
			lb.String(), rb.String())
	}
}

func TestLeanBodies(t *testing.T) {
	big := strings.Repeat("0123456789", 10000)
	tests := []struct {
		name    string
		method  string
		handler http.HandlerFunc
		status  int
		body    string
	}{
		{"content-length", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100000")
			io.WriteString(w, big)
		}, 200, big},
		{"chunked", "GET", func(w http.ResponseWriter, r *http.Request) {
			for range 3 {
				io.WriteString(w, "part ")
				w.(http.Flusher).Flush()
			}
		}, 200, "part part part "},
		{"no body", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		}, 204, ""},
		{"head", "HEAD", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
		}, 200, ""},
		{"trailers", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "data")
			w.Header().Set("X-Sum", "42")
		}, 200, "data"},
		{"not modified", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNotModified)
		}, 304, ""},
	}
	for _, f := range forwarders {
		for _, tt := range tests {
			t.Run(f.name+" "+tt.name, func(t *testing.T) {
				fp := newForwardPair(t, f.lean, tt.handler)
				for i := range 3 {
					resp, body := fp.do(t, tt.method, "/servers/alice/x", nil)
					if resp.StatusCode != tt.status || body != tt.body {
						t.Fatalf("request %d: got %d %.40q, want %d %.40q",
							i, resp.StatusCode, body, tt.status, tt.body)
					}
					if tt.name == "trailers" && resp.Trailer.Get("X-Sum") != "42" {
						t.Errorf("got trailer %q, want 42", resp.Trailer.Get("X-Sum"))
					}
				}
				// keep-alive: one backend connection served all three
				if n := fp.conns.Load(); n != 1 {
					t.Errorf("got %d backend connections, want 1", n)
				}
				// the handler returns the connection to the pool just after
				// the client has the whole answer: wait for it
				if f.lean {
					addr := fp.back.Listener.Addr().String()
					deadline := time.Now().Add(5 * time.Second)
					for fp.p.lean.idleCount(addr) != 1 && time.Now().Before(deadline) {
						time.Sleep(5 * time.Millisecond)
					}
					if n := fp.p.lean.idleCount(addr); n != 1 {
						t.Errorf("got %d idle connections in the lean pool, want 1", n)
					}
				}
			})
		}
	}
}

func TestLeanStreamingFlush(t *testing.T) {
	for _, f := range forwarders {
		t.Run(f.name, func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			fp := newForwardPair(t, f.lean, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				w.Header().Set("Content-Length", "100")
				io.WriteString(w, "data: 1\n\n")
				w.(http.Flusher).Flush()
				<-release
			})
			resp, err := fp.front.Client().Get(fp.front.URL + "/servers/alice/events")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			line := make(chan string, 1)
			go func() {
				s, _ := bufio.NewReader(resp.Body).ReadString('\n')
				line <- s
			}()
			select {
			case s := <-line:
				if s != "data: 1\n" {
					t.Errorf("got %q, want data: 1", s)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("first event not flushed")
			}
		})
	}
}

func TestLeanBackendFailures(t *testing.T) {
	for _, f := range forwarders {
		t.Run(f.name+" closes without answering", func(t *testing.T) {
			fp := newForwardPair(t, f.lean, func(w http.ResponseWriter, r *http.Request) {
				c, _, _ := http.NewResponseController(w).Hijack()
				c.Close()
			})
			resp, body := fp.do(t, "GET", "/servers/alice/x", nil)
			if resp.StatusCode != http.StatusBadGateway ||
				!strings.Contains(body, "backend_unreachable") {
				t.Errorf("got %d %s, want 502 backend_unreachable", resp.StatusCode, body)
			}
		})
		t.Run(f.name+" slow headers", func(t *testing.T) {
			fp := newForwardPair(t, f.lean, func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(3 * time.Second):
				}
			})
			resp, body := fp.do(t, "GET", "/servers/alice/x", nil)
			if resp.StatusCode != http.StatusGatewayTimeout ||
				!strings.Contains(body, "backend_timeout") {
				t.Errorf("got %d %s, want 504 backend_timeout", resp.StatusCode, body)
			}
		})
		t.Run(f.name+" body slower than the header timeout", func(t *testing.T) {
			fp := newForwardPair(t, f.lean, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "10")
				io.WriteString(w, "hello")
				w.(http.Flusher).Flush()
				time.Sleep(800 * time.Millisecond) // the header timeout is 500 ms
				io.WriteString(w, "world")
			})
			if resp, body := fp.do(t, "GET", "/servers/alice/x", nil); body != "helloworld" {
				t.Errorf("got %d %q, want helloworld", resp.StatusCode, body)
			}
		})
		t.Run(f.name+" head too large", func(t *testing.T) {
			fp := newForwardPair(t, f.lean, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Big", strings.Repeat("x", maxResponseHead))
				io.WriteString(w, "big")
			})
			resp, body := fp.do(t, "GET", "/servers/alice/x", nil)
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("got %d %s, want 502", resp.StatusCode, body)
			}
		})
		t.Run(f.name+" connection close", func(t *testing.T) {
			fp := newForwardPair(t, f.lean, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Connection", "close")
				io.WriteString(w, "bye")
			})
			for range 2 {
				if resp, body := fp.do(t, "GET", "/servers/alice/x", nil); body != "bye" {
					t.Fatalf("got %d %q, want bye", resp.StatusCode, body)
				}
			}
			if n := fp.conns.Load(); n != 2 {
				t.Errorf("got %d backend connections, want 2", n)
			}
		})
		t.Run(f.name+" idle connection closed by the backend", func(t *testing.T) {
			fp := newForwardPair(t, f.lean, func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "ok")
			})
			for i := range 3 {
				if resp, body := fp.do(t, "GET", "/servers/alice/x", nil); body != "ok" {
					t.Fatalf("request %d: got %d %q, want ok", i, resp.StatusCode, body)
				}
				fp.back.CloseClientConnections()
			}
		})
	}
}

// TestLeanCutMidBody: cancelling the request context (what a revoke
// does) ends a response that is streaming and closes the backend
// connection.
func TestLeanCutMidBody(t *testing.T) {
	for _, f := range forwarders {
		t.Run(f.name, func(t *testing.T) {
			backendGone := make(chan struct{})
			fp := newForwardPair(t, f.lean, func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "one\n")
				w.(http.Flusher).Flush()
				<-r.Context().Done()
				close(backendGone)
			})
			resp, err := fp.front.Client().Get(fp.front.URL + "/servers/alice/stream")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			rd := bufio.NewReader(resp.Body)
			if s, err := rd.ReadString('\n'); s != "one\n" {
				t.Fatalf("got %q %v, want one", s, err)
			}

			fp.mu.Lock()
			fp.cut(&cutError{code: CloseRevoked, reason: "revoked"})
			fp.mu.Unlock()
			select {
			case <-backendGone:
			case <-time.After(2 * time.Second):
				t.Fatal("backend request still open after the cut")
			}
			if _, err := io.ReadAll(rd); err == nil {
				t.Error("response ended as if complete, want an error")
			}
		})
	}
}

func TestLeanable(t *testing.T) {
	addr := &url.URL{Scheme: "http", Host: "127.0.0.1:1"}
	tests := []struct {
		name   string
		method string
		target string
		h      http.Header
		body   string
		want   bool
	}{
		{"get", "GET", "/x?a=1", nil, "", true},
		{"head", "HEAD", "/x", nil, "", true},
		{"post", "POST", "/x", nil, "", false},
		{"get with body", "GET", "/x", nil, "b", false},
		{"expect", "GET", "/x", http.Header{"Expect": {"100-continue"}}, "", false},
		{"upgrade", "GET", "/x", http.Header{"Upgrade": {"h2c"}}, "", false},
		{"semicolon query", "GET", "/x?a=1;b=2", nil, "", false},
		{"bad escape", "GET", "/x?a=%zz", nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
			for k, vs := range tt.h {
				r.Header[k] = vs
			}
			if got := leanable(r, serverEntry{addr: addr}); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	https := serverEntry{addr: &url.URL{Scheme: "https", Host: "x"}}
	if leanable(httptest.NewRequest("GET", "/x", nil), https) {
		t.Error("https backend: got lean, want ReverseProxy")
	}
}

func TestConnPoolExpires(t *testing.T) {
	cp := newConnPool(&net.Dialer{}, 20*time.Millisecond, 2)
	newConn := func(addr string) (*backendConn, net.Conn) {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return &backendConn{addr: addr, conn: a}, b
	}

	c1, peer1 := newConn("a:1")
	cp.put(c1)
	if got := cp.take("a:1"); got != c1 {
		t.Fatalf("take: got %v, want the connection just put", got)
	}
	cp.put(c1)

	// with no request at all, the expired connection is closed
	peer1.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := peer1.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("expired connection: got %v, want it closed (EOF)", err)
	}
	if n := cp.idleCount("a:1"); n != 0 {
		t.Errorf("a:1 has %d idle connections after the idle timeout, want none", n)
	}

	// at most maxIdle per address
	kept := newConnPool(&net.Dialer{}, time.Hour, 2)
	defer kept.closeIdle()
	for range 3 {
		c, _ := newConn("b:1")
		kept.put(c)
	}
	if n := kept.idleCount("b:1"); n != 2 {
		t.Errorf("got %d idle connections, want 2", n)
	}
}

// idleCount is the number of idle connections to addr.
func (cp *connPool) idleCount(addr string) int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return len(cp.idle[addr])
}

// BenchmarkForward measures one small GET through each forwarding path,
// client and backend included; run with -benchmem for the allocations.
func BenchmarkForward(b *testing.B) {
	body := strings.Repeat("x", 200)
	for _, f := range forwarders {
		b.Run(f.name, func(b *testing.B) {
			fp := newForwardPair(b, f.lean, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, body)
			})
			c := fp.front.Client()
			url := fp.front.URL + "/servers/alice/bench"
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

// TestWriteHead holds the lean path's request head against
// (*http.Request).Write's, as the backend parses them, and checks that a
// field that cannot be sent fails the request.
func TestWriteHead(t *testing.T) {
	u, _ := url.Parse("http://127.0.0.1:9/servers/alice/a%2Fb/c?x=1&y=%20")
	req := func(h http.Header) *http.Request {
		uc := *u
		if _, ok := h["User-Agent"]; !ok {
			h["User-Agent"] = []string{""} // as outgoing sets it
		}
		return &http.Request{Method: "GET", URL: &uc, Header: h, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	}
	parse := func(t *testing.T, write func(*bufio.Writer) error) *http.Request {
		t.Helper()
		var b strings.Builder
		bw := bufio.NewWriter(&b)
		if err := write(bw); err != nil {
			t.Fatal(err)
		}
		bw.Flush()
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(b.String())))
		if err != nil {
			t.Fatalf("parsing %q: %v", b.String(), err)
		}
		return r
	}

	for name, h := range map[string]http.Header{
		"plain":           {"Accept": {"*/*"}, "X-Two": {"a", "b"}, "Cookie": {"_xsrf=1"}},
		"empty agent":     {"User-Agent": {""}, "X-Empty": {""}},
		"two agents":      {"User-Agent": {"first", "second"}},
		"padded":          {"X-Pad": {"  v  "}},
		"framing dropped": {"Content-Length": {"5"}, "Transfer-Encoding": {"chunked"}, "Trailer": {"X"}, "Host": {"evil"}},
	} {
		t.Run(name, func(t *testing.T) {
			want := parse(t, func(bw *bufio.Writer) error { return req(h.Clone()).Write(bw) })
			got := parse(t, func(bw *bufio.Writer) error { return writeHead(bw, req(h.Clone())) })
			if got.Method != want.Method || got.RequestURI != want.RequestURI || got.Host != want.Host ||
				got.ContentLength != want.ContentLength {
				t.Errorf("got %s %s host %s length %d, want %s %s host %s length %d",
					got.Method, got.RequestURI, got.Host, got.ContentLength,
					want.Method, want.RequestURI, want.Host, want.ContentLength)
			}
			var gw, ww strings.Builder
			got.Header.Write(&gw)
			want.Header.Write(&ww)
			if gw.String() != ww.String() {
				t.Errorf("header:\n%s\nwant:\n%s", gw.String(), ww.String())
			}
		})
	}

	for name, h := range map[string]http.Header{
		"newline in value": {"X-Studio-User": {"alice\r\nX-Admin: 1"}},
		"bad name":         {"X Bad": {"1"}},
	} {
		if err := writeHead(bufio.NewWriter(io.Discard), req(h)); err == nil {
			t.Errorf("%s: writeHead sent it", name)
		}
	}
	bad := req(http.Header{})
	bad.Host = "evil\r\nX: 1"
	if err := writeHead(bufio.NewWriter(io.Discard), bad); err == nil {
		t.Errorf("bad Host: writeHead sent it")
	}
}
