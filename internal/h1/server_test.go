package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// servedBy is the header the test handlers set to say which server ran
// them: "loop" for the request loop, "fallback" for net/http.
const servedBy = "X-Served-By"

// start serves h on a new listener with an h1.Server whose Fast accepts
// every request not under /slow/, and returns its address.
func start(t *testing.T, h http.HandlerFunc, opts ...func(*Server)) (string, *Server) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wrapped := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who := "fallback"
		if _, ok := w.(*response); ok {
			who = "loop"
		}
		w.Header().Set(servedBy, who)
		h(w, r)
	})
	s := &Server{
		Handler: wrapped,
		Fast:    func(r *http.Request) bool { return !strings.HasPrefix(r.URL.Path, "/slow/") },
		// the panic tests make net/http log; keep the test output quiet
		Fallback: &http.Server{Handler: wrapped, ErrorLog: log.New(io.Discard, "", 0)},
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, o := range opts {
		o(s)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return l.Addr().String(), s
}

// rawConn is a client connection that writes bytes as given and reads
// answers with net/http's parser.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatalf("writing: %v", err)
	}
}

// answer reads one answer to a request of method and its whole body.
func (rc *rawConn) answer(method string) (*http.Response, string) {
	rc.t.Helper()
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		rc.t.Fatalf("reading answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatalf("reading body: %v", err)
	}
	return resp, string(b)
}

// closed reports whether the server closed the connection: a read gets
// EOF (or a reset) rather than more bytes.
func (rc *rawConn) closed() bool {
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := rc.br.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func get(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: example.test\r\n\r\n"
}

func hello(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "%s %s from %s", r.Method, r.URL.RequestURI(), r.Host)
}

func TestKeepAliveAndPipelining(t *testing.T) {
	addr, _ := start(t, hello)
	rc := dial(t, addr)
	// three requests in one write: answered in order on one connection
	rc.send(get("/a") + get("/b?x=1") + get("/c"))
	for _, want := range []string{"/a", "/b?x=1", "/c"} {
		resp, body := rc.answer("GET")
		if resp.StatusCode != 200 || body != "GET "+want+" from example.test" {
			t.Fatalf("got %d %q, want 200 for %s", resp.StatusCode, body, want)
		}
		if got := resp.Header.Get(servedBy); got != "loop" {
			t.Errorf("%s served by %s, want the loop", want, got)
		}
		if resp.Header.Get("Date") == "" {
			t.Errorf("%s: no Date header", want)
		}
	}
	// and a later one
	rc.send(get("/d"))
	if _, body := rc.answer("GET"); body != "GET /d from example.test" {
		t.Fatalf("got %q", body)
	}
}

func TestHandOff(t *testing.T) {
	addr, _ := start(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %q", r.Method, r.URL.Path, b)
	})
	rc := dial(t, addr)
	// a fast request, then one with a body, then another fast one: the
	// connection moves to net/http at the second and stays there, and
	// not a byte of the second request is lost on the way
	rc.send(get("/one") +
		"POST /two HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello" +
		get("/three"))
	for _, want := range []struct{ by, body string }{
		{"loop", `GET /one ""`},
		{"fallback", `POST /two "hello"`},
		{"fallback", `GET /three ""`},
	} {
		resp, body := rc.answer("GET")
		if body != want.body || resp.Header.Get(servedBy) != want.by {
			t.Fatalf("got %q from %s, want %q from %s", body, resp.Header.Get(servedBy), want.body, want.by)
		}
	}
}

// TestHandOffCases: every request the loop does not take itself is
// answered by net/http exactly as without the loop, including the
// refusals of malformed ones.
func TestHandOffCases(t *testing.T) {
	addr, _ := start(t, hello)
	big := strings.Repeat("x", headBufferSize)
	for _, c := range []struct {
		name, req string
		status    int
		by        string
	}{
		{"refused by Fast", get("/slow/x"), 200, "fallback"},
		{"HTTP/1.0", "GET /a HTTP/1.0\r\nHost: h\r\n\r\n", 200, "fallback"},
		{"POST", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", 200, "fallback"},
		{"GET with a body", "GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab", 200, "fallback"},
		{"chunked GET", "GET /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 200, "fallback"},
		{"upgrade", "GET /a HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", 200, "fallback"},
		{"expect", "GET /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n", 200, "fallback"},
		{"head too big", "GET /a HTTP/1.1\r\nHost: h\r\nX-Big: " + big + "\r\n\r\n", 200, "fallback"},
		{"bare line feeds", "GET /a HTTP/1.1\nHost: h\n\n", 200, "fallback"},
		{"folded field", "GET /a HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n", 200, "fallback"},
		{"lower-case names", "GET /a HTTP/1.1\r\nhost: h\r\nx-a: 1\r\n\r\n", 200, "loop"},
		{"absolute form", "GET http://h/a HTTP/1.1\r\nHost: h\r\n\r\n", 200, "fallback"},
		{"no Host", "GET /a HTTP/1.1\r\n\r\n", 400, ""},
		{"two Hosts", "GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, ""},
		{"bad Host", "GET /a HTTP/1.1\r\nHost: a b\r\n\r\n", 400, ""},
		{"bad field name", "GET /a HTTP/1.1\r\nHost: h\r\nX (y): 1\r\n\r\n", 400, ""},
		{"bad field value", "GET /a HTTP/1.1\r\nHost: h\r\nX-Y: a\x00b\r\n\r\n", 400, ""},
		{"CL and TE", "GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 200, "fallback"},
		{"bad method", "G(T /a HTTP/1.1\r\nHost: h\r\n\r\n", 400, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			rc := dial(t, addr)
			rc.send(c.req)
			resp, _ := rc.answer("GET")
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			if got := resp.Header.Get(servedBy); got != c.by {
				t.Fatalf("served by %q, want %q", got, c.by)
			}
		})
	}
}

// TestFraming compares the loop's answers with net/http's for the same
// handlers: same status, same body, same framing where it matters.
func TestFraming(t *testing.T) {
	handlers := map[string]http.HandlerFunc{
		"/length": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		},
		"/chunks": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(201)
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "bc")
		},
		"/empty": func(w http.ResponseWriter, r *http.Request) {},
		"/sniff": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "<html><body>hi</body></html>")
		},
		"/nocontent": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(204)
			if _, err := io.WriteString(w, "x"); !errors.Is(err, http.ErrBodyNotAllowed) {
				panic(fmt.Sprintf("write after 204: %v", err))
			}
		},
		"/notmodified": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", `"1"`)
			w.WriteHeader(304)
		},
		"/trailers": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Sum")
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "data")
			w.Header().Set("X-Sum", "42")
			w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
		},
		"/late-header": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Early", "1")
			w.WriteHeader(200)
			w.Header().Set("X-Late", "1") // after WriteHeader: not sent
			io.WriteString(w, "ok")
		},
		"/split": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Evil", "a\r\nSet-Cookie: x=1")
			io.WriteString(w, "ok")
		},
		"/date": func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Date"] = nil // no Date header at all
			io.WriteString(w, "ok")
		},
	}
	mux := func(w http.ResponseWriter, r *http.Request) { handlers[r.URL.Path](w, r) }
	loopAddr, _ := start(t, mux)
	stdAddr, _ := start(t, mux, func(s *Server) {
		s.Fast = func(*http.Request) bool { return false }
	})
	for path := range handlers {
		for _, method := range []string{"GET", "HEAD"} {
			t.Run(method+path, func(t *testing.T) {
				req := method + " " + path + " HTTP/1.1\r\nHost: h\r\n\r\n"
				var got [2]*http.Response
				var bodies [2]string
				for i, addr := range []string{loopAddr, stdAddr} {
					rc := dial(t, addr)
					rc.send(req + req) // twice: the connection survives
					got[i], bodies[i] = rc.answer(method)
					if second, _ := rc.answer(method); second.StatusCode != got[i].StatusCode {
						t.Fatalf("second answer %d, first %d", second.StatusCode, got[i].StatusCode)
					}
				}
				loop, std := got[0], got[1]
				if loop.Header.Get(servedBy) != "loop" || std.Header.Get(servedBy) != "fallback" {
					t.Fatal("the two servers were not the loop and net/http")
				}
				if loop.StatusCode != std.StatusCode || bodies[0] != bodies[1] {
					t.Fatalf("loop %d %q, net/http %d %q", loop.StatusCode, bodies[0], std.StatusCode, bodies[1])
				}
				for _, k := range []string{"Content-Type", "X-Early", "X-Late", "X-Evil", "Set-Cookie", "Etag", "Trailer"} {
					if a, b := loop.Header.Values(k), std.Header.Values(k); fmt.Sprint(a) != fmt.Sprint(b) {
						t.Errorf("header %s: loop %q, net/http %q", k, a, b)
					}
				}
				if _, a := loop.Header["Date"]; a != (std.Header.Get("Date") != "") {
					t.Errorf("Date: loop %v, net/http %q", a, std.Header.Get("Date"))
				}
				if fmt.Sprint(loop.Trailer) != fmt.Sprint(std.Trailer) {
					t.Errorf("trailers: loop %v, net/http %v", loop.Trailer, std.Trailer)
				}
				if method == "GET" && (loop.ContentLength >= 0) != (std.ContentLength >= 0) &&
					path != "/chunks" && path != "/sniff" && path != "/split" && path != "/late-header" && path != "/date" {
					// net/http also counts short bodies it buffered whole;
					// the loop sends them chunked. Elsewhere both agree.
					t.Errorf("Content-Length: loop %d, net/http %d", loop.ContentLength, std.ContentLength)
				}
			})
		}
	}
}

func TestFlushStreams(t *testing.T) {
	release := make(chan struct{})
	addr, _ := start(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second\n")
	})
	rc := dial(t, addr)
	rc.send(get("/"))
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("before the handler ended: %q, %v", line, err)
	}
	close(release)
}

func TestCloseAndAbort(t *testing.T) {
	addr, _ := start(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/short":
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "abc")
		case "/abort":
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		case "/panic":
			panic("boom")
		case "/toolong":
			w.Header().Set("Content-Length", "2")
			if _, err := io.WriteString(w, "abc"); !errors.Is(err, http.ErrContentLength) {
				panic(fmt.Sprintf("write past Content-Length: %v", err))
			}
			io.WriteString(w, "ab")
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		default:
			io.WriteString(w, "ok")
		}
	})

	t.Run("client asks to close", func(t *testing.T) {
		rc := dial(t, addr)
		rc.send("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
		resp, body := rc.answer("GET")
		if body != "ok" || !resp.Close {
			t.Fatalf("got %q, close %v", body, resp.Close)
		}
		if !rc.closed() {
			t.Fatal("connection left open")
		}
	})
	t.Run("handler asks to close", func(t *testing.T) {
		rc := dial(t, addr)
		rc.send(get("/close"))
		if resp, body := rc.answer("GET"); body != "bye" || !resp.Close {
			t.Fatalf("got %q, close %v", body, resp.Close)
		}
		if !rc.closed() {
			t.Fatal("connection left open")
		}
	})
	t.Run("body longer than declared", func(t *testing.T) {
		// the write that would pass the length fails whole; the handler
		// can still finish the answer right
		rc := dial(t, addr)
		rc.send(get("/toolong") + get("/"))
		if _, body := rc.answer("GET"); body != "ab" {
			t.Fatalf("got %q", body)
		}
		if _, body := rc.answer("GET"); body != "ok" {
			t.Fatalf("next answer %q", body)
		}
	})
	t.Run("body shorter than declared", func(t *testing.T) {
		rc := dial(t, addr)
		rc.send(get("/short"))
		resp, err := http.ReadResponse(rc.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(resp.Body); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("reading a short body: %v, want unexpected EOF", err)
		}
	})
	for _, path := range []string{"/abort", "/panic"} {
		t.Run(path, func(t *testing.T) {
			// the client must see the answer cut, not a complete one
			rc := dial(t, addr)
			rc.send(get(path))
			resp, err := http.ReadResponse(rc.br, nil)
			if err != nil {
				return // cut before the head: fine
			}
			if b, err := io.ReadAll(resp.Body); err == nil {
				t.Fatalf("a cut answer read as complete: %q", b)
			}
		})
	}
}

func TestTimeouts(t *testing.T) {
	addr, _ := start(t, hello, func(s *Server) {
		s.ReadHeaderTimeout = 200 * time.Millisecond
		s.IdleTimeout = 200 * time.Millisecond
	})
	t.Run("idle", func(t *testing.T) {
		rc := dial(t, addr)
		rc.send(get("/"))
		rc.answer("GET")
		if !rc.closed() {
			t.Fatal("idle connection not closed")
		}
	})
	t.Run("slow head", func(t *testing.T) {
		rc := dial(t, addr)
		rc.send("GET / HTTP/1.1\r\nHost: h\r\n") // never ends
		if !rc.closed() {
			t.Fatal("connection with an unfinished head not closed")
		}
	})
}

func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	addr, s := start(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait" {
			started <- struct{}{}
			<-release
		}
		io.WriteString(w, "done")
	})
	idle := dial(t, addr)
	idle.send(get("/"))
	idle.answer("GET")
	busy := dial(t, addr)
	busy.send(get("/wait"))
	<-started
	handed := dial(t, addr)
	handed.send(get("/slow/x"))
	handed.answer("GET")

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	// idle connections, here and in net/http, are closed at once; the
	// request in progress finishes with its answer
	if !idle.closed() {
		t.Fatal("idle connection left open")
	}
	if !handed.closed() {
		t.Fatal("idle handed-off connection left open")
	}
	close(release)
	resp, body := busy.answer("GET")
	if body != "done" {
		t.Fatalf("request in progress answered %d %q", resp.StatusCode, body)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if !busy.closed() {
		t.Fatal("connection left open after its request")
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("still accepting connections")
	}
}

// BenchmarkLoop measures the loop's cost per request over loopback, next
// to net/http's (run both with -benchmem; the CPU figure is what counts
// on a machine that is also busy generating the load).
func BenchmarkLoop(b *testing.B) {
	for _, fast := range []bool{true, false} {
		name := "loop"
		if !fast {
			name = "net-http"
		}
		b.Run(name, func(b *testing.B) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.Header().Set("Content-Length", "2")
				io.WriteString(w, "ok")
			})
			s := &Server{Handler: h, Fast: func(*http.Request) bool { return fast }, Fallback: &http.Server{Handler: h}}
			go s.Serve(l)
			defer s.Close()
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			req := []byte(get("/x"))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
			}
		})
	}
}
