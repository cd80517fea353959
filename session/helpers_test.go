package session

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/internal/events"
	"github.com/studio-proxy/studio-proxy/internal/redistest"
	"github.com/studio-proxy/studio-proxy/internal/testclock"
)

// newClock returns a settable clock for a Manager; it starts at the real
// time, so that tokens of a real provider verify.
func newClock() *testclock.Clock { return testclock.New(time.Now()) }

// noServers answers that no server exists: the sign-in tests need the
// user directory of authz.Store, not its share table.
type noServers struct{}

func (noServers) Owner(ctx context.Context, server string) (string, error) { return "", nil }

// directory returns the real user directory on r.
func (r *testRedis) directory(t *testing.T) *authz.Store {
	t.Helper()
	st, err := authz.New(r.rdb, authz.Config{Owners: noServers{}, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// directoryUser reads a user from the directory, failing the test when
// it cannot.
func directoryUser(t *testing.T, st *authz.Store, name string) authz.User {
	t.Helper()
	u, err := st.User(context.Background(), name)
	if err != nil {
		t.Fatalf("reading %s from the directory: %v", name, err)
	}
	return u
}

// logBuf collects log lines for assertions on refusal reasons.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// lateHandler lets a test server start before its handler exists: the
// Manager needs the server's URL to be made.
type lateHandler struct {
	mu sync.Mutex
	h  http.Handler
}

func (l *lateHandler) set(h http.Handler) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.h = h
}

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	h := l.h
	l.mu.Unlock()
	if h == nil {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	h.ServeHTTP(w, r)
}

// testRedis is a private redis-server with a subscriber per replica.
type testRedis struct {
	srv *redistest.Server
	rdb redis.UniversalClient
}

func startRedis(t *testing.T) *testRedis {
	t.Helper()
	srv := redistest.Start(t)
	return &testRedis{srv: srv, rdb: srv.Client()}
}

// subscriber starts an events subscriber and waits until it is
// subscribed.
func (r *testRedis) subscriber(t *testing.T) *events.Subscriber {
	t.Helper()
	sub := events.NewSubscriber(r.rdb, events.Channel(DefaultKeyPrefix), slog.New(slog.DiscardHandler))
	sub.PingInterval = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sub.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-sub.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("events subscriber not ready")
	}
	return sub
}

// recorder collects the events published on the channel.
type recorder struct {
	ch chan events.Event
}

func (r *testRedis) recorder(t *testing.T) *recorder {
	t.Helper()
	rec := &recorder{ch: make(chan events.Event, 100)}
	sub := r.subscriber(t)
	sub.OnEvent(func(ev events.Event) {
		select {
		case rec.ch <- ev:
		default:
		}
	})
	return rec
}

// wait returns the first event of kind, failing after a generous
// deadline.
func (r *recorder) wait(t *testing.T, kind events.Kind) events.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-r.ch:
			if ev.Kind == kind {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s event published", kind)
		}
	}
}

// proxy is a test proxy: the Manager's routes, and a protected handler
// that answers with who the request is.
type proxy struct {
	srv  *httptest.Server
	late *lateHandler
	m    *Manager
	log  *logBuf
}

type whoami struct {
	User  string `json:"user"`
	Name  string `json:"name"`
	Org   string `json:"org"`
	Admin bool   `json:"admin"`
	Path  string `json:"path"`
	ID    string `json:"id"`
}

func protected(w http.ResponseWriter, r *http.Request) {
	s := FromContext(r.Context())
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(whoami{
		User: s.User.Name, Name: s.User.DisplayName, Org: s.User.Org, Admin: s.User.Admin,
		Path: r.URL.RequestURI(), ID: s.ID,
	})
}

// newProxy starts a test proxy's server (https when tls); start makes
// its Manager.
func newProxy(t *testing.T, tls bool) *proxy {
	t.Helper()
	late := &lateHandler{}
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(late)
	} else {
		srv = httptest.NewServer(late)
	}
	t.Cleanup(srv.Close)
	return &proxy{srv: srv, late: late, log: &logBuf{}}
}

// start makes the proxy's Manager: cfg gets ExternalURL and a logger set
// and fills in the rest.
func (p *proxy) start(t *testing.T, r *testRedis, cfg func(*Config)) *proxy {
	t.Helper()
	c := Config{
		ExternalURL: p.srv.URL,
		Log:         slog.New(slog.NewTextHandler(p.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	cfg(&c)
	m, err := New(context.Background(), r.rdb, c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	p.m = m

	mux := http.NewServeMux()
	for _, path := range m.Paths() {
		mux.Handle(path, m.Handler())
	}
	mux.Handle("/", m.Require(http.HandlerFunc(protected)))
	p.late.set(mux)
	return p
}

// url returns the proxy's URL for path.
func (p *proxy) url(path string) string { return p.srv.URL + path }

// browser is a client with a cookie jar that records every response on
// its way, redirects included.
type browser struct {
	t      *testing.T
	client *http.Client
	jar    *cookiejar.Jar

	mu    sync.Mutex
	trail []*http.Response
}

type recordingTransport struct {
	b    *browser
	next http.RoundTripper
}

func (rt recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.next.RoundTrip(req)
	if err == nil {
		rt.b.mu.Lock()
		rt.b.trail = append(rt.b.trail, resp)
		rt.b.mu.Unlock()
	}
	return resp, err
}

// newBrowser returns a browser; transport nil means the default one.
func newBrowser(t *testing.T, transport http.RoundTripper) *browser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	if transport == nil {
		transport = http.DefaultTransport
	}
	b := &browser{t: t, jar: jar}
	b.client = &http.Client{
		Jar:       jar,
		Transport: recordingTransport{b: b, next: transport},
		Timeout:   20 * time.Second,
	}
	return b
}

// noFollow returns a client sharing the jar that stops at redirects.
func (b *browser) noFollow() *http.Client {
	c := *b.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func (b *browser) resetTrail() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trail = nil
}

// trailResponses returns the responses recorded since the last reset.
func (b *browser) trailResponses() []*http.Response {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*http.Response(nil), b.trail...)
}

// navigate GETs u as a browser loading a page, following redirects.
func (b *browser) navigate(u string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	return b.do(b.client, req)
}

// api GETs u as a script would.
func (b *browser) api(u string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	return b.do(b.client, req)
}

func (b *browser) do(c *http.Client, req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// cookie returns the value of the named cookie the jar holds for u.
func (b *browser) cookie(u, name string) string {
	pu, _ := url.Parse(u)
	for _, c := range b.jar.Cookies(pu) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

var (
	formIDRe = regexp.MustCompile(`name="id" value="([^"]*)"`)
	codeRe   = regexp.MustCompile(`data-code="([^"]*)"`)
)

// signInDev completes the development provider's login page the browser
// is on (page, at resp.Request.URL) as user, following every redirect.
func (b *browser) signInDev(
	resp *http.Response,
	page, user, password string,
) (*http.Response, string) {
	b.t.Helper()
	m := formIDRe.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("not on the provider's login page (%s): %.300s", resp.Request.URL, page)
	}
	form := url.Values{"id": {m[1]}, "username": {user}, "password": {password}, "action": {"login"}}
	return b.postForm(b.client, resp.Request.URL.String(), form)
}

// postForm posts a form as a browser does.
func (b *browser) postForm(c *http.Client, u string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	return b.do(c, req)
}

// withCookie GETs u with the given session cookie (and no other), as
// accept.
func (b *browser) withCookie(c *http.Client, u, cookie, accept string) (*http.Response, string) {
	b.t.Helper()
	return b.do(c, cookieRequest(b.t, u, "studio_session", cookie, accept))
}

// pageCode returns the refusal code of a sign-in page, or "".
func pageCode(body string) string {
	m := codeRe.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

// decodeWhoami decodes the protected handler's answer.
func decodeWhoami(t *testing.T, resp *http.Response, body string) whoami {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got status %d at %s, want 200: %.400s", resp.StatusCode, resp.Request.URL, body)
	}
	var w whoami
	if err := json.Unmarshal([]byte(body), &w); err != nil {
		t.Fatalf("decoding whoami at %s: %v: %.300s", resp.Request.URL, err, body)
	}
	return w
}

// jsonErrorCode returns the code of an API error body.
func jsonErrorCode(t *testing.T, body string) string {
	t.Helper()
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("decoding error body: %v: %.300s", err, body)
	}
	if e.Error.Message == "" {
		t.Errorf("error %q has no message", e.Error.Code)
	}
	return e.Error.Code
}

// sessionExists reports whether Redis holds the session of a cookie value.
func sessionExists(t *testing.T, r *testRedis, cookie string) bool {
	t.Helper()
	id, ok := parseID(cookie)
	if !ok {
		t.Fatalf("cookie %q is not a session id", cookie)
	}
	n, err := r.rdb.Exists(context.Background(), keys{DefaultKeyPrefix}.session(hashID(id))).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cookieRequest builds a request carrying a session cookie.
func cookieRequest(t *testing.T, u, name, value, accept string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: name, Value: value})
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	return req
}

func userNamed(name string) authz.User { return authz.User{Name: name} }
