package session

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// fakeIdP is a small OpenID provider whose ID tokens a test shapes at
// will: discovery, JWKS, authorize (which signs in at once), token with
// PKCE, refresh, and end-session. It exists for the failures a real
// provider would never produce: a wrong nonce, another audience, an
// expired or badly signed token.
type fakeIdP struct {
	t      *testing.T
	srv    *httptest.Server
	key    *rsa.PrivateKey
	kid    string
	other  *rsa.PrivateKey // a key the JWKS does not publish
	secret string

	mu sync.Mutex
	// claims are the user's claims in every ID token.
	claims map[string]any
	// shape changes an ID token's claims before signing.
	shape func(claims map[string]any)
	// sign selects the signature: "" (RS256 with the published key),
	// "hs256", "other-key" or "none".
	sign string
	// refresh selects the refresh answer: "" (new tokens), "refuse"
	// (invalid_grant) or "drop" (connection closed).
	refresh string
	// noEndSession leaves end_session_endpoint out of discovery.
	noEndSession bool
	codes        map[string]fakeGrant
	refreshes    int
}

type fakeGrant struct {
	nonce     string
	challenge string
	redirect  string
}

const fakeClientID = "studio-proxy"

func newFakeIdP(t *testing.T) *fakeIdP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIdP{
		t: t, key: key, other: other, kid: "k1", secret: "fake-secret",
		codes: map[string]fakeGrant{},
		claims: map[string]any{
			"preferred_username": "alice",
			"name":               "Alice Archer",
			"email":              "alice@acme.test",
			"email_verified":     true,
			"org":                "acme",
			"groups":             []string{"staff"},
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", f.discovery)
	mux.HandleFunc("/keys", f.keys)
	mux.HandleFunc("/authorize", f.authorize)
	mux.HandleFunc("/token", f.token)
	mux.HandleFunc("/end_session", f.endSession)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIdP) set(fn func(f *fakeIdP)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeIdP) config(c *Config) {
	c.Issuer = f.srv.URL
	c.ClientID = fakeClientID
	c.ClientSecret = f.secret
}

func (f *fakeIdP) discovery(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := map[string]any{
		"issuer":                                f.srv.URL,
		"authorization_endpoint":                f.srv.URL + "/authorize",
		"token_endpoint":                        f.srv.URL + "/token",
		"jwks_uri":                              f.srv.URL + "/keys",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"code_challenge_methods_supported":      []string{"S256"},
	}
	if !f.noEndSession {
		d["end_session_endpoint"] = f.srv.URL + "/end_session"
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(d)
}

func (f *fakeIdP) keys(w http.ResponseWriter, r *http.Request) {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: &f.key.PublicKey, KeyID: f.kid, Algorithm: "RS256", Use: "sig",
	}}}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(set)
}

// authorize signs the user in at once and sends the browser back with a
// code.
func (f *fakeIdP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != fakeClientID || q.Get("response_type") != "code" ||
		q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	code := rand.Text()
	f.mu.Lock()
	f.codes[code] = fakeGrant{
		nonce:     q.Get("nonce"),
		challenge: q.Get("code_challenge"),
		redirect:  q.Get("redirect_uri"),
	}
	f.mu.Unlock()
	back, _ := url.Parse(q.Get("redirect_uri"))
	bq := back.Query()
	bq.Set("code", code)
	bq.Set("state", q.Get("state"))
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (f *fakeIdP) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != fakeClientID || secret != f.secret {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		g, ok := f.codes[r.PostForm.Get("code")]
		delete(f.codes, r.PostForm.Get("code"))
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !ok || g.redirect != r.PostForm.Get("redirect_uri") ||
			base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		f.answer(w, g.nonce)
	case "refresh_token":
		f.refreshes++
		switch f.refresh {
		case "refuse":
			oauthError(w, http.StatusBadRequest, "invalid_grant")
		case "drop":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		default:
			f.answer(w, "")
		}
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
	}
}

// answer writes a token response; f.mu is held.
func (f *fakeIdP) answer(w http.ResponseWriter, nonce string) {
	now := time.Now()
	claims := map[string]any{
		"iss": f.srv.URL,
		"sub": "sub-1",
		"aud": fakeClientID,
		"exp": now.Add(time.Hour).Unix(),
		"iat": now.Unix(),
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	for k, v := range f.claims {
		claims[k] = v
	}
	if f.shape != nil {
		f.shape(claims)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"access_token":  "at-" + rand.Text(),
		"refresh_token": "rt-" + rand.Text(),
		"token_type":    "Bearer",
		"expires_in":    300,
		"id_token":      f.signed(claims),
	})
}

func (f *fakeIdP) signed(claims map[string]any) string {
	payload, _ := json.Marshal(claims)
	if f.sign == "none" {
		enc := base64.RawURLEncoding
		return enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
			enc.EncodeToString(payload) + "."
	}
	key := jose.SigningKey{Algorithm: jose.RS256, Key: f.key}
	switch f.sign {
	case "hs256":
		key = jose.SigningKey{Algorithm: jose.HS256, Key: []byte(strings.Repeat(f.secret, 4))}
	case "other-key":
		key = jose.SigningKey{Algorithm: jose.RS256, Key: f.other}
	}
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", f.kid)
	signer, err := jose.NewSigner(key, opts)
	if err != nil {
		f.t.Errorf("making signer: %v", err)
		return ""
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		f.t.Errorf("signing: %v", err)
		return ""
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		f.t.Errorf("serializing: %v", err)
	}
	return s
}

func (f *fakeIdP) endSession(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, r.URL.Query().Get("post_logout_redirect_uri"), http.StatusFound)
}

func oauthError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code})
}
