package devidp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

func TestLoopbackChecks(t *testing.T) {
	hosts := []struct {
		host string
		want bool
	}{
		{"localhost", true},
		{"LOCALHOST", true},
		{"localhost.", true},
		{"127.0.0.1", true},
		{"127.1.2.3", true},
		{"::1", true},
		{"[::1]", true},
		{"", false},
		{"0.0.0.0", false},
		{"::", false},
		{"10.0.0.1", false},
		{"192.168.1.10", false},
		{"example.com", false},
		{"localhost.example.com", false},
		{"evil.localhost", false},
	}
	for _, tc := range hosts {
		if got := IsLoopbackHost(tc.host); got != tc.want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}

	addrs := []struct {
		addr  string
		allow bool
		ok    bool
	}{
		{"127.0.0.1:5556", false, true},
		{"localhost:5556", false, true},
		{"[::1]:5556", false, true},
		{":5556", false, false},
		{"0.0.0.0:5556", false, false},
		{"192.168.1.10:5556", false, false},
		{"0.0.0.0:5556", true, true},
		{"no-port", false, false},
	}
	for _, tc := range addrs {
		err := CheckListenAddr(tc.addr, tc.allow)
		if (err == nil) != tc.ok {
			t.Errorf("CheckListenAddr(%q, %v) = %v, want ok %v", tc.addr, tc.allow, err, tc.ok)
		}
		if err != nil && tc.addr != "no-port" && !errors.Is(err, ErrNotLoopback) {
			t.Errorf("CheckListenAddr(%q): got %v, want ErrNotLoopback", tc.addr, err)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	base := Config{
		Issuer:       "http://127.0.0.1:5556",
		ClientID:     "c",
		ClientSecret: "s",
		RedirectURIs: []string{"http://127.0.0.1:8080/studio/callback"},
	}
	cases := []struct {
		name string
		mod  func(c *Config)
		ok   bool
		is   error
	}{
		{"loopback", func(c *Config) {}, true, nil},
		{"non-loopback issuer", func(c *Config) { c.Issuer = "http://studio.example.org" },
			false, ErrNotLoopback},
		{"non-loopback issuer allowed", func(c *Config) {
			c.Issuer = "https://studio.example.org"
			c.AllowNonLoopback = true
		}, true, nil},
		{"no client", func(c *Config) { c.ClientID = "" }, false, nil},
		{"no redirect", func(c *Config) { c.RedirectURIs = nil }, false, nil},
		{"not a URL", func(c *Config) { c.Issuer = "127.0.0.1:5556" }, false, nil},
		{"duplicate user", func(c *Config) {
			c.Users = []User{{Username: "a"}, {Username: "a"}}
		}, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			c.Log = slog.New(slog.DiscardHandler)
			tc.mod(&c)
			_, err := New(c)
			if (err == nil) != tc.ok {
				t.Fatalf("got %v, want ok %v", err, tc.ok)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("got %v, want %v", err, tc.is)
			}
		})
	}
}

// relyingParty is a minimal client: it sends the browser to the
// provider and catches the code at its callback.
type relyingParty struct {
	srv   *httptest.Server
	codes chan url.Values
}

func newRelyingParty(t *testing.T) *relyingParty {
	c := &relyingParty{codes: make(chan url.Values, 1)}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.codes <- r.URL.Query()
		io.WriteString(w, "back at the client")
	}))
	t.Cleanup(c.srv.Close)
	return c
}

var idRe = regexp.MustCompile(`name="id" value="([^"]*)"`)

func TestCodeFlow(t *testing.T) {
	for _, path := range []string{"", "/idp"} {
		t.Run("issuer path "+path, func(t *testing.T) { testCodeFlow(t, path) })
	}
}

func testCodeFlow(t *testing.T, path string) {
	var mu sync.Mutex
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	rp := newRelyingParty(t)
	p, err := New(Config{
		Issuer:              srv.URL + path,
		ClientID:            "studio",
		ClientSecret:        "secret",
		RedirectURIs:        []string{rp.srv.URL + "/callback"},
		AccessTokenLifetime: time.Minute,
		Log:                 slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	h = p.Handler()
	mu.Unlock()

	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, srv.URL+path)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	var meta struct {
		EndSession string   `json:"end_session_endpoint"`
		PKCE       []string `json:"code_challenge_methods_supported"`
	}
	provider.Claims(&meta)
	if meta.EndSession == "" || !slices.Contains(meta.PKCE, "S256") {
		t.Errorf("got discovery %+v, want an end-session endpoint and S256", meta)
	}

	conf := oauth2.Config{
		ClientID: "studio", ClientSecret: "secret", Endpoint: provider.Endpoint(),
		RedirectURL: rp.srv.URL + "/callback", Scopes: []string{"openid", "profile", "email"},
	}
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("st-1", oidc.Nonce("n-1"), oauth2.S256ChallengeOption(verifier))

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	resp, err := browser.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := idRe.FindStringSubmatch(string(page))
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("got status %d, want the login page: %.300s", resp.StatusCode, page)
	}
	if !strings.Contains(string(page), "mallory") || !strings.Contains(string(page), DefaultPassword) {
		t.Error("got a login page that does not list the users and the password")
	}
	loginURL := resp.Request.URL.String()

	post := func(user, password string) *http.Response {
		t.Helper()
		form := url.Values{"id": {m[1]}, "username": {user}, "password": {password}, "action": {"login"}}
		resp, err := browser.PostForm(loginURL, form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	// a wrong password stays on the page
	if resp := post("carol", "wrong"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("got status %d for a wrong password, want 401", resp.StatusCode)
	}

	post("carol", DefaultPassword)
	var q url.Values
	select {
	case q = <-rp.codes:
	case <-time.After(10 * time.Second):
		t.Fatal("never came back to the client")
	}
	if q.Get("state") != "st-1" || q.Get("code") == "" {
		t.Fatalf("got callback %v, want state st-1 and a code", q)
	}

	// a wrong PKCE verifier is refused, the right one gets tokens
	wrong := oauth2.VerifierOption(oauth2.GenerateVerifier())
	if _, err := conf.Exchange(ctx, q.Get("code"), wrong); err == nil {
		t.Error("got tokens with a wrong PKCE verifier")
	}
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Error("got no refresh token, want one always")
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: "studio"}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	var claims struct {
		Username string   `json:"preferred_username"`
		Name     string   `json:"name"`
		Email    string   `json:"email"`
		Verified bool     `json:"email_verified"`
		Org      string   `json:"org"`
		Groups   []string `json:"groups"`
	}
	idt.Claims(&claims)
	if idt.Nonce != "n-1" || claims.Username != "carol" || claims.Org != "acme" ||
		!slices.Contains(claims.Groups, AdminGroup) || !claims.Verified || claims.Name != "Carol Cole" {
		t.Errorf("got nonce %q claims %+v, want carol of acme, admin, verified email", idt.Nonce, claims)
	}

	// refresh rotates: the new token works, the old one no longer
	next, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if next.RefreshToken == "" || next.RefreshToken == tok.RefreshToken ||
		next.AccessToken == tok.AccessToken {
		t.Error("got the same tokens from a refresh, want new ones")
	}
	old := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken})
	if _, err := old.Token(); err == nil {
		t.Error("got tokens for a rotated-out refresh token")
	}

	// revoked: refreshing fails
	if n := p.RevokeTokens("carol"); n == 0 {
		t.Error("revoked no tokens")
	}
	_, err = conf.TokenSource(ctx, &oauth2.Token{RefreshToken: next.RefreshToken}).Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Errorf("got %v refreshing a revoked token, want the provider's refusal", err)
	}
}
