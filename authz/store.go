package authz

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/studio-proxy/studio-proxy/internal/events"
	"github.com/studio-proxy/studio-proxy/internal/ident"
)

// DefaultPrefix is the key prefix used when Config.Prefix is empty.
const DefaultPrefix = "studio:"

// DefaultAuditMaxLen is the approximate length the audit stream is trimmed
// to when Config.AuditMaxLen is zero.
const DefaultAuditMaxLen = 10000

// Config configures a Store.
type Config struct {
	// Prefix starts every key and the events channel. Empty means
	// DefaultPrefix. It must not contain braces: the share table's keys
	// rely on their one hash tag, {shares}.
	Prefix string
	// Owners tells the owner of each server. Required.
	Owners ServerOwners
	// Log receives warnings; nil means slog.Default().
	Log *slog.Logger
	// Now is the clock; nil means time.Now. Times are kept to the
	// millisecond.
	Now func() time.Time
	// AuditMaxLen bounds the audit stream (trimmed approximately, as
	// XADD MAXLEN ~ does). Zero means DefaultAuditMaxLen; negative is an
	// error.
	AuditMaxLen int64
}

// Store is the share table and the user directory in Redis. It is safe for
// concurrent use, also by several processes sharing one Redis.
type Store struct {
	rdb     redis.UniversalClient
	prefix  string
	owners  ServerOwners
	log     *slog.Logger
	now     func() time.Time
	maxLen  int64
	channel string
}

// New returns a Store on rdb. It does not connect yet.
func New(rdb redis.UniversalClient, cfg Config) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("authz: redis client is nil")
	}
	if cfg.Owners == nil {
		return nil, errors.New("authz: Config.Owners is required")
	}
	if cfg.AuditMaxLen < 0 {
		return nil, fmt.Errorf("authz: Config.AuditMaxLen is %d, want zero or more", cfg.AuditMaxLen)
	}
	s := &Store{
		rdb:    rdb,
		prefix: cfg.Prefix,
		owners: cfg.Owners,
		log:    cfg.Log,
		now:    cfg.Now,
		maxLen: cfg.AuditMaxLen,
	}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if strings.ContainsAny(s.prefix, "{}") {
		return nil, fmt.Errorf("authz: prefix %q contains a brace", s.prefix)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxLen == 0 {
		s.maxLen = DefaultAuditMaxLen
	}
	s.channel = events.Channel(s.prefix)
	return s, nil
}

// The share table's keys share the hash tag {shares}, so that one script
// may change a grant, its reverse index, the expiry index and the audit
// stream at once, also on Redis Cluster. Server ids and usernames in keys
// are canonical (package ident): they contain no braces or colons.

func (s *Store) grantsKey(server string) string {
	return s.prefix + "{shares}:grants:" + server
}

func (s *Store) sharedWithKey(user string) string {
	return s.prefix + "{shares}:shared-with:" + user
}

func (s *Store) auditKey() string { return s.prefix + "{shares}:audit" }

func (s *Store) expiriesKey() string { return s.prefix + "{shares}:expiries" }

// The user directory keeps one hash per user, and per organization a
// sorted set of search terms. Organization names come from the identity
// provider, so they are encoded, never used raw.

func (s *Store) userKey(name string) string { return s.prefix + "user:" + name }

func (s *Store) userIndexKey(org string) string {
	return s.prefix + "user-index:" + base64.RawURLEncoding.EncodeToString([]byte(org))
}

// expiryMember names one share in the expiry index. '/' is in neither a
// server id nor a username.
func expiryMember(server, user string) string { return server + "/" + user }

// invalidError is a refused name: it reads as the validation error and
// matches both ErrInvalidInput and ident.ErrInvalid.
type invalidError struct{ err error }

func (e invalidError) Error() string        { return e.err.Error() }
func (e invalidError) Unwrap() error        { return e.err }
func (e invalidError) Is(target error) bool { return target == ErrInvalidInput }

func invalid(err error) error { return invalidError{err} }

func canonUser(name string) (string, error) {
	n, err := ident.Username(name)
	if err != nil {
		return "", invalid(err)
	}
	return n, nil
}

func canonServer(id string) (string, error) {
	n, err := ident.ServerID(id)
	if err != nil {
		return "", invalid(err)
	}
	return n, nil
}

// owner returns the owner of server, or ErrNoServer.
func (s *Store) owner(ctx context.Context, server string) (string, error) {
	owner, err := s.owners.Owner(ctx, server)
	if errors.Is(err, ErrNoServer) {
		owner, err = "", nil
	}
	if err != nil {
		return "", fmt.Errorf("looking up owner of %s: %w", server, err)
	}
	if owner == "" {
		return "", fmt.Errorf("%w: %s", ErrNoServer, server)
	}
	owner, err = canonUser(owner)
	if err != nil {
		return "", fmt.Errorf("owner of %s: %w", server, err)
	}
	return owner, nil
}

// ms is t in Unix milliseconds; zero for the zero time.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMS is the inverse of ms.
func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}
