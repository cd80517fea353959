package studio_test

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/session"
	"github.com/studio-proxy/studio-proxy/studio"
)

func TestPage(t *testing.T) {
	e := newAPIEnv(t)
	get := func(
		t *testing.T,
		path string,
		user *authz.User,
		header ...string,
	) *httptest.ResponseRecorder {
		t.Helper()
		r := httptest.NewRequest("GET", "https://studio.example.org"+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		if user != nil {
			r = r.WithContext(session.NewContext(r.Context(), &session.Session{User: *user}))
		}
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		return w
	}

	tests := []struct {
		name        string
		path        string
		user        *authz.User
		wantStatus  int
		wantType    string
		wantContent string
	}{
		{"home", "/studio/", &alice, 200, "text/html; charset=utf-8", `src="/studio/static/app.js?v=`},
		{"home signed out", "/studio/", nil, 401, "application/json; charset=utf-8", "signed_out"},
		{"script", "/studio/static/app.js", &alice, 200, "text/javascript; charset=utf-8",
			"mountSwitcher"},
		{"style", "/studio/static/studio.css", &alice, 200, "text/css; charset=utf-8", ".switcher"},
		{"icon", "/studio/static/favicon.svg", &alice, 200, "image/svg+xml", "<svg"},
		{"missing asset", "/studio/static/nope.js", &alice, 404, "", ""},
		{"other page", "/studio/elsewhere", &alice, 404, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := get(t, tt.path, tt.user)
			if w.Code != tt.wantStatus {
				t.Fatalf("got %d, want %d: %s", w.Code, tt.wantStatus, w.Body)
			}
			if tt.wantType != "" && w.Header().Get("Content-Type") != tt.wantType {
				t.Errorf("Content-Type: got %q, want %q", w.Header().Get("Content-Type"), tt.wantType)
			}
			if !strings.Contains(w.Body.String(), tt.wantContent) {
				t.Errorf("body does not contain %q", tt.wantContent)
			}
		})
	}

	t.Run("locked down", func(t *testing.T) {
		w := get(t, "/studio/", &alice)
		csp := w.Header().Get("Content-Security-Policy")
		for _, want := range []string{
			"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'",
		} {
			if !strings.Contains(csp, want) {
				t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
			}
		}
		if strings.Contains(w.Body.String(), "http://") || strings.Contains(w.Body.String(), "https://") {
			t.Errorf("page refers to an external resource")
		}
	})

	t.Run("revalidated by etag", func(t *testing.T) {
		w := get(t, "/studio/static/app.js", &alice)
		etag := w.Header().Get("ETag")
		if etag == "" {
			t.Fatal("no ETag")
		}
		if w := get(t, "/studio/static/app.js", &alice, "If-None-Match", etag); w.Code != 304 {
			t.Errorf("got %d, want 304", w.Code)
		}
	})

	t.Run("own prefix", func(t *testing.T) {
		h, err := studio.New(studio.Config{Prefix: "/lab/", Authz: e.store, Registry: e.reg})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("GET", "/lab/", nil)
		r = r.WithContext(session.NewContext(r.Context(), &session.Session{User: alice}))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		body := w.Body.String()
		if !strings.Contains(body, `content="/lab/"`) || !strings.Contains(body, `/lab/static/app.js`) {
			t.Errorf("page under /lab/ does not use its prefix: %s", body)
		}
	})
}

// TestPageWiring checks what a browser would only find at run time: every
// module a script imports exists, and every element a script looks up by
// id is in the page.
func TestPageWiring(t *testing.T) {
	html, err := os.ReadFile("web/index.html")
	if err != nil {
		t.Fatal(err)
	}
	scripts, err := filepath.Glob("web/static/*.js")
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	ids := map[string]bool{}
	for _, m := range regexp.MustCompile(`\bid="([^"]+)"`).FindAllStringSubmatch(string(html), -1) {
		ids[m[1]] = true
	}
	imports := regexp.MustCompile(`from "\./([^"]+)"`)
	lookups := regexp.MustCompile(`\$\("([^"]+)"\)`)

	for _, path := range scripts {
		t.Run(filepath.Base(path), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range imports.FindAllStringSubmatch(string(src), -1) {
				if _, err := os.Stat(filepath.Join("web/static", m[1])); err != nil {
					t.Errorf("imports %s, which does not exist", m[1])
				}
			}
			for _, m := range lookups.FindAllStringSubmatch(string(src), -1) {
				if !ids[m[1]] {
					t.Errorf("looks up #%s, which the page does not have", m[1])
				}
			}
		})
	}
}
