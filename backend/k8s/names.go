package k8s

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Labels and annotations the driver puts on every object it creates.
// Label values are derived from ids (see Names); the raw ids are kept in
// the annotations, which accept any string.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelServer    = "studio-proxy.io/server"
	LabelOwner     = "studio-proxy.io/owner"

	AnnotationServerID = "studio-proxy.io/server-id"
	AnnotationOwner    = "studio-proxy.io/owner"
)

// The values of LabelName and LabelManagedBy on every server's objects.
const (
	NameValue      = "studio-server"
	ManagedByValue = "studio-proxy"
)

// ServerSelector returns the labels that every server pod carries, for
// selecting all of them at once (a NetworkPolicy, a watch).
func ServerSelector() map[string]string {
	return map[string]string{LabelName: NameValue, LabelManagedBy: ManagedByValue}
}

// DefaultNamePrefix starts the name of every object the driver creates.
const DefaultNamePrefix = "studio-"

// hashLen is how many hex digits of the id's SHA-256 end each name: 40
// bits, so that ids that map to the same readable part still differ.
const hashLen = 10

// Names are the Kubernetes names of one server's objects.
type Names struct {
	// Object names the server's Pod, Service and Secret. It is a DNS-1035
	// label, as a Service name must be.
	Object string
	// Claim names the owner's PersistentVolumeClaim.
	Claim string
	// ServerLabel and OwnerLabel are the label values naming the server
	// and its owner.
	ServerLabel string
	OwnerLabel  string
}

// NamesFor derives the names of the objects of server id owned by owner.
// prefix must be a valid prefix (see Config.NamePrefix); empty means
// DefaultNamePrefix. Every name is at most 63 characters, made of
// lowercase letters, digits and '-', readable (the id's letters and
// digits) and unique (a hash of the raw id ends it), so "a.b" and "a-b"
// never share a name.
func NamesFor(prefix, id, owner string) Names {
	if prefix == "" {
		prefix = DefaultNamePrefix
	}
	return Names{
		Object:      hashedName(prefix, id),
		Claim:       hashedName(prefix+"home-", owner),
		ServerLabel: hashedName("", id),
		OwnerLabel:  hashedName("", owner),
	}
}

// hashedName is prefix, the readable part of s, '-' and a hash of s, in at
// most 63 characters.
func hashedName(prefix, s string) string {
	sum := sha256.Sum256([]byte(s))
	hash := hex.EncodeToString(sum[:])[:hashLen]
	part := readable(s, 63-len(prefix)-1-hashLen)
	if part == "" {
		return prefix + hash
	}
	return prefix + part + "-" + hash
}

// readable maps s to at most max lowercase letters, digits and single
// dashes, with no dash at either end.
func readable(s string, max int) string {
	var b strings.Builder
	dash := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteByte(c)
			continue
		}
		dash = true
	}
	out := b.String()
	if max < 0 {
		max = 0
	}
	if len(out) > max {
		out = out[:max]
	}
	return strings.Trim(out, "-")
}
