package session

import (
	"errors"
	"net/http"
	"net/url"
)

// serveLogout signs out. GET shows a page with a sign-out button; the
// POST it sends does the work, and only from this proxy's own pages: a
// link elsewhere cannot sign people out.
func (m *Manager) serveLogout(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		m.renderPage(w, http.StatusOK, page{
			Title:      "Sign out",
			Message:    "Sign out of the Studio?",
			Form:       m.cfg.PathPrefix + "logout",
			FormButton: "Sign out",
		})
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		m.refuse(w, http.StatusMethodNotAllowed, "method_not_allowed",
			"Sign out", "Use the sign-out button.", "")
		return
	}
	if !m.sameOrigin(r) {
		m.renderPage(w, http.StatusForbidden, page{
			Title:    "Sign out",
			Message:  "Sign out from the Studio's own page.",
			Code:     "cross_origin",
			Link:     m.cfg.PathPrefix + "logout",
			LinkText: "Sign out",
		})
		return
	}

	ctx := r.Context()
	c, err := r.Cookie(m.sessionCookie)
	id, ok := []byte(nil), false
	if err == nil {
		id, ok = parseID(c.Value)
	}
	if !ok {
		m.clearCookie(w)
		seeOther(w, m.signedOutURL())
		return
	}

	// read the session for its user and ID token, then end it everywhere
	hash := hashID(id)
	st, err := m.load(ctx, hash)
	if errors.Is(err, errNoSession) {
		m.cache.drop(hash)
		m.clearCookie(w)
		seeOther(w, m.signedOutURL())
		return
	}
	if err == nil {
		err = m.remove(ctx, hash, st.rec.User.Name, "logout")
	}
	if err != nil {
		// the cookie stays, so that signing out can be tried again
		m.log.Warn("signing out", "err", err)
		m.unavailablePage(w)
		return
	}
	m.clearCookie(w)

	// and at the provider, when it has an end-session endpoint
	hint := ""
	if t, err := unseal(id, hash, st.rec.Sealed); err == nil {
		hint = t.ID
	}
	seeOther(w, m.endSessionURL(hint))
}

// sameOrigin reports whether a state-changing request comes from this
// proxy's own pages: by its Origin header, or else by Sec-Fetch-Site. A
// request with neither is refused.
func (m *Manager) sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		return o == m.cfg.ExternalURL
	}
	return r.Header.Get("Sec-Fetch-Site") == "same-origin"
}

func (m *Manager) signedOutURL() string { return m.cfg.PathPrefix + "signed-out" }

// endSessionURL is where the browser goes after signing out here: the
// provider's end-session endpoint, which sends it back to the signed-out
// page, or that page directly.
func (m *Manager) endSessionURL(idTokenHint string) string {
	if m.endSession == "" {
		return m.signedOutURL()
	}
	u, err := url.Parse(m.endSession)
	if err != nil {
		return m.signedOutURL()
	}
	q := u.Query()
	if idTokenHint != "" {
		q.Set("id_token_hint", idTokenHint)
	}
	q.Set("client_id", m.cfg.ClientID)
	q.Set("post_logout_redirect_uri", m.cfg.ExternalURL+m.signedOutURL())
	u.RawQuery = q.Encode()
	return u.String()
}

func (m *Manager) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name:     m.sessionCookie,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   m.secure,
		SameSite: http.SameSiteLaxMode,
	})
}

func (m *Manager) serveSignedOut(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	m.renderPage(w, http.StatusOK, page{
		Title:    "Signed out",
		Message:  "You are signed out of the Studio.",
		Link:     m.cfg.PathPrefix + "login",
		LinkText: "Sign in again",
	})
}

func seeOther(w http.ResponseWriter, location string) {
	w.Header().Set("Location", location)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusSeeOther)
}
