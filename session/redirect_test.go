package session

import (
	"strings"
	"testing"
)

func TestLocalPath(t *testing.T) {
	const home = "/studio/"
	cases := []struct {
		name string
		rd   string
		ok   bool
	}{
		// accepted: plain paths on this origin
		{"root", "/", true},
		{"prefix", "/studio/", true},
		{"deep path", "/lab/tree/notes.ipynb", true},
		{"query", "/lab?reset&path=a/b", true},
		{"fragment", "/lab#cell-3", true},
		{"encoded space", "/lab/tree/my%20notes.ipynb", true},
		{"encoded unicode", "/lab/tree/%C3%A9t%C3%A9.ipynb", true},
		{"pinned server", "/servers/alice~gpu/lab", true},
		{"colon in path", "/javascript:alert(1)", true},
		{"query holding a URL", "/studio/?next=https://evil.example", true},

		// refused: empty, or not a path
		{"empty", "", false},
		{"relative", "lab/tree", false},
		{"dot relative", "./lab", false},
		{"absolute https", "https://evil.example/", false},
		{"absolute http", "http://evil.example", false},
		{"uppercase scheme", "HTTPS://evil.example", false},
		{"javascript", "javascript:alert(1)", false},
		{"data", "data:text/html,<script>alert(1)</script>", false},
		{"mailto", "mailto:a@b.example", false},

		// refused: another host by "//"
		{"scheme-relative", "//evil.example", false},
		{"scheme-relative with path", "//evil.example/lab", false},
		{"triple slash", "///evil.example", false},
		{"userinfo", "//user@evil.example", false},

		// refused: backslashes, which browsers read as slashes
		{"slash backslash", "/\\evil.example", false},
		{"backslash slash", "\\/evil.example", false},
		{"double backslash", "\\\\evil.example", false},
		{"backslash inside", "/lab\\..\\..\\evil", false},

		// refused: the same, percent-encoded (once or twice)
		{"encoded double slash", "/%2F%2Fevil.example", false},
		{"encoded double slash lower", "/%2f%2fevil.example", false},
		{"encoded slash after slash", "/%2Fevil.example", false},
		{"fully encoded", "%2F%2Fevil.example", false},
		{"encoded backslash", "/%5Cevil.example", false},
		{"encoded backslash lower", "/%5cevil.example", false},
		{"double encoded slashes", "/%252F%252Fevil.example", false},
		{"double encoded backslash", "/%255Cevil.example", false},
		{"triple encoded slashes", "/%25252F%25252Fevil.example", false},
		{"bad escape", "/lab%zz", false},
		{"truncated escape", "/lab%2", false},

		// refused: control characters, raw or encoded (header splitting,
		// and browsers drop tabs and newlines: "/\t/evil" is "//evil")
		{"CR LF", "/lab\r\nSet-Cookie: x=1", false},
		{"encoded CR LF", "/lab%0D%0ASet-Cookie:%20x=1", false},
		{"tab", "/\t/evil.example", false},
		{"encoded tab", "/%09/evil.example", false},
		{"newline", "/\n/evil.example", false},
		{"encoded newline", "/%0a/evil.example", false},
		{"NUL", "/lab\x00", false},
		{"encoded NUL", "/lab%00", false},
		{"DEL", "/lab\x7f", false},
		{"encoded C1 control", "/lab%C2%85", false},
		{"encoded line separator", "/lab%E2%80%A8", false},
		{"raw space", "/lab tree", false},
		{"leading space", " /lab", false},
		{"raw unicode", "/été", false},
		{"invalid utf-8 encoded", "/%FF%FE", false},

		// refused: dot segments, which a later hop may resolve
		{"dot dot", "/studio/../../evil", false},
		{"dot", "/./lab", false},
		{"encoded dot dot", "/studio/%2E%2E/x", false},
		{"trailing dot dot", "/lab/..", false},

		// refused: too long
		{"too long", "/" + strings.Repeat("a", maxReturnLen), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := home
			if tc.ok {
				want = tc.rd
			}
			if got := LocalPath(tc.rd, home); got != want {
				t.Errorf("LocalPath(%q) = %q, want %q", tc.rd, got, want)
			}
		})
	}
}

func TestLoginURLConfinesReturn(t *testing.T) {
	m := &Manager{cfg: Config{PathPrefix: "/studio/"}}
	cases := []struct {
		rd, want string
	}{
		{"/lab?x=1", "/studio/login?rd=%2Flab%3Fx%3D1"},
		{"//evil.example", "/studio/login?rd=%2Fstudio%2F"},
		{"", "/studio/login?rd=%2Fstudio%2F"},
	}
	for _, tc := range cases {
		if got := m.LoginURL(tc.rd); got != tc.want {
			t.Errorf("LoginURL(%q) = %q, want %q", tc.rd, got, tc.want)
		}
	}
}
