package process

import (
	"slices"
	"testing"
)

func TestSplitWords(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"plain", "jupyter notebook --no-browser", []string{"jupyter", "notebook", "--no-browser"}},
		{"extra blanks", "  a \t b\n c  ", []string{"a", "b", "c"}},
		{"single quotes", `a 'b c' 'd"e'`, []string{"a", "b c", `d"e`}},
		{"double quotes", `a "b c" "d\"e" "f\\g" "h\i"`, []string{"a", "b c", `d"e`, `f\g`, `h\i`}},
		{"backslash", `a\ b c\'d`, []string{"a b", "c'd"}},
		{"empty quotes make a word", `a '' b`, []string{"a", "", "b"}},
		{"quotes join a word", `--x='a b'"c"d`, []string{"--x=a bcd"}},
		{"no expansion", `$HOME $(id) * ; | &&`, []string{"$HOME", "$(id)", "*", ";", "|", "&&"}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := splitWords(tt.in)
			if err != nil {
				t.Fatalf("splitWords(%q): %v", tt.in, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("splitWords(%q): got %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSplitWordsErrors(t *testing.T) {
	for _, in := range []string{`a 'b`, `a "b`, `a "b\"`, `a\`} {
		t.Run(in, func(t *testing.T) {
			if got, err := splitWords(in); err == nil {
				t.Fatalf("splitWords(%q): got %q, want an error", in, got)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"port": "8888", "secret": "a b;c", "base_url": "/servers/x/"}
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"one", "--port={port}", "--port=8888", true},
		{"two", "{base_url}:{port}", "/servers/x/:8888", true},
		{"value with blanks stays one word", "--token={secret}", "--token=a b;c", true},
		{"json braces kept", `{"a": {port}}`, `{"a": 8888}`, true},
		{"lone braces kept", "{ } {} {1}", "{ } {} {1}", true},
		{"unclosed kept", "{port", "{port", true},
		{"unknown", "--x={prot}", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := expand(tt.in, vars)
			if (err == nil) != tt.ok {
				t.Fatalf("expand(%q): got error %v, want ok=%v", tt.in, err, tt.ok)
			}
			if got != tt.want {
				t.Fatalf("expand(%q): got %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
