package proxy

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"unicode/utf8"
)

// The websocket relay passes frames through as they are (RFC 6455,
// section 5): a client's frames stay masked with the client's key, which
// is what the backend expects of a client, and a backend's stay
// unmasked. It reads each frame's header to know where frames begin and
// end, to bound messages, and to see close frames; it reads the payload
// of control frames only. No extension is ever negotiated, so every
// frame is as the RFC's base protocol has it.

// Opcodes of RFC 6455, section 5.2.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

const (
	finBit  = 0x80
	rsvBits = 0x70
	maskBit = 0x80

	// maxControlPayload bounds the payload of a control frame.
	maxControlPayload = 125
	// maxHeader is the longest frame header: 2 bytes, 8 of length and 4
	// of mask key.
	maxHeader = 14
)

// errProtocol is a frame the relay will not pass on: a reserved bit or
// opcode, a control frame that is fragmented or too long, a mask where
// there must be none (or none where there must be one), or a
// continuation that continues nothing.
var errProtocol = errors.New("websocket protocol error")

// frameHeader is one frame's header.
type frameHeader struct {
	fin    bool
	op     byte
	masked bool
	key    [4]byte
	// length is the payload's length, size the header's own.
	length int64
	size   int
}

func (h frameHeader) control() bool { return h.op&0x8 != 0 }

// parseHeader parses the frame header at the start of b. It returns ok
// false when b holds only the beginning of one. A header whose fields
// break the base protocol is errProtocol; masked says whether the frame
// must be masked (a client's) or must not be (a server's).
func parseHeader(b []byte, masked bool) (h frameHeader, ok bool, err error) {
	if len(b) < 2 {
		return h, false, nil
	}
	h.fin = b[0]&finBit != 0
	h.op = b[0] & 0x0f
	h.masked = b[1]&maskBit != 0
	if b[0]&rsvBits != 0 || h.masked != masked {
		return h, false, errProtocol
	}
	switch h.op {
	case opContinuation, opText, opBinary, opClose, opPing, opPong:
	default:
		return h, false, errProtocol
	}

	h.size = 2
	switch n := b[1] &^ maskBit; n {
	case 126:
		h.size += 2
	case 127:
		h.size += 8
	default:
		h.length = int64(n)
	}
	if masked {
		h.size += 4
	}
	if len(b) < h.size {
		return h, false, nil
	}
	switch b[1] &^ maskBit {
	case 126:
		h.length = int64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		n := binary.BigEndian.Uint64(b[2:])
		if n>>63 != 0 {
			return h, false, errProtocol
		}
		h.length = int64(n)
	}
	if masked {
		copy(h.key[:], b[h.size-4:h.size])
	}
	if h.control() && (!h.fin || h.length > maxControlPayload) {
		return h, false, errProtocol
	}
	return h, true, nil
}

// unmask returns the payload p of a frame with header h, unmasked into
// a new slice.
func unmask(h frameHeader, p []byte) []byte {
	out := make([]byte, len(p))
	for i := range p {
		out[i] = p[i] ^ h.key[i&3]
	}
	return out
}

// controlFrame returns a control frame of the relay's own with op and
// payload (at most maxControlPayload bytes). Frames to a backend are
// masked, as a client's must be.
func controlFrame(op byte, payload []byte, masked bool) []byte {
	f := make([]byte, 0, maxHeader+len(payload))
	f = append(f, finBit|op)
	if !masked {
		f = append(f, byte(len(payload)))
		return append(f, payload...)
	}
	var key [4]byte
	rand.Read(key[:])
	f = append(f, maskBit|byte(len(payload)))
	f = append(f, key[:]...)
	for i, c := range payload {
		f = append(f, c^key[i&3])
	}
	return f
}

// closePayload is the payload of a close frame with code and reason,
// the reason cut to fit a control frame, at a character's start: a
// reason must be valid UTF-8 (RFC 6455, section 5.5.1).
func closePayload(code int, reason string) []byte {
	if n := maxControlPayload - 2; len(reason) > n {
		for n > 0 && !utf8.RuneStart(reason[n]) {
			n--
		}
		reason = reason[:n]
	}
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	return append(p, reason...)
}
