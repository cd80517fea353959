package proxy

import (
	"encoding/binary"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestClosePayload: a reason too long for a control frame is cut to fit,
// and never inside a character.
func TestClosePayload(t *testing.T) {
	for _, reason := range []string{
		"",
		"short",
		strings.Repeat("x", 200),
		strings.Repeat("é", 100),       // two bytes each: 123 is not a boundary
		strings.Repeat("x", 122) + "€", // three bytes across the cut
	} {
		p := closePayload(4003, reason)
		if len(p) > maxControlPayload {
			t.Errorf("%q: payload of %d bytes, over %d", reason, len(p), maxControlPayload)
		}
		if code := binary.BigEndian.Uint16(p); code != 4003 {
			t.Errorf("%q: code %d, want 4003", reason, code)
		}
		got := string(p[2:])
		if !utf8.ValidString(got) || !strings.HasPrefix(reason, got) {
			t.Errorf("%q: reason %q is not valid UTF-8 or not a prefix", reason, got)
		}
		if len(reason) <= maxControlPayload-2 && got != reason {
			t.Errorf("%q: a reason that fits was cut to %q", reason, got)
		}
	}
}
