package studio

import (
	"net/http"

	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/session"
)

// signedIn returns the user the session middleware put in the request
// context, or false when there is none.
func signedIn(r *http.Request) (authz.User, bool) {
	s := session.FromContext(r.Context())
	if s == nil || s.User.Name == "" {
		return authz.User{}, false
	}
	return s.User, true
}
