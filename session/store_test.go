package session

import (
	"strings"
	"testing"
	"time"
)

func TestSessionIDs(t *testing.T) {
	id, text := newID()
	if len(id) != idLen || len(text) != idTextLen {
		t.Fatalf("got %d bytes as %d characters, want %d and %d", len(id), len(text), idLen, idTextLen)
	}
	if got, ok := parseID(text); !ok || string(got) != string(id) {
		t.Fatalf("parseID(%q) = %x, %v; want %x, true", text, got, ok, id)
	}
	_, other := newID()
	if other == text {
		t.Fatal("got the same id twice")
	}
	for _, bad := range []string{"", text[1:], text + "A", strings.Repeat("!", idTextLen),
		strings.Repeat("A", idTextLen-1) + "=", text[:idTextLen-1] + "\n"} {
		if _, ok := parseID(bad); ok {
			t.Errorf("parseID(%q) accepted, want refused", bad)
		}
	}
	if h := hashID(id); len(h) != 64 || strings.Contains(h, text) {
		t.Errorf("got hash %q, want 64 hex characters unrelated to the cookie", h)
	}
}

func TestSealedTokens(t *testing.T) {
	id, _ := newID()
	hash := hashID(id)
	want := tokens{Access: "at", Refresh: "rt", ID: "idt"}
	sealed, err := seal(id, hash, want)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "rt") && strings.Contains(sealed, "idt") {
		t.Error("got sealed tokens that look like plain text")
	}
	got, err := unseal(id, hash, sealed)
	if err != nil || got != want {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}

	otherID, _ := newID()
	flipped := []byte(sealed)
	flipped[len(flipped)/2] ^= 1
	cases := []struct {
		name   string
		id     []byte
		hash   string
		sealed string
	}{
		{"other id", otherID, hash, sealed},
		{"other hash", id, hashID(otherID), sealed},
		{"tampered", id, hash, string(flipped)},
		{"truncated", id, hash, sealed[:10]},
		{"not base64", id, hash, "***"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := unseal(tc.id, tc.hash, tc.sealed); err == nil {
				t.Error("got tokens, want an error")
			}
		})
	}
}

func TestCacheGeneration(t *testing.T) {
	c := newCache(2)
	e := entry{sess: Session{ID: "h1", User: userNamed("alice")}}

	// a read that raced with an invalidation is not stored
	gen := c.generation()
	c.dropUser("alice")
	c.put("h1", e, gen)
	if _, ok := c.get("h1"); ok {
		t.Fatal("got a stale entry stored after an invalidation")
	}

	c.put("h1", e, c.generation())
	if _, ok := c.get("h1"); !ok {
		t.Fatal("entry not stored")
	}
	c.dropUser("bob")
	if _, ok := c.get("h1"); !ok {
		t.Fatal("got alice's entry dropped for bob")
	}

	// set never adds
	c.set("h9", e)
	if _, ok := c.get("h9"); ok {
		t.Fatal("set added an entry")
	}

	// bounded
	for _, h := range []string{"h2", "h3", "h4"} {
		c.put(h, e, c.generation())
	}
	if n := c.len(); n != 2 {
		t.Errorf("got %d entries, want at most 2", n)
	}
	c.flush()
	if n := c.len(); n != 0 {
		t.Errorf("got %d entries after flush, want 0", n)
	}
}

func TestKeyTTLCoversValidity(t *testing.T) {
	m := &Manager{cfg: Config{IdleTimeout: time.Hour}}
	now := time.Now()
	cases := []struct {
		name    string
		expires time.Duration
		want    time.Duration
	}{
		{"idle bound", 5 * time.Hour, time.Hour + keyMargin},
		{"lifetime bound", 10 * time.Minute, 10*time.Minute + keyMargin},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := m.keyTTL(record{Expires: now.Add(tc.expires)}, now)
			if got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
