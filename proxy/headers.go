package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// UserHeader is the header that tells a backend who is using it. Only the
// proxy sets it; every copy a client sends is dropped.
const UserHeader = "X-Studio-User"

// identityHeader reports whether a request header, by name, claims an
// identity or a forwarding path, so that a client must not set it. The
// name is compared lower-cased with '_' read as '-': Go canonicalises
// "x-studio-user" to "X-Studio-User", but "X_Studio_User" arrives as a
// key of its own, and some backends (WSGI, CGI) read both alike.
func identityHeader(name string) bool {
	for _, n := range identityNames {
		if len(name) == len(n) && normEqual(name, n) {
			return true
		}
	}
	for _, p := range identityPrefixes {
		if len(name) >= len(p) && normEqual(name[:len(p)], p) {
			return true
		}
	}
	return false
}

var (
	identityNames = []string{
		"authorization", "proxy-authorization", "forwarded", "x-real-ip",
		"remote-user", "x-remote-user", "x-user", "x-email",
	}
	identityPrefixes = []string{"x-studio-", "x-forwarded-", "x-auth-request-"}
)

// normEqual reports whether s equals the lower-case, dashed name n once
// s is lower-cased with '_' read as '-'. It runs once per header of every
// request, so it allocates nothing.
func normEqual(s, n string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if c != n[i] {
			return false
		}
	}
	return true
}

// stripIdentity removes every identity header from h, see identityHeader.
// The forwarding headers are dropped too; setForwarded writes the proxy's
// own.
func stripIdentity(h http.Header) {
	for k := range h {
		if identityHeader(k) {
			delete(h, k)
		}
	}
}

// ownCookie reports whether a cookie, by name, belongs to the proxy
// (session, login state, active server). Those never reach a backend:
// every cookie named studio_* (with or without the __Host- or __Secure-
// prefix) is the proxy's.
func ownCookie(name string) bool {
	name = strings.TrimPrefix(name, "__Host-")
	name = strings.TrimPrefix(name, "__Secure-")
	return strings.HasPrefix(name, "studio_")
}

// stripCookies removes the proxy's own cookies from the Cookie headers of
// h, keeping every other pair exactly as sent.
func stripCookies(h http.Header) {
	lines := h["Cookie"]
	if len(lines) == 0 {
		return
	}
	var kept []string
	for _, line := range lines {
		for pair := range strings.SplitSeq(line, ";") {
			pair = strings.TrimSpace(pair)
			if pair == "" {
				continue
			}
			name, _, _ := strings.Cut(pair, "=")
			if ownCookie(strings.TrimSpace(name)) {
				continue
			}
			kept = append(kept, pair)
		}
	}
	if len(kept) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = []string{strings.Join(kept, "; ")}
}

// stripSetCookies removes Set-Cookie headers of a backend response that
// would set one of the proxy's own cookies: a backend must not sign a
// person in or out, nor choose their active server.
func stripSetCookies(h http.Header) {
	lines := h["Set-Cookie"]
	if len(lines) == 0 {
		return
	}
	kept := lines[:0]
	for _, line := range lines {
		name, _, _ := strings.Cut(line, "=")
		if !ownCookie(strings.TrimSpace(name)) {
			kept = append(kept, line)
		}
	}
	if len(kept) == 0 {
		delete(h, "Set-Cookie")
		return
	}
	h["Set-Cookie"] = kept
}

// stripCORS removes a backend's cross-origin grants. Servers share the
// proxy's origin, and Jupyter echoes any Origin back in
// Access-Control-Allow-Origin when a request carries its token (which the
// proxy adds to every request): no other origin may read a server's
// answers through a signed-in person's browser, whatever a backend says.
func stripCORS(h http.Header) {
	for name := range h {
		if strings.HasPrefix(name, "Access-Control-Allow-") ||
			name == "Access-Control-Expose-Headers" || name == "Access-Control-Max-Age" {
			delete(h, name)
		}
	}
}

// trust decides whether forwarding headers of a request can be believed.
type trust []netip.Prefix

// trusted reports whether the peer at remoteAddr (host:port) is a
// configured trusted proxy.
func (t trust) trusted(remoteAddr string) bool {
	if len(t) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range t {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ClientIP returns a function that tells the address of the person behind
// a request: the peer's, or, when the peer is one of the trusted proxies,
// the nearest address in X-Forwarded-For that is not one of them. A
// client's own X-Forwarded-For is never believed.
func ClientIP(trusted []netip.Prefix) func(r *http.Request) string {
	t := trust(trusted)
	return func(r *http.Request) string {
		peer, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			peer = r.RemoteAddr
		}
		if !t.trusted(r.RemoteAddr) {
			return peer
		}
		chain := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(chain) - 1; i >= 0; i-- {
			hop := strings.TrimSpace(chain[i])
			if hop == "" {
				continue
			}
			if !t.trusted(net.JoinHostPort(hop, "0")) {
				return hop
			}
		}
		return peer
	}
}

// forwarded is what the proxy tells a backend about the client.
type forwarded struct {
	forFor string // X-Forwarded-For
	host   string
	proto  string
	// header is the client's RFC 7239 Forwarded header, kept only from a
	// trusted proxy.
	header []string
}

// forwardedFor works out the forwarding headers of r before any header
// is stripped. A client's own X-Forwarded-* and Forwarded are only
// believed when it is a trusted proxy.
func (t trust) forwardedFor(r *http.Request) forwarded {
	client, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		client = r.RemoteAddr
	}
	f := forwarded{forFor: client, host: r.Host, proto: "http"}
	if r.TLS != nil {
		f.proto = "https"
	}
	if !t.trusted(r.RemoteAddr) {
		return f
	}

	if prior := r.Header.Values("X-Forwarded-For"); len(prior) > 0 {
		f.forFor = strings.Join(prior, ", ") + ", " + client
	}
	if h := r.Header.Get("X-Forwarded-Host"); h != "" {
		f.host = h
	}
	if p := strings.ToLower(r.Header.Get("X-Forwarded-Proto")); p == "http" || p == "https" {
		f.proto = p
	}
	f.header = r.Header.Values("Forwarded")
	return f
}

// set writes the forwarding headers into h.
func (f forwarded) set(h http.Header) {
	// one allocation for the three, each capped to its own value
	v := []string{f.forFor, f.host, f.proto}
	h["X-Forwarded-For"] = v[0:1:1]
	h["X-Forwarded-Host"] = v[1:2:2]
	h["X-Forwarded-Proto"] = v[2:3:3]
	if len(f.header) > 0 {
		h["Forwarded"] = f.header
	}
}
