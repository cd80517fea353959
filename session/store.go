package session

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/internal/events"
	"github.com/studio-proxy/studio-proxy/internal/ident"
)

// idLen is the number of random bytes in a session id; its cookie form is
// the unpadded base64url text of them.
const idLen = 32

var idTextLen = base64.RawURLEncoding.EncodedLen(idLen)

// keyMargin keeps Redis keys a little longer than the session is valid,
// so that Redis never drops a session the clock check still accepts.
const keyMargin = time.Minute

// keys names the Redis keys under a prefix.
type keys struct{ prefix string }

// session holds one session: a hash with its record ("r") and when it was
// last seen in use ("seen", Unix milliseconds).
func (k keys) session(hash string) string { return k.prefix + "session:" + hash }

// sessionsOf is the best-effort index of a user's sessions: a sorted set
// of session hashes scored by their absolute expiry.
func (k keys) sessionsOf(user string) string { return k.prefix + "sessions-of:" + user }

// login holds the state of one sign-in in progress, keyed by the hash of
// its OAuth state parameter.
func (k keys) login(hash string) string { return k.prefix + "login:" + hash }

// refreshLock is held by the one request refreshing a session's tokens.
func (k keys) refreshLock(hash string) string { return k.prefix + "session-refresh:" + hash }

// newID returns a fresh session id and its cookie text.
func newID() ([]byte, string) {
	id := make([]byte, idLen)
	rand.Read(id) // never fails
	return id, base64.RawURLEncoding.EncodeToString(id)
}

// parseID returns the id a cookie value names, or false when the value is
// not a well-formed id.
func parseID(text string) ([]byte, bool) {
	if len(text) != idTextLen {
		return nil, false
	}
	id, err := base64.RawURLEncoding.DecodeString(text)
	if err != nil || len(id) != idLen {
		return nil, false
	}
	return id, true
}

// hashID is the name of a session in Redis, in events and in logs. It
// cannot be turned back into the id, so it is no use as a cookie.
func hashID(id []byte) string {
	sum := sha256.Sum256(id)
	return hex.EncodeToString(sum[:])
}

// hashText hashes a random token given as text (login states, bindings).
func hashText(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// randomText returns 32 random bytes as base64url text.
func randomText() string {
	_, text := newID()
	return text
}

// tokens are what the provider gave: sealed in the record with a key
// derived from the session id, which only the cookie holds.
type tokens struct {
	Access  string `json:"access,omitempty"`
	Refresh string `json:"refresh,omitempty"`
	ID      string `json:"id,omitempty"`
}

func sealKey(id []byte) []byte {
	k, err := hkdf.Key(sha256.New, id, nil, "studio-proxy session tokens v1", 32)
	if err != nil {
		panic(err) // cannot happen for a 32-byte key
	}
	return k
}

func seal(id []byte, hash string, t tokens) (string, error) {
	plain, err := json.Marshal(t)
	if err != nil {
		return "", err
	}
	block, err := aes.NewCipher(sealKey(id))
	if err != nil {
		return "", err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, gcm.NonceSize())
	rand.Read(nonce)
	out := gcm.Seal(nonce, nonce, plain, []byte(hash))
	return base64.RawURLEncoding.EncodeToString(out), nil
}

func unseal(id []byte, hash, sealed string) (tokens, error) {
	var t tokens
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil {
		return t, fmt.Errorf("decoding sealed tokens: %w", err)
	}
	block, err := aes.NewCipher(sealKey(id))
	if err != nil {
		return t, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return t, err
	}
	if len(raw) < gcm.NonceSize() {
		return t, errors.New("sealed tokens too short")
	}
	plain, err := gcm.Open(nil, raw[:gcm.NonceSize()], raw[gcm.NonceSize():], []byte(hash))
	if err != nil {
		return t, fmt.Errorf("opening sealed tokens: %w", err)
	}
	if err := json.Unmarshal(plain, &t); err != nil {
		return t, fmt.Errorf("decoding tokens: %w", err)
	}
	return t, nil
}

// record is a session as kept in Redis.
type record struct {
	User    authz.User `json:"user"`
	Subject string     `json:"sub"`
	Created time.Time  `json:"created"`
	Expires time.Time  `json:"expires"`
	// AccessExpiry is when the access token expires; zero when the
	// provider did not say.
	AccessExpiry time.Time `json:"access_expiry,omitzero"`
	// CanRefresh is true when the sealed tokens hold a refresh token.
	CanRefresh bool `json:"can_refresh,omitempty"`
	// Sealed holds the tokens, encrypted (see seal).
	Sealed string `json:"sealed"`
}

// stored is a record with the time it was last seen in use.
type stored struct {
	rec  record
	seen time.Time
}

var errNoSession = errors.New("no such session")

// keyTTL is how long Redis keeps a session last seen at now.
func (m *Manager) keyTTL(rec record, now time.Time) time.Duration {
	return min(rec.Expires.Sub(now), m.cfg.IdleTimeout) + keyMargin
}

// create stores a new session and adds it to its user's index.
func (m *Manager) create(ctx context.Context, hash string, rec record, now time.Time) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encoding session: %w", err)
	}
	key := m.keys.session(hash)
	idx := m.keys.sessionsOf(rec.User.Name)
	_, err = m.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "r", b, "seen", now.UnixMilli())
		p.PExpire(ctx, key, m.keyTTL(rec, now))
		p.ZAdd(ctx, idx, redis.Z{Score: float64(rec.Expires.UnixMilli()), Member: hash})
		p.ZRemRangeByScore(ctx, idx, "-inf", "("+strconv.FormatInt(now.UnixMilli(), 10))
		p.PExpire(ctx, idx, m.cfg.Lifetime+keyMargin)
		return nil
	})
	if err != nil {
		return fmt.Errorf("storing session: %w", err)
	}
	return nil
}

// load reads a session; errNoSession when there is none.
func (m *Manager) load(ctx context.Context, hash string) (stored, error) {
	vals, err := m.rdb.HGetAll(ctx, m.keys.session(hash)).Result()
	if err != nil {
		return stored{}, fmt.Errorf("loading session: %w", err)
	}
	raw, ok := vals["r"]
	if !ok {
		return stored{}, errNoSession
	}
	var st stored
	if err := json.Unmarshal([]byte(raw), &st.rec); err != nil {
		return stored{}, fmt.Errorf("decoding session: %w", err)
	}
	if ms, err := strconv.ParseInt(vals["seen"], 10, 64); err == nil {
		st.seen = time.UnixMilli(ms)
	}
	return st, nil
}

// touchScript records that a session was seen in use and pushes back its
// expiry, without bringing back a session that was deleted meanwhile.
var touchScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local old = tonumber(redis.call('HGET', KEYS[1], 'seen') or '0') or 0
if tonumber(ARGV[1]) > old then redis.call('HSET', KEYS[1], 'seen', ARGV[1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// touch reports whether the session still exists.
func (m *Manager) touch(ctx context.Context, hash string, rec record, now time.Time) (bool, error) {
	n, err := touchScript.Run(ctx, m.rdb, []string{m.keys.session(hash)},
		now.UnixMilli(), m.keyTTL(rec, now).Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("touching session: %w", err)
	}
	return n == 1, nil
}

// updateScript replaces a session's record if the session still exists.
var updateScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'r', ARGV[1])
return 1
`)

func (m *Manager) update(ctx context.Context, hash string, rec record) (bool, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return false, fmt.Errorf("encoding session: %w", err)
	}
	n, err := updateScript.Run(ctx, m.rdb, []string{m.keys.session(hash)}, b).Int()
	if err != nil {
		return false, fmt.Errorf("updating session: %w", err)
	}
	return n == 1, nil
}

// remove deletes a session and its index entry, and tells every replica.
func (m *Manager) remove(ctx context.Context, hash, user, reason string) error {
	m.cache.drop(hash)
	m.retries.set(hash, time.Time{})
	_, err := m.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, m.keys.session(hash))
		if user != "" {
			p.ZRem(ctx, m.keys.sessionsOf(user), hash)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("deleting session: %w", err)
	}
	m.log.Info("session ended", "user", user, "session", hash, "reason", reason)
	ev := events.Event{Kind: events.Logout, Session: hash, User: user, At: m.now()}
	if err := events.Publish(ctx, m.rdb, m.channel, ev); err != nil {
		m.log.Warn("publishing logout", "user", user, "err", err)
	}
	return nil
}

// EndSessions deletes every session of user found in the index under the
// Redis key prefix keyPrefix (empty means DefaultKeyPrefix), and
// publishes events.SessionsEnded so that every replica drops them and
// closes their connections. actor is who asked; empty for the system. It
// returns how many sessions it deleted.
//
// The index is best-effort: a sign-in that completes while EndSessions
// runs may keep its session.
func EndSessions(
	ctx context.Context,
	rdb redis.UniversalClient,
	keyPrefix, user, actor string,
) (int, error) {
	if keyPrefix == "" {
		keyPrefix = DefaultKeyPrefix
	}
	name, err := ident.Username(user)
	if err != nil {
		return 0, err
	}
	k := keys{prefix: keyPrefix}

	hashes, err := rdb.ZRange(ctx, k.sessionsOf(name), 0, -1).Result()
	if err != nil {
		return 0, fmt.Errorf("reading sessions of %s: %w", name, err)
	}

	// one DEL per key: the sessions live in different Cluster slots
	var dels []*redis.IntCmd
	_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, h := range hashes {
			dels = append(dels, p.Del(ctx, k.session(h)))
		}
		p.Del(ctx, k.sessionsOf(name))
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("deleting sessions of %s: %w", name, err)
	}
	n := 0
	for _, d := range dels {
		n += int(d.Val())
	}

	ev := events.Event{Kind: events.SessionsEnded, User: name, Actor: actor}
	if err := events.Publish(ctx, rdb, events.Channel(keyPrefix), ev); err != nil {
		return n, err
	}
	return n, nil
}
