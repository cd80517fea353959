// Package session signs people in with OpenID Connect and keeps their
// login sessions in Redis: it answers "who is this?" for every request.
//
// A Manager serves the sign-in routes under the proxy's reserved prefix
// (login, callback, logout, signed-out), turns a session cookie into a
// Session with Authenticate, and guards handlers with Require. The cookie
// holds only a random session id; Redis holds the session under a hash of
// that id. Sessions are cached in each replica and dropped from every
// cache by the events channel; see docs/sessions.md.
package session
