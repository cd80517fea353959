package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// closeGrace is how long the proxy waits for the close handshake to
// finish before it drops a connection.
const closeGrace = time.Second

// websocket handshake headers the dialer writes itself; a copy from the
// client must not be passed to it
var handshakeHeaders = map[string]bool{
	"Upgrade":                  true,
	"Connection":               true,
	"Sec-Websocket-Key":        true,
	"Sec-Websocket-Version":    true,
	"Sec-Websocket-Extensions": true,
	"Sec-Websocket-Protocol":   true,
	"Sec-Websocket-Accept":     true,
	"Host":                     true,
	"Keep-Alive":               true,
	"Te":                       true,
	"Trailer":                  true,
	"Transfer-Encoding":        true,
	"Proxy-Connection":         true,
	"Content-Length":           true,
}

// serveWebsocket dials the backend first, with the client's subprotocols,
// and only then upgrades the client with the subprotocol the backend
// chose: a backend that cannot be reached gets the client an HTTP error,
// not an upgraded connection that dies at once.
func (p *Proxy) serveWebsocket(
	ctx context.Context,
	w http.ResponseWriter,
	r *http.Request,
	t *tracked,
	rt route,
	e serverEntry,
) {
	// dial the backend
	u := *e.addr
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	rt.setURL(&u)
	u.RawQuery = r.URL.RawQuery

	h := http.Header{}
	for k, vs := range r.Header {
		if !handshakeHeaders[http.CanonicalHeaderKey(k)] {
			h[k] = vs
		}
	}
	stripIdentity(h)
	stripCookies(h)
	p.trust.forwardedFor(r).set(h)
	h[UserHeader] = []string{t.user.Name}
	h["Authorization"] = []string{"token " + e.s.Secret}

	d := websocket.Dialer{
		NetDialContext:   p.dialer.DialContext,
		HandshakeTimeout: p.cfg.ResponseHeaderTimeout,
		Subprotocols:     websocket.Subprotocols(r),
		ReadBufferSize:   16 << 10,
		WriteBufferSize:  16 << 10,
	}
	bconn, resp, err := d.DialContext(ctx, u.String(), h)
	if err != nil {
		p.websocketDialError(w, r, e.s.ID, resp, err)
		return
	}

	// upgrade the client with the backend's choice of subprotocol
	var rh http.Header
	if sp := bconn.Subprotocol(); sp != "" {
		rh = http.Header{"Sec-Websocket-Protocol": {sp}}
	}
	up := websocket.Upgrader{
		ReadBufferSize:  16 << 10,
		WriteBufferSize: 16 << 10,
		// the Origin was checked before the backend was dialed
		CheckOrigin: func(*http.Request) bool { return true },
	}
	cconn, err := up.Upgrade(w, r, rh)
	if err != nil {
		// the upgrader has answered the client
		bconn.Close()
		return
	}

	p.metrics.outcome("websocket")
	p.metrics.websocket.Inc()
	defer p.metrics.websocket.Dec()
	p.log.Debug("websocket opened", "user", t.user.Name, "server", e.s.ID)
	p.relay(ctx, cconn, bconn)
}

// websocketDialError answers an upgrade whose backend could not be
// dialed. A backend that answered without upgrading passes its status
// on.
func (p *Proxy) websocketDialError(
	w http.ResponseWriter,
	r *http.Request,
	id string,
	resp *http.Response,
	err error,
) {
	if ce := cutCause(r.Context()); ce != nil {
		p.fail(w, r, cutProblem(ce))
		return
	}
	if resp != nil {
		p.log.Info("backend refused websocket", "server", id, "status", resp.StatusCode)
		status := resp.StatusCode
		if status < 400 {
			status = http.StatusBadGateway
		}
		p.fail(w, r, problem{status: status, code: "backend_refused_websocket", title: "Refused",
			message: fmt.Sprintf("Server %q refused the websocket (status %d).", id, resp.StatusCode)})
		return
	}
	p.backendFailure(w, r, id, err)
}

// relay pumps messages both ways until both sides closed or ctx is cut.
// A close frame from one side is passed to the other with its code and
// reason; a side that breaks gets the other a synthesized close (1001 to
// the backend when the client went away, 1014 to the client when the
// backend did). Once a close started, both connections are dropped after
// closeGrace at the latest.
func (p *Proxy) relay(ctx context.Context, client, back *websocket.Conn) {
	limit := p.cfg.MaxMessageSize
	client.SetReadLimit(limit)
	back.SetReadLimit(limit)

	// close frames are answered by the relay, not by gorilla: the other
	// side's answer is the one to pass on
	noop := func(int, string) error { return nil }
	client.SetCloseHandler(noop)
	back.SetCloseHandler(noop)

	// keepalive: ping the client, and drop it when it stops answering
	wait := 2 * p.cfg.PingInterval
	alive := func() { client.SetReadDeadline(time.Now().Add(wait)) }
	alive()
	client.SetPongHandler(func(string) error { alive(); return nil })

	var grace sync.Once
	drop := func() {
		grace.Do(func() {
			time.AfterFunc(closeGrace, func() { client.Close(); back.Close() })
		})
	}
	sendClose := func(c *websocket.Conn, frame []byte) {
		c.WriteControl(websocket.CloseMessage, frame, time.Now().Add(closeGrace))
		drop()
	}

	done := make(chan struct{}, 2)
	go func() {
		frame := pump(back, client, alive)
		if frame == nil {
			frame = websocket.FormatCloseMessage(websocket.CloseGoingAway, "client went away")
		}
		sendClose(back, frame)
		done <- struct{}{}
	}()
	go func() {
		frame := pump(client, back, nil)
		if frame == nil {
			frame = websocket.FormatCloseMessage(closeBadGateway, "server connection lost")
		}
		sendClose(client, frame)
		done <- struct{}{}
	}()

	ping := time.NewTicker(p.cfg.PingInterval)
	defer ping.Stop()
	cut := ctx.Done()
	for ended := 0; ended < 2; {
		select {
		case <-done:
			ended++
		case <-ping.C:
			client.WriteControl(websocket.PingMessage, nil, time.Now().Add(p.cfg.PingInterval))
		case <-cut:
			cut = nil
			ce := cutCause(ctx)
			if ce == nil {
				ce = &cutError{code: CloseGoingAway, reason: "proxy restarting"}
			}
			sendClose(client, websocket.FormatCloseMessage(ce.code, ce.reason))
			sendClose(back, websocket.FormatCloseMessage(websocket.CloseGoingAway,
				"proxy closed the connection"))
		}
	}
	client.Close()
	back.Close()
}

// closeBadGateway is the close code a client gets when the backend
// connection broke (registered as "Bad Gateway" with IANA).
const closeBadGateway = 1014

// pump copies messages from src to dst until src ends. It returns the
// close frame to pass to dst when src sent one (or sent a message over
// the size limit), nil when src broke.
func pump(dst, src *websocket.Conn, alive func()) []byte {
	for {
		kind, rd, err := src.NextReader()
		if err != nil {
			return closeFrameFor(err)
		}
		if alive != nil {
			alive()
		}
		wr, err := dst.NextWriter(kind)
		if err != nil {
			return nil
		}
		if _, err := io.Copy(wr, rd); err != nil {
			wr.Close()
			return closeFrameFor(err)
		}
		if err := wr.Close(); err != nil {
			return nil
		}
	}
}

// closeFrameFor returns the close frame that passes on why reading ended:
// the peer's own close frame, 1009 for a message over the limit, nil for
// a broken connection.
func closeFrameFor(err error) []byte {
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
		return websocket.FormatCloseMessage(ce.Code, ce.Text)
	}
	if errors.Is(err, websocket.ErrReadLimit) {
		return websocket.FormatCloseMessage(websocket.CloseMessageTooBig, "message too big")
	}
	return nil
}
