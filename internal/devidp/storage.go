package devidp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// authRequestTTL is how long a started sign-in may take.
const authRequestTTL = 10 * time.Minute

var errNotFound = errors.New("not found")

// storage is the provider's in-memory op.Storage: auth requests, codes,
// tokens, the one client and the users. Every method holds mu.
type storage struct {
	cfg    Config
	client *client
	key    signingKey

	mu       sync.Mutex
	users    map[string]User // by subject
	byName   map[string]User // by username
	requests map[string]*authRequest
	codes    map[string]string // code -> auth request id
	access   map[string]*accessToken
	refresh  map[string]*refreshToken
}

var (
	_ op.Storage                   = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest = (*storage)(nil)
)

func newStorage(cfg Config, key *rsa.PrivateKey, loginPath string) (*storage, error) {
	s := &storage{
		cfg: cfg,
		client: &client{
			id:          cfg.ClientID,
			secret:      cfg.ClientSecret,
			redirects:   cfg.RedirectURIs,
			postLogout:  cfg.PostLogoutRedirectURIs,
			loginPath:   loginPath,
			idTokenLife: cfg.IDTokenLifetime,
		},
		key:      signingKey{id: rand.Text(), key: key},
		users:    map[string]User{},
		byName:   map[string]User{},
		requests: map[string]*authRequest{},
		codes:    map[string]string{},
		access:   map[string]*accessToken{},
		refresh:  map[string]*refreshToken{},
	}
	for _, u := range cfg.Users {
		if u.Username == "" {
			return nil, errors.New("a user has no username")
		}
		if _, dup := s.byName[u.Username]; dup {
			return nil, fmt.Errorf("user %q is listed twice", u.Username)
		}
		s.users[u.subject()] = u
		s.byName[u.Username] = u
	}
	return s, nil
}

// checkPassword marks the auth request id as signed in by username when
// the password is right.
func (s *storage) checkPassword(id, username, password string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	req, ok := s.requests[id]
	if !ok || time.Since(req.created) > authRequestTTL {
		return errors.New("this sign-in has expired; go back to the application and start again")
	}
	u, ok := s.byName[username]
	if !ok || subtle.ConstantTimeCompare([]byte(password), []byte(s.cfg.Password)) != 1 {
		return errors.New("unknown username or wrong password")
	}
	req.subject = u.subject()
	req.authTime = time.Now()
	req.done = true
	return nil
}

// revokeUser drops every token of the user.
func (s *storage) revokeUser(username string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.byName[username]
	if !ok {
		return 0
	}
	n := 0
	for id, t := range s.access {
		if t.subject == u.subject() {
			delete(s.access, id)
			n++
		}
	}
	for tok, t := range s.refresh {
		if t.subject == u.subject() {
			delete(s.refresh, tok)
			n++
		}
	}
	return n
}

// CreateAuthRequest stores a validated authorization request.
func (s *storage) CreateAuthRequest(
	ctx context.Context,
	req *oidc.AuthRequest,
	userID string,
) (op.AuthRequest, error) {
	if slices.Contains(req.Prompt, oidc.PromptNone) {
		return nil, oidc.ErrLoginRequired()
	}

	// refresh tokens are always issued, so that the proxy's refresh path
	// runs in development whether or not it asks for offline_access
	scopes := slices.Clone(req.Scopes)
	if !slices.Contains(scopes, oidc.ScopeOfflineAccess) {
		scopes = append(scopes, oidc.ScopeOfflineAccess)
	}
	ar := &authRequest{
		id:           rand.Text(),
		clientID:     req.ClientID,
		redirectURI:  req.RedirectURI,
		state:        req.State,
		nonce:        req.Nonce,
		scopes:       scopes,
		responseType: req.ResponseType,
		responseMode: req.ResponseMode,
		created:      time.Now(),
	}
	if req.CodeChallenge != "" {
		ar.challenge = &oidc.CodeChallenge{
			Challenge: req.CodeChallenge,
			Method:    req.CodeChallengeMethod,
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	s.requests[ar.id] = ar
	return ar.copy(), nil
}

// expireLocked forgets auth requests and tokens past their time, so that a
// long-running dev provider does not grow without bound.
func (s *storage) expireLocked() {
	now := time.Now()
	for id, r := range s.requests {
		if now.Sub(r.created) > authRequestTTL {
			delete(s.requests, id)
		}
	}
	for code, id := range s.codes {
		if _, ok := s.requests[id]; !ok {
			delete(s.codes, code)
		}
	}
	for id, t := range s.access {
		if now.After(t.expires) {
			delete(s.access, id)
		}
	}
	for tok, t := range s.refresh {
		if now.After(t.expires) {
			delete(s.refresh, tok)
		}
	}
}

// AuthRequestByID returns a copy of the auth request.
func (s *storage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	if !ok {
		return nil, fmt.Errorf("auth request: %w", errNotFound)
	}
	return r.copy(), nil
}

// AuthRequestByCode returns the auth request a code was issued for.
func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.codes[code]
	if !ok {
		return nil, fmt.Errorf("code: %w", errNotFound)
	}
	r, ok := s.requests[id]
	if !ok {
		return nil, fmt.Errorf("auth request: %w", errNotFound)
	}
	return r.copy(), nil
}

// SaveAuthCode remembers the code issued for an auth request.
func (s *storage) SaveAuthCode(ctx context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = id
	return nil
}

// DeleteAuthRequest forgets an auth request and its code: a code works
// once.
func (s *storage) DeleteAuthRequest(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.requests, id)
	for code, rid := range s.codes {
		if rid == id {
			delete(s.codes, code)
		}
	}
	return nil
}

// CreateAccessToken issues an access token without a refresh token.
func (s *storage) CreateAccessToken(
	ctx context.Context,
	req op.TokenRequest,
) (string, time.Time, error) {
	clientID, _, _ := requestInfo(req)
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.newAccessLocked(clientID, "", req)
	return t.id, t.expires, nil
}

// CreateAccessAndRefreshTokens issues an access token and a refresh
// token; with current set it rotates that refresh token.
func (s *storage) CreateAccessAndRefreshTokens(
	ctx context.Context,
	req op.TokenRequest,
	current string,
) (string, string, time.Time, error) {
	clientID, authTime, amr := requestInfo(req)
	s.mu.Lock()
	defer s.mu.Unlock()

	if current != "" {
		old, ok := s.refresh[current]
		if !ok || time.Now().After(old.expires) {
			err := oidc.ErrInvalidGrant().WithDescription("refresh token revoked or expired")
			return "", "", time.Time{}, err
		}
		delete(s.refresh, current)
		delete(s.access, old.accessID)
	}

	rt := &refreshToken{
		token:    rand.Text(),
		clientID: clientID,
		subject:  req.GetSubject(),
		audience: req.GetAudience(),
		scopes:   req.GetScopes(),
		amr:      amr,
		authTime: authTime,
		expires:  time.Now().Add(s.cfg.RefreshTokenLifetime),
	}
	at := s.newAccessLocked(clientID, rt.token, req)
	rt.accessID = at.id
	s.refresh[rt.token] = rt
	return at.id, rt.token, at.expires, nil
}

func (s *storage) newAccessLocked(clientID, refresh string, req op.TokenRequest) *accessToken {
	t := &accessToken{
		id:        rand.Text(),
		clientID:  clientID,
		subject:   req.GetSubject(),
		audience:  req.GetAudience(),
		scopes:    req.GetScopes(),
		refreshID: refresh,
		expires:   time.Now().Add(s.cfg.AccessTokenLifetime),
	}
	s.access[t.id] = t
	return t
}

// requestInfo returns the client, authentication time and methods of a
// token request.
func requestInfo(req op.TokenRequest) (clientID string, authTime time.Time, amr []string) {
	switch r := req.(type) {
	case *authRequest:
		return r.clientID, r.authTime, r.GetAMR()
	case *refreshRequest:
		return r.t.clientID, r.t.authTime, r.t.amr
	}
	return "", time.Time{}, nil
}

// TokenRequestByRefreshToken returns the grant a refresh token stands for.
func (s *storage) TokenRequestByRefreshToken(
	ctx context.Context,
	token string,
) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.refresh[token]
	if !ok || time.Now().After(t.expires) {
		return nil, errors.New("refresh token revoked or expired")
	}
	c := *t
	return &refreshRequest{t: &c}, nil
}

// TerminateSession drops the user's tokens for the client: the user
// signed out at the end-session endpoint.
func (s *storage) TerminateSession(ctx context.Context, userID, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range s.access {
		if t.subject == userID && t.clientID == clientID {
			delete(s.access, id)
		}
	}
	for tok, t := range s.refresh {
		if t.subject == userID && t.clientID == clientID {
			delete(s.refresh, tok)
		}
	}
	return nil
}

// RevokeToken revokes an access token (by id) or a refresh token.
func (s *storage) RevokeToken(
	ctx context.Context,
	tokenOrID, userID, clientID string,
) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.access[tokenOrID]; ok {
		if t.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
		}
		delete(s.access, tokenOrID)
		return nil
	}
	if t, ok := s.refresh[tokenOrID]; ok {
		if t.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
		}
		delete(s.refresh, tokenOrID)
		delete(s.access, t.accessID)
	}
	return nil
}

// GetRefreshTokenInfo returns the user and id of a refresh token.
func (s *storage) GetRefreshTokenInfo(
	ctx context.Context,
	clientID, token string,
) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.refresh[token]
	if !ok {
		return "", "", op.ErrInvalidRefreshToken
	}
	return t.subject, t.token, nil
}

// SigningKey returns the key that signs ID tokens.
func (s *storage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	return &s.key, nil
}

// SignatureAlgorithms returns the one signing algorithm, RS256.
func (s *storage) SignatureAlgorithms(ctx context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

// KeySet returns the public keys published at the JWKS endpoint.
func (s *storage) KeySet(ctx context.Context) ([]op.Key, error) {
	return []op.Key{&publicKey{s.key}}, nil
}

// GetClientByClientID returns the one client.
func (s *storage) GetClientByClientID(ctx context.Context, clientID string) (op.Client, error) {
	if clientID != s.client.id {
		return nil, errors.New("unknown client")
	}
	return s.client, nil
}

// AuthorizeClientIDSecret checks the client's credentials.
func (s *storage) AuthorizeClientIDSecret(ctx context.Context, clientID, secret string) error {
	if clientID != s.client.id ||
		subtle.ConstantTimeCompare([]byte(secret), []byte(s.client.secret)) != 1 {
		return errors.New("wrong client id or secret")
	}
	return nil
}

// SetUserinfoFromScopes is deprecated in op and left empty;
// SetUserinfoFromRequest does the work.
func (s *storage) SetUserinfoFromScopes(
	ctx context.Context,
	info *oidc.UserInfo,
	userID, clientID string,
	scopes []string,
) error {
	return nil
}

// SetUserinfoFromRequest fills the claims of an ID token.
func (s *storage) SetUserinfoFromRequest(
	ctx context.Context,
	info *oidc.UserInfo,
	req op.IDTokenRequest,
	scopes []string,
) error {
	return s.setUserinfo(info, req.GetSubject(), scopes)
}

// SetUserinfoFromToken fills the userinfo endpoint's answer.
func (s *storage) SetUserinfoFromToken(
	ctx context.Context,
	info *oidc.UserInfo,
	tokenID, subject, origin string,
) error {
	s.mu.Lock()
	t, ok := s.access[tokenID]
	s.mu.Unlock()
	if !ok || time.Now().After(t.expires) {
		return errors.New("access token revoked or expired")
	}
	return s.setUserinfo(info, t.subject, t.scopes)
}

// SetIntrospectionFromToken answers the introspection endpoint.
func (s *storage) SetIntrospectionFromToken(
	ctx context.Context,
	resp *oidc.IntrospectionResponse,
	tokenID, subject, clientID string,
) error {
	s.mu.Lock()
	t, ok := s.access[tokenID]
	s.mu.Unlock()
	if !ok || time.Now().After(t.expires) || !slices.Contains(t.audience, clientID) {
		return errors.New("access token revoked, expired or not for this client")
	}
	info := new(oidc.UserInfo)
	if err := s.setUserinfo(info, t.subject, t.scopes); err != nil {
		return err
	}
	resp.SetUserInfo(info)
	resp.Scope = t.scopes
	resp.ClientID = t.clientID
	resp.Expiration = oidc.FromTime(t.expires)
	return nil
}

func (s *storage) setUserinfo(info *oidc.UserInfo, subject string, scopes []string) error {
	s.mu.Lock()
	u, ok := s.users[subject]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("user: %w", errNotFound)
	}

	info.Subject = subject
	if slices.Contains(scopes, oidc.ScopeProfile) {
		info.PreferredUsername = u.Username
		info.Name = u.Name
	}
	if slices.Contains(scopes, oidc.ScopeEmail) && u.Email != "" {
		info.Email = u.Email
		info.EmailVerified = true
	}

	// organization and groups are what the proxy's access rules rest on:
	// always given, whatever the scopes
	if u.Org != "" {
		info.AppendClaims(OrgClaim, u.Org)
	}
	info.AppendClaims(GroupsClaim, append([]string{}, u.Groups...))
	return nil
}

// GetPrivateClaimsFromScopes adds no claims to JWT access tokens.
func (s *storage) GetPrivateClaimsFromScopes(
	ctx context.Context,
	userID, clientID string,
	scopes []string,
) (map[string]any, error) {
	return nil, nil
}

// GetKeyByIDAndClientID is for the JWT profile grant, which this provider
// does not offer.
func (s *storage) GetKeyByIDAndClientID(
	ctx context.Context,
	keyID, clientID string,
) (*jose.JSONWebKey, error) {
	return nil, errors.New("jwt profile grant not supported")
}

// ValidateJWTProfileScopes is for the JWT profile grant, which this
// provider does not offer.
func (s *storage) ValidateJWTProfileScopes(
	ctx context.Context,
	userID string,
	scopes []string,
) ([]string, error) {
	return nil, errors.New("jwt profile grant not supported")
}

// Health reports the storage healthy: it is memory.
func (s *storage) Health(ctx context.Context) error { return nil }

type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct{ signingKey }

func (k *publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *publicKey) Use() string                        { return "sig" }
func (k *publicKey) Key() any                           { return &k.key.PublicKey }
