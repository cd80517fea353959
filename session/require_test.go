package session

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestNavigationOrAPI(t *testing.T) {
	m := &Manager{cfg: Config{PathPrefix: "/studio/"}}
	html := "text/html,application/xhtml+xml,*/*;q=0.8"
	cases := []struct {
		name    string
		method  string
		path    string
		headers map[string]string
		want    bool
	}{
		{"page load", "GET", "/lab", map[string]string{"Accept": html}, true},
		{"page load with fetch metadata", "GET", "/lab", map[string]string{
			"Accept": html, "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}, true},
		{"iframe", "GET", "/lab", map[string]string{
			"Accept": html, "Sec-Fetch-Mode": "nested-navigate", "Sec-Fetch-Dest": "iframe"}, true},
		{"HEAD", "HEAD", "/lab", map[string]string{"Accept": html}, true},
		{"studio page", "GET", "/studio/", map[string]string{"Accept": html}, true},

		{"POST", "POST", "/lab", map[string]string{"Accept": html}, false},
		{"proxy API", "GET", "/studio/api/me", map[string]string{"Accept": html}, false},
		{"JSON", "GET", "/api/contents", map[string]string{"Accept": "application/json"}, false},
		{"no Accept", "GET", "/lab", nil, false},
		{"any", "GET", "/lab", map[string]string{"Accept": "*/*"}, false},
		{"XHR", "GET", "/lab", map[string]string{
			"Accept": html, "X-Requested-With": "XMLHttpRequest"}, false},
		{"fetch cors", "GET", "/lab", map[string]string{"Accept": html, "Sec-Fetch-Mode": "cors"}, false},
		{"fetch same-origin", "GET", "/lab", map[string]string{
			"Accept": html, "Sec-Fetch-Mode": "same-origin"}, false},
		{"script", "GET", "/lab/main.js", map[string]string{
			"Accept": html, "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "script"}, false},
		{"websocket", "GET", "/api/kernels/1/channels", map[string]string{
			"Accept": html, "Connection": "keep-alive, Upgrade", "Upgrade": "websocket"}, false},
		{"websocket fetch mode", "GET", "/terminals/websocket/1", map[string]string{
			"Sec-Fetch-Mode": "websocket", "Upgrade": "websocket", "Connection": "Upgrade"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			if got := m.isNavigation(r); got != tc.want {
				t.Errorf("got navigation %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSignedOutAnswers(t *testing.T) {
	m := &Manager{cfg: Config{PathPrefix: "/studio/"}, sessionCookie: "studio_session"}

	t.Run("navigation", func(t *testing.T) {
		r := httptest.NewRequest("GET", "/lab/tree?x=1", nil)
		r.Header.Set("Accept", "text/html")
		w := httptest.NewRecorder()
		m.SignedOut(w, r)
		loc := w.Header().Get("Location")
		if w.Code != http.StatusFound || loc != "/studio/login?rd=%2Flab%2Ftree%3Fx%3D1" {
			t.Errorf("got %d Location %q, want 302 to the login with rd", w.Code, loc)
		}
		if w.Header().Get("Set-Cookie") != "" {
			t.Error("got a Set-Cookie for a request without a cookie")
		}
	})
	t.Run("api with a stale cookie", func(t *testing.T) {
		r := httptest.NewRequest("GET", "/studio/api/me", nil)
		r.AddCookie(&http.Cookie{Name: "studio_session", Value: "stale"})
		w := httptest.NewRecorder()
		m.SignedOut(w, r)
		if w.Code != http.StatusUnauthorized || jsonErrorCode(t, w.Body.String()) != "signed_out" {
			t.Errorf("got %d %s, want 401 signed_out", w.Code, w.Body)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("got content type %q, want application/json", ct)
		}
		c := w.Result().Cookies()
		if len(c) != 1 || c[0].Name != "studio_session" || c[0].MaxAge >= 0 {
			t.Errorf("got cookies %v, want the stale session cookie cleared", c)
		}
	})
}
