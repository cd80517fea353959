package devidp

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// ErrNotLoopback is returned for an issuer or listen address that other
// machines could reach, unless Config.AllowNonLoopback is set.
var ErrNotLoopback = errors.New("not a loopback address")

// Config configures a Provider.
type Config struct {
	// Issuer is the provider's URL as clients see it, for example
	// "http://127.0.0.1:5556"; required. It may have a path, under which
	// Handler then serves everything.
	Issuer string

	// ClientID and ClientSecret identify the one confidential client (the
	// proxy); both required.
	ClientID     string
	ClientSecret string
	// RedirectURIs are the client's allowed redirect URIs; at least one.
	RedirectURIs []string
	// PostLogoutRedirectURIs are where the end-session endpoint may send
	// people back to; empty allows none (they land on the provider's own
	// signed-out page).
	PostLogoutRedirectURIs []string

	// Users can sign in; nil means DefaultUsers().
	Users []User
	// Password is every user's password; empty means DefaultPassword.
	Password string

	// AccessTokenLifetime is how long an access token is valid; zero means
	// five minutes. Tests shorten it to exercise refreshing.
	AccessTokenLifetime time.Duration
	// IDTokenLifetime is how long an ID token is valid; zero means one
	// hour.
	IDTokenLifetime time.Duration
	// RefreshTokenLifetime is how long a refresh token is valid; zero
	// means 24 hours. Every refresh rotates the token.
	RefreshTokenLifetime time.Duration

	// AllowNonLoopback lets the issuer name a host other than localhost or
	// a loopback IP. Off, New refuses such an issuer: this provider lets
	// anyone in with a well-known password.
	AllowNonLoopback bool

	// Log receives the provider's own log lines; nil means slog.Default().
	Log *slog.Logger
}

// Provider is a running development identity provider. Serve its Handler
// at the issuer URL.
type Provider struct {
	cfg     Config
	store   *storage
	op      *op.Provider
	handler http.Handler
}

// New returns a provider for cfg, with a fresh RSA signing key.
func New(cfg Config) (*Provider, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("client id and secret are required")
	}
	if len(cfg.RedirectURIs) == 0 {
		return nil, errors.New("at least one redirect URI is required")
	}
	iss, err := url.Parse(cfg.Issuer)
	if err != nil || (iss.Scheme != "http" && iss.Scheme != "https") || iss.Host == "" {
		return nil, fmt.Errorf("issuer %q is not an http(s) URL", cfg.Issuer)
	}
	if !cfg.AllowNonLoopback && !IsLoopbackHost(iss.Hostname()) {
		return nil, fmt.Errorf("issuer %s: %w (set AllowNonLoopback to serve it anyway)",
			cfg.Issuer, ErrNotLoopback)
	}
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	base := strings.TrimSuffix(iss.Path, "/")

	if cfg.Users == nil {
		cfg.Users = DefaultUsers()
	}
	if cfg.Password == "" {
		cfg.Password = DefaultPassword
	}
	if cfg.AccessTokenLifetime <= 0 {
		cfg.AccessTokenLifetime = 5 * time.Minute
	}
	if cfg.IDTokenLifetime <= 0 {
		cfg.IDTokenLifetime = time.Hour
	}
	if cfg.RefreshTokenLifetime <= 0 {
		cfg.RefreshTokenLifetime = 24 * time.Hour
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}

	// keys live as long as the process: every restart signs with a new
	// one, and earlier tokens stop verifying
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generating signing key: %w", err)
	}
	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		return nil, fmt.Errorf("generating token encryption key: %w", err)
	}
	store, err := newStorage(cfg, key, base+"/login")
	if err != nil {
		return nil, err
	}

	opts := []op.Option{}
	if iss.Scheme == "http" {
		opts = append(opts, op.WithAllowInsecure())
	}
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:                cryptoKey,
		DefaultLogoutRedirectURI: base + "/signed-out",
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		GrantTypeRefreshToken:    true,
		SupportedUILocales:       []language.Tag{language.English},
	}, store, op.StaticIssuer(cfg.Issuer), opts...)
	if err != nil {
		return nil, fmt.Errorf("creating provider: %w", err)
	}

	p := &Provider{cfg: cfg, store: store, op: provider}
	p.handler = p.routes(base)
	return p, nil
}

// Handler serves the provider: discovery, keys, authorization, token,
// userinfo and end-session endpoints, and the login page.
func (p *Provider) Handler() http.Handler { return p.handler }

// Issuer returns the issuer URL, without a trailing slash.
func (p *Provider) Issuer() string { return p.cfg.Issuer }

// Password returns the password every user signs in with.
func (p *Provider) Password() string { return p.cfg.Password }

// Users returns the users who can sign in.
func (p *Provider) Users() []User { return append([]User(nil), p.cfg.Users...) }

// RevokeTokens revokes every access and refresh token of the user, as if
// an administrator of a real provider had disabled the account. It
// returns how many tokens it revoked.
func (p *Provider) RevokeTokens(username string) int {
	return p.store.revokeUser(username)
}

func (p *Provider) routes(base string) http.Handler {
	mux := http.NewServeMux()
	login := &loginPage{
		store:    p.store,
		provider: p.op,
		users:    p.cfg.Users,
		password: p.cfg.Password,
		log:      p.cfg.Log,
	}
	issuerCtx := op.NewIssuerInterceptor(p.op.IssuerFromRequest)
	mux.Handle(base+"/login", issuerCtx.Handler(login))
	mux.HandleFunc(base+"/signed-out", signedOut)

	var opHandler http.Handler = p.op
	if base != "" {
		opHandler = http.StripPrefix(base, p.op)
	}
	mux.Handle(base+"/", opHandler)
	return mux
}

// IsLoopbackHost reports whether host (a name or an IP, without port) can
// only be reached from this machine: "localhost" or a loopback IP.
func IsLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// CheckListenAddr returns an error wrapping ErrNotLoopback when addr
// (host:port) would accept connections from other machines, unless
// allowNonLoopback is set. An empty host (":5556") listens everywhere and
// is refused.
func CheckListenAddr(addr string, allowNonLoopback bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if allowNonLoopback || IsLoopbackHost(host) {
		return nil
	}
	return fmt.Errorf("listen address %s: %w", addr, ErrNotLoopback)
}
