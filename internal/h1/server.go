// Package h1 serves the plainest HTTP/1.1 requests with a request loop
// of its own and hands every other connection to a net/http server. It
// also reads the plainest answers of backends (ReadResponse).
//
// net/http's server costs a proxy on a small machine more CPU per request
// than the proxying itself: for every request it starts a background
// read to notice the client going away (a goroutine, a parked read and
// two deadline changes), it allocates for every header field it parses,
// and its response writer runs through two layers of buffers. A Server
// reads each request head from its own buffer, and when the request is
// one it may serve (Fast says so, and it is a strictly well-formed
// HTTP/1.1 request without a body), parses it with a few allocations and
// runs the handler in the connection's goroutine with a small response
// writer. At the first request it may not serve, the connection, with
// the bytes already read, goes to Fallback for the rest of its life:
// uploads, websockets, HTTP/1.0, large heads, heads with bare LF line
// ends or folded lines, and malformed requests are all net/http's.
//
// What a handler gives up on this path: its request context is never
// cancelled, neither when the client goes away (a write to the client
// fails instead) nor when the handler returns, so a handler that ties
// work to it must cancel that work itself (with a context of its own:
// one derived from a context that cannot be cancelled costs no
// registration, and leaks nothing); Hijack and full duplex are not
// supported; and a response without a Content-Length is always chunked.
package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Server is an HTTP/1.1 server for one listener. Handler, Fast and
// Fallback are required.
type Server struct {
	// Handler serves the requests Fast accepts. It should be Fallback's
	// handler too.
	Handler http.Handler
	// Fast reports whether this server may serve r itself. r is a GET or
	// HEAD without a body and without Upgrade or Expect; Fast should say
	// no to a request whose handler needs Hijack, or a context that is
	// ever cancelled.
	Fast func(r *http.Request) bool
	// Fallback serves the connections this server hands off. Serve runs
	// it; its own timeouts apply to those connections.
	Fallback *http.Server
	// ReadHeaderTimeout bounds reading a request head, IdleTimeout
	// waiting for the next request on a kept-alive connection. Zero
	// means Fallback's, or 10 seconds and 2 minutes when it has none.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// Log receives handler panics. Nil means slog.Default().
	Log *slog.Logger

	mu       sync.Mutex
	conns    map[*conn]struct{}
	ln       net.Listener
	handoff  *handoffListener
	closing  atomic.Bool
	allGone  chan struct{} // closed when conns empties while closing
	fallback chan error
}

// headBufferSize bounds a request head this server reads itself: a
// larger one is handed to Fallback, which has its own limit.
const headBufferSize = 8 << 10

// connection states
const (
	stateIdle = iota
	stateActive
	stateGone
)

// conn is one client connection served here.
type conn struct {
	nc    net.Conn
	state int // under Server.mu
}

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, headBufferSize) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// Serve accepts connections on l until Shutdown or Close, or until
// Accept fails for good. Like http.Server.Serve it always returns a
// non-nil error: http.ErrServerClosed after Shutdown or Close.
func (s *Server) Serve(l net.Listener) error {
	if s.Handler == nil || s.Fast == nil || s.Fallback == nil {
		return errors.New("h1: Server needs Handler, Fast and Fallback")
	}
	s.mu.Lock()
	if s.ln != nil {
		s.mu.Unlock()
		return errors.New("h1: Serve called twice")
	}
	s.ln = l
	s.conns = make(map[*conn]struct{})
	s.handoff = newHandoffListener(l.Addr())
	s.fallback = make(chan error, 1)
	s.mu.Unlock()
	if s.closing.Load() {
		l.Close()
		return http.ErrServerClosed
	}
	go func() { s.fallback <- s.Fallback.Serve(s.handoff) }()

	base := context.WithValue(context.Background(), http.ServerContextKey, s.Fallback)
	var delay time.Duration // after a temporary Accept error, as net/http
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			s.handoff.Close()
			return fmt.Errorf("accepting connections: %w", err)
		}
		delay = 0
		c := &conn{nc: nc, state: stateIdle}
		if !s.track(c) {
			nc.Close()
			continue
		}
		go s.serveConn(base, c)
	}
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// setState moves c to state and reports whether it may go on: a
// connection going idle or active while the server closes may not.
func (s *Server) setState(c *conn, state int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.state == stateGone {
		return false
	}
	if s.closing.Load() && state != stateGone {
		return false
	}
	c.state = state
	if state == stateGone {
		delete(s.conns, c)
		if s.closing.Load() && len(s.conns) == 0 && s.allGone != nil {
			close(s.allGone)
			s.allGone = nil
		}
	}
	return true
}

// Shutdown stops accepting connections, closes the idle ones, lets every
// request in progress finish (here and in Fallback), and returns when
// all connections are closed or ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	gone := s.startClosing(false)
	errc := make(chan error, 1)
	go func() { errc <- s.Fallback.Shutdown(ctx) }()
	var err error
	select {
	case <-gone:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if ferr := <-errc; err == nil {
		err = ferr
	}
	return err
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error {
	s.startClosing(true)
	return s.Fallback.Close()
}

// startClosing closes the listener and the idle connections (all of
// them when all is true) and returns a channel closed when the last
// connection is gone.
func (s *Server) startClosing(all bool) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing.Store(true)
	if s.ln != nil {
		s.ln.Close()
	}
	gone := make(chan struct{})
	for c := range s.conns {
		if all || c.state == stateIdle {
			c.nc.Close()
		}
	}
	if len(s.conns) == 0 {
		close(gone)
	} else {
		s.allGone = gone
	}
	return gone
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func (s *Server) timeouts() (header, idle time.Duration) {
	header, idle = s.ReadHeaderTimeout, s.IdleTimeout
	if header <= 0 {
		header = s.Fallback.ReadHeaderTimeout
	}
	if header <= 0 {
		header = 10 * time.Second
	}
	if idle <= 0 {
		idle = s.Fallback.IdleTimeout
	}
	if idle <= 0 {
		idle = 2 * time.Minute
	}
	return header, idle
}

// serveConn runs c's request loop until the connection ends or goes to
// Fallback.
func (s *Server) serveConn(base context.Context, c *conn) {
	nc := c.nc
	rw := RawIO(nc)
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(rw)
	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(rw)
	handedOff := false
	defer func() {
		br.Reset(nil)
		readerPool.Put(br)
		bw.Reset(nil)
		writerPool.Put(bw)
		if !handedOff {
			nc.Close()
		}
		s.setState(c, stateGone)
	}()

	ctx := context.WithValue(base, http.LocalAddrContextKey, nc.LocalAddr())
	remote := nc.RemoteAddr().String()
	headerTimeout, idleTimeout := s.timeouts()
	resp := &response{bw: bw}
	wait := headerTimeout // the first request comes at once
	for {
		// wait for the next request
		nc.SetReadDeadline(time.Now().Add(wait))
		if _, err := br.Peek(1); err != nil {
			return
		}
		if !s.setState(c, stateActive) {
			return
		}
		if b, _ := br.Peek(br.Buffered()); headEnd(b) == 0 {
			// the rest of the head is still to come: within the header
			// timeout (a head that came whole needs no timer change)
			nc.SetReadDeadline(time.Now().Add(headerTimeout))
		}
		head, err := readHead(br)
		if err != nil {
			// a head that does not arrive in time, or a connection that
			// broke in the middle of one, gets nothing
			return
		}
		if head == nil {
			handedOff = s.handOff(c, br)
			return
		}
		// parsed stays on the stack: the request the handler gets is
		// WithContext's copy
		var parsed http.Request
		if !parseRequest(head, &parsed) {
			handedOff = s.handOff(c, br)
			return
		}
		parsed.RemoteAddr = remote
		r := parsed.WithContext(ctx)
		if !s.Fast(r) {
			handedOff = s.handOff(c, br)
			return
		}
		br.Discard(len(head))
		// the read deadline stays as it is: the handler does not read
		// the connection (no body), and the next turn sets its own

		resp.reset(r)
		keep := s.serveRequest(resp, r)
		if !keep || !s.setState(c, stateIdle) {
			return
		}
		wait = idleTimeout
	}
}

// serveRequest runs the handler for r and finishes its answer. It
// reports whether the connection may serve another request.
func (s *Server) serveRequest(rw *response, r *http.Request) (keep bool) {
	defer func() {
		if v := recover(); v != nil {
			keep = false
			if v == http.ErrAbortHandler {
				return
			}
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			s.log().Error("handler panicked", "method", r.Method, "path", r.URL.Path,
				"panic", fmt.Sprint(v), "stack", string(buf))
		}
	}()
	s.Handler.ServeHTTP(rw, r)
	return rw.finish() && !r.Close
}

// handOff gives c to Fallback with what was read of it so far. It
// reports whether Fallback took it.
func (s *Server) handOff(c *conn, br *bufio.Reader) bool {
	nc := c.nc
	nc.SetReadDeadline(time.Time{})
	var read []byte
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		read = bytes.Clone(b)
	}
	return s.handoff.give(&replayConn{Conn: nc, read: read})
}

// readHead returns the request head at the start of br, up to and with
// the empty line that ends it, once all of it has arrived; nil when it
// does not fit in br's buffer.
func readHead(br *bufio.Reader) ([]byte, error) {
	n := br.Buffered()
	for {
		b, err := br.Peek(n)
		if end := headEnd(b); end > 0 {
			return b[:end], nil
		}
		if err != nil {
			return nil, err
		}
		if n >= br.Size() {
			return nil, nil
		}
		n = min(max(br.Buffered(), n+1), br.Size())
	}
}

// headEnd returns the length of the head in b (lines end in "\n" or
// "\r\n"; an empty line ends the head), or 0 when it is not complete.
func headEnd(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return 0
		}
		i += j + 1
		switch {
		case i < len(b) && b[i] == '\n':
			return i + 1
		case i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n':
			return i + 2
		}
	}
}
