package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/redis/go-redis/v9"
	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/internal/events"
	"golang.org/x/oauth2"
)

// Errors that callers branch on.
var (
	// ErrSignedOut: the request carries no session, or one that was
	// tampered with, expired, ended or never existed.
	ErrSignedOut = errors.New("signed out")
	// ErrUnavailable: whether the request is signed in cannot be told
	// right now (Redis or the user directory cannot be reached). Answer
	// 503; never treat it as signed in.
	ErrUnavailable = errors.New("session store unavailable")
)

// Session is a signed-in person's login session.
type Session struct {
	// ID names the session in events (events.Event.Session) and logs: a
	// hash of the cookie's id, useless as a cookie.
	ID string
	// User is the person, with their current profile.
	User authz.User
	// Created is when they signed in.
	Created time.Time
	// Expires is when the session ends at the latest, used or not.
	Expires time.Time
}

// Manager signs people in and keeps their sessions. It is safe for
// concurrent use.
type Manager struct {
	cfg     Config
	rdb     redis.UniversalClient
	keys    keys
	channel string
	log     *slog.Logger
	now     func() time.Time
	cache   *cache
	retries retryTimes
	logins  *loginLimiter
	claims  claimRules

	oauth      oauth2.Config
	verifier   *oidc.IDTokenVerifier
	endSession string

	sessionCookie string
	loginCookie   string
	secure        bool
}

// New returns a Manager for cfg. It fetches the provider's discovery
// document; retrying when the provider is not up yet is the caller's
// concern.
func New(ctx context.Context, rdb redis.UniversalClient, cfg Config) (*Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("session config: %w", err)
	}
	m := &Manager{
		cfg:     cfg,
		rdb:     rdb,
		keys:    keys{prefix: cfg.KeyPrefix},
		channel: events.Channel(cfg.KeyPrefix),
		log:     cfg.Log,
		now:     cfg.Now,
		cache:   newCache(cfg.CacheSize),
		retries: retryTimes{max: cfg.CacheSize},
		logins:  newLoginLimiter(cfg.LoginRate, cfg.Now),
		claims:  newClaimRules(cfg),
		secure:  strings.HasPrefix(cfg.ExternalURL, "https://"),
	}
	m.sessionCookie, m.loginCookie = "studio_session", "studio_login"
	if m.secure {
		m.sessionCookie, m.loginCookie = "__Host-studio_session", "__Host-studio_login"
	}

	provider, err := oidc.NewProvider(m.providerCtx(ctx), cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discovering OpenID provider %s: %w", cfg.Issuer, err)
	}
	var meta struct {
		EndSession string   `json:"end_session_endpoint"`
		Methods    []string `json:"code_challenge_methods_supported"`
	}
	if err := provider.Claims(&meta); err != nil {
		return nil, fmt.Errorf("reading discovery document of %s: %w", cfg.Issuer, err)
	}
	if len(meta.Methods) > 0 && !containsFold(meta.Methods, "S256") {
		m.log.Warn("provider does not list PKCE S256; sending it anyway", "issuer", cfg.Issuer)
	}
	m.endSession = meta.EndSession
	m.oauth = oauth2.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		Endpoint:     provider.Endpoint(),
		RedirectURL:  cfg.ExternalURL + cfg.PathPrefix + "callback",
		Scopes:       cfg.Scopes,
	}
	m.verifier = provider.Verifier(&oidc.Config{
		ClientID:             cfg.ClientID,
		SupportedSigningAlgs: cfg.SigningAlgs,
		Now:                  cfg.Now,
	})

	if sub := cfg.Events; sub != nil {
		sub.OnEvent(m.onEvent)
		sub.OnState(func(bool) { m.cache.flush() })
	}
	return m, nil
}

// providerCtx carries the HTTP client for talking to the provider.
func (m *Manager) providerCtx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, m.cfg.HTTPClient)
}

func (m *Manager) onEvent(ev events.Event) {
	switch ev.Kind {
	case events.Logout:
		if ev.Session != "" {
			m.cache.drop(ev.Session)
		} else if ev.User != "" {
			m.cache.dropUser(ev.User)
		}
	case events.SessionsEnded, events.UserChanged:
		m.cache.dropUser(ev.User)
	}
}

// CookieName returns the name of the session cookie. The proxy must not
// forward this cookie to backends.
func (m *Manager) CookieName() string { return m.sessionCookie }

// LoginURL returns the path that signs a person in and then sends them to
// rd (a path on this proxy; anything else sends them to the prefix).
func (m *Manager) LoginURL(rd string) string {
	return m.cfg.PathPrefix + "login?rd=" + queryEscape(LocalPath(rd, m.cfg.PathPrefix))
}

// Authenticate returns the session of the request. It returns an error
// wrapping ErrSignedOut when the request has no valid session, and one
// wrapping ErrUnavailable when that cannot be told.
//
// A session cached in this replica costs no Redis round trip, except for
// one a minute that pushes back its idle expiry and checks that it still
// exists.
func (m *Manager) Authenticate(r *http.Request) (*Session, error) {
	c, err := r.Cookie(m.sessionCookie)
	if err != nil {
		return nil, ErrSignedOut
	}
	id, ok := parseID(c.Value)
	if !ok {
		return nil, fmt.Errorf("%w: malformed session cookie", ErrSignedOut)
	}
	return m.authenticate(r.Context(), id)
}

func (m *Manager) authenticate(ctx context.Context, id []byte) (*Session, error) {
	hash := hashID(id)
	now := m.now()

	// the cache is trusted only while the events subscription is up:
	// otherwise a logout elsewhere could have been missed
	sub := m.cfg.Events
	trusted := sub != nil && sub.Subscribed()
	e, hit := entry{}, false
	if trusted {
		e, hit = m.cache.get(hash)
	}
	if !hit || m.expired(e, now) {
		gen := m.cache.generation()
		loaded, err := m.loadEntry(ctx, hash, now)
		if err != nil {
			return nil, err
		}
		if hit {
			loaded.seen = later(loaded.seen, e.seen)
		}
		e = loaded
		if m.expired(e, now) {
			m.remove(context.WithoutCancel(ctx), hash, e.sess.User.Name, "expired")
			return nil, fmt.Errorf("%w: session expired", ErrSignedOut)
		}
		if sub != nil && sub.Subscribed() {
			m.cache.put(hash, e, gen)
		}
	}

	// push back the idle expiry, at most once a minute
	e.seen = now
	if now.Sub(e.touched) >= touchInterval {
		ok, err := m.touch(ctx, hash, e.rec, now)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if !ok {
			m.cache.drop(hash)
			return nil, fmt.Errorf("%w: session ended", ErrSignedOut)
		}
		e.touched = now
	}

	if m.refreshDue(e, now) {
		var err error
		e, err = m.refresh(ctx, id, hash, e, now)
		if err != nil {
			return nil, err
		}
	}
	m.cache.set(hash, e)

	s := e.sess
	return &s, nil
}

// expired reports whether the session is past its lifetime or has been
// idle too long, as far as e knows.
func (m *Manager) expired(e entry, now time.Time) bool {
	return !now.Before(e.rec.Expires) || now.Sub(e.seen) >= m.cfg.IdleTimeout
}

// loadEntry reads a session from Redis and the user's current profile
// from the directory.
func (m *Manager) loadEntry(ctx context.Context, hash string, now time.Time) (entry, error) {
	st, err := m.load(ctx, hash)
	if errors.Is(err, errNoSession) {
		return entry{}, fmt.Errorf("%w: no such session", ErrSignedOut)
	}
	if err != nil {
		return entry{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}

	user := st.rec.User
	if m.cfg.Directory != nil {
		u, err := m.cfg.Directory.User(ctx, user.Name)
		if errors.Is(err, authz.ErrUnknownUser) {
			return entry{}, fmt.Errorf("%w: user %s is not in the directory", ErrSignedOut, user.Name)
		}
		if err != nil {
			return entry{}, fmt.Errorf("%w: reading user %s: %w", ErrUnavailable, user.Name, err)
		}
		if u.Name == user.Name {
			user = u
		}
	}

	return entry{
		sess: Session{
			ID:      hash,
			User:    user,
			Created: st.rec.Created,
			Expires: st.rec.Expires,
		},
		rec:     st.rec,
		seen:    st.seen,
		touched: st.seen,
	}, nil
}

// EndSessions ends every session of user (see the package function
// EndSessions) and drops them from this replica's cache at once.
func (m *Manager) EndSessions(ctx context.Context, user, actor string) (int, error) {
	n, err := EndSessions(ctx, m.rdb, m.cfg.KeyPrefix, user, actor)
	if name, e := canonicalUser(user); e == nil {
		m.cache.dropUser(name)
	}
	return n, err
}

type ctxKey struct{}

// NewContext returns ctx carrying s.
func NewContext(ctx context.Context, s *Session) context.Context {
	return context.WithValue(ctx, ctxKey{}, s)
}

// FromContext returns the session that Require put in ctx, or nil.
func FromContext(ctx context.Context) *Session {
	s, _ := ctx.Value(ctxKey{}).(*Session)
	return s
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
