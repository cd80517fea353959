package session

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanText(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"plain", "Alice Archer", "Alice Archer"},
		{"trimmed", "  Alice  ", "Alice"},
		{"controls dropped", "Ali\u0000ce\r\n\u2028", "Alice"},
		{"bounded", strings.Repeat("a", 300), strings.Repeat("a", maxTextClaim)},
		{"bounded at a character", "a" + strings.Repeat("é", 150), "a" + strings.Repeat("é", 99)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := cleanText(tc.in)
			if got != tc.want || !utf8.ValidString(got) {
				t.Errorf("cleanText(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestListClaim(t *testing.T) {
	claims := map[string]any{
		"list":   []any{"a", 1, "b"},
		"single": "a",
		"number": 3,
	}
	cases := []struct {
		name string
		want []string
	}{
		{"list", []string{"a", "b"}},
		{"single", []string{"a"}},
		{"number", nil},
		{"missing", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := listClaim(claims, tc.name)
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
