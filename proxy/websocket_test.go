package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/studio-proxy/studio-proxy/backend"
	"github.com/studio-proxy/studio-proxy/internal/testenv"
	"github.com/studio-proxy/studio-proxy/proxy"
)

// These tests pin down what the websocket relay does, whatever it is
// built from: each runs a backend whose websocket side the test writes
// itself, behind one proxy replica, and a gorilla client in front.

// relayWait bounds every wait for the relay. It answers in
// milliseconds; the bound only catches a relay that hangs.
const relayWait = 10 * time.Second

// closeBadGateway is the close code a client gets when the backend's
// connection broke.
const closeBadGateway = 1014

// TestWebsocketEcho: messages of every kind and size cross the relay
// both ways intact, with their type, also when the client sends them in
// several frames.
func TestWebsocketEcho(t *testing.T) {
	env, alice := relayEnv(t, accept(nil, echo), func(cfg *proxy.Config) {
		cfg.MaxMessageSize = 2 << 20
	})
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i % 251)
	}
	// multi-byte characters straddle the frame boundaries
	accents := strings.Repeat("héllo wörld ✓ ", 80)

	tests := []struct {
		name string
		kind int
		msg  []byte
		// frame, when set, is the client's write buffer: it sends the
		// message in frames of that many bytes
		frame int
	}{
		{"text", websocket.TextMessage, []byte("hello"), 0},
		{"binary", websocket.BinaryMessage, []byte{0, 1, 2, 0xff}, 0},
		{"empty text", websocket.TextMessage, []byte{}, 0},
		{"empty binary", websocket.BinaryMessage, []byte{}, 0},
		{"1 MiB", websocket.BinaryMessage, big, 0},
		{"fragmented text", websocket.TextMessage, []byte(accents), 64},
		{"fragmented binary", websocket.BinaryMessage, big[:5000], 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var writes atomic.Int64
			d := &websocket.Dialer{WriteBufferSize: tt.frame}
			if tt.frame > 0 {
				d.NetDialContext = countWrites(&writes)
			}
			c := dialRelay(t, env, alice, d)

			before := writes.Load()
			if err := c.WriteMessage(tt.kind, tt.msg); err != nil {
				t.Fatalf("sending: %v", err)
			}
			if n := writes.Load() - before; tt.frame > 0 && n < 2 {
				t.Fatalf("the client sent the message in %d writes, want several frames", n)
			}
			kind, got := read(t, c)
			if kind != tt.kind || !bytes.Equal(got, tt.msg) {
				t.Errorf("got type %d, %d bytes %.40q, want type %d, %d bytes %.40q",
					kind, len(got), got, tt.kind, len(tt.msg), tt.msg)
			}
		})
	}
}

// TestWebsocketSubprotocol: the backend chooses among the subprotocols
// the client offered, and the client is told its choice.
func TestWebsocketSubprotocol(t *testing.T) {
	offers := make(chan []string, 1)
	serve := func(c *websocket.Conn, r *http.Request) {
		offers <- websocket.Subprotocols(r)
		echo(c, r)
	}
	env, alice := relayEnv(t, accept([]string{"b"}, serve), nil)

	tests := []struct {
		name  string
		offer []string
		want  string
	}{
		{"backend chooses b", []string{"a", "b"}, "b"},
		{"backend chooses none", []string{"a", "c"}, ""},
		{"none offered", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRelay(t, env, alice, &websocket.Dialer{Subprotocols: tt.offer})
			if got := c.Subprotocol(); got != tt.want {
				t.Errorf("client got subprotocol %q, want %q", got, tt.want)
			}
			select {
			case got := <-offers:
				if !slices.Equal(got, tt.offer) {
					t.Errorf("backend was offered %q, want %q", got, tt.offer)
				}
			case <-time.After(relayWait):
				t.Fatal("backend saw no upgrade")
			}
		})
	}
}

// TestWebsocketCloseCodes: a close frame crosses the relay with its code
// and reason, either way, and the other side's answer comes back.
func TestWebsocketCloseCodes(t *testing.T) {
	env, alice, conns := handedRelay(t, nil)

	t.Run("client closes", func(t *testing.T) {
		c, b := openRelay(t, env, alice, conns)
		// the backend answers with its own reason, to tell its answer
		// from an echo made up on the way
		b.SetCloseHandler(func(int, string) error { return nil })

		sendClose(t, c, 4001, "bye")
		ce := readClose(t, b)
		if ce.Code != 4001 || ce.Text != "bye" {
			t.Errorf("backend got close %d %q, want 4001 \"bye\"", ce.Code, ce.Text)
		}
		sendClose(t, b, 4001, "ack")
		ce = readClose(t, c)
		if ce.Code != 4001 || ce.Text != "ack" {
			t.Errorf("client got close %d %q, want the backend's 4001 \"ack\"",
				ce.Code, ce.Text)
		}
	})

	t.Run("backend closes", func(t *testing.T) {
		c, b := openRelay(t, env, alice, conns)

		sendClose(t, b, 4002, "done")
		// the client answers as gorilla does, with the same code
		ce := readClose(t, c)
		if ce.Code != 4002 || ce.Text != "done" {
			t.Errorf("client got close %d %q, want 4002 \"done\"", ce.Code, ce.Text)
		}
		if ce := readClose(t, b); ce.Code != 4002 {
			t.Errorf("backend got close %d %q, want the client's answer 4002",
				ce.Code, ce.Text)
		}
	})
}

// TestWebsocketNothingAfterClose: once the backend's close frame reached
// the client, the proxy sends the client nothing more, not even its
// keepalive pings, and drops the connection when the client does not
// answer.
func TestWebsocketNothingAfterClose(t *testing.T) {
	env, alice, conns := handedRelay(t, func(cfg *proxy.Config) {
		cfg.PingInterval = 20 * time.Millisecond
	})
	c, b := openRelay(t, env, alice, conns)
	sendClose(t, b, 4002, "done")

	// the client reads raw frames and never answers
	br := bufio.NewReader(c.NetConn())
	c.NetConn().SetReadDeadline(time.Now().Add(relayWait))
	closed := false
	for {
		op, payload, err := rawFrame(br)
		if err != nil {
			if !closed {
				t.Fatalf("connection ended before the close: %v", err)
			}
			return // dropped, as it should be
		}
		switch {
		case closed:
			t.Fatalf("got a frame with opcode %d after the close", op)
		case op == websocket.CloseMessage:
			closed = true
			if code := binary.BigEndian.Uint16(payload); code != 4002 {
				t.Errorf("got close %d, want the backend's 4002", code)
			}
		case op != websocket.PingMessage:
			t.Fatalf("got a frame with opcode %d before the close", op)
		}
	}
}

// TestWebsocketSizeLimit: a message of MaxMessageSize bytes passes; one
// byte more is not delivered, and both sides get a close 1009.
func TestWebsocketSizeLimit(t *testing.T) {
	const limit = 1024
	env, alice, conns := handedRelay(t, func(cfg *proxy.Config) {
		cfg.MaxMessageSize = limit
	})

	tests := []struct {
		name string
		// fromClient: the client sends the message, else the backend
		fromClient bool
		size       int
		// frame, when set, sends the message in frames of that many
		// bytes
		frame int
		// tooBig: the message must not arrive, and both sides get 1009
		tooBig bool
		skip   string
	}{
		{name: "client at the limit", fromClient: true, size: limit},
		{name: "client fragmented at the limit", fromClient: true, size: limit, frame: 64},
		{name: "client over the limit", fromClient: true, size: limit + 1, tooBig: true},
		{name: "client fragmented over the limit", fromClient: true, size: 2 * limit,
			frame: 64, tooBig: true},
		{name: "backend at the limit", size: limit},
		{name: "backend fragmented at the limit", size: limit, frame: 64},
		{name: "backend over the limit", size: limit + 1, tooBig: true},
		{name: "backend fragmented over the limit", size: 2 * limit, frame: 64, tooBig: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip != "" {
				t.Skip(tt.skip)
			}
			d := &websocket.Dialer{}
			if tt.fromClient {
				d.WriteBufferSize = tt.frame
			}
			c := dialRelay(t, env, alice, d)
			b := next(t, conns)
			msg := bytes.Repeat([]byte("x"), tt.size)

			// send; the backend writes its fragments by hand
			from, to := b, c
			if tt.fromClient {
				from, to = c, b
			}
			switch {
			case tt.fromClient || tt.frame == 0:
				if err := from.WriteMessage(websocket.TextMessage, msg); err != nil {
					t.Fatalf("sending: %v", err)
				}
			default:
				writeFragments(t, b, msg, tt.frame)
			}

			if !tt.tooBig {
				kind, got := read(t, to)
				if kind != websocket.TextMessage || !bytes.Equal(got, msg) {
					t.Errorf("got type %d, %d bytes, want the %d bytes sent", kind, len(got),
						len(msg))
				}
				return
			}
			// the receiver's first read is the close: nothing of the
			// message arrived
			to.SetReadDeadline(time.Now().Add(relayWait))
			_, got, err := to.ReadMessage()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("receiver got %d bytes, err %v, want a close 1009 and no message",
					len(got), err)
			}
			if ce.Code != websocket.CloseMessageTooBig {
				t.Errorf("receiver got close %d %q, want 1009", ce.Code, ce.Text)
			}
			if ce := readClose(t, from); ce.Code != websocket.CloseMessageTooBig {
				t.Errorf("sender got close %d %q, want 1009", ce.Code, ce.Text)
			}
		})
	}
}

// TestWebsocketKeepalive: the proxy pings the client; one that answers
// stays connected, one that does not is dropped and the backend told.
func TestWebsocketKeepalive(t *testing.T) {
	// long enough that a busy machine answers a ping within it
	const interval = 200 * time.Millisecond
	env, alice, conns := handedRelay(t, func(cfg *proxy.Config) {
		cfg.PingInterval = interval
	})

	t.Run("client that reads", func(t *testing.T) {
		c, b := openRelay(t, env, alice, conns)
		go echo(b, nil)

		// gorilla answers pings while it reads; count them
		pings := make(chan struct{}, 100)
		c.SetPingHandler(func(data string) error {
			c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(relayWait))
			select {
			case pings <- struct{}{}:
			default:
			}
			return nil
		})
		msgs, ended := readAll(c)

		// six pings: more than five intervals with nothing but pongs
		timeout := time.After(relayWait)
		for n := 0; n < 6; n++ {
			select {
			case <-pings:
			case err := <-ended:
				t.Fatalf("connection ended after %d pings: %v", n, err)
			case <-timeout:
				t.Fatalf("got %d pings in %v, want 6", n, relayWait)
			}
		}
		if err := c.WriteMessage(websocket.TextMessage, []byte("still here")); err != nil {
			t.Fatalf("sending: %v", err)
		}
		select {
		case msg := <-msgs:
			if string(msg) != "still here" {
				t.Errorf("got %q, want the echo \"still here\"", msg)
			}
		case err := <-ended:
			t.Fatalf("connection ended: %v", err)
		case <-timeout:
			t.Fatal("no echo")
		}
	})

	t.Run("client that does not read", func(t *testing.T) {
		dialRelay(t, env, alice, nil)
		b := next(t, conns)
		b.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err := b.ReadMessage()
		if !closedWith(err, websocket.CloseGoingAway, websocket.CloseAbnormalClosure) {
			t.Errorf("backend read: got %v, want close 1001 or the connection's end", err)
		}
	})
}

// TestWebsocketBackendPing: the backend's ping reaches the client, and
// the client's pong, with the ping's payload, reaches the backend.
func TestWebsocketBackendPing(t *testing.T) {
	env, alice, conns := handedRelay(t, nil)

	c, b := openRelay(t, env, alice, conns)
	seen := make(chan string, 1)
	c.SetPingHandler(func(data string) error {
		seen <- data
		return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(relayWait))
	})
	pongs := make(chan string, 1)
	b.SetPongHandler(func(data string) error { pongs <- data; return nil })
	readAll(c)
	readAll(b)

	if err := b.WriteControl(websocket.PingMessage, []byte("x"),
		time.Now().Add(relayWait)); err != nil {
		t.Fatalf("pinging: %v", err)
	}
	for _, w := range []struct {
		who  string
		got  <-chan string
		what string
	}{{"client", seen, "ping"}, {"backend", pongs, "pong"}} {
		select {
		case got := <-w.got:
			if got != "x" {
				t.Errorf("%s got %s %q, want \"x\"", w.who, w.what, got)
			}
		case <-time.After(relayWait):
			t.Fatalf("%s got no %s", w.who, w.what)
		}
	}
}

// TestWebsocketBackendDies: a backend connection that breaks without a
// close frame gets the client a close 1014.
func TestWebsocketBackendDies(t *testing.T) {
	env, alice, conns := handedRelay(t, nil)
	c, b := openRelay(t, env, alice, conns)

	b.NetConn().Close()
	if code, reason := rawClose(t, c); code != closeBadGateway {
		t.Errorf("client got close %d %q, want %d", code, reason, closeBadGateway)
	}
}

// TestWebsocketClientDies: a client connection that breaks without a
// close frame gets the backend a close 1001, or its connection's end.
func TestWebsocketClientDies(t *testing.T) {
	env, alice, conns := handedRelay(t, nil)
	c, b := openRelay(t, env, alice, conns)

	c.NetConn().Close()
	b.SetReadDeadline(time.Now().Add(relayWait))
	_, _, err := b.ReadMessage()
	if !closedWith(err, websocket.CloseGoingAway, websocket.CloseAbnormalClosure) {
		t.Errorf("backend read: got %v, want close 1001 or the connection's end", err)
	}
}

// TestWebsocketProtocolErrors: a frame the relay cannot pass on, from
// either side, is not delivered, and both sides get a close 1002.
func TestWebsocketProtocolErrors(t *testing.T) {
	env, alice, conns := handedRelay(t, nil)

	tests := []struct {
		name       string
		fromClient bool
		frame      []byte // as sent, masked or not
	}{
		{"client: unmasked frame", true, frame(0x81, []byte("hi"))},
		{"client: reserved bit", true, masked(0x81|0x40, []byte("hi"))},
		{"client: unknown opcode", true, masked(0x83, []byte("hi"))},
		{"client: continuation of nothing", true, masked(0x80, []byte("hi"))},
		{"client: fragmented ping", true, masked(0x09, []byte("hi"))},
		{"backend: masked frame", false, masked(0x81, []byte("hi"))},
		{"backend: reserved bit", false, frame(0x81|0x20, []byte("hi"))},
		{"backend: close frame too long", false, longControl(0x88)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, b := openRelay(t, env, alice, conns)
			from, to := b, c
			if tt.fromClient {
				from, to = c, b
			}
			if _, err := from.NetConn().Write(tt.frame); err != nil {
				t.Fatalf("sending: %v", err)
			}

			to.SetReadDeadline(time.Now().Add(relayWait))
			_, got, err := to.ReadMessage()
			if !closedWith(err, websocket.CloseProtocolError) {
				t.Errorf("receiver got %q, err %v, want close 1002 and no message", got, err)
			}
			if tt.fromClient {
				if ce := readClose(t, c); ce.Code != websocket.CloseProtocolError {
					t.Errorf("client got close %d %q, want 1002", ce.Code, ce.Text)
				}
			} else if code, _ := rawClose(t, b); code != websocket.CloseProtocolError {
				// gorilla on the backend would take the proxy's answer
				// to its bad frame for its own error: read it raw
				t.Errorf("backend got close %d, want 1002", code)
			}
		})
	}
}

// TestWebsocketFramesBetweenFrames: while the backend streams without a
// pause, the proxy's pings and its close still reach the client between
// frames, never inside one: every message arrives whole, and the stream
// ends with the proxy's close.
func TestWebsocketFramesBetweenFrames(t *testing.T) {
	env, alice, conns := handedRelay(t, func(cfg *proxy.Config) {
		// a ping waits behind what fills the socket buffers, and so does
		// its answer: long enough for a busy machine to read through them
		cfg.PingInterval = 200 * time.Millisecond
	})
	c, b := openRelay(t, env, alice, conns)

	// the backend writes messages of odd sizes back to back, so that
	// the proxy's reads end inside frames
	stop := make(chan struct{})
	streamed := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				streamed <- nil
				return
			default:
			}
			msg := bytes.Repeat([]byte{byte('a' + i%26)}, 1000+i%7000)
			if err := b.WriteMessage(websocket.BinaryMessage, msg); err != nil {
				streamed <- err
				return
			}
		}
	}()
	defer close(stop)

	pings := 0
	c.SetPingHandler(func(data string) error {
		pings++
		return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(relayWait))
	})
	c.SetReadDeadline(time.Now().Add(relayWait))
	for i := 0; pings < 3; i++ {
		_, msg, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("message %d after %d pings: %v", i, pings, err)
		}
		want := bytes.Repeat([]byte{byte('a' + i%26)}, 1000+i%7000)
		if !bytes.Equal(msg, want) {
			t.Fatalf("message %d: got %d bytes %.20q, want %d bytes %.20q", i, len(msg), msg,
				len(want), want)
		}
	}

	// the proxy shuts down while the stream goes on: the client's next
	// frames are whole messages, then the proxy's close
	go env.Replicas[0].Proxy.Shutdown(context.Background())
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		if !closedWith(err, proxy.CloseGoingAway) {
			t.Errorf("stream ended with %v, want the proxy's close 1001", err)
		}
		break
	}
}

// TestWebsocketBadHandshake: an upgrade that is not a valid websocket
// handshake is answered over HTTP, and never reaches the backend.
func TestWebsocketBadHandshake(t *testing.T) {
	var reached atomic.Int64
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
	})
	env, alice := relayEnv(t, backend, nil)
	valid := func() http.Header {
		return http.Header{
			"Origin":                {env.ExternalURL},
			"Connection":            {"Upgrade"},
			"Upgrade":               {"websocket"},
			"Sec-Websocket-Version": {"13"},
			"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
		}
	}

	tests := []struct {
		name   string
		method string
		change func(http.Header)
		status int
	}{
		{"POST", http.MethodPost, nil, http.StatusMethodNotAllowed},
		{"version 8", http.MethodGet, func(h http.Header) { h.Set("Sec-Websocket-Version", "8") },
			http.StatusUpgradeRequired},
		{"no key", http.MethodGet, func(h http.Header) { h.Del("Sec-Websocket-Key") },
			http.StatusBadRequest},
		{"short key", http.MethodGet, func(h http.Header) { h.Set("Sec-Websocket-Key", "c2hvcnQ=") },
			http.StatusBadRequest},
		{"key not base64", http.MethodGet,
			func(h http.Header) { h.Set("Sec-Websocket-Key", "!!!!!!!!!!!!!!!!!!!!!!==") },
			http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, env.ExternalURL+"/servers/alice/ws", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = valid()
			if tt.change != nil {
				tt.change(req.Header)
			}
			resp, err := alice.Do(req)
			if err != nil {
				t.Fatalf("sending: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("got status %d, want %d", resp.StatusCode, tt.status)
			}
			v := resp.Header.Get("Sec-Websocket-Version")
			if tt.status == http.StatusUpgradeRequired && v != "13" {
				t.Errorf("got Sec-WebSocket-Version %q, want \"13\"", v)
			}
		})
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the backend saw %d requests, want none", n)
	}
}

// TestWebsocketBackendHeaders: the backend's handshake carries the
// proxy's identity headers only, and none of the client's hop-by-hop
// headers, those its Connection header names included.
func TestWebsocketBackendHeaders(t *testing.T) {
	seen := make(chan http.Header, 1)
	env, alice := relayEnv(t, accept(nil, func(c *websocket.Conn, r *http.Request) {
		seen <- r.Header.Clone()
		echo(c, r)
	}), nil)
	req, err := http.NewRequest(http.MethodGet, env.ExternalURL+"/servers/alice/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = http.Header{
		"Origin":                {env.ExternalURL},
		"Connection":            {"Upgrade, X-Hop"},
		"Upgrade":               {"websocket"},
		"Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
		"X-Hop":                 {"not for the backend"},
		"Keep-Alive":            {"timeout=5"},
		"X-Studio-User":         {"mallory"},
		"X_Studio_User":         {"mallory"},
		"Authorization":         {"token stolen"},
		"X-Kept":                {"yes"},
	}
	resp, err := alice.Do(req)
	if err != nil {
		t.Fatalf("sending: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("got status %d, want 101", resp.StatusCode)
	}
	var h http.Header
	select {
	case h = <-seen:
	case <-time.After(relayWait):
		t.Fatal("backend got no websocket")
	}
	for _, k := range []string{"X-Hop", "Keep-Alive", "X_Studio_User"} {
		if v, ok := h[k]; ok {
			t.Errorf("backend got %s: %q", k, v)
		}
	}
	if v := h.Values(proxy.UserHeader); len(v) != 1 || v[0] != "alice" {
		t.Errorf("backend got %s %q, want alice", proxy.UserHeader, v)
	}
	if v := h.Get("Authorization"); v == "" || strings.Contains(v, "stolen") {
		t.Errorf("backend got Authorization %q, want the server's token", v)
	}
	if h.Get("X-Kept") != "yes" {
		t.Error("an ordinary header was dropped")
	}
}

// TestWebsocketBadUpgrade: a backend whose 101 is not the upgrade the
// proxy asked for gets the client a 502, not a websocket.
func TestWebsocketBadUpgrade(t *testing.T) {
	tests := []struct {
		name  string
		extra string // header lines after the valid ones
		key   string // the accept key; empty for the right one
	}{
		{"wrong accept key", "", "dGhlIHNhbXBsZSBub25jZQ=="},
		{"an extension", "Sec-WebSocket-Extensions: permessage-deflate\r\n", ""},
		{"a subprotocol not offered", "Sec-WebSocket-Protocol: other\r\n", ""},
		{"a head over 16 KiB", "X-Big: " + strings.Repeat("x", 16<<10) + "\r\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				accept := tt.key
				if accept == "" {
					sum := sha1.Sum([]byte(r.Header.Get("Sec-Websocket-Key") +
						"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
					accept = base64.StdEncoding.EncodeToString(sum[:])
				}
				conn, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					return
				}
				defer conn.Close()
				io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\n"+
					"Upgrade: websocket\r\nConnection: Upgrade\r\n"+
					"Sec-WebSocket-Accept: "+accept+"\r\n"+tt.extra+"\r\n")
			})
			env, alice := relayEnv(t, backend, nil)
			d := &websocket.Dialer{Jar: alice.Jar, HandshakeTimeout: relayWait}
			u := "ws" + strings.TrimPrefix(env.ExternalURL, "http") + "/servers/alice/ws"
			c, resp, err := d.Dial(u, http.Header{"Origin": {env.ExternalURL}})
			if err == nil {
				c.Close()
				t.Fatal("the client was upgraded, want a 502")
			}
			if resp == nil || resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("got %v, err %v, want status 502", resp, err)
			}
		})
	}
}

// TestWebsocketEarlyData: a message the backend sends the moment it
// upgraded, even in the same write as its 101, reaches the client.
func TestWebsocketEarlyData(t *testing.T) {
	tests := []struct {
		name    string
		backend http.Handler
	}{
		{"after the upgrade", accept(nil, func(c *websocket.Conn, _ *http.Request) {
			c.WriteMessage(websocket.TextMessage, []byte("hello"))
			echo(c, nil)
		})},
		{"with the 101", http.HandlerFunc(upgradeWithHello)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, alice := relayEnv(t, tt.backend, nil)
			c := dialRelay(t, env, alice, nil)
			kind, msg := read(t, c)
			if kind != websocket.TextMessage || string(msg) != "hello" {
				t.Errorf("got type %d %q, want text \"hello\"", kind, msg)
			}
		})
	}
}

// TestWebsocketConcurrent: many connections relaying at once keep their
// messages apart and in order.
func TestWebsocketConcurrent(t *testing.T) {
	const conns, messages = 8, 200
	env, alice := relayEnv(t, accept(nil, echo), nil)
	cs := make([]*websocket.Conn, conns)
	for i := range cs {
		cs[i] = dialRelay(t, env, alice, nil)
	}

	// each connection writes all its messages while it reads the echoes
	message := func(i, j int) (int, []byte) {
		msg := fmt.Appendf(nil, "conn %d message %d %s", i, j, strings.Repeat("*", j))
		if j%2 == 1 {
			return websocket.BinaryMessage, msg
		}
		return websocket.TextMessage, msg
	}
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := range messages {
				if err := c.WriteMessage(message(i, j)); err != nil {
					t.Errorf("conn %d: sending message %d: %v", i, j, err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(relayWait))
			for j := range messages {
				kind, got, err := c.ReadMessage()
				if err != nil {
					t.Errorf("conn %d: reading message %d: %v", i, j, err)
					return
				}
				if wantKind, want := message(i, j); kind != wantKind || !bytes.Equal(got, want) {
					t.Errorf("conn %d: got type %d %q, want type %d %q", i, kind, got,
						wantKind, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// relayEnv starts an installation of one replica whose every server is
// h, with alice signed in and her server running. cfg, when set,
// adjusts the proxy's configuration.
func relayEnv(
	t *testing.T,
	h http.Handler,
	cfg func(*proxy.Config),
) (*testenv.Env, *http.Client) {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	opts := testenv.Options{Driver: &handlerDriver{addr: ts.URL, running: map[string]bool{}}}
	if cfg != nil {
		opts.Proxy = func(_ *testenv.Replica, c *proxy.Config) { cfg(c) }
	}
	env := testenv.Start(t, opts)
	alice := env.Login(t, "alice")
	env.StartServer(t, "alice", "alice")
	return env, alice
}

// handedRelay is relayEnv with a backend that upgrades every websocket
// and hands the backend's side to the test through conns.
func handedRelay(
	t *testing.T,
	cfg func(*proxy.Config),
) (env *testenv.Env, alice *http.Client, conns <-chan *websocket.Conn) {
	t.Helper()
	c := make(chan *websocket.Conn, 1)
	env, alice = relayEnv(t, accept(nil, handTo(c)), cfg)
	return env, alice, c
}

// openRelay opens a websocket through the proxy as alice and returns the
// client's side and the backend's.
func openRelay(
	t *testing.T,
	env *testenv.Env,
	alice *http.Client,
	conns <-chan *websocket.Conn,
) (client, back *websocket.Conn) {
	t.Helper()
	return dialRelay(t, env, alice, nil), next(t, conns)
}

// handlerDriver is a backend.Driver whose servers are all one HTTP
// server, running from the start: a backend a test writes itself.
type handlerDriver struct {
	addr string

	mu      sync.Mutex
	running map[string]bool
}

func (d *handlerDriver) Start(ctx context.Context, spec backend.Spec) (backend.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.running[spec.ID] = true
	return backend.Status{State: backend.Running, Addr: d.addr}, nil
}

func (d *handlerDriver) Stop(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.running, id)
	return nil
}

func (d *handlerDriver) Status(ctx context.Context, id string) (backend.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running[id] {
		return backend.Status{State: backend.Running, Addr: d.addr}, nil
	}
	return backend.Status{State: backend.Stopped}, nil
}

// accept returns a backend that upgrades every websocket, choosing the
// first subprotocol offered that is in protocols, and hands it to serve.
func accept(protocols []string, serve func(*websocket.Conn, *http.Request)) http.Handler {
	up := websocket.Upgrader{
		// the proxy checked the Origin
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var h http.Header
		for _, p := range websocket.Subprotocols(r) {
			if slices.Contains(protocols, p) {
				h = http.Header{"Sec-Websocket-Protocol": {p}}
				break
			}
		}
		c, err := up.Upgrade(w, r, h)
		if err != nil {
			return // the upgrader answered
		}
		serve(c, r)
	})
}

// echo sends every message back until the connection ends; gorilla
// answers a close frame with its code.
func echo(c *websocket.Conn, _ *http.Request) {
	defer c.Close()
	for {
		kind, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(kind, msg); err != nil {
			return
		}
	}
}

// handTo returns a serve function that leaves each connection to the
// test, through conns.
func handTo(conns chan<- *websocket.Conn) func(*websocket.Conn, *http.Request) {
	return func(c *websocket.Conn, _ *http.Request) {
		select {
		case conns <- c:
		case <-time.After(relayWait):
			c.Close()
		}
	}
}

// next returns the backend's side of the websocket the test just
// opened.
func next(t *testing.T, conns <-chan *websocket.Conn) *websocket.Conn {
	t.Helper()
	select {
	case c := <-conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(relayWait):
		t.Fatal("backend got no websocket")
		return nil
	}
}

// upgradeWithHello upgrades by hand and sends a text message "hello" in
// the same write as the 101, then holds the connection until the proxy
// sends something (its close frame).
func upgradeWithHello(w http.ResponseWriter, r *http.Request) {
	sum := sha1.Sum([]byte(r.Header.Get("Sec-Websocket-Key") +
		"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
		"Connection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n")
	b.Write(frame(0x81, []byte("hello")))
	if _, err := conn.Write(b.Bytes()); err != nil {
		return
	}
	conn.SetReadDeadline(time.Now().Add(2 * relayWait))
	brw.ReadByte()
}

// frame returns an unmasked (server's) frame of up to 125 bytes: op
// carries the FIN bit and the opcode.
func frame(op byte, payload []byte) []byte {
	return append([]byte{op, byte(len(payload))}, payload...)
}

// masked returns a client's frame of up to 125 bytes, masked with a
// fixed key: op carries the FIN bit, the reserved bits and the opcode.
func masked(op byte, payload []byte) []byte {
	key := []byte{1, 2, 3, 4}
	f := append([]byte{op, 0x80 | byte(len(payload))}, key...)
	for i, c := range payload {
		f = append(f, c^key[i%4])
	}
	return f
}

// longControl returns a server's control frame with a 126-byte payload,
// one more than a control frame may carry.
func longControl(op byte) []byte {
	f := []byte{op, 126, 0, 126}
	return append(f, bytes.Repeat([]byte("x"), 126)...)
}

// writeFragments sends msg from the backend c as a text message in
// frames of size bytes (at most 125), written past gorilla.
func writeFragments(t *testing.T, c *websocket.Conn, msg []byte, size int) {
	t.Helper()
	var b bytes.Buffer
	op := byte(websocket.TextMessage)
	for len(msg) > size {
		b.Write(frame(op, msg[:size]))
		msg, op = msg[size:], 0
	}
	b.Write(frame(0x80|op, msg))
	if _, err := c.NetConn().Write(b.Bytes()); err != nil {
		t.Fatalf("sending fragments: %v", err)
	}
}

// dialRelay opens a websocket to alice's server through the proxy with
// d (nil for gorilla's defaults), as alice's page would.
func dialRelay(
	t *testing.T,
	env *testenv.Env,
	alice *http.Client,
	d *websocket.Dialer,
) *websocket.Conn {
	t.Helper()
	if d == nil {
		d = &websocket.Dialer{}
	}
	d.Jar = alice.Jar
	d.HandshakeTimeout = relayWait
	u := "ws" + strings.TrimPrefix(env.ExternalURL, "http") + "/servers/alice/ws"
	c, resp, err := d.Dial(u, http.Header{"Origin": {env.ExternalURL}})
	if err != nil {
		t.Fatalf("dialing: %v %v", err, resp)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// countWrites returns a dial function whose connections count their
// writes in n.
func countWrites(n *atomic.Int64) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, n: n}, nil
	}
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(p)
}

// read returns the next message on c, failing t when none comes.
func read(t *testing.T, c *websocket.Conn) (int, []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(relayWait))
	kind, msg, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	return kind, msg
}

// readAll reads c in the background, as a peer that answers pings and
// closes does; it passes on the messages and the error that ended it.
func readAll(c *websocket.Conn) (<-chan []byte, <-chan error) {
	msgs := make(chan []byte, 100)
	ended := make(chan error, 1)
	go func() {
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				ended <- err
				return
			}
			msgs <- msg
		}
	}()
	return msgs, ended
}

// sendClose sends a close frame with code and reason.
func sendClose(t *testing.T, c *websocket.Conn, code int, reason string) {
	t.Helper()
	err := c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason),
		time.Now().Add(relayWait))
	if err != nil {
		t.Fatalf("sending close %d: %v", code, err)
	}
}

// readClose reads c until its close frame, failing t when the
// connection ends without one.
func readClose(t *testing.T, c *websocket.Conn) *websocket.CloseError {
	t.Helper()
	return waitClose(t, c, relayWait)
}

// rawClose reads what the proxy sends c past gorilla, which takes a
// close code it does not know (1014 among them) for a protocol error, and
// returns the code and reason of the first close frame. c is the client's
// side or the backend's.
func rawClose(t *testing.T, c *websocket.Conn) (int, string) {
	t.Helper()
	nc := c.NetConn()
	nc.SetReadDeadline(time.Now().Add(relayWait))
	br := bufio.NewReader(nc)
	for {
		op, payload, err := rawFrame(br)
		if err != nil {
			t.Fatalf("reading a frame: %v", err)
		}
		if op != websocket.CloseMessage {
			continue
		}
		if len(payload) < 2 {
			return websocket.CloseNoStatusReceived, ""
		}
		return int(binary.BigEndian.Uint16(payload)), string(payload[2:])
	}
}

// rawFrame reads one frame from br and returns its opcode and its
// payload, unmasked when it was masked (a client's frame: the proxy's to
// a backend).
func rawFrame(br *bufio.Reader) (int, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	var key [4]byte
	if h[1]&0x80 != 0 {
		if _, err := io.ReadFull(br, key[:]); err != nil {
			return 0, nil, err
		}
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		return 0, nil, err
	}
	for i := range payload {
		payload[i] ^= key[i%4]
	}
	return int(h[0] & 0x0f), payload, nil
}

// closedWith reports whether err is a close with one of codes (1006
// standing for a connection that ended without a close frame).
func closedWith(err error, codes ...int) bool {
	var ce *websocket.CloseError
	return errors.As(err, &ce) && slices.Contains(codes, ce.Code)
}
