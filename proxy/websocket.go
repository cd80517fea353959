package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/studio-proxy/studio-proxy/internal/h1"
)

// closeGrace is how long the proxy waits for the close handshake to
// finish before it drops a connection.
const closeGrace = time.Second

// handshakeHeaders are the client's headers that are not hop-by-hop
// (removeHopByHop drops those) but belong to its own handshake or
// framing: the dialer writes the backend's.
var handshakeHeaders = []string{
	"Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions",
	"Sec-Websocket-Protocol", "Sec-Websocket-Accept", "Host", "Content-Length",
}

// serveWebsocket checks the client's handshake, dials the backend with
// the client's subprotocols, and only then upgrades the client with the
// subprotocol the backend chose: a backend that cannot be reached gets
// the client an HTTP error, not an upgraded connection that dies at once.
// After the upgrade the relay passes frames through (wsrelay.go).
func (p *Proxy) serveWebsocket(
	ctx context.Context,
	w http.ResponseWriter,
	r *http.Request,
	t *tracked,
	rt route,
	e serverEntry,
) {
	accept, pr := clientHandshake(r)
	if pr != nil {
		if pr.status == http.StatusUpgradeRequired {
			// the version this proxy speaks (RFC 6455, section 4.4)
			w.Header().Set("Sec-Websocket-Version", "13")
		}
		p.fail(w, r, *pr)
		return
	}

	// dial the backend
	u := *e.addr
	rt.setURL(&u)
	u.RawQuery = r.URL.RawQuery
	h := make(http.Header, len(r.Header))
	for k, vs := range r.Header {
		h[k] = vs
	}
	removeHopByHop(h)
	for _, k := range handshakeHeaders {
		delete(h, k)
	}
	p.identify(r, h, t.user.Name, e.s.Secret)
	offered := subprotocols(r.Header)
	back, chosen, backEarly, resp, err := p.dialWebsocket(ctx, &u, h, offered)
	if err != nil {
		p.websocketDialError(w, r, e.s.ID, resp, err)
		return
	}

	// upgrade the client with the backend's choice of subprotocol
	client, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		back.Close()
		p.log.Warn("taking over the client connection failed", "server", e.s.ID, "err", err)
		p.fail(w, r, problem{status: http.StatusInternalServerError, code: "websocket_unsupported",
			title: "Websocket failed",
			message: "The proxy could not take over this connection for a websocket. " +
				"Connect over HTTP/1.1."})
		return
	}
	var clientEarly []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		clientEarly = bytes.Clone(b)
	}
	client.SetDeadline(time.Time{})
	var b strings.Builder
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
		"Connection: Upgrade\r\nSec-WebSocket-Accept: ")
	b.WriteString(accept)
	if chosen != "" {
		b.WriteString("\r\nSec-WebSocket-Protocol: ")
		b.WriteString(chosen)
	}
	b.WriteString("\r\n\r\n")
	if _, err := io.WriteString(client, b.String()); err != nil {
		client.Close()
		back.Close()
		return
	}

	p.metrics.outcome("websocket")
	p.metrics.websocket.Inc()
	defer p.metrics.websocket.Dec()
	p.log.Debug("websocket opened", "user", t.user.Name, "server", e.s.ID)
	p.relay(ctx, client, back, clientEarly, backEarly)
	p.log.Debug("websocket closed", "user", t.user.Name, "server", e.s.ID)
}

// badHandshake answers an upgrade that is not a websocket handshake of
// RFC 6455.
var badHandshake = problem{status: http.StatusBadRequest, code: "bad_websocket_handshake",
	title: "Bad request", message: "This request is not a valid websocket handshake."}

// clientHandshake checks the client's opening handshake and returns the
// Sec-WebSocket-Accept value that answers it.
func clientHandshake(r *http.Request) (string, *problem) {
	if r.Method != http.MethodGet {
		pr := badHandshake
		pr.status = http.StatusMethodNotAllowed
		return "", &pr
	}
	if v := r.Header["Sec-Websocket-Version"]; len(v) != 1 || v[0] != "13" {
		return "", &problem{status: http.StatusUpgradeRequired,
			code: "websocket_version", title: "Bad request",
			message: "Only version 13 of the websocket protocol is supported."}
	}
	k := r.Header["Sec-Websocket-Key"]
	if len(k) != 1 {
		return "", &badHandshake
	}
	if raw, err := base64.StdEncoding.DecodeString(k[0]); err != nil || len(raw) != 16 {
		return "", &badHandshake
	}
	return acceptKey(k[0]), nil
}

// acceptKey is the Sec-WebSocket-Accept answer to key.
func acceptKey(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// subprotocols returns the subprotocols offered in h, in order.
func subprotocols(h http.Header) []string {
	var out []string
	for _, v := range h["Sec-Websocket-Protocol"] {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// errBadUpgrade is a backend answer that is not a valid websocket
// upgrade; the response comes with it.
var errBadUpgrade = errors.New("backend did not upgrade to a websocket")

// dialWebsocket opens a websocket to u (an http or https URL) with
// headers h, offering the subprotocols offered. It returns the
// connection, the subprotocol the backend chose and what the backend sent
// after its 101. A backend that answered but did not upgrade is
// errBadUpgrade, with its response.
func (p *Proxy) dialWebsocket(
	ctx context.Context,
	u *url.URL,
	h http.Header,
	offered []string,
) (net.Conn, string, []byte, *http.Response, error) {
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	conn, err := p.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, "", nil, nil, err
	}
	ok := false
	defer func() {
		if !ok {
			conn.Close()
		}
	}()

	// the handshake is bounded in time, and by the request's cut
	conn.SetDeadline(time.Now().Add(p.cfg.ResponseHeaderTimeout))
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if u.Scheme == "https" {
		tc := tls.Client(conn, &tls.Config{ServerName: u.Hostname(),
			NextProtos: []string{"http/1.1"}})
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, "", nil, nil, err
		}
		conn = tc
	}

	var raw [16]byte
	rand.Read(raw[:])
	key := base64.StdEncoding.EncodeToString(raw[:])
	h["Upgrade"] = []string{"websocket"}
	h["Connection"] = []string{"Upgrade"}
	h["Sec-Websocket-Key"] = []string{key}
	h["Sec-Websocket-Version"] = []string{"13"}
	if len(offered) > 0 {
		h["Sec-Websocket-Protocol"] = []string{strings.Join(offered, ", ")}
	}
	req := &http.Request{
		Method:     http.MethodGet,
		URL:        &url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery},
		Host:       u.Host,
		Header:     h,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
	}
	if err := req.Write(conn); err != nil {
		return nil, "", nil, nil, err
	}
	// the answer's head is bounded as on the other paths
	br := bufio.NewReaderSize(conn, maxResponseHead)
	resp, err := h1.ReadResponse(br, req)
	if err != nil {
		return nil, "", nil, nil, err
	}
	resp.Body.Close()

	// the answer must be the upgrade this request asked for
	chosen := resp.Header.Get("Sec-Websocket-Protocol")
	if resp.StatusCode != http.StatusSwitchingProtocols ||
		!headerHasToken(resp.Header, "Upgrade", "websocket") ||
		!headerHasToken(resp.Header, "Connection", "upgrade") ||
		resp.Header.Get("Sec-Websocket-Accept") != acceptKey(key) ||
		resp.Header.Get("Sec-Websocket-Extensions") != "" ||
		chosen != "" && !slices.Contains(offered, chosen) {
		return nil, "", nil, resp, errBadUpgrade
	}
	var early []byte
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		early = bytes.Clone(b)
	}
	if !stop() {
		// cut while the answer was read
		return nil, "", nil, nil, context.Cause(ctx)
	}
	conn.SetDeadline(time.Time{})
	ok = true
	return conn, chosen, early, nil, nil
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
