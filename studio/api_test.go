package studio_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/backend"
	"github.com/studio-proxy/studio-proxy/internal/redistest"
	"github.com/studio-proxy/studio-proxy/internal/testclock"
	"github.com/studio-proxy/studio-proxy/session"
	"github.com/studio-proxy/studio-proxy/studio"
)

const origin = "https://studio.example.org"

// The people of the API tests: acme with its admin dave, and eve of
// globex.
var (
	alice = authz.User{Name: "alice", DisplayName: "Alice Liddell", Org: "acme"}
	bob   = authz.User{Name: "bob", DisplayName: "Bob Builder", Org: "acme"}
	carol = authz.User{Name: "carol", DisplayName: "Carol Danvers", Org: "acme"}
	dave  = authz.User{Name: "dave", DisplayName: "Dave Admin", Org: "acme", Admin: true}
	eve   = authz.User{Name: "eve", DisplayName: "Eve Polastri", Org: "globex"}
)

// start is when the tests' clock starts.
var start = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// apiEnv is the Studio handler on a real share table and registry on a
// private redis-server.
type apiEnv struct {
	clock *testclock.Clock
	redis *redistest.Server
	store *authz.Store
	reg   *backend.Registry
	h     *studio.Handler
}

func newAPIEnv(t *testing.T) *apiEnv {
	t.Helper()
	srv := redistest.Start(t)
	// no retries: the tests that stop Redis want the refusal at once
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	c := testclock.New(start)
	reg := backend.NewRegistry(rdb, backend.RegistryConfig{Now: c.Now})
	store, err := authz.New(rdb, authz.Config{Owners: reg, Now: c.Now})
	if err != nil {
		t.Fatalf("authz.New: %v", err)
	}
	ctx := context.Background()
	for _, u := range []authz.User{alice, bob, carol, dave, eve} {
		if err := store.PutUser(ctx, u); err != nil {
			t.Fatalf("PutUser(%s): %v", u.Name, err)
		}
		if _, err := reg.EnsureDefault(ctx, u.Name); err != nil {
			t.Fatalf("EnsureDefault(%s): %v", u.Name, err)
		}
	}
	h, err := studio.New(studio.Config{
		Authz: store, Registry: reg, ExternalURL: origin, Now: c.Now,
		// in place of the proxy, which reads its cookie into the context
		ActiveServer: func(r *http.Request) string {
			if c, err := r.Cookie("active"); err == nil {
				return c.Value
			}
			return ""
		},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("studio.New: %v", err)
	}
	return &apiEnv{clock: c, redis: srv, store: store, reg: reg, h: h}
}

// call is one API request.
type call struct {
	user   *authz.User // nil: signed out
	method string
	path   string // under /studio/api/
	body   string
	header map[string]string // set after the defaults (Origin, CSRF)
	cookie string            // the active server, as the proxy would tell
}

// do sends c the way the page does: signed in (the session placed in the
// context as the session middleware does), with the CSRF header and the
// proxy's origin on state-changing calls.
func (e *apiEnv) do(t *testing.T, c call) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	r := httptest.NewRequest(c.method, "https://studio.example.org/studio/api/"+c.path, body)
	if c.method != http.MethodGet {
		r.Header.Set("Origin", origin)
		r.Header.Set("X-Studio-CSRF", "1")
	}
	for k, v := range c.header {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	if c.cookie != "" {
		r.AddCookie(&http.Cookie{Name: "active", Value: c.cookie})
	}
	if c.user != nil {
		r = r.WithContext(session.NewContext(r.Context(), &session.Session{User: *c.user}))
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

// grant shares server with user, failing the test on error.
func (e *apiEnv) grant(t *testing.T, actor authz.User, server, user string, startStop bool) {
	t.Helper()
	_, err := e.store.Grant(context.Background(), actor, server, user, startStop, time.Time{})
	if err != nil {
		t.Fatalf("Grant(%s, %s): %v", server, user, err)
	}
	e.clock.Advance(time.Minute)
}

// errorCode returns the code of a JSON error answer, or "" for none.
func errorCode(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if w.Body.Len() == 0 {
		return ""
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, w.Body)
	}
	if body.Error.Code != "" && body.Error.Message == "" {
		t.Errorf("error %q has no message", body.Error.Code)
	}
	return body.Error.Code
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decoding %s: %v", w.Body, err)
	}
	return v
}

// server is the part of a server view the tests look at.
type server struct {
	ID               string    `json:"id"`
	Label            string    `json:"label"`
	Owner            string    `json:"owner"`
	OwnerDisplayName string    `json:"owner_display_name"`
	State            string    `json:"state"`
	URL              string    `json:"url"`
	Mine             bool      `json:"mine"`
	Active           bool      `json:"active"`
	Access           string    `json:"access"`
	CanUse           bool      `json:"can_use"`
	CanStartStop     bool      `json:"can_start_stop"`
	CanShare         bool      `json:"can_share"`
	Expires          time.Time `json:"expires"`
}

type serverList struct {
	Active    string   `json:"active"`
	Requested string   `json:"requested"`
	Servers   []server `json:"servers"`
}

type person struct {
	User        string    `json:"user"`
	DisplayName string    `json:"display_name"`
	Role        string    `json:"role"`
	StartStop   bool      `json:"start_stop"`
	GrantedBy   string    `json:"granted_by"`
	Expires     time.Time `json:"expires"`
}

func TestMe(t *testing.T) {
	e := newAPIEnv(t)
	w := e.do(t, call{user: &alice, method: "GET", path: "me"})
	if w.Code != http.StatusOK {
		t.Fatalf("GET me: got %d, want 200: %s", w.Code, w.Body)
	}
	me := decode[map[string]any](t, w)
	for k, want := range map[string]any{
		"name": "alice", "display_name": "Alice Liddell", "org": "acme",
		"default_server": "alice", "logout_url": "/studio/logout", "admin": false,
	} {
		if me[k] != want {
			t.Errorf("me.%s: got %v, want %v", k, me[k], want)
		}
	}
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control: got %q, want no-store", got)
	}
}

func TestServers(t *testing.T) {
	e := newAPIEnv(t)
	e.grant(t, alice, "alice", "bob", false)
	e.grant(t, carol, "carol", "bob", true)

	labels := func(l serverList) []string {
		var out []string
		for _, s := range l.Servers {
			mark := ""
			if s.Active {
				mark = "*"
			}
			out = append(out, mark+s.Label+"/"+s.Access)
		}
		return out
	}

	tests := []struct {
		name      string
		user      authz.User
		cookie    string
		want      []string
		requested string
	}{
		{"own server only", alice, "", []string{"*My Server/owner"}, ""},
		{"own first, then shares by label", bob, "",
			[]string{"*My Server/owner", "alice's server/use", "carol's server/start_stop"}, ""},
		{"cookie picks a shared server", bob, "alice",
			[]string{"My Server/owner", "*alice's server/use", "carol's server/start_stop"}, ""},
		{"cookie of a server never shared falls back", alice, "bob",
			[]string{"*My Server/owner"}, "bob"},
		{"cookie of a missing server falls back", alice, "nobody",
			[]string{"*My Server/owner"}, "nobody"},
		{"invalid cookie is ignored", alice, "../bob", []string{"*My Server/owner"}, ""},
		{"admin may pick any server of the org", dave, "carol",
			[]string{"My Server/owner", "*carol's server/admin"}, ""},
		{"admin may not pick another org's", dave, "eve", []string{"*My Server/owner"}, "eve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.do(t, call{user: &tt.user, method: "GET", path: "servers", cookie: tt.cookie})
			if w.Code != http.StatusOK {
				t.Fatalf("got %d, want 200: %s", w.Code, w.Body)
			}
			l := decode[serverList](t, w)
			if got := strings.Join(labels(l), ", "); got != strings.Join(tt.want, ", ") {
				t.Errorf("servers: got %s, want %s", got, strings.Join(tt.want, ", "))
			}
			if l.Requested != tt.requested {
				t.Errorf("requested: got %q, want %q", l.Requested, tt.requested)
			}
		})
	}

	t.Run("shared server names its owner", func(t *testing.T) {
		w := e.do(t, call{user: &bob, method: "GET", path: "servers"})
		l := decode[serverList](t, w)
		s := l.Servers[1]
		if s.OwnerDisplayName != "Alice Liddell" || s.URL != "/servers/alice/" || s.Mine {
			t.Errorf("got %+v, want alice's server at /servers/alice/ owned by Alice Liddell", s)
		}
	})

	t.Run("default server is created at first visit", func(t *testing.T) {
		newcomer := authz.User{Name: "nina", Org: "acme"}
		w := e.do(t, call{user: &newcomer, method: "GET", path: "servers"})
		l := decode[serverList](t, w)
		if len(l.Servers) != 1 || l.Servers[0].ID != "nina" || l.Active != "nina" {
			t.Errorf("got %+v, want nina's own server, active", l)
		}
	})
}

func TestServerDetails(t *testing.T) {
	e := newAPIEnv(t)
	e.grant(t, alice, "alice", "bob", false)
	e.grant(t, alice, "alice", "carol", true)

	tests := []struct {
		name       string
		user       authz.User
		id         string
		wantStatus int
		wantCode   string
		want       string // access, can_start_stop, can_share
	}{
		{"owner", alice, "alice", 200, "", "owner true true"},
		{"grantee", bob, "alice", 200, "", "use false false"},
		{"grantee with start/stop", carol, "alice", 200, "", "start_stop true false"},
		{"admin of the org", dave, "alice", 200, "", "admin true true"},
		{"stranger of the org", alice, "carol", 403, "no_access", ""},
		{"other org", eve, "alice", 403, "no_access", ""},
		{"missing server", alice, "nobody", 404, "no_server", ""},
		{"invalid id", alice, "a%20b", 400, "invalid", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.do(t, call{user: &tt.user, method: "GET", path: "servers/" + tt.id})
			if w.Code != tt.wantStatus {
				t.Fatalf("got %d, want %d: %s", w.Code, tt.wantStatus, w.Body)
			}
			if got := errorCode(t, w); got != tt.wantCode {
				t.Errorf("code: got %q, want %q", got, tt.wantCode)
			}
			if tt.want == "" {
				return
			}
			s := decode[server](t, w)
			got := strings.Join([]string{s.Access, bstr(s.CanStartStop), bstr(s.CanShare)}, " ")
			if got != tt.want || !s.CanUse {
				t.Errorf("got %s (can_use %v), want %s", got, s.CanUse, tt.want)
			}
			if s.State != "stopped" || s.Owner != "alice" {
				t.Errorf("got state %q owner %q, want stopped, alice", s.State, s.Owner)
			}
		})
	}
}

func bstr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func TestShares(t *testing.T) {
	e := newAPIEnv(t)
	e.grant(t, alice, "alice", "carol", true)
	e.grant(t, alice, "alice", "bob", false)

	tests := []struct {
		name       string
		user       authz.User
		wantStatus int
		wantCode   string
	}{
		{"owner", alice, 200, ""},
		{"admin", dave, 200, ""},
		{"grantee", bob, 403, "not_allowed"},
		{"other org", eve, 403, "not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.do(t, call{user: &tt.user, method: "GET", path: "servers/alice/shares"})
			if w.Code != tt.wantStatus {
				t.Fatalf("got %d, want %d: %s", w.Code, tt.wantStatus, w.Body)
			}
			if got := errorCode(t, w); got != tt.wantCode {
				t.Errorf("code: got %q, want %q", got, tt.wantCode)
			}
		})
	}

	t.Run("owner first, then grantees oldest first", func(t *testing.T) {
		w := e.do(t, call{user: &alice, method: "GET", path: "servers/alice/shares"})
		got := decode[struct{ People []person }](t, w).People
		var line []string
		for _, p := range got {
			line = append(line, p.User+":"+p.Role+":"+bstr(p.StartStop))
		}
		want := "alice:owner:false, carol:grantee:true, bob:grantee:false"
		if strings.Join(line, ", ") != want {
			t.Errorf("got %s, want %s", strings.Join(line, ", "), want)
		}
		if got[2].DisplayName != "Bob Builder" || got[2].GrantedBy != "alice" {
			t.Errorf("bob: got %+v, want Bob Builder granted by alice", got[2])
		}
	})
}

func TestPutShare(t *testing.T) {
	e := newAPIEnv(t)
	create := map[string]string{"If-None-Match": "*"}

	tests := []struct {
		name       string
		user       authz.User
		path       string
		body       string
		header     map[string]string
		wantStatus int
		wantCode   string
	}{
		{"grant", alice, "servers/alice/shares/bob", `{"start_stop":false}`, create, 201, ""},
		{"grant again only if new", alice, "servers/alice/shares/bob", `{"start_stop":true}`, create,
			412, "already_shared"},
		{"change", alice, "servers/alice/shares/bob", `{"start_stop":true}`, nil, 200, ""},
		{"admin grants", dave, "servers/alice/shares/carol", `{"start_stop":false,"expires_in":"24h"}`,
			create, 201, ""},
		{"grantee may not share", bob, "servers/alice/shares/carol", `{"start_stop":false}`, nil,
			403, "not_allowed"},
		{"stranger may not share", carol, "servers/bob/shares/alice", `{"start_stop":false}`, nil,
			403, "not_allowed"},
		{"unknown user", alice, "servers/alice/shares/zed", `{"start_stop":false}`, create,
			404, "unknown_user"},
		{"other org", alice, "servers/alice/shares/eve", `{"start_stop":false}`, create,
			403, "other_org"},
		{"self", alice, "servers/alice/shares/alice", `{"start_stop":false}`, create, 400, "self"},
		{"owner", dave, "servers/alice/shares/alice", `{"start_stop":false}`, create, 400, "owner"},
		{"missing server", alice, "servers/nobody/shares/bob", `{"start_stop":false}`, create,
			404, "no_server"},
		{"invalid user", alice, "servers/alice/shares/b%20b", `{"start_stop":false}`, create,
			400, "invalid"},
		{"no body", alice, "servers/alice/shares/bob", "", nil, 400, "invalid"},
		{"no start_stop", alice, "servers/alice/shares/bob", `{}`, nil, 400, "invalid"},
		{"unknown field", alice, "servers/alice/shares/bob", `{"start_stop":true,"admin":true}`, nil,
			400, "invalid"},
		{"bad expiry", alice, "servers/alice/shares/bob", `{"start_stop":true,"expires_in":"soon"}`, nil,
			400, "invalid"},
		{"expiry too long", alice, "servers/alice/shares/bob",
			`{"start_stop":true,"expires_in":"9000h"}`, nil, 400, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.do(t, call{user: &tt.user, method: "PUT", path: tt.path, body: tt.body,
				header: tt.header})
			if w.Code != tt.wantStatus {
				t.Fatalf("got %d, want %d: %s", w.Code, tt.wantStatus, w.Body)
			}
			if got := errorCode(t, w); got != tt.wantCode {
				t.Errorf("code: got %q, want %q", got, tt.wantCode)
			}
		})
	}

	t.Run("messages name the person", func(t *testing.T) {
		w := e.do(t, call{user: &alice, method: "PUT", path: "servers/alice/shares/eve",
			body: `{"start_stop":false}`})
		if !strings.Contains(w.Body.String(), "eve belongs to another organization") {
			t.Errorf("got %s, want a message naming eve", w.Body)
		}
	})

	t.Run("a change keeps the expiry unless given", func(t *testing.T) {
		w := e.do(t, call{user: &alice, method: "PUT", path: "servers/alice/shares/carol",
			body: `{"start_stop":true}`})
		p := decode[person](t, w)
		if want := e.clock.Now().Add(24 * time.Hour); !p.Expires.Equal(want) || !p.StartStop {
			t.Errorf("got %+v, want start_stop until %v", p, want)
		}
		w = e.do(t, call{user: &alice, method: "PUT", path: "servers/alice/shares/carol",
			body: `{"start_stop":true,"expires_in":"never"}`})
		if p := decode[person](t, w); !p.Expires.IsZero() {
			t.Errorf("expires: got %v, want never", p.Expires)
		}
	})

	t.Run("the grantee sees it at once", func(t *testing.T) {
		w := e.do(t, call{user: &bob, method: "GET", path: "servers/alice"})
		if s := decode[server](t, w); s.Access != "start_stop" {
			t.Errorf("bob's access: got %q, want start_stop", s.Access)
		}
	})
}

func TestRevokeAndLeave(t *testing.T) {
	e := newAPIEnv(t)
	e.grant(t, alice, "alice", "bob", false)
	e.grant(t, alice, "alice", "carol", false)

	tests := []struct {
		name       string
		user       authz.User
		method     string
		path       string
		wantStatus int
		wantCode   string
	}{
		{"grantee may not revoke", carol, "DELETE", "servers/alice/shares/bob", 403, "not_allowed"},
		{"owner revokes", alice, "DELETE", "servers/alice/shares/bob", 204, ""},
		{"revoke twice", alice, "DELETE", "servers/alice/shares/bob", 404, "no_grant"},
		{"revoked grantee is refused", bob, "GET", "servers/alice", 403, "no_access"},
		{"grantee leaves", carol, "DELETE", "shared-with-me/alice", 204, ""},
		{"leave twice", carol, "DELETE", "shared-with-me/alice", 404, "no_grant"},
		{"left grantee is refused", carol, "GET", "servers/alice", 403, "no_access"},
		{"leave invalid id", carol, "DELETE", "shared-with-me/a%7Bb", 400, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.do(t, call{user: &tt.user, method: tt.method, path: tt.path})
			if w.Code != tt.wantStatus {
				t.Fatalf("got %d, want %d: %s", w.Code, tt.wantStatus, w.Body)
			}
			if got := errorCode(t, w); got != tt.wantCode {
				t.Errorf("code: got %q, want %q", got, tt.wantCode)
			}
		})
	}

	t.Run("nobody is left with access", func(t *testing.T) {
		w := e.do(t, call{user: &alice, method: "GET", path: "servers/alice/shares"})
		if n := len(decode[struct{ People []person }](t, w).People); n != 1 {
			t.Errorf("people: got %d, want the owner alone", n)
		}
	})
}

func TestSearchUsers(t *testing.T) {
	e := newAPIEnv(t)
	ctx := context.Background()
	for _, n := range []string{"bo1", "bo2", "bo3", "bo4", "bo5", "bo6", "bo7", "bo8", "bo9", "bo10"} {
		if err := e.store.PutUser(ctx, authz.User{Name: n, Org: "acme"}); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name string
		user authz.User
		q    string
		want string // first names, or the count as "#n"
	}{
		{"prefix of a username", alice, "car", "carol"},
		{"word of a display name", alice, "builder", "bob"},
		{"not me", alice, "ali", ""},
		{"not another org", alice, "eve", ""},
		{"the other org's own", eve, "", ""},
		{"at most ten", alice, "bo", "#10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.do(t, call{user: &tt.user, method: "GET", path: "users?q=" + tt.q})
			if w.Code != http.StatusOK {
				t.Fatalf("got %d, want 200: %s", w.Code, w.Body)
			}
			users := decode[struct {
				Users []struct{ Name string }
			}](t, w).Users
			var names []string
			for _, u := range users {
				names = append(names, u.Name)
			}
			got := strings.Join(names, ",")
			if strings.HasPrefix(tt.want, "#") {
				got = "#" + strconv.Itoa(len(names))
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("too long", func(t *testing.T) {
		w := e.do(t, call{user: &alice, method: "GET", path: "users?q=" + strings.Repeat("a", 65)})
		if w.Code != http.StatusBadRequest {
			t.Errorf("got %d, want 400", w.Code)
		}
	})
}

func TestCSRF(t *testing.T) {
	e := newAPIEnv(t)
	e.grant(t, alice, "alice", "bob", false)
	path := "servers/alice/shares/bob"
	body := `{"start_stop":true}`

	tests := []struct {
		name       string
		header     map[string]string
		wantStatus int
	}{
		{"page's own call", nil, 200},
		{"no csrf header", map[string]string{"X-Studio-CSRF": ""}, 403},
		{"wrong csrf header", map[string]string{"X-Studio-CSRF": "yes"}, 403},
		{"foreign origin", map[string]string{"Origin": "https://evil.example"}, 403},
		{"origin of another port", map[string]string{"Origin": "https://studio.example.org:8443"}, 403},
		{"plain http origin", map[string]string{"Origin": "http://studio.example.org"}, 403},
		{"null origin", map[string]string{"Origin": "null"}, 403},
		{"default port is the same origin",
			map[string]string{"Origin": "https://studio.example.org:443"}, 200},
		{"referer when no origin", map[string]string{
			"Origin": "", "Referer": "https://studio.example.org/studio/"}, 200},
		{"foreign referer", map[string]string{
			"Origin": "", "Referer": "https://evil.example/studio/"}, 403},
		{"neither origin nor referer", map[string]string{"Origin": ""}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.do(t, call{user: &alice, method: "PUT", path: path, body: body, header: tt.header})
			if w.Code != tt.wantStatus {
				t.Fatalf("got %d, want %d: %s", w.Code, tt.wantStatus, w.Body)
			}
			if tt.wantStatus == 403 {
				if got := errorCode(t, w); got != "csrf" {
					t.Errorf("code: got %q, want csrf", got)
				}
			}
		})
	}

	t.Run("further allowed origins", func(t *testing.T) {
		h, err := studio.New(studio.Config{Authz: e.store, Registry: e.reg,
			ExternalURL: origin, AllowedOrigins: []string{"https://lab.example.org"}})
		if err != nil {
			t.Fatal(err)
		}
		for o, want := range map[string]int{
			"https://lab.example.org": 200, origin: 200, "https://evil.example": 403,
		} {
			r := httptest.NewRequest("PUT", origin+"/studio/api/"+path, strings.NewReader(body))
			r.Header.Set("Origin", o)
			r.Header.Set("X-Studio-CSRF", "1")
			r = r.WithContext(session.NewContext(r.Context(), &session.Session{User: alice}))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != want {
				t.Errorf("origin %s: got %d, want %d: %s", o, w.Code, want, w.Body)
			}
		}
	})

	t.Run("without an external url, the request's own origin", func(t *testing.T) {
		h, err := studio.New(studio.Config{Authz: e.store, Registry: e.reg})
		if err != nil {
			t.Fatal(err)
		}
		for o, want := range map[string]int{
			"http://127.0.0.1:8080": 200, "http://127.0.0.1:9090": 403, "https://127.0.0.1:8080": 403,
		} {
			r := httptest.NewRequest("PUT", "http://127.0.0.1:8080/studio/api/"+path,
				strings.NewReader(body))
			r.Header.Set("Origin", o)
			r.Header.Set("X-Studio-CSRF", "1")
			r = r.WithContext(session.NewContext(r.Context(), &session.Session{User: alice}))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != want {
				t.Errorf("origin %s: got %d, want %d: %s", o, w.Code, want, w.Body)
			}
		}
	})

	t.Run("every changing call is guarded", func(t *testing.T) {
		for _, c := range []call{
			{method: "PUT", path: path, body: body},
			{method: "DELETE", path: path},
			{method: "DELETE", path: "shared-with-me/alice"},
		} {
			c.user = &bob
			c.header = map[string]string{"Origin": "https://evil.example"}
			if w := e.do(t, c); w.Code != 403 || errorCode(t, w) != "csrf" {
				t.Errorf("%s %s: got %d %s, want 403 csrf", c.method, c.path, w.Code, w.Body)
			}
		}
		// nothing changed
		w := e.do(t, call{user: &bob, method: "GET", path: "servers/alice"})
		if w.Code != 200 {
			t.Errorf("bob's share: got %d, want it kept (200)", w.Code)
		}
	})
}

func TestRefusals(t *testing.T) {
	e := newAPIEnv(t)

	t.Run("signed out", func(t *testing.T) {
		for _, path := range []string{"me", "servers", "servers/alice"} {
			w := e.do(t, call{method: "GET", path: path})
			if w.Code != http.StatusUnauthorized || errorCode(t, w) != "signed_out" {
				t.Errorf("GET %s: got %d %s, want 401 signed_out", path, w.Code, w.Body)
			}
		}
	})

	t.Run("unknown endpoint", func(t *testing.T) {
		w := e.do(t, call{user: &alice, method: "GET", path: "nothing"})
		if w.Code != http.StatusNotFound || errorCode(t, w) != "not_found" {
			t.Errorf("got %d %s, want 404 not_found", w.Code, w.Body)
		}
	})

	t.Run("wrong method", func(t *testing.T) {
		w := e.do(t, call{user: &alice, method: "POST", path: "servers/alice/shares/bob"})
		if w.Code != http.StatusMethodNotAllowed || errorCode(t, w) != "method" {
			t.Errorf("got %d %s, want 405 method", w.Code, w.Body)
		}
		if got := w.Header().Get("Allow"); got != "PUT, DELETE" {
			t.Errorf("Allow: got %q, want \"PUT, DELETE\"", got)
		}
	})

	t.Run("redis down", func(t *testing.T) {
		e.redis.Stop()
		for _, c := range []call{
			{method: "GET", path: "servers"},
			{method: "GET", path: "servers/alice"},
			{method: "GET", path: "servers/alice/shares"},
			{method: "PUT", path: "servers/alice/shares/bob", body: `{"start_stop":true}`},
			{method: "DELETE", path: "servers/alice/shares/bob"},
			{method: "GET", path: "users?q=b"},
		} {
			c.user = &alice
			w := e.do(t, c)
			if w.Code != http.StatusServiceUnavailable || errorCode(t, w) != "unavailable" {
				t.Errorf("%s %s: got %d %s, want 503 unavailable", c.method, c.path, w.Code, w.Body)
			}
		}
	})
}

func TestNew(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	reg := backend.NewRegistry(rdb, backend.RegistryConfig{})
	store, err := authz.New(rdb, authz.Config{Owners: reg})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		cfg  studio.Config
		ok   bool
	}{
		{"defaults", studio.Config{Authz: store, Registry: reg}, true},
		{"own prefix", studio.Config{Prefix: "/lab/", Authz: store, Registry: reg}, true},
		{"prefix without slash", studio.Config{Prefix: "/lab", Authz: store, Registry: reg}, false},
		{"no share table", studio.Config{Registry: reg}, false},
		{"no registry", studio.Config{Authz: store}, false},
		{"bad external url", studio.Config{Authz: store, Registry: reg, ExternalURL: "studio"}, false},
		{"bad allowed origin", studio.Config{Authz: store, Registry: reg,
			ExternalURL: origin, AllowedOrigins: []string{"null"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := studio.New(tt.cfg)
			if (err == nil) != tt.ok {
				t.Errorf("got err %v, want ok %v", err, tt.ok)
			}
		})
	}
}
