package proxy

import (
	"context"

	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/session"
)

// who is the signed-in person of a request.
type who struct {
	user authz.User
	// session names the login session as events do (its hashed id).
	session string
}

// signedIn returns who signed in, from the context Sessions.Require
// filled.
func signedIn(ctx context.Context) (who, bool) {
	s := session.FromContext(ctx)
	if s == nil || s.User.Name == "" {
		return who{}, false
	}
	return who{user: s.User, session: s.ID}, true
}
