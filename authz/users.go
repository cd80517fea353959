package authz

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/studio-proxy/studio-proxy/internal/events"
)

// maxField is the longest display name, email or organization accepted.
const maxField = 256

// maxSearch is the most users SearchUsers returns.
const maxSearch = 100

// PutUser records u in the user directory, as seen at sign-in: its Name is
// validated and made canonical. When an existing user's Admin flag or
// organization changes, PutUser publishes events.UserChanged so that every
// replica drops what it cached about the user.
//
// The directory entry and the search index of the organization live in
// different Cluster slots and are not changed atomically. Search checks
// every hit against the directory, so a stale index entry is never
// returned.
func (s *Store) PutUser(ctx context.Context, u User) error {
	if u.IsOperator() {
		return fmt.Errorf("%w: the operator is not a user", ErrInvalidInput)
	}
	name, err := canonUser(u.Name)
	if err != nil {
		return err
	}
	u.Name = name
	for _, f := range [][2]string{
		{"display name", u.DisplayName}, {"email", u.Email}, {"organization", u.Org},
	} {
		if err := checkField(f[0], f[1]); err != nil {
			return err
		}
	}
	old, found, err := s.lookupUser(ctx, name)
	if err != nil {
		return err
	}

	lastLogin := ""
	if !u.LastLogin.IsZero() {
		lastLogin = u.LastLogin.UTC().Format(time.RFC3339Nano)
	}
	// TODO: two sign-ins of one user that change its organization at the
	// same moment may leave its new search terms unindexed until the
	// next sign-in; making this atomic would need the entry and the
	// index in one slot.
	pipe := s.rdb.Pipeline()
	pipe.HSet(ctx, s.userKey(name),
		"name", name,
		"display_name", u.DisplayName,
		"email", u.Email,
		"org", u.Org,
		"admin", flag(u.Admin),
		"last_login", lastLogin,
	)
	newTerms := searchTerms(u)
	if found {
		var stale []any
		for _, t := range searchTerms(old) {
			if old.Org != u.Org || !slices.Contains(newTerms, t) {
				stale = append(stale, t)
			}
		}
		if len(stale) > 0 {
			pipe.ZRem(ctx, s.userIndexKey(old.Org), stale...)
		}
	}
	zs := make([]redis.Z, len(newTerms))
	for i, t := range newTerms {
		zs[i] = redis.Z{Member: t}
	}
	pipe.ZAdd(ctx, s.userIndexKey(u.Org), zs...)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("saving user %s: %w", name, err)
	}

	if found && (old.Admin != u.Admin || old.Org != u.Org) {
		ev := events.Event{Kind: events.UserChanged, User: name, At: s.clock()}
		if err := events.Publish(ctx, s.rdb, s.channel, ev); err != nil {
			return fmt.Errorf("announcing change of user %s: %w", name, err)
		}
	}
	return nil
}

// checkField refuses text from the identity provider that has no place in
// a profile: invalid UTF-8, control characters, or too long.
func checkField(what, v string) error {
	if len(v) > maxField {
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalidInput, what, maxField)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidInput, what)
	}
	if strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return fmt.Errorf("%w: %s contains a control character", ErrInvalidInput, what)
	}
	return nil
}

// searchTerms are the index entries of u: its username, its display name
// and each later word of the display name, lowercase, each followed by NUL
// and the username. A prefix search over them finds "Ada Lovelace" by
// "ada", "love" and "ada l".
func searchTerms(u User) []string {
	terms := []string{u.Name}
	words := strings.Fields(strings.ToLower(u.DisplayName))
	for i := range words {
		terms = append(terms, strings.Join(words[i:], " "))
	}
	out := make([]string, 0, len(terms))
	for _, t := range terms {
		m := t + "\x00" + u.Name
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// User returns the directory entry of name, or an error wrapping
// ErrUnknownUser.
func (s *Store) User(ctx context.Context, name string) (User, error) {
	name, err := canonUser(name)
	if err != nil {
		return User{}, err
	}
	u, found, err := s.lookupUser(ctx, name)
	if err != nil {
		return User{}, err
	}
	if !found {
		return User{}, fmt.Errorf("%w: %s", ErrUnknownUser, name)
	}
	return u, nil
}

// lookupUser reads the directory entry of a canonical name.
func (s *Store) lookupUser(ctx context.Context, name string) (User, bool, error) {
	m, err := s.rdb.HGetAll(ctx, s.userKey(name)).Result()
	if err != nil {
		return User{}, false, fmt.Errorf("loading user %s: %w", name, err)
	}
	if len(m) == 0 {
		return User{}, false, nil
	}
	return decodeUser(name, m), true, nil
}

func decodeUser(name string, m map[string]string) User {
	u := User{
		Name:        name,
		DisplayName: m["display_name"],
		Email:       m["email"],
		Org:         m["org"],
		Admin:       m["admin"] == "1",
	}
	if t, err := time.Parse(time.RFC3339Nano, m["last_login"]); err == nil {
		u.LastLogin = t
	}
	return u
}

// SearchUsers returns up to limit users of org whose username, display
// name or a later word of it starts with prefix, ignoring case, in the
// order of the matching text. An empty prefix lists the organization.
// limit zero or less means 10; more than 100 means 100.
func (s *Store) SearchUsers(ctx context.Context, org, prefix string, limit int) ([]User, error) {
	if limit <= 0 {
		limit = 10
	}
	limit = min(limit, maxSearch)
	if err := checkField("organization", org); err != nil {
		return nil, err
	}
	if err := checkField("search text", prefix); err != nil {
		return nil, err
	}
	prefix = strings.Join(strings.Fields(strings.ToLower(prefix)), " ")
	lo, hi := "-", "+"
	if prefix != "" {
		// no UTF-8 text contains the byte 0xff
		lo, hi = "["+prefix, "["+prefix+"\xff"
	}

	// walk the index in pages; each hit is checked against the directory,
	// which may have moved on since it was indexed
	var found []User
	seen := map[string]bool{}
	page := int64(3 * limit)
	for offset := int64(0); len(found) < limit; offset += page {
		members, err := s.rdb.ZRangeByLex(ctx, s.userIndexKey(org), &redis.ZRangeBy{
			Min: lo, Max: hi, Offset: offset, Count: page,
		}).Result()
		if err != nil {
			return nil, fmt.Errorf("searching users: %w", err)
		}

		var names []string
		for _, m := range members {
			_, name, _ := strings.Cut(m, "\x00")
			if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
		users, err := s.lookupUsers(ctx, names)
		if err != nil {
			return nil, err
		}
		for _, u := range users {
			if u.Org == org && matches(u, prefix) && len(found) < limit {
				found = append(found, u)
			}
		}
		if int64(len(members)) < page {
			break
		}
	}
	return found, nil
}

// matches reports whether one of u's search terms starts with prefix.
func matches(u User, prefix string) bool {
	for _, t := range searchTerms(u) {
		if strings.HasPrefix(t, prefix) {
			return true
		}
	}
	return false
}

// lookupUsers reads the directory entries of names in one round trip,
// leaving out invalid or missing ones.
func (s *Store) lookupUsers(ctx context.Context, names []string) ([]User, error) {
	var valid []string
	for _, n := range names {
		if c, err := canonUser(n); err == nil && c == n {
			valid = append(valid, n)
		}
	}
	if len(valid) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(valid))
	for i, n := range valid {
		cmds[i] = pipe.HGetAll(ctx, s.userKey(n))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("loading users: %w", err)
	}
	users := make([]User, 0, len(valid))
	for i, c := range cmds {
		if m := c.Val(); len(m) > 0 {
			users = append(users, decodeUser(valid[i], m))
		}
	}
	return users, nil
}
