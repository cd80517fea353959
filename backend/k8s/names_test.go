package k8s

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestNamesFor(t *testing.T) {
	long := strings.Repeat("x", 60) + ".com"
	tests := []struct {
		name, prefix, id, owner string
		// want is the readable start of the object name, before the hash
		want string
	}{
		{"plain", "", "alice", "alice", "studio-alice-"},
		{"email", "", "alice@example.com", "alice@example.com", "studio-alice-example-com-"},
		{"named server", "", "alice~analysis", "alice", "studio-alice-analysis-"},
		{"dots and dashes", "", "a.-_b", "a", "studio-a-b-"},
		{"starts with a digit", "", "1x", "1x", "studio-1x-"},
		{"longest id", "", long, long, "studio-" + strings.Repeat("x", 45)},
		{"custom prefix", "lab-", "bob", "bob", "lab-bob-"},
		{"longest prefix", strings.Repeat("p", 19) + "-", long, long,
			strings.Repeat("p", 19) + "-" + strings.Repeat("x", 32)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := NamesFor(tt.prefix, tt.id, tt.owner)
			if !strings.HasPrefix(n.Object, tt.want) {
				t.Errorf("got object name %q, want it to start with %q", n.Object, tt.want)
			}
			if errs := validation.IsDNS1035Label(n.Object); len(errs) > 0 {
				t.Errorf("object name %q: %v", n.Object, errs)
			}
			if errs := validation.IsDNS1123Subdomain(n.Claim); len(errs) > 0 {
				t.Errorf("claim name %q: %v", n.Claim, errs)
			}
			if len(n.Claim) > 63 {
				t.Errorf("claim name %q is longer than 63", n.Claim)
			}
			for _, v := range []string{n.ServerLabel, n.OwnerLabel} {
				if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
					t.Errorf("label value %q: %v", v, errs)
				}
			}
			if again := NamesFor(tt.prefix, tt.id, tt.owner); again != n {
				t.Errorf("got %+v, then %+v, want the same names each time", n, again)
			}
		})
	}
}

func TestNamesDiffer(t *testing.T) {
	// ids that read alike once mapped to DNS names
	ids := []string{"a.b", "a-b", "a_b", "a@b", "a~b", "a..b", "ab",
		strings.Repeat("y", 63) + "1", strings.Repeat("y", 63) + "2"}
	seen := map[string]string{}
	for _, id := range ids {
		n := NamesFor("", id, id)
		for _, name := range []string{n.Object, n.Claim, n.ServerLabel} {
			if other, dup := seen[name]; dup {
				t.Errorf("ids %q and %q share the name %q", other, id, name)
			}
			seen[name] = id
		}
	}
}

func TestNameOfServerNotOwner(t *testing.T) {
	// Stop and Status know only the id: the object name must not depend
	// on the owner
	if a, b := NamesFor("", "x", "alice"), NamesFor("", "x", ""); a.Object != b.Object {
		t.Errorf("got %q and %q, want one name whoever the owner", a.Object, b.Object)
	}
}

func TestReadable(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"Alice", 63, "alice"},
		{"a--b", 63, "a-b"},
		{"-a-", 63, "a"},
		{"@@@", 63, ""},
		{"abc-def", 4, "abc"},
		{"abc", -1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := readable(tt.in, tt.max); got != tt.want {
				t.Errorf("readable(%q, %d): got %q, want %q", tt.in, tt.max, got, tt.want)
			}
		})
	}
}
