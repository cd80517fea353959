package session

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/redis/go-redis/v9"
	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/internal/ident"
	"golang.org/x/oauth2"
)

// loginState is a sign-in in progress, kept in Redis under the hash of its
// OAuth state parameter until the callback takes it (once).
type loginState struct {
	// Binding is the hash of the login cookie of the browser that started
	// the sign-in; the callback must come from the same browser.
	Binding  string    `json:"binding"`
	Nonce    string    `json:"nonce"`
	Verifier string    `json:"verifier"`
	Return   string    `json:"return"`
	Created  time.Time `json:"created"`
}

// Handler serves the sign-in routes under the path prefix: login,
// callback, logout and signed-out. Mount it at those paths; it answers 404
// for any other.
func (m *Manager) Handler() http.Handler {
	mux := http.NewServeMux()
	p := m.cfg.PathPrefix
	mux.HandleFunc(p+"login", m.serveLogin)
	mux.HandleFunc(p+"callback", m.serveCallback)
	mux.HandleFunc(p+"logout", m.serveLogout)
	mux.HandleFunc(p+"signed-out", m.serveSignedOut)
	return mux
}

// Paths returns the paths Handler serves.
func (m *Manager) Paths() []string {
	p := m.cfg.PathPrefix
	return []string{p + "login", p + "callback", p + "logout", p + "signed-out"}
}

func (m *Manager) serveLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		m.refuse(w, http.StatusMethodNotAllowed, "method_not_allowed",
			"Sign-in", "Open the sign-in page with a plain link.", "")
		return
	}
	rd := LocalPath(r.URL.Query().Get("rd"), m.cfg.PathPrefix)

	// already signed in: straight on
	_, err := m.Authenticate(r)
	switch {
	case err == nil:
		redirect(w, rd)
		return
	case !errors.Is(err, ErrSignedOut):
		m.log.Warn("sign-in unavailable", "err", err)
		m.unavailablePage(w)
		return
	}

	if client := m.cfg.ClientIP(r); !m.logins.allow(client) {
		m.log.Warn("sign-in refused", "reason", "rate limit", "remote_addr", client)
		w.Header().Set("Retry-After", "60")
		m.refuse(w, http.StatusTooManyRequests, "too_many_sign_ins", "Too many sign-ins",
			"Too many sign-ins were started from your address in the last minute. "+
				"Wait a minute, then sign in again.", "")
		return
	}

	// the browser's login cookie binds the sign-in to it; one cookie
	// serves sign-ins started in several tabs at once
	binding := ""
	if c, err := r.Cookie(m.loginCookie); err == nil {
		if _, ok := parseID(c.Value); ok {
			binding = c.Value
		}
	}
	if binding == "" {
		binding = randomText()
	}

	state := randomText()
	st := loginState{
		Binding:  hashText(binding),
		Nonce:    randomText(),
		Verifier: oauth2.GenerateVerifier(),
		Return:   rd,
		Created:  m.now(),
	}
	b, _ := json.Marshal(st)
	err = m.rdb.Set(r.Context(), m.keys.login(hashText(state)), b, m.cfg.LoginTimeout).Err()
	if err != nil {
		m.log.Warn("storing login state", "err", err)
		m.unavailablePage(w)
		return
	}

	http.SetCookie(w, &http.Cookie{
		Name:     m.loginCookie,
		Value:    binding,
		Path:     "/",
		MaxAge:   int(m.cfg.LoginTimeout.Seconds()),
		HttpOnly: true,
		Secure:   m.secure,
		SameSite: http.SameSiteLaxMode,
	})
	authURL := m.oauth.AuthCodeURL(state,
		oidc.Nonce(st.Nonce),
		oauth2.S256ChallengeOption(st.Verifier))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, authURL, http.StatusFound)
}

// takeLoginState returns the sign-in that state names and deletes it, so
// that it works once; errNoSession when there is none.
func (m *Manager) takeLoginState(ctx context.Context, state string) (loginState, error) {
	var st loginState
	b, err := m.rdb.GetDel(ctx, m.keys.login(hashText(state))).Bytes()
	if errors.Is(err, redis.Nil) {
		return st, errNoSession
	}
	if err != nil {
		return st, fmt.Errorf("taking login state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("decoding login state: %w", err)
	}
	return st, nil
}

func (m *Manager) serveCallback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		m.refuse(w, http.StatusMethodNotAllowed, "method_not_allowed",
			"Sign-in failed", "The identity provider answered in a way this Studio does not accept.", "")
		return
	}
	ctx := r.Context()
	q := r.URL.Query()

	// the state must name a sign-in started here, not used before, by
	// this same browser
	state := q.Get("state")
	if state == "" || len(state) > 512 {
		m.refuseState(w, "missing or oversized state")
		return
	}
	st, err := m.takeLoginState(ctx, state)
	if errors.Is(err, errNoSession) {
		m.refuseState(w, "unknown, expired or used state")
		return
	}
	if err != nil {
		m.log.Warn("sign-in unavailable", "err", err)
		m.unavailablePage(w)
		return
	}
	c, err := r.Cookie(m.loginCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(hashText(c.Value)), []byte(st.Binding)) != 1 {
		m.refuseState(w, "login cookie missing or from another browser")
		return
	}

	// the provider may have refused
	if code := q.Get("error"); code != "" {
		m.refuseProvider(w, code, q.Get("error_description"))
		return
	}
	code := q.Get("code")
	if code == "" {
		m.refuseProvider(w, "invalid_request", "The answer carried no authorization code.")
		return
	}

	tok, err := m.oauth.Exchange(m.providerCtx(ctx), code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		m.log.Warn("sign-in refused", "reason", "code exchange failed", "err", err)
		m.refuse(w, http.StatusBadGateway, "token_exchange_failed", "Sign-in failed",
			"The identity provider did not accept this sign-in. Sign in again; "+
				"if it keeps failing, tell your administrator.", "")
		return
	}
	claims, sub, err := m.verifyToken(ctx, tok, st.Nonce)
	if err != nil {
		m.log.Warn("sign-in refused", "reason", "invalid id token", "err", err)
		m.refuse(w, http.StatusBadRequest, "invalid_id_token", "Sign-in failed",
			"The identity provider's answer could not be verified. Sign in again; "+
				"if it keeps failing, tell your administrator.", "")
		return
	}

	user, err := m.claims.user(claims)
	var ce *claimError
	if errors.As(err, &ce) {
		m.log.Info("sign-in refused", "reason", ce.code, "user", user.Name, "org", user.Org)
		m.refuse(w, http.StatusForbidden, ce.code, "You cannot sign in here", ce.msg, "")
		return
	}
	now := m.now()
	user.LastLogin = now

	// record the person, let the app prepare for them, then open the
	// session
	if m.cfg.Directory != nil {
		err := m.cfg.Directory.PutUser(ctx, user)
		if errors.Is(err, authz.ErrInvalidInput) || errors.Is(err, ident.ErrInvalid) {
			m.log.Info("sign-in refused", "reason", "directory refused the user",
				"user", user.Name, "err", err)
			m.refuse(w, http.StatusForbidden, "invalid_claims", "You cannot sign in here",
				"Your account's details at the identity provider cannot be used here; "+
					"ask your administrator.", "")
			return
		}
		if err != nil {
			m.log.Warn("recording user at sign-in", "user", user.Name, "err", err)
			m.unavailablePage(w)
			return
		}
	}
	if m.cfg.OnSignIn != nil {
		if err := m.cfg.OnSignIn(ctx, user); err != nil {
			m.log.Warn("sign-in hook failed", "user", user.Name, "err", err)
			m.unavailablePage(w)
			return
		}
	}
	cookie, err := m.open(ctx, user, sub, tok, now)
	if err != nil {
		m.log.Warn("creating session", "user", user.Name, "err", err)
		m.unavailablePage(w)
		return
	}
	http.SetCookie(w, cookie)
	redirect(w, st.Return)
}

// verifyToken verifies the ID token of a token response: signature and
// algorithm, issuer, audience, expiry, nonce, and the access token hash.
// It returns the token's claims and subject.
func (m *Manager) verifyToken(
	ctx context.Context,
	tok *oauth2.Token,
	nonce string,
) (map[string]any, string, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, "", errors.New("token response has no id_token")
	}
	idt, err := m.verifier.Verify(m.providerCtx(ctx), raw)
	if err != nil {
		return nil, "", err
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, "", errors.New("id token nonce does not match the sign-in")
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return nil, "", err
		}
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, "", fmt.Errorf("decoding id token claims: %w", err)
	}
	return claims, idt.Subject, nil
}

// open creates a session for user and returns its cookie.
func (m *Manager) open(
	ctx context.Context,
	user authz.User,
	sub string,
	tok *oauth2.Token,
	now time.Time,
) (*http.Cookie, error) {
	id, text := newID()
	hash := hashID(id)
	idToken, _ := tok.Extra("id_token").(string)
	sealed, err := seal(id, hash, tokens{
		Access:  tok.AccessToken,
		Refresh: tok.RefreshToken,
		ID:      idToken,
	})
	if err != nil {
		return nil, fmt.Errorf("sealing tokens: %w", err)
	}
	rec := record{
		User:         user,
		Subject:      sub,
		Created:      now,
		Expires:      now.Add(m.cfg.Lifetime),
		AccessExpiry: accessExpiry(tok, now),
		CanRefresh:   tok.RefreshToken != "",
		Sealed:       sealed,
	}
	if err := m.create(ctx, hash, rec, now); err != nil {
		return nil, err
	}
	m.log.Info("signed in", "user", user.Name, "org", user.Org, "admin", user.Admin,
		"session", hash)
	return &http.Cookie{
		Name:     m.sessionCookie,
		Value:    text,
		Path:     "/",
		MaxAge:   int(m.cfg.Lifetime.Seconds()),
		HttpOnly: true,
		Secure:   m.secure,
		SameSite: http.SameSiteLaxMode,
	}, nil
}

// accessExpiry is when the access token expires by the Manager's clock;
// zero when the provider did not say.
func accessExpiry(tok *oauth2.Token, now time.Time) time.Time {
	switch {
	case tok.ExpiresIn > 0:
		return now.Add(time.Duration(tok.ExpiresIn) * time.Second)
	case !tok.Expiry.IsZero():
		// oauth2 set Expiry by the wall clock; carry the remaining time
		// over to the Manager's clock
		return now.Add(time.Until(tok.Expiry))
	}
	return time.Time{}
}

func (m *Manager) refuseState(w http.ResponseWriter, reason string) {
	m.log.Info("sign-in refused", "reason", reason)
	m.refuse(w, http.StatusBadRequest, "invalid_state", "Sign-in expired",
		"This sign-in cannot be completed: it was already used, took too long, "+
			"or was started in another browser. Sign in again.", "")
}

// providerMessages are the sentences for the errors a provider reports.
var providerMessages = map[string]string{
	"access_denied":        "The sign-in was cancelled or refused at your identity provider.",
	"login_required":       "Your identity provider needs you to sign in.",
	"consent_required":     "Your identity provider needs your consent for this Studio.",
	"interaction_required": "Your identity provider needs you to do something before you can sign in.",
	"temporarily_unavailable": "Your identity provider is unavailable right now. " +
		"Try again in a moment.",
}

func (m *Manager) refuseProvider(w http.ResponseWriter, code, desc string) {
	m.log.Info("sign-in refused", "reason", "provider error", "provider_error", cleanText(code))
	msg, ok := providerMessages[code]
	if !ok {
		msg = "Your identity provider could not sign you in."
	}
	detail := ""
	if d := cleanText(desc); d != "" {
		detail = "The identity provider said: " + d
	}
	m.refuse(w, http.StatusForbidden, "provider_error", "Sign-in failed", msg, detail)
}

func (m *Manager) unavailablePage(w http.ResponseWriter) {
	m.renderPage(w, http.StatusServiceUnavailable, page{
		Title:    "Sign-in unavailable",
		Message:  "Signing in is not possible right now. Try again in a moment.",
		Code:     "unavailable",
		Link:     m.cfg.PathPrefix,
		LinkText: "Try again",
	})
}

// redirect sends the browser to a local path that LocalPath accepted.
// http.Redirect is not used: it would clean the path.
func redirect(w http.ResponseWriter, path string) {
	w.Header().Set("Location", path)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusFound)
}
