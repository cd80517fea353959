package session

import (
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxReturnLen bounds a return address; longer ones are refused.
const maxReturnLen = 2048

// LocalPath returns raw when it is safe to redirect to: a path on this
// proxy's own origin. Anything else (an absolute URL, "//host", a
// backslash, a control character, a scheme, dot segments, or any of
// these hidden behind percent-encoding) gives fallback.
func LocalPath(raw, fallback string) string {
	if isLocalPath(raw) {
		return raw
	}
	return fallback
}

func isLocalPath(raw string) bool {
	if raw == "" || len(raw) > maxReturnLen {
		return false
	}

	// as sent: printable ASCII only (anything else must be
	// percent-encoded), in the shape of a path
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] >= 0x7f {
			return false
		}
	}
	if !pathShaped(raw) {
		return false
	}

	// decoded, once and again: "%2F%2Fhost" and "%252F..." must not turn
	// into "//host" in some later hop that decodes once more
	s := raw
	for i := 0; ; i++ {
		d, err := url.PathUnescape(s)
		if err != nil {
			return false
		}
		if d == s {
			break
		}
		if i == 3 || !utf8.ValidString(d) || !pathShaped(d) {
			return false
		}
		s = d
	}

	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	return u.Scheme == "" && u.Host == "" && u.User == nil && u.Opaque == ""
}

// pathShaped reports whether s starts with exactly one slash, holds no
// backslash and no control character, and has no "." or ".." segment.
func pathShaped(s string) bool {
	if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") {
		return false
	}
	if strings.ContainsRune(s, '\\') {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	p := s
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}
