package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"
)

// outbound is what the rewrite hook needs to know of one request.
type outbound struct {
	user   string
	route  route
	server serverEntry
}

type outboundKey struct{}

func (p *Proxy) initForwarding() {
	p.dialer = &net.Dialer{Timeout: p.cfg.DialTimeout, KeepAlive: 30 * time.Second}
	p.transport = &http.Transport{
		DialContext:            p.dialer.DialContext,
		ResponseHeaderTimeout:  p.cfg.ResponseHeaderTimeout,
		MaxResponseHeaderBytes: maxResponseHead,
		IdleConnTimeout:        p.cfg.IdleConnTimeout,
		TLSHandshakeTimeout:    p.cfg.DialTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    256,
		// the client's Accept-Encoding passes through, and the body with
		// it: the proxy never decompresses
		DisableCompression: true,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      p.transport,
		ModifyResponse: modifyResponse,
		ErrorHandler:   p.backendError,
		BufferPool:     bufferPool{},
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
		// responses of unknown length (event streams, chunked output)
		// are flushed at each write by ReverseProxy itself; the rest is
		// flushed when the buffer fills
		FlushInterval: 0,
	}
	if !p.cfg.ReverseProxyOnly {
		p.lean = newConnPool(p.dialer, p.cfg.IdleConnTimeout, 256)
	}
}

// forward sends r to the server through the reverse proxy. r's context
// is the tracked one: a cut cancels the request, its body and the
// response stream.
func (p *Proxy) forward(
	w http.ResponseWriter,
	r *http.Request,
	user string,
	rt route,
	e serverEntry,
) {
	o := &outbound{user: user, route: rt, server: e}
	if p.lean != nil && leanable(r, e) {
		p.forwardLean(w, r, o)
		p.metrics.forwarded.Inc()
		return
	}
	if r.ContentLength != 0 {
		// answer without first draining the client's body: an upload the
		// proxy cuts (or the backend refuses early) gets its answer at
		// once, and bodies stream both ways as through any proxy
		http.NewResponseController(w).EnableFullDuplex()
	}
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), outboundKey{}, o)))
	p.metrics.forwarded.Inc()
}

// rewrite builds the outgoing request: the route's cleaned path on the
// server's address, identity and forwarding headers replaced by the
// proxy's own, and the server's secret added.
//
// The Host header is the backend's own address, not the client's (which
// goes in X-Forwarded-Host): Jupyter refuses a Host that is not local
// unless told to allow remote access, as protection against DNS
// rebinding. Jupyter skips its Origin and XSRF checks for requests that
// carry its token, which the proxy always adds: the proxy makes those
// checks itself (see origins.checkBackendWrite).
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	o := pr.In.Context().Value(outboundKey{}).(*outbound)
	p.rewriteOut(pr.In, pr.Out, o)
}

// rewriteOut is rewrite for both forwarding paths: in is the client's
// request, out the copy that goes to the backend.
func (p *Proxy) rewriteOut(in, out *http.Request, o *outbound) {
	out.URL.Scheme = o.server.addr.Scheme
	out.URL.Host = o.server.addr.Host
	o.route.setURL(out.URL)
	out.Host = ""

	p.identify(in, out.Header, o.user, o.server.s.Secret)
}

// identify replaces, in h (the headers going to a backend for the
// client's request in), every identity and forwarding header with the
// proxy's own: the user, the server's secret, and where the request came
// from. It also drops the proxy's own cookies. Both forwarding paths and
// the websocket dialer send what it leaves.
func (p *Proxy) identify(in *http.Request, h http.Header, user, secret string) {
	stripIdentity(h)
	stripCookies(h)
	p.trust.forwardedFor(in).set(h)
	v := []string{user, "token " + secret}
	h[UserHeader] = v[0:1:1]
	h["Authorization"] = v[1:2:2]
}

func modifyResponse(resp *http.Response) error {
	stripSetCookies(resp.Header)
	stripCORS(resp.Header)
	return nil
}

// backendError is the reverse proxy's error handler.
func (p *Proxy) backendError(w http.ResponseWriter, r *http.Request, err error) {
	id := ""
	if o, ok := r.Context().Value(outboundKey{}).(*outbound); ok {
		id = o.server.s.ID
	}
	p.backendFailure(w, r, id, err)
}

// backendFailure answers a request the backend did not answer: 502 when
// it refused or broke, 504 when it did not answer in time. A request the
// proxy cut itself gets the reason of the cut; one the client abandoned
// gets nothing.
func (p *Proxy) backendFailure(w http.ResponseWriter, r *http.Request, id string, err error) {
	if ce := cutCause(r.Context()); ce != nil {
		p.fail(w, r, cutProblem(ce))
		return
	}
	if r.Context().Err() != nil {
		p.log.Debug("client went away", "server", id, "err", err)
		p.metrics.outcome("client_gone")
		return
	}

	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		p.log.Warn("backend timed out", "server", id, "err", err)
		p.fail(w, r, problem{status: http.StatusGatewayTimeout, code: "backend_timeout",
			title: "Server not answering",
			message: fmt.Sprintf("Server %q did not answer in time. Try again, or restart it "+
				"if it keeps happening.", id)})
		return
	}
	p.log.Warn("backend unreachable", "server", id, "err", err)
	p.fail(w, r, problem{status: http.StatusBadGateway, code: "backend_unreachable",
		title: "Server unreachable",
		message: fmt.Sprintf("Server %q could not be reached. It may have stopped or crashed; "+
			"try again, or restart it.", id)})
}

// cutProblem is the answer to a request the proxy cut before the backend
// answered.
func cutProblem(ce *cutError) problem {
	switch ce.code {
	case CloseSignedOut:
		return problem{status: http.StatusUnauthorized, code: "signed_out",
			title: "Signed out", message: "You were signed out: " + ce.reason + "."}
	case CloseRevoked:
		return problem{status: http.StatusForbidden, code: "no_access",
			title: "No access", message: "Your access to this server ended: " + ce.reason + "."}
	case CloseCannotCheck:
		return cannotCheck
	}
	return problem{status: http.StatusServiceUnavailable, code: "server_stopped",
		title: "Server stopped", message: "The server stopped: " + ce.reason + "."}
}

// bufferPool lends the reverse proxy its copy buffers.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte { return *buffers.Get().(*[]byte) }

func (bufferPool) Put(b []byte) { buffers.Put(&b) }
