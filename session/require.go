package session

import (
	"errors"
	"net/http"
	"strings"
)

// Require runs next for signed-in requests only, with the Session in the
// request's context (FromContext). A browser navigation that is not
// signed in is sent to sign in and back; an API call, XHR or websocket
// upgrade gets 401 JSON. When sessions cannot be checked it answers 503.
func (m *Manager) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := m.Authenticate(r)
		if err == nil {
			next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), s)))
			return
		}
		if errors.Is(err, ErrSignedOut) {
			m.SignedOut(w, r)
			return
		}
		m.log.Warn("sessions unavailable", "err", err)
		m.Unavailable(w, r)
	})
}

// SignedOut answers a request that needs a session and has none: a
// browser navigation is redirected to sign in and then back to where it
// was going, anything else gets 401 JSON. A stale session cookie is
// cleared.
func (m *Manager) SignedOut(w http.ResponseWriter, r *http.Request) {
	if _, err := r.Cookie(m.sessionCookie); err == nil {
		m.clearCookie(w)
	}
	if m.isNavigation(r) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Location", m.LoginURL(r.URL.RequestURI()))
		w.WriteHeader(http.StatusFound)
		return
	}
	writeJSONError(w, http.StatusUnauthorized, "signed_out",
		"You are not signed in. Sign in at "+m.cfg.PathPrefix+"login and try again.")
}

// Unavailable answers a request whose session cannot be checked right
// now: 503, as a page for a browser navigation and as JSON otherwise.
func (m *Manager) Unavailable(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", "5")
	if m.isNavigation(r) {
		m.unavailablePage(w)
		return
	}
	writeJSONError(w, http.StatusServiceUnavailable, "unavailable",
		"Sign-in cannot be checked right now. Try again in a moment.")
}

// isNavigation reports whether r is a browser loading a page (which can
// follow a redirect to sign in) rather than a script, an API client or a
// websocket (which need a status they can act on).
func (m *Manager) isNavigation(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if strings.HasPrefix(r.URL.Path, m.cfg.PathPrefix+"api/") {
		return false
	}
	if headerHasToken(r.Header, "Connection", "upgrade") || r.Header.Get("Upgrade") != "" {
		return false
	}
	if r.Header.Get("X-Requested-With") != "" {
		return false
	}
	switch r.Header.Get("Sec-Fetch-Mode") {
	case "", "navigate", "nested-navigate":
	default:
		return false
	}
	if d := r.Header.Get("Sec-Fetch-Dest"); d != "" && d != "document" && d != "iframe" {
		return false
	}
	return strings.Contains(strings.ToLower(strings.Join(r.Header.Values("Accept"), ",")), "text/html")
}

// headerHasToken reports whether a comma-separated header holds token,
// case-insensitively.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
