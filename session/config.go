package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/internal/events"
)

// Defaults applied to a zero Config field.
const (
	DefaultPathPrefix    = "/studio/"
	DefaultKeyPrefix     = "studio:"
	DefaultUsernameClaim = "preferred_username"
	DefaultOrgClaim      = "org"
	DefaultGroupsClaim   = "groups"
	DefaultLifetime      = 12 * time.Hour
	DefaultIdleTimeout   = time.Hour
	DefaultRefreshBefore = time.Minute
	DefaultLoginTimeout  = 10 * time.Minute
	DefaultCacheSize     = 10000
	DefaultLoginRate     = 30
)

// touchInterval is how often a session in use has its idle expiry pushed
// back in Redis: at most once a minute per session and replica, so that
// steady traffic costs no round trip.
const touchInterval = time.Minute

// Directory is the user directory that sign-in records people in and that
// sessions read their current profile from (admin flag, organization).
// authz.Store implements it.
type Directory interface {
	// PutUser records the user as seen at sign-in.
	PutUser(ctx context.Context, u authz.User) error
	// User returns the user's current profile, or an error wrapping
	// authz.ErrUnknownUser.
	User(ctx context.Context, name string) (authz.User, error)
}

var _ Directory = (*authz.Store)(nil)

// Config configures a Manager. Issuer, ClientID and ExternalURL are
// required; every other zero field has a working default.
type Config struct {
	// Issuer is the URL of the OpenID provider, as in its discovery
	// document.
	Issuer string
	// ClientID and ClientSecret are this proxy's client registration at
	// the provider.
	ClientID     string
	ClientSecret string
	// Scopes are requested at sign-in; nil means openid, profile and
	// email. Add offline_access (or what the provider wants) to receive a
	// refresh token.
	Scopes []string
	// SigningAlgs are the ID token signature algorithms accepted; nil
	// means RS256 and ES256. Anything else, "none" and HMAC included, is
	// refused.
	SigningAlgs []string

	// ExternalURL is the scheme and host people reach the proxy at, for
	// example "https://studio.example.org". https makes the cookies
	// Secure and "__Host-" prefixed. The provider must accept
	// ExternalURL + PathPrefix + "callback" as a redirect URI and
	// ExternalURL + PathPrefix + "signed-out" after logout.
	ExternalURL string
	// PathPrefix is the proxy's reserved path prefix; empty means
	// "/studio/". It must start and end with "/".
	PathPrefix string
	// KeyPrefix starts every Redis key and the events channel; empty
	// means "studio:".
	KeyPrefix string

	// UsernameClaim names the claim that holds the username; empty means
	// "preferred_username". Its value must pass ident.Username.
	UsernameClaim string
	// OrgClaim names the claim that holds the organization when
	// EmailDomains is empty; empty means "org".
	OrgClaim string
	// Orgs are the organizations that may sign in; empty allows any
	// organization the claim names, but the claim must be there.
	Orgs []string
	// EmailDomains, when set, make the organization the domain of the
	// user's email address, which must be one of these and verified.
	EmailDomains []string
	// AllowUnverifiedEmail accepts, with EmailDomains, an email the
	// provider does not mark as verified. Off by default: anyone who can
	// put an unverified address of your domain in their profile would
	// otherwise join your organization.
	AllowUnverifiedEmail bool
	// GroupsClaim names the claim that lists the user's groups; empty
	// means "groups".
	GroupsClaim string
	// AdminGroup is the group whose members are admins of their
	// organization; empty means nobody becomes admin at sign-in.
	AdminGroup string

	// Lifetime is the absolute lifetime of a session; zero means 12 hours.
	Lifetime time.Duration
	// IdleTimeout ends a session unused this long; zero means one hour.
	IdleTimeout time.Duration
	// RefreshBefore is how long before the access token expires it is
	// refreshed; zero means one minute.
	RefreshBefore time.Duration
	// LoginTimeout is how long a started sign-in may take; zero means ten
	// minutes.
	LoginTimeout time.Duration

	// LoginRate is how many sign-ins one client may start per minute in
	// each replica; zero means 30, a negative number no limit. More get
	// 429: each started sign-in holds a login state in Redis for
	// LoginTimeout.
	LoginRate int
	// ClientIP tells the address of the person behind a request, for
	// LoginRate; nil means the peer's address. Behind a load balancer, give
	// one that believes only trusted proxies (proxy.ClientIP).
	ClientIP func(r *http.Request) string

	// Directory records signed-in users and gives their current profile;
	// nil records nothing and keeps the profile seen at sign-in.
	Directory Directory
	// OnSignIn, when set, runs after a successful sign-in and before the
	// session is created, for example to create the user's default
	// server. An error refuses the sign-in.
	OnSignIn func(ctx context.Context, u authz.User) error
	// Events invalidates the session cache. Nil disables the cache: every
	// request then reads Redis.
	Events *events.Subscriber
	// CacheSize bounds the sessions cached in this replica; zero means
	// 10000.
	CacheSize int

	// HTTPClient talks to the provider; nil means a client with a ten
	// second timeout.
	HTTPClient *http.Client
	// Log receives the package's logs; nil means slog.Default().
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// withDefaults checks cfg and fills in its zero fields.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Issuer == "" {
		return cfg, errors.New("issuer is required")
	}
	if cfg.ClientID == "" {
		return cfg, errors.New("client id is required")
	}
	ext, err := url.Parse(cfg.ExternalURL)
	if err != nil || (ext.Scheme != "http" && ext.Scheme != "https") || ext.Host == "" {
		return cfg, fmt.Errorf("external URL %q is not an http(s) URL", cfg.ExternalURL)
	}
	if (ext.Path != "" && ext.Path != "/") || ext.RawQuery != "" || ext.User != nil {
		return cfg, fmt.Errorf("external URL %q must be a scheme and host only", cfg.ExternalURL)
	}
	cfg.ExternalURL = ext.Scheme + "://" + ext.Host

	if cfg.PathPrefix == "" {
		cfg.PathPrefix = DefaultPathPrefix
	}
	if !strings.HasPrefix(cfg.PathPrefix, "/") || !strings.HasSuffix(cfg.PathPrefix, "/") ||
		!isLocalPath(cfg.PathPrefix) {
		return cfg, fmt.Errorf("path prefix %q must be a plain path starting and ending with /",
			cfg.PathPrefix)
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultKeyPrefix
	}
	if cfg.Scopes == nil {
		cfg.Scopes = []string{"openid", "profile", "email"}
	}
	if cfg.SigningAlgs == nil {
		cfg.SigningAlgs = []string{"RS256", "ES256"}
	}
	for _, alg := range cfg.SigningAlgs {
		if a := strings.ToUpper(alg); a == "NONE" || strings.HasPrefix(a, "HS") {
			return cfg, fmt.Errorf("signing algorithm %q is not accepted", alg)
		}
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = DefaultUsernameClaim
	}
	if cfg.OrgClaim == "" {
		cfg.OrgClaim = DefaultOrgClaim
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = DefaultGroupsClaim
	}

	if cfg.Lifetime <= 0 {
		cfg.Lifetime = DefaultLifetime
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.RefreshBefore <= 0 {
		cfg.RefreshBefore = DefaultRefreshBefore
	}
	if cfg.LoginTimeout <= 0 {
		cfg.LoginTimeout = DefaultLoginTimeout
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.LoginRate == 0 {
		cfg.LoginRate = DefaultLoginRate
	}
	if cfg.ClientIP == nil {
		cfg.ClientIP = peerIP
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg, nil
}
