package proxy

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/studio-proxy/studio-proxy/internal/ident"
)

// errBadPath is wrapped by every refusal of parsePath.
var errBadPath = errors.New("bad path")

// routeKind says who serves a request.
type routeKind int

const (
	// routeOwn: the proxy's own routes under the reserved prefix.
	routeOwn routeKind = iota
	// routePinned: /servers/{id}/... names the server.
	routePinned
	// routeActive: any other path; the active-server cookie or the
	// user's own server decides.
	routeActive
	// routeNoServer: "/servers" or "/servers/" with no id.
	routeNoServer
)

// route is a request path parsed once. The same value decides and
// forwards: nothing downstream looks at r.URL.Path again.
type route struct {
	kind routeKind
	// server is the canonical server id of a pinned route.
	server string
	// path and rawPath are the cleaned path, decoded and escaped. For a
	// pinned route they carry the canonical id.
	path    string
	rawPath string
	// rest and rawRest are the path below the server's base (after
	// "/servers/{id}/"), or the whole path for an active route, without
	// the leading slash.
	rest    string
	rawRest string
	// bare is true for "/servers/{id}" without the trailing slash.
	bare bool
}

// serversSegment is the first path segment of pinned paths.
const serversSegment = "servers"

// basePath is the path a server is served under: its backend is started
// with this base URL.
func basePath(id string) string { return "/" + serversSegment + "/" + id + "/" }

// parsePath cleans the escaped request path and says where it goes.
//
// The rules, each a refusal (errBadPath) rather than a guess:
//   - the path must start with "/";
//   - no segment may be "." or "..", literally or percent-encoded:
//     browsers resolve dot segments before sending, so only crafted
//     requests carry them;
//   - no backslash, NUL or other control character, literally or
//     encoded;
//   - the server id segment of /servers/{id}/ must be a valid server id
//     with no percent-encoding at all (so %2F, %2E and friends cannot
//     hide in it); it is canonicalised to lower case.
//
// Empty segments (duplicate slashes) are dropped. Percent-encoding below
// the server's base is kept as sent, so a backend sees its own paths
// unchanged.
func parsePath(escaped, prefix string) (route, error) {
	if escaped == "" {
		escaped = "/"
	}
	if escaped[0] != '/' {
		return route{}, fmt.Errorf("%w: path must start with a slash", errBadPath)
	}
	if plainPath(escaped) {
		return parsePlain(escaped, prefix)
	}
	return parseEscaped(escaped, prefix)
}

// plainPath reports whether p is already clean: no escapes, backslashes,
// control characters, empty or dot segments. Such a path (nearly every
// one) decodes to itself and parses without splitting.
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' || c == '\\' || c < 0x20 || c == 0x7f {
			return false
		}
		if c != '/' || i+1 == len(p) {
			continue
		}
		switch rest := p[i+1:]; {
		case rest[0] == '/':
			return false
		case rest == "." || strings.HasPrefix(rest, "./"):
			return false
		case rest == ".." || strings.HasPrefix(rest, "../"):
			return false
		}
	}
	return true
}

// parsePlain parses a path plainPath accepted; it answers exactly what
// parseEscaped would.
func parsePlain(p, prefix string) (route, error) {
	rt := route{path: p, rawPath: p}
	if p+"/" == prefix || strings.HasPrefix(p, prefix) {
		rt.kind = routeOwn
		return rt, nil
	}

	first, after, found := strings.Cut(p[1:], "/")
	if first != serversSegment {
		rt.kind = routeActive
		rt.rest, rt.rawRest = p[1:], p[1:]
		return rt, nil
	}
	if !found || after == "" {
		rt.kind = routeNoServer
		return rt, nil
	}

	raw, rest, slash := strings.Cut(after, "/")
	id, err := ident.ServerID(raw)
	if err != nil {
		return route{}, fmt.Errorf("%w: %w", errBadPath, err)
	}
	rt.kind = routePinned
	rt.server = id
	rt.bare = !slash
	rt.rest, rt.rawRest = rest, rest
	if id != raw {
		rt.path = "/" + serversSegment + "/" + id + p[len("/"+serversSegment+"/")+len(raw):]
		rt.rawPath = rt.path
	}
	return rt, nil
}

// parseEscaped parses any other path, segment by segment.
func parseEscaped(escaped, prefix string) (route, error) {
	// split into raw segments, dropping empty ones
	trailing := strings.HasSuffix(escaped, "/")
	var raw, dec []string
	for seg := range strings.SplitSeq(escaped[1:], "/") {
		if seg == "" {
			continue
		}
		d, err := url.PathUnescape(seg)
		if err != nil {
			return route{}, fmt.Errorf("%w: invalid percent-encoding", errBadPath)
		}
		if d == "." || d == ".." {
			return route{}, fmt.Errorf("%w: dot segments are not allowed", errBadPath)
		}
		for i := 0; i < len(d); i++ {
			if c := d[i]; c < 0x20 || c == 0x7f || c == '\\' {
				return route{}, fmt.Errorf("%w: control character or backslash", errBadPath)
			}
		}
		raw = append(raw, seg)
		dec = append(dec, d)
	}
	if len(raw) == 0 {
		trailing = false // "/" itself
	}
	rt := route{
		path:    joinPath(dec, trailing),
		rawPath: joinPath(raw, trailing),
	}

	// the proxy's own routes: "/studio" is one of them too (redirected
	// to the prefix by the own mux)
	if rt.path+"/" == prefix || strings.HasPrefix(rt.path, prefix) {
		rt.kind = routeOwn
		return rt, nil
	}

	if len(dec) == 0 || dec[0] != serversSegment {
		rt.kind = routeActive
		rt.rest = strings.TrimPrefix(rt.path, "/")
		rt.rawRest = strings.TrimPrefix(rt.rawPath, "/")
		return rt, nil
	}
	if len(dec) == 1 {
		rt.kind = routeNoServer
		return rt, nil
	}

	// pinned: the id segment must be clean as sent
	if raw[1] != dec[1] {
		return route{}, fmt.Errorf("%w: server id must not be percent-encoded", errBadPath)
	}
	id, err := ident.ServerID(raw[1])
	if err != nil {
		return route{}, fmt.Errorf("%w: %w", errBadPath, err)
	}
	rt.kind = routePinned
	rt.server = id
	rt.bare = len(dec) == 2 && !trailing
	rt.rest = strings.TrimPrefix(joinPath(dec[2:], trailing), "/")
	rt.rawRest = strings.TrimPrefix(joinPath(raw[2:], trailing), "/")
	rt.path = basePath(id) + rt.rest
	rt.rawPath = basePath(id) + rt.rawRest
	if rt.bare {
		rt.path = strings.TrimSuffix(rt.path, "/")
		rt.rawPath = strings.TrimSuffix(rt.rawPath, "/")
	}
	return rt, nil
}

// pin returns the route of an active-server request once its server is
// known: the same path below that server's base.
func (rt route) pin(id string) route {
	return route{
		kind:    routePinned,
		server:  id,
		path:    basePath(id) + rt.rest,
		rawPath: basePath(id) + rt.rawRest,
		rest:    rt.rest,
		rawRest: rt.rawRest,
	}
}

// setURL points u at the route's cleaned path. RawPath is only kept when
// it differs from what Go would escape by itself.
func (rt route) setURL(u *url.URL) {
	u.Path = rt.path
	u.RawPath = ""
	if u.EscapedPath() != rt.rawPath {
		u.RawPath = rt.rawPath
	}
}

func joinPath(segs []string, trailing bool) string {
	if len(segs) == 0 {
		return "/"
	}
	p := "/" + strings.Join(segs, "/")
	if trailing {
		p += "/"
	}
	return p
}
