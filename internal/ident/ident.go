// Package ident validates the names that studio-proxy turns into Redis
// keys, URL paths and labels: usernames and server ids. Nothing a client
// sends reaches a key, a path or a label without passing through here.
package ident

import (
	"errors"
	"fmt"
	"strings"
)

// MaxLen is the longest username or server id accepted.
const MaxLen = 64

// ErrInvalid is wrapped by every validation error of this package.
var ErrInvalid = errors.New("invalid name")

// Username returns the canonical (lowercase) form of name, or an error
// wrapping ErrInvalid. A username is 1 to 64 characters of ASCII letters,
// digits, '.', '_', '-' and '@', and starts with a letter or a digit.
// Braces, colons, slashes, spaces and control characters are refused, so a
// canonical username is safe inside a Redis key (no hash tag or separator),
// a URL path segment and a Kubernetes label value once '@' is mapped.
func Username(name string) (string, error) {
	if err := check("username", name, "._-@"); err != nil {
		return "", err
	}
	return strings.ToLower(name), nil
}

// ServerID returns the canonical (lowercase) form of id, or an error
// wrapping ErrInvalid. A server id follows the rules of Username, and may
// also contain '~', which separates an owner from a server name (see
// DefaultServerID and NamedServerID).
func ServerID(id string) (string, error) {
	if err := check("server id", id, "._-@~"); err != nil {
		return "", err
	}
	return strings.ToLower(id), nil
}

// DefaultServerID is the id of a user's default server ("My Server"). It is
// the canonical username itself.
func DefaultServerID(user string) string { return user }

// NamedServerID is the id of a further server of a user, for when users
// have more than one. name follows the rules of Username.
func NamedServerID(user, name string) string { return user + "~" + name }

func check(what, s, extra string) error {
	if s == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalid, what)
	}
	if len(s) > MaxLen {
		return fmt.Errorf("%w: %s is longer than %d characters", ErrInvalid, what, MaxLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return fmt.Errorf("%w: %s must start with a letter or a digit", ErrInvalid, what)
		}
		if !alnum && strings.IndexByte(extra, c) < 0 {
			return fmt.Errorf("%w: %s contains %q; allowed are letters, digits and %q",
				ErrInvalid, what, c, extra)
		}
	}
	return nil
}
