package studio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/backend"
	"github.com/studio-proxy/studio-proxy/internal/ident"
)

// apiError is an answer that refuses a request: its HTTP status, a stable
// code the page branches on, and a sentence a person can act on.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

// Refusals of this package's own making.
var (
	errSignedOut = &apiError{
		status:  http.StatusUnauthorized,
		code:    "signed_out",
		message: "You are signed out. Reload the page to sign in again.",
	}

	// errNoAccess: the user may not use the server (never shared, revoked
	// or expired).
	errNoAccess = errors.New("no access to server")

	// errAlreadyShared: a grant exists where the caller asked for a new
	// one (If-None-Match: *).
	errAlreadyShared = errors.New("server already shared with user")
)

// op names what the user was doing, so that one error reads right in
// each place it can come from.
type op int

const (
	opView op = iota
	opShare
	opRevoke
	opLeave
	opEndSessions
)

// about is an error with the names its message needs.
type about struct {
	err    error
	op     op
	server string // server id
	user   string // the other user (grantee), if any
}

func (a *about) Error() string { return a.err.Error() }
func (a *about) Unwrap() error { return a.err }

// refuse adds to err what the user was doing and with which names.
func refuse(err error, o op, server, user string) error {
	if err == nil {
		return nil
	}
	return &about{err: err, op: o, server: server, user: user}
}

// answer maps err to the answer the browser gets. It is the one place
// where errors of authz, backend and ident become status codes.
func answer(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	a := &about{}
	errors.As(err, &a)
	user := a.user
	if user == "" {
		user = "this user"
	}

	switch {
	case errors.Is(err, ident.ErrInvalid), errors.Is(err, authz.ErrInvalidInput):
		return &apiError{http.StatusBadRequest, "invalid", sentence(detail(err))}

	case errors.Is(err, authz.ErrUnknownUser):
		return &apiError{http.StatusNotFound, "unknown_user", fmt.Sprintf(
			"There is no user named %q. Check the spelling; "+
				"a person can be found here once they have signed in to Studio.", user)}

	case errors.Is(err, authz.ErrOtherOrg):
		return &apiError{http.StatusForbidden, "other_org", fmt.Sprintf(
			"%s belongs to another organization. "+
				"Servers can be shared only within your organization.", user)}

	case errors.Is(err, authz.ErrSelf):
		return &apiError{http.StatusBadRequest, "self",
			"You cannot share a server with yourself: you already have access to it."}

	case errors.Is(err, authz.ErrOwner):
		return &apiError{http.StatusBadRequest, "owner", fmt.Sprintf(
			"%s owns this server and always has full access to it.", user)}

	case errors.Is(err, authz.ErrNotAllowed):
		return &apiError{http.StatusForbidden, "not_allowed",
			"Only the owner of this server or an admin of its organization " +
				"can change who has access to it."}

	case errors.Is(err, errNoAccess):
		return &apiError{http.StatusForbidden, "no_access",
			"You do not have access to this server. " +
				"Its owner may have removed your access, or it was never shared with you."}

	case errors.Is(err, authz.ErrNoServer), errors.Is(err, backend.ErrNotFound):
		if a.server == "" {
			return &apiError{http.StatusNotFound, "no_server",
				"There is no such server. It may have been deleted."}
		}
		return &apiError{http.StatusNotFound, "no_server", fmt.Sprintf(
			"There is no server %q. It may have been deleted.", a.server)}

	case errors.Is(err, authz.ErrNoGrant) && a.op == opLeave:
		return &apiError{http.StatusNotFound, "no_grant",
			"This server is not shared with you, so there is nothing to leave."}

	case errors.Is(err, authz.ErrNoGrant):
		return &apiError{http.StatusNotFound, "no_grant", fmt.Sprintf(
			"%s has no access to this server; reload the list to see who has.", user)}

	case errors.Is(err, errAlreadyShared):
		return &apiError{http.StatusPreconditionFailed, "already_shared", fmt.Sprintf(
			"This server is already shared with %s. "+
				"Change their permission in the list below.", user)}
	}

	// The share table or the registry could not answer: Redis is down,
	// too slow or cut off. Deny until it is back.
	if unreachable(err) {
		return &apiError{http.StatusServiceUnavailable, "unavailable",
			"Studio cannot reach its database right now. Try again in a moment."}
	}
	return &apiError{http.StatusInternalServerError, "internal",
		"Something went wrong in Studio. Try again; if it keeps failing, " +
			"tell your administrator what you were doing."}
}

// unreachable reports whether err says that Redis could not be reached
// or did not answer in time.
func unreachable(err error) bool {
	var nerr net.Error
	return errors.As(err, &nerr) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, redis.ErrClosed) ||
		errors.Is(err, redis.ErrPoolTimeout)
}

// writeError answers the request with err as JSON, logging what a
// maintainer needs to know.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := answer(err)
	user := ""
	if me, ok := signedIn(r); ok {
		user = me.Name
	}
	if ae.status >= 500 {
		h.log.Error("studio api failed",
			"method", r.Method, "path", r.URL.Path, "user", user,
			"status", ae.status, "err", err)
	} else {
		h.log.Debug("studio api refused",
			"method", r.Method, "path", r.URL.Path, "user", user,
			"status", ae.status, "code", ae.code)
	}

	body := struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{}
	body.Error.Code, body.Error.Message = ae.code, ae.message
	writeJSON(w, ae.status, body)
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	enc.Encode(v)
}

// detail returns the most specific part of an error chain's text: what
// follows the last sentinel's words ("invalid name: username is empty"
// gives "username is empty").
func detail(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}

// sentence capitalizes s and ends it with a full stop.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return "The request is not valid."
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}
