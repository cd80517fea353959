package proxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/studio-proxy/studio-proxy/internal/h1"
)

// relayBuffer is the size of each direction's read buffer: what one read
// system call takes at most.
const relayBuffer = 16 << 10

// pingPayload marks the proxy's own keepalive pings, so that their pongs
// are not passed on to the backend.
var pingPayload = []byte("studio-proxy")

// wsWriter writes to one side of a relayed websocket. The pump that
// forwards to that side writes frames in pieces as they arrive; a frame
// of the relay's own (a ping, a close) is sent between two frames, never
// inside one. It waits in a queue while the pump is inside a frame, and
// whoever holds the lock at a frame boundary writes the queue.
type wsWriter struct {
	conn   io.Writer
	masked bool // frames of the relay's own are masked (to a backend)

	mu     sync.Mutex
	mid    bool // the pump wrote part of a frame
	closed bool // a close frame was written: nothing follows it
	err    error

	qmu    sync.Mutex
	queue  [][]byte
	queued atomic.Bool
}

// write writes p, a piece of the stream the pump forwards; mid says
// whether p ends inside a frame. Once a close frame was written, p is
// dropped: nothing may follow a close.
func (w *wsWriter) write(p []byte, mid bool) error {
	return w.forward(p, mid, false)
}

// writeClose writes p, which ends with the other side's close frame:
// nothing is written after it.
func (w *wsWriter) writeClose(p []byte) error {
	return w.forward(p, false, true)
}

func (w *wsWriter) forward(p []byte, mid, closes bool) error {
	w.mu.Lock()
	if !w.mid {
		w.flushLocked()
	}
	err := w.err
	if err == nil && !w.closed {
		if _, err = w.conn.Write(p); err != nil {
			w.err = err
		}
		w.mid = mid
		w.closed = closes
		if !mid {
			w.flushLocked()
		}
	}
	w.unlock()
	return err
}

// send writes a frame of the relay's own at the next frame boundary.
// It does not wait for a pump that is inside a frame or blocked writing.
func (w *wsWriter) send(op byte, payload []byte) {
	f := controlFrame(op, payload, w.masked)
	w.qmu.Lock()
	w.queue = append(w.queue, f)
	w.qmu.Unlock()
	w.queued.Store(true)
	if w.mu.TryLock() {
		w.unlock()
	}
}

// unlock releases the lock and writes what was queued meanwhile by a
// sender that could not take it. Inside a frame it leaves the queue to
// the pump, which writes it at the frame's end.
func (w *wsWriter) unlock() {
	for {
		w.mu.Unlock()
		if !w.queued.Load() || !w.mu.TryLock() {
			return
		}
		if w.mid {
			w.mu.Unlock()
			return
		}
		w.flushLocked()
	}
}

// flushLocked writes the queued frames; w.mu is held and the stream is
// at a frame boundary.
func (w *wsWriter) flushLocked() {
	if !w.queued.Load() {
		return
	}
	w.qmu.Lock()
	q := w.queue
	w.queue = nil
	w.queued.Store(false)
	w.qmu.Unlock()
	for _, f := range q {
		if w.closed || w.err != nil {
			return
		}
		if _, err := w.conn.Write(f); err != nil {
			w.err = err
			return
		}
		if f[0]&0x0f == opClose {
			w.closed = true
		}
	}
}

// sendClose sends a close frame with code and reason.
func (w *wsWriter) sendClose(code int, reason string) {
	w.send(opClose, closePayload(code, reason))
}

// pumpEnd is why a pump stopped.
type pumpEnd int

const (
	// srcClosed: the source sent a close frame, passed on.
	srcClosed pumpEnd = iota
	// srcBroken: reading the source failed.
	srcBroken
	// dstBroken: writing to the destination failed.
	dstBroken
	// refused: the source sent a frame the relay does not pass on; both
	// sides were sent a close.
	refused
)

// pump forwards the frames of one side (src) to the other (dst).
type pump struct {
	src io.Reader
	// dst writes to the other side; reply to src itself, for the closes
	// the relay answers a refused frame with.
	dst, reply *wsWriter
	// fromClient: src is the client, whose frames are masked.
	fromClient bool
	limit      int64
	// early is what was read from src with the handshake.
	early []byte
	// active, when set, is marked at every read that returned data.
	active *atomic.Bool
}

// run forwards until src closes or breaks, or sends what it may not.
func (p *pump) run() pumpEnd {
	buf := make([]byte, relayBuffer)
	carry := copy(buf, p.early)
	pending := carry > 0

	var (
		need   int64 // payload bytes of the current frame not yet read
		inMsg  bool  // a fragmented message has begun
		msgLen int64 // payload bytes of the current message so far
	)
	for {
		n := carry
		var rerr error
		if !pending {
			var m int
			m, rerr = p.src.Read(buf[carry:])
			n += m
			if m > 0 && p.active != nil {
				p.active.Store(true)
			}
		}
		pending = false

		// walk the frames in buf[:n]: fwd is where the bytes not yet
		// written begin, edge the end of the last whole frame among them
		pos, fwd, edge := 0, 0, -1
		for pos < n {
			if need > 0 {
				take := min(need, int64(n-pos))
				pos += int(take)
				if need -= take; need == 0 {
					edge = pos
				}
				continue
			}
			h, ok, err := parseHeader(buf[pos:n], p.fromClient)
			if err != nil {
				return p.refuse(buf[fwd:pos], closeProtocolError, "protocol error")
			}
			if !ok {
				break
			}
			if h.control() {
				end := pos + h.size + int(h.length)
				if end > n {
					break // the whole frame is needed: read on
				}
				payload := buf[pos+h.size : end]
				if p.fromClient {
					payload = unmask(h, payload)
				}
				switch {
				case h.op == opClose:
					if p.dst.writeClose(buf[fwd:end]) != nil {
						return dstBroken
					}
					return srcClosed
				case h.op == opPong && p.fromClient && bytes.Equal(payload, pingPayload):
					// the answer to the proxy's own ping
					if fwd < pos && p.dst.write(buf[fwd:pos], false) != nil {
						return dstBroken
					}
					fwd = end
				}
				pos, edge = end, end
				continue
			}

			// a data frame: one message is a first frame and its
			// continuations, bounded by the limit as a whole
			if (h.op == opContinuation) != inMsg {
				return p.refuse(buf[fwd:pos], closeProtocolError, "protocol error")
			}
			if h.op != opContinuation {
				msgLen = 0
			}
			if msgLen += h.length; msgLen > p.limit {
				return p.refuse(buf[fwd:pos], closeMessageTooBig, "message too big")
			}
			inMsg = !h.fin
			pos += h.size
			need = h.length
			if need == 0 {
				edge = pos
			}
		}

		// write what was walked; when the relay has a frame of its own
		// to send, split at the last boundary so that it goes out now
		if fwd < pos {
			mid := need > 0
			if mid && edge > fwd && p.dst.queued.Load() {
				if p.dst.write(buf[fwd:edge], false) != nil {
					return dstBroken
				}
				fwd = edge
			}
			if p.dst.write(buf[fwd:pos], mid) != nil {
				return dstBroken
			}
		}
		carry = copy(buf, buf[pos:n])
		if rerr != nil {
			return srcBroken
		}
	}
}

// refuse writes the part of the stream before a frame the relay refuses
// and sends both sides a close with code and reason.
func (p *pump) refuse(before []byte, code int, reason string) pumpEnd {
	if len(before) > 0 {
		p.dst.write(before, false)
	}
	p.dst.sendClose(code, reason)
	p.reply.sendClose(code, reason)
	return refused
}

// Close codes of RFC 6455, section 7.4.1, and closeBadGateway, the one a
// client gets when the backend connection broke (registered as "Bad
// Gateway" with IANA).
const (
	closeProtocolError = 1002
	closeMessageTooBig = 1009
	closeBadGateway    = 1014
)

// relay passes frames both ways until both sides closed, or ctx is cut.
// A close frame from one side is passed to the other with its code and
// reason, and so is the other's answer; a side that breaks gets the
// other a close of the relay's own (1001 to the backend when the client
// went away, 1014 to the client when the backend did). Once a close has
// started, both connections are dropped after closeGrace at the latest.
func (p *Proxy) relay(ctx context.Context, client, back net.Conn, clientEarly, backEarly []byte) {
	// each side is read by its pump and written under its wsWriter's
	// lock: one reader and one writer at a time, as RawIO allows
	clientIO, backIO := h1.RawIO(client), h1.RawIO(back)
	toClient := &wsWriter{conn: clientIO}
	toBack := &wsWriter{conn: backIO, masked: true}

	// keepalive: ping the client every interval, and drop it when it
	// stops answering. Any data it sends counts as an answer; each tick
	// that follows one moves the deadline to two intervals later, so a
	// client is dropped two to three intervals after its last sign of
	// life. The handshake counts as the first.
	var active atomic.Bool
	active.Store(true)
	wait := 2 * p.cfg.PingInterval
	client.SetReadDeadline(time.Now().Add(wait))

	var dropOnce sync.Once
	var dropTimer *time.Timer
	drop := func() {
		dropOnce.Do(func() {
			dropTimer = time.AfterFunc(closeGrace, func() { client.Close(); back.Close() })
		})
	}

	limit := p.cfg.MaxMessageSize
	up := &pump{src: clientIO, dst: toBack, reply: toClient, fromClient: true,
		limit: limit, early: clientEarly, active: &active}
	down := &pump{src: backIO, dst: toClient, reply: toBack, limit: limit, early: backEarly}
	clientGone := func() { toBack.sendClose(CloseGoingAway, "client went away") }
	backGone := func() { toClient.sendClose(closeBadGateway, "server connection lost") }
	done := make(chan struct{}, 2)
	start := func(pp *pump, srcGone, dstGone func()) {
		go func() {
			switch pp.run() {
			case srcBroken:
				srcGone()
			case dstBroken:
				dstGone()
			}
			drop()
			done <- struct{}{}
		}()
	}
	start(up, clientGone, backGone)
	start(down, backGone, clientGone)

	ping := time.NewTicker(p.cfg.PingInterval)
	defer ping.Stop()
	cut := ctx.Done()
	for ended := 0; ended < 2; {
		select {
		case <-done:
			ended++
		case <-ping.C:
			if active.Swap(false) {
				client.SetReadDeadline(time.Now().Add(wait))
			}
			toClient.send(opPing, pingPayload)
		case <-cut:
			cut = nil
			ce := cutCause(ctx)
			if ce == nil {
				ce = &cutError{code: CloseGoingAway, reason: "proxy restarting"}
			}
			toClient.sendClose(ce.code, ce.reason)
			toBack.sendClose(CloseGoingAway, "proxy closed the connection")
			drop()
		}
	}
	client.Close()
	back.Close()
	if dropTimer != nil {
		dropTimer.Stop()
	}
}
