package ident

import (
	"errors"
	"strings"
	"testing"
)

func TestUsername(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"alice", "alice", true},
		{"Alice.Smith", "alice.smith", true},
		{"bob@example.com", "bob@example.com", true},
		{"a_b-c", "a_b-c", true},
		{"", "", false},
		{".alice", "", false},
		{"-x", "", false},
		{"al ice", "", false},
		{"{alice}", "", false},
		{"alice:x", "", false},
		{"a/b", "", false},
		{"a~b", "", false},
		{"ålice", "", false},
		{"a\x00b", "", false},
		{strings.Repeat("a", MaxLen), strings.Repeat("a", MaxLen), true},
		{strings.Repeat("a", MaxLen+1), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Username(tt.in)
			if tt.ok && err != nil {
				t.Fatalf("Username(%q): got error %v, want %q", tt.in, err, tt.want)
			}
			if !tt.ok && !errors.Is(err, ErrInvalid) {
				t.Fatalf("Username(%q): got %q, %v, want ErrInvalid", tt.in, got, err)
			}
			if got != tt.want {
				t.Fatalf("Username(%q): got %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestServerID(t *testing.T) {
	if got, err := ServerID(NamedServerID("alice", "gpu")); err != nil || got != "alice~gpu" {
		t.Fatalf("got %q, %v, want alice~gpu", got, err)
	}
	for _, bad := range []string{"", "..", "a/../b", "%2e", "a{b}", "~a"} {
		if _, err := ServerID(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ServerID(%q): got %v, want ErrInvalid", bad, err)
		}
	}
}
