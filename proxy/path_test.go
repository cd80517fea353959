package proxy

import (
	"errors"
	"net/url"
	"testing"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		kind    routeKind
		server  string
		path    string
		rawPath string
	}{
		{"root", "/", routeActive, "", "/", "/"},
		{"empty", "", routeActive, "", "/", "/"},
		{"active", "/tree/x", routeActive, "", "/tree/x", "/tree/x"},
		{"active duplicate slashes", "//tree//x/", routeActive, "", "/tree/x/", "/tree/x/"},
		{"own", "/studio/login", routeOwn, "", "/studio/login", "/studio/login"},
		{"own without slash", "/studio", routeOwn, "", "/studio", "/studio"},
		{"own encoded", "/%73tudio/api/me", routeOwn, "", "/studio/api/me", "/%73tudio/api/me"},
		{"own double slash", "//studio//api", routeOwn, "", "/studio/api", "/studio/api"},
		{"not own", "/studiox/a", routeActive, "", "/studiox/a", "/studiox/a"},
		{"pinned", "/servers/alice/tree", routePinned, "alice",
			"/servers/alice/tree", "/servers/alice/tree"},
		{"pinned base", "/servers/alice/", routePinned, "alice", "/servers/alice/", "/servers/alice/"},
		{"pinned bare", "/servers/alice", routePinned, "alice", "/servers/alice", "/servers/alice"},
		{"pinned canonical case", "/servers/ALICE/x", routePinned, "alice",
			"/servers/alice/x", "/servers/alice/x"},
		{"pinned leading double slash", "//servers/bob/", routePinned, "bob",
			"/servers/bob/", "/servers/bob/"},
		{"pinned inner double slash", "/servers//bob//x", routePinned, "bob",
			"/servers/bob/x", "/servers/bob/x"},
		{"pinned encoded first segment", "/%73ervers/bob/", routePinned, "bob",
			"/servers/bob/", "/servers/bob/"},
		{"pinned named server", "/servers/alice~two/", routePinned, "alice~two",
			"/servers/alice~two/", "/servers/alice~two/"},
		{"encoded slash below base kept", "/servers/alice/api/contents/a%2Fb", routePinned, "alice",
			"/servers/alice/api/contents/a/b", "/servers/alice/api/contents/a%2Fb"},
		{"encoded space below base", "/servers/alice/files/my%20file", routePinned, "alice",
			"/servers/alice/files/my file", "/servers/alice/files/my%20file"},
		{"no server", "/servers", routeNoServer, "", "/servers", "/servers"},
		{"no server slash", "/servers/", routeNoServer, "", "/servers/", "/servers/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, err := parsePath(tt.in, "/studio/")
			if err != nil {
				t.Fatalf("parsePath(%q): %v", tt.in, err)
			}
			if rt.kind != tt.kind || rt.server != tt.server {
				t.Errorf("got kind %d server %q, want %d %q", rt.kind, rt.server, tt.kind, tt.server)
			}
			if rt.path != tt.path || rt.rawPath != tt.rawPath {
				t.Errorf("got path %q raw %q, want %q %q", rt.path, rt.rawPath, tt.path, tt.rawPath)
			}
		})
	}
}

// TestParsePathRefusesTricks lists the ways a path could name one server
// and reach another: each is refused outright.
func TestParsePathRefusesTricks(t *testing.T) {
	tricks := []string{
		"/servers/alice/../bob/",
		"/servers/alice/%2e%2e/bob",
		"/servers/alice/%2E%2E/bob",
		"/servers/alice/.%2e/bob",
		"/servers/alice%2F..%2Fbob/",
		"/servers/alice%2fbob/",
		"/servers/%61lice/",
		"/servers/./bob",
		"/servers/%2e/bob",
		"/servers/../servers/bob",
		"/../servers/bob/",
		"/servers/alice/./x",
		"/servers/alice\\..\\bob/",
		"/servers/alice/%5c..%5cbob",
		"/servers/alice%00/",
		"/servers/alice/x%00",
		"/servers/alice/x%0a",
		"/servers/al%ice/",
		"/servers/alice:6379/",
		"/servers/{alice}/",
		"/servers/-alice/",
		"/servers/alice bob/",
		"servers/bob/",
		"/servers/alice/%zz",
	}
	for _, in := range tricks {
		t.Run(in, func(t *testing.T) {
			rt, err := parsePath(in, "/studio/")
			if !errors.Is(err, errBadPath) {
				t.Errorf("got route %+v, err %v; want errBadPath", rt, err)
			}
		})
	}
}

func TestRoutePinAndURL(t *testing.T) {
	rt, err := parsePath("/api/contents/a%2Fb", "/studio/")
	if err != nil {
		t.Fatal(err)
	}
	p := rt.pin("alice")
	u := &url.URL{}
	p.setURL(u)
	if got, want := u.EscapedPath(), "/servers/alice/api/contents/a%2Fb"; got != want {
		t.Errorf("got escaped path %q, want %q", got, want)
	}
	if got, want := u.Path, "/servers/alice/api/contents/a/b"; got != want {
		t.Errorf("got path %q, want %q", got, want)
	}
}

// TestParsePlainAgrees: the fast path for clean paths answers exactly
// what the general parser answers.
func TestParsePlainAgrees(t *testing.T) {
	inputs := []string{
		"/", "/tree", "/tree/", "/tree/a.b/c", "/studio", "/studio/", "/studio/api/me",
		"/studiox", "/servers", "/servers/", "/servers/alice", "/servers/alice/",
		"/servers/ALICE", "/servers/Alice/x/y/", "/servers/alice~two/api", "/servers/-x/",
		"/servers/a:b/", "/a/.hidden/..x/...", "/servers/alice/.ipynb_checkpoints/",
	}
	for _, in := range inputs {
		t.Run(in, func(t *testing.T) {
			if !plainPath(in) {
				t.Fatalf("plainPath(%q) = false, want true", in)
			}
			got, gerr := parsePlain(in, "/studio/")
			want, werr := parseEscaped(in, "/studio/")
			if got != want || (gerr == nil) != (werr == nil) {
				t.Errorf("got %+v %v, want %+v %v", got, gerr, want, werr)
			}
		})
	}
	for _, in := range []string{"//x", "/a//b", "/a/./b", "/a/../b", "/a/.", "/a/..", "/%41",
		"/a\\b", "/a\x00"} {
		if plainPath(in) {
			t.Errorf("plainPath(%q) = true, want false", in)
		}
	}
}
