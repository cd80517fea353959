package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/studio-proxy/studio-proxy/internal/h1"
)

// maxResponseHead bounds the head of a backend's answer, on both
// forwarding paths: a larger one is a 502, as nginx answers one over its
// proxy_buffer_size.
const maxResponseHead = 16 << 10

// The lean path forwards plain GET and HEAD requests in the handler's own
// goroutine: it takes an idle connection to the backend from connPool,
// writes the outgoing request's head (writeHead), reads the answer with
// h1.ReadResponse and copies it back. ReverseProxy over
// http.Transport hands each request to two more goroutines (the
// connection's writer and reader) with a wakeup each; on a small VM that
// is most of the proxy's CPU per request.
//
// Everything unusual goes through ReverseProxy instead: request bodies
// (full duplex, upload cuts), upgrades, Expect, https backends, other
// methods, and queries ReverseProxy would rewrite.

// leanable reports whether the lean path forwards r to e.
func leanable(r *http.Request, e serverEntry) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if r.ContentLength != 0 || e.addr.Scheme != "http" {
		return false
	}
	h := r.Header
	if _, ok := h["Expect"]; ok {
		return false
	}
	if _, ok := h["Upgrade"]; ok {
		return false
	}
	return cleanQuery(r.URL.RawQuery)
}

// cleanQuery reports whether ReverseProxy would send the query as is: it
// re-encodes queries with a ';' or a bad escape.
func cleanQuery(q string) bool {
	for i := 0; i < len(q); i++ {
		switch q[i] {
		case ';':
			return false
		case '%':
			if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// forwardLean forwards a leanable request. Its headers are what
// ReverseProxy with rewrite would send and answer, header for header.
func (p *Proxy) forwardLean(w http.ResponseWriter, r *http.Request, o *outbound) {
	ctx := r.Context()
	out := p.outgoing(r, o)

	x, err := p.lean.roundTrip(ctx, out, p.cfg.ResponseHeaderTimeout)
	if err != nil {
		p.backendFailure(w, r, o.server.s.ID, err)
		return
	}
	resp := x.resp

	// the answer's headers, cleaned as ReverseProxy and modifyResponse
	// clean them
	removeHopByHop(resp.Header)
	stripSetCookies(resp.Header)
	stripCORS(resp.Header)
	wh := w.Header()
	for k, vs := range resp.Header {
		if len(wh[k]) == 0 {
			// the answer's header is this request's alone: no copy
			wh[k] = vs
		} else {
			wh[k] = append(wh[k], vs...)
		}
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		wh.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(resp.StatusCode)

	// the body: streams of unknown length are flushed at every write
	flush := resp.ContentLength == -1 ||
		strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	if err := copyBody(w, resp.Body, flush); err != nil {
		x.discard()
		p.log.Debug("forwarding response body ended early", "server", o.server.s.ID, "err", err)
		// the answer is cut short: the server must not end it as if it
		// were complete
		panic(http.ErrAbortHandler)
	}
	resp.Body.Close()

	// trailers, as ReverseProxy passes them
	if len(resp.Trailer) > 0 {
		http.NewResponseController(w).Flush()
	}
	for k, vs := range resp.Trailer {
		if announced != len(resp.Trailer) {
			k = http.TrailerPrefix + k
		}
		wh[k] = append(wh[k], vs...)
	}

	x.done(!resp.Close && !out.Close)
}

// outgoing builds the request for the backend from r, in the order
// ReverseProxy does with a rewrite hook. It is a shallow copy: its header
// map is its own but shares r's value slices, which is safe as long as
// headers are only ever set or deleted in it, never changed in place.
func (p *Proxy) outgoing(r *http.Request, o *outbound) *http.Request {
	out := new(http.Request)
	*out = *r
	u := *r.URL
	out.URL = &u
	out.Body = nil
	out.Close = false
	h := make(http.Header, len(r.Header)+4)
	for k, vs := range r.Header {
		h[k] = vs
	}
	out.Header = h
	removeHopByHop(h)
	if headerHasToken(r.Header, "Te", "trailers") {
		h["Te"] = []string{"trailers"}
	}
	delete(h, "Forwarded")
	delete(h, "X-Forwarded-For")
	delete(h, "X-Forwarded-Host")
	delete(h, "X-Forwarded-Proto")
	p.rewriteOut(r, out, o)
	if _, ok := h["User-Agent"]; !ok {
		// no User-Agent of Go's own
		h["User-Agent"] = []string{""}
	}
	return out
}

// writeHead writes the head of out, a request without a body, as
// (*http.Request).Write does: the request line, Host, the first
// User-Agent unless it is empty, then every other field. Fields come in
// map order; their order carries no meaning. A name or value that cannot
// be sent as it is fails the request instead of going out mangled.
func writeHead(bw *bufio.Writer, out *http.Request) error {
	host := out.Host
	if host == "" {
		host = out.URL.Host
	}
	if !httpguts.ValidHostHeader(host) {
		return fmt.Errorf("invalid Host %q", host)
	}
	bw.WriteString(out.Method)
	bw.WriteByte(' ')
	bw.WriteString(out.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for k, vs := range out.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		case "User-Agent":
			vs = vs[:min(len(vs), 1)]
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("invalid header field name %q", k)
		}
		for _, v := range vs {
			v = textproto.TrimString(v)
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("invalid value for header field %q", k)
			}
			if v == "" && k == "User-Agent" {
				continue
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// hopHeaders are the hop-by-hop headers of RFC 9110, section 7.6.1, as
// ReverseProxy removes them.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopByHop removes the hop-by-hop headers from h, and the headers
// its Connection header names.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		delete(h, name)
	}
}

// copyBody copies a response body to w with a pooled buffer.
func copyBody(w http.ResponseWriter, body io.Reader, flush bool) error {
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp

	var rc *http.ResponseController
	if flush {
		rc = http.NewResponseController(w)
	}
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return fmt.Errorf("writing to the client: %w", err)
			}
			if flush {
				if err := rc.Flush(); err != nil {
					return fmt.Errorf("flushing to the client: %w", err)
				}
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("reading from the backend: %w", rerr)
		}
	}
}

// connPool keeps idle HTTP/1.1 connections to backends, by address.
type connPool struct {
	dialer      *net.Dialer
	idleTimeout time.Duration
	maxIdle     int // per address

	mu    sync.Mutex
	idle  map[string][]*backendConn // oldest first
	sweep *time.Timer               // set while any connection is idle
}

// backendConn is one connection to a backend.
type backendConn struct {
	addr  string
	conn  net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	since time.Time // idle since
}

func newConnPool(d *net.Dialer, idleTimeout time.Duration, maxIdle int) *connPool {
	return &connPool{
		dialer:      d,
		idleTimeout: idleTimeout,
		maxIdle:     maxIdle,
		idle:        make(map[string][]*backendConn),
	}
}

// take returns the most recently used idle connection to addr, or nil.
// Connections idle for longer than the idle timeout are closed.
func (cp *connPool) take(addr string) *backendConn {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cs := cp.expire(addr)
	if len(cs) == 0 {
		return nil
	}
	c := cs[len(cs)-1]
	cs[len(cs)-1] = nil
	cp.idle[addr] = cs[:len(cs)-1]
	return c
}

// put returns a connection whose last answer was read to its end.
func (cp *connPool) put(c *backendConn) {
	c.since = time.Now()
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cs := cp.expire(c.addr)
	if len(cs) >= cp.maxIdle {
		c.conn.Close()
		return
	}
	cp.idle[c.addr] = append(cs, c)
	cp.armSweep()
}

// armSweep makes sure that idle connections are closed once they have
// been idle for the idle timeout, within one more, also when no request
// comes any more (a replica without traffic, a server that stopped).
// cp.mu is held.
func (cp *connPool) armSweep() {
	if cp.sweep != nil || cp.idleTimeout <= 0 {
		return
	}
	cp.sweep = time.AfterFunc(cp.idleTimeout, func() {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		cp.sweep = nil
		for addr := range cp.idle {
			cp.expire(addr)
		}
		if len(cp.idle) > 0 {
			cp.armSweep()
		}
	})
}

// expire closes the connections to addr idle for too long. cp.mu is
// held.
func (cp *connPool) expire(addr string) []*backendConn {
	cs := cp.idle[addr]
	if len(cs) == 0 || cp.idleTimeout <= 0 {
		return cs
	}
	old := time.Now().Add(-cp.idleTimeout)
	n := 0
	for n < len(cs) && cs[n].since.Before(old) {
		cs[n].conn.Close()
		n++
	}
	if n == 0 {
		return cs
	}
	if n == len(cs) {
		delete(cp.idle, addr)
		return nil
	}
	cs = append(cs[:0], cs[n:]...)
	cp.idle[addr] = cs
	return cs
}

// closeIdle closes every idle connection.
func (cp *connPool) closeIdle() {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.sweep != nil {
		cp.sweep.Stop()
		cp.sweep = nil
	}
	for addr, cs := range cp.idle {
		for _, c := range cs {
			c.conn.Close()
		}
		delete(cp.idle, addr)
	}
}

func (cp *connPool) dial(ctx context.Context, addr string) (*backendConn, error) {
	conn, err := cp.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dialing backend: %w", err)
	}
	rw := h1.RawIO(conn)
	return &backendConn{
		addr: addr,
		conn: conn,
		br:   bufio.NewReaderSize(rw, maxResponseHead),
		bw:   bufio.NewWriterSize(rw, 8<<10),
	}, nil
}

// exchange is one request on a backend connection, until its answer
// was read (done) or dropped (discard).
type exchange struct {
	cp   *connPool
	c    *backendConn
	resp *http.Response
	stop func() bool // stops the cancellation hook
}

// done hands the connection back to the pool when keep is true and the
// request was not cancelled meanwhile, and closes it otherwise.
func (x *exchange) done(keep bool) {
	if x.stop() && keep {
		x.cp.put(x.c)
		return
	}
	x.c.conn.Close()
}

// discard closes the connection.
func (x *exchange) discard() {
	x.stop()
	x.c.conn.Close()
}

// roundTrip sends out and reads the answer's headers. Cancelling ctx
// closes the connection, and with it the request and any body still
// being read. A reused connection that the backend closed while it was
// idle is retried once on a new one: only GET and HEAD take this path.
func (cp *connPool) roundTrip(
	ctx context.Context,
	out *http.Request,
	headerTimeout time.Duration,
) (*exchange, error) {
	addr := out.URL.Host
	for attempt := 0; ; attempt++ {
		// a retry dials: the other idle connections may be stale too
		var c *backendConn
		if attempt == 0 {
			c = cp.take(addr)
		}
		reused := c != nil
		if !reused {
			var err error
			if c, err = cp.dial(ctx, addr); err != nil {
				return nil, err
			}
		}
		conn := c.conn
		stop := context.AfterFunc(ctx, func() { conn.Close() })

		resp, answered, err := c.send(out, headerTimeout)
		if err == nil {
			return &exchange{cp: cp, c: c, resp: resp, stop: stop}, nil
		}
		stop()
		conn.Close()
		var ne net.Error
		stale := reused && !answered && ctx.Err() == nil &&
			!(errors.As(err, &ne) && ne.Timeout())
		if !stale || attempt > 0 {
			return nil, err
		}
	}
}

// send writes out on c and reads the answer's headers, skipping
// informational answers. answered tells whether any of the answer came.
func (c *backendConn) send(
	out *http.Request,
	headerTimeout time.Duration,
) (resp *http.Response, answered bool, err error) {
	if err := writeHead(c.bw, out); err != nil {
		return nil, false, fmt.Errorf("writing request: %w", err)
	}
	if err := c.bw.Flush(); err != nil {
		return nil, false, fmt.Errorf("writing request: %w", err)
	}

	if headerTimeout > 0 {
		c.conn.SetReadDeadline(time.Now().Add(headerTimeout))
	}
	if _, err := c.br.Peek(1); err != nil {
		return nil, false, fmt.Errorf("reading response: %w", err)
	}
	for {
		resp, err := h1.ReadResponse(c.br, out)
		if err != nil {
			return nil, true, fmt.Errorf("reading response: %w", err)
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, true, errors.New("backend switched protocols unasked")
		case resp.StatusCode < 200:
			// 100 Continue and 103 Early Hints are hints; the answer follows
			continue
		}
		// the header timeout must not cut a body still to come; one that
		// is all in the buffer is read without the connection, and the
		// next request sets its own deadline
		if headerTimeout > 0 &&
			(resp.ContentLength < 0 || int64(c.br.Buffered()) < resp.ContentLength) {
			c.conn.SetReadDeadline(time.Time{})
		}
		return resp, true, nil
	}
}
