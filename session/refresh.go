package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/studio-proxy/studio-proxy/authz"
	"golang.org/x/oauth2"
)

// refreshLockTTL bounds how long one refresh may hold the lock.
const refreshLockTTL = 30 * time.Second

// refreshRetry is how long to wait after a refresh that could not reach
// the provider.
const refreshRetry = time.Minute

// refreshDue reports whether the session's access token should be
// refreshed now.
func (m *Manager) refreshDue(e entry, now time.Time) bool {
	if !e.rec.CanRefresh || e.rec.AccessExpiry.IsZero() || now.Before(m.retries.get(e.sess.ID)) {
		return false
	}
	return !now.Before(e.rec.AccessExpiry.Add(-m.cfg.RefreshBefore))
}

var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// refresh renews the session's tokens with its refresh token. One request
// at a time does it, across replicas; the others carry on with the
// session as it is. A provider that refuses the refresh token ends the
// session; one that cannot be reached is asked again a minute later, and
// ends the session only once the access token has expired.
func (m *Manager) refresh(
	ctx context.Context,
	id []byte,
	hash string,
	e entry,
	now time.Time,
) (entry, error) {
	lock := m.keys.refreshLock(hash)
	token := randomText()
	ok, err := m.rdb.SetNX(ctx, lock, token, refreshLockTTL).Result()
	if err != nil {
		return e, fmt.Errorf("%w: locking refresh: %w", ErrUnavailable, err)
	}
	if !ok {
		return e, nil
	}
	defer unlockScript.Run(context.WithoutCancel(ctx), m.rdb, []string{lock}, token)

	// another replica may have refreshed already: its tokens are the
	// current ones (a rotated refresh token works once)
	st, err := m.load(ctx, hash)
	if errors.Is(err, errNoSession) {
		m.cache.drop(hash)
		return e, fmt.Errorf("%w: session ended", ErrSignedOut)
	}
	if err != nil {
		return e, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	e.rec = st.rec
	if !m.refreshDue(e, now) {
		return e, nil
	}

	user := e.sess.User.Name
	toks, err := unseal(id, hash, st.rec.Sealed)
	if err != nil {
		return e, m.endAfterRefresh(ctx, hash, user, err)
	}
	src := m.oauth.TokenSource(m.providerCtx(ctx), &oauth2.Token{RefreshToken: toks.Refresh})
	tok, err := src.Token()
	if err != nil {
		var refused *oauth2.RetrieveError
		if errors.As(err, &refused) || !now.Before(st.rec.AccessExpiry) {
			return e, m.endAfterRefresh(ctx, hash, user, err)
		}
		m.log.Warn("refreshing tokens; will retry", "user", user, "session", hash, "err", err)
		m.retries.set(hash, now.Add(refreshRetry))
		return e, nil
	}

	// a new ID token must be about the same person; its claims are
	// checked again, so that leaving the organization at the provider
	// ends the session here
	rec := st.rec
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		u, err := m.checkRefreshedID(ctx, raw, rec)
		if err != nil {
			return e, m.endAfterRefresh(ctx, hash, user, err)
		}
		toks.ID = raw
		rec.User = u
		e.sess.User = u
	}
	toks.Access = tok.AccessToken
	if tok.RefreshToken != "" {
		toks.Refresh = tok.RefreshToken
	}
	sealed, err := seal(id, hash, toks)
	if err != nil {
		return e, fmt.Errorf("sealing tokens: %w", err)
	}
	rec.Sealed = sealed
	rec.AccessExpiry = accessExpiry(tok, now)
	rec.CanRefresh = toks.Refresh != ""

	ok, err = m.update(ctx, hash, rec)
	if err != nil {
		return e, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if !ok {
		m.cache.drop(hash)
		return e, fmt.Errorf("%w: session ended", ErrSignedOut)
	}
	m.log.Debug("tokens refreshed", "user", user, "session", hash)
	e.rec = rec
	m.retries.set(hash, time.Time{})
	return e, nil
}

// checkRefreshedID verifies the ID token of a refresh response and its
// claims, and returns the user they describe now. A changed organization
// or admin flag is recorded in the directory, which tells every replica.
func (m *Manager) checkRefreshedID(
	ctx context.Context,
	raw string,
	rec record,
) (authz.User, error) {
	idt, err := m.verifier.Verify(m.providerCtx(ctx), raw)
	if err != nil {
		return authz.User{}, err
	}
	if idt.Subject != rec.Subject {
		return authz.User{}, errors.New("refreshed id token is about another subject")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return authz.User{}, fmt.Errorf("decoding id token claims: %w", err)
	}
	u, err := m.claims.user(claims)
	if err != nil {
		return authz.User{}, err
	}
	if u.Name != rec.User.Name {
		return authz.User{}, errors.New("refreshed id token names another user")
	}
	u.LastLogin = rec.User.LastLogin
	if m.cfg.Directory != nil && (u.Org != rec.User.Org || u.Admin != rec.User.Admin) {
		if err := m.cfg.Directory.PutUser(ctx, u); err != nil {
			m.log.Warn("recording user after refresh", "user", u.Name, "err", err)
		}
	}
	return u, nil
}

// endAfterRefresh ends a session whose tokens could not be refreshed.
func (m *Manager) endAfterRefresh(ctx context.Context, hash, user string, cause error) error {
	m.log.Info("refresh failed; ending session", "user", user, "session", hash, "err", cause)
	if err := m.remove(context.WithoutCancel(ctx), hash, user, "refresh failed"); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return fmt.Errorf("%w: refresh failed", ErrSignedOut)
}

// retryTimes remembers, per session, when to try a refresh again after the
// provider could not be reached. It is bounded: when full it forgets
// everything, which costs at most one early retry per session.
type retryTimes struct {
	mu  sync.Mutex
	max int
	at  map[string]time.Time
}

func (r *retryTimes) get(hash string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.at[hash]
}

// set records t for hash; the zero time forgets hash.
func (r *retryTimes) set(hash string, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t.IsZero() {
		delete(r.at, hash)
		return
	}
	if r.at == nil || len(r.at) >= r.max {
		r.at = map[string]time.Time{}
	}
	r.at[hash] = t
}
