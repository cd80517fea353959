package studio_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/studio-proxy/studio-proxy/internal/testenv"
	"github.com/studio-proxy/studio-proxy/studio"
)

// TestEndSessions signs people out through the API, on the whole stack:
// the dev provider, the proxy with its session cache, real Redis.
func TestEndSessions(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Studio: true})
	base := env.Replicas[0].URL
	api := base + env.Prefix + "api/"
	send := func(c *http.Client, method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, api+path, nil)
		req.Header.Set("Accept", "application/json")
		if method != http.MethodGet {
			req.Header.Set("Origin", base)
			req.Header.Set(studio.CSRFHeader, "1")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		var body struct {
			Error struct{ Code string } `json:"error"`
			Ended int                   `json:"ended"`
		}
		json.NewDecoder(resp.Body).Decode(&body)
		if body.Error.Code != "" {
			return resp.StatusCode, body.Error.Code
		}
		return resp.StatusCode, ""
	}

	bob := env.Login(t, "bob")
	alice := env.Login(t, "alice")
	carol := env.Login(t, "carol") // admin of acme
	mallory := env.Login(t, "mallory")

	tests := []struct {
		name     string
		who      *http.Client
		target   string
		want     int
		wantCode string
	}{
		{"a colleague may not", alice, "bob", http.StatusForbidden, "not_allowed"},
		{"a colleague learns nothing of unknown users", alice, "nobody",
			http.StatusForbidden, "not_allowed"},
		{"another organization may not", mallory, "bob", http.StatusForbidden, "not_allowed"},
		{"an admin of another organization may not", carol, "mallory",
			http.StatusForbidden, "not_allowed"},
		{"an admin gets unknown users named", carol, "nobody",
			http.StatusNotFound, "unknown_user"},
		{"a malformed name", carol, "bo%7Bb", http.StatusBadRequest, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, code := send(tt.who, http.MethodDelete, "users/"+tt.target+"/sessions")
			if status != tt.want || code != tt.wantCode {
				t.Fatalf("got %d %q, want %d %q", status, code, tt.want, tt.wantCode)
			}
		})
	}
	if status, _ := send(bob, http.MethodGet, "me"); status != http.StatusOK {
		t.Fatalf("bob after refused attempts: got %d, want 200", status)
	}

	t.Run("an admin signs a colleague out", func(t *testing.T) {
		if status, code := send(carol, http.MethodDelete, "users/bob/sessions"); status != 200 {
			t.Fatalf("got %d %q, want 200", status, code)
		}
		if status, code := send(bob, http.MethodGet, "me"); status != http.StatusUnauthorized {
			t.Fatalf("bob afterwards: got %d %q, want 401 signed_out", status, code)
		}
	})
	t.Run("anyone signs themselves out everywhere", func(t *testing.T) {
		if status, code := send(alice, http.MethodDelete, "users/alice/sessions"); status != 200 {
			t.Fatalf("got %d %q, want 200", status, code)
		}
		if status, _ := send(alice, http.MethodGet, "me"); status != http.StatusUnauthorized {
			t.Fatalf("alice afterwards: got %d, want 401", status)
		}
	})
}
