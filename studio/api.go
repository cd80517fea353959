package studio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/backend"
	"github.com/studio-proxy/studio-proxy/internal/ident"
)

// maxSuggestions is how many colleagues GET users returns at most.
const maxSuggestions = 10

// maxExpiresIn is the longest a share can be granted for, short of never.
const maxExpiresIn = 366 * 24 * time.Hour

// meView is the signed-in user as GET me returns them.
type meView struct {
	Name          string `json:"name"`
	DisplayName   string `json:"display_name,omitempty"`
	Email         string `json:"email,omitempty"`
	Org           string `json:"org"`
	Admin         bool   `json:"admin"`
	DefaultServer string `json:"default_server"`
	LogoutURL     string `json:"logout_url"`
}

// serverView is a server as the page shows it, with what the signed-in
// user may do with it.
type serverView struct {
	ID               string        `json:"id"`
	Name             string        `json:"name"`
	Label            string        `json:"label"`
	Owner            string        `json:"owner"`
	OwnerDisplayName string        `json:"owner_display_name,omitempty"`
	State            backend.State `json:"state"`
	Reason           string        `json:"reason,omitempty"`
	URL              string        `json:"url"`
	Mine             bool          `json:"mine"`
	Active           bool          `json:"active"`
	// Access is "owner", "admin", "start_stop" (a share with Start/Stop
	// Enabled) or "use" (Start/Stop Disabled).
	Access       string `json:"access"`
	CanUse       bool   `json:"can_use"`
	CanStartStop bool   `json:"can_start_stop"`
	CanShare     bool   `json:"can_share"`
	// Expires is when the user's share ends by itself; zero for never and
	// for owners and admins.
	Expires time.Time `json:"expires,omitzero"`
}

// personView is one person with access to a server.
type personView struct {
	User        string `json:"user"`
	DisplayName string `json:"display_name,omitempty"`
	// Role is "owner" or "grantee".
	Role      string    `json:"role"`
	StartStop bool      `json:"start_stop"`
	GrantedBy string    `json:"granted_by,omitempty"`
	GrantedAt time.Time `json:"granted_at,omitzero"`
	Expires   time.Time `json:"expires,omitzero"`
}

// userView is a colleague suggested in the share dialog.
type userView struct {
	Name        string `json:"name"`
	DisplayName string `json:"display_name,omitempty"`
}

func (h *Handler) getMe(w http.ResponseWriter, r *http.Request, me authz.User) error {
	writeJSON(w, http.StatusOK, meView{
		Name:          me.Name,
		DisplayName:   me.DisplayName,
		Email:         me.Email,
		Org:           me.Org,
		Admin:         me.Admin,
		DefaultServer: ident.DefaultServerID(me.Name),
		LogoutURL:     h.cfg.Prefix + "logout",
	})
	return nil
}

// listServers answers the user's own servers, then those shared with
// them, with the active one marked. When the active-server cookie names a
// server the user may no longer use, their default server is marked and
// the cookie's value is returned as "requested".
func (h *Handler) listServers(w http.ResponseWriter, r *http.Request, me authz.User) error {
	ctx := r.Context()
	names := h.nameCache(me)

	// own servers first, the default one leading
	own, err := h.ownServers(ctx, me)
	if err != nil {
		return err
	}
	var views []serverView
	for _, s := range own {
		views = append(views, h.view(s, me, authz.Owner, time.Time{}, names.of(ctx, s.Owner)))
	}

	// then every share that still holds, by label
	grants, err := h.cfg.Authz.SharedWith(ctx, me.Name)
	if err != nil {
		return fmt.Errorf("listing shares: %w", err)
	}
	var shared []serverView
	for _, g := range grants {
		v, ok, err := h.usable(ctx, me, g.Server, names)
		if err != nil {
			return err
		}
		if ok && !slices.ContainsFunc(views, func(o serverView) bool { return o.ID == v.ID }) {
			shared = append(shared, v)
		}
	}
	slices.SortFunc(shared, func(a, b serverView) int { return strings.Compare(a.Label, b.Label) })
	views = append(views, shared...)

	// the active one: the cookie's when usable, else the default server
	requested := h.requestedServer(r)
	active := ident.DefaultServerID(me.Name)
	if requested != "" {
		i := slices.IndexFunc(views, func(v serverView) bool { return v.ID == requested })
		if i < 0 {
			// an admin may use servers that are not shared with them.
			// TODO: admins see their organization's other servers only
			// this way (or when shared); listing them all needs an index
			// of servers by organization, which the registry lacks.
			v, ok, err := h.usable(ctx, me, requested, names)
			if err != nil {
				return err
			}
			if ok {
				views = append(views, v)
				i = len(views) - 1
			}
		}
		if i >= 0 {
			active = requested
			requested = ""
		}
	}
	for i := range views {
		views[i].Active = views[i].ID == active
	}

	writeJSON(w, http.StatusOK, struct {
		Active    string       `json:"active"`
		Requested string       `json:"requested,omitempty"`
		Servers   []serverView `json:"servers"`
	}{active, requested, views})
	return nil
}

// ownServers lists the user's servers, creating their default server when
// it does not exist yet.
func (h *Handler) ownServers(ctx context.Context, me authz.User) ([]backend.Server, error) {
	own, err := h.cfg.Registry.List(ctx, me.Name)
	if err != nil {
		return nil, fmt.Errorf("listing servers: %w", err)
	}
	def := ident.DefaultServerID(me.Name)
	if !slices.ContainsFunc(own, func(s backend.Server) bool { return s.ID == def }) {
		s, err := h.cfg.Registry.EnsureDefault(ctx, me.Name)
		if err != nil {
			return nil, fmt.Errorf("creating default server: %w", err)
		}
		own = append(own, s)
	}
	slices.SortFunc(own, func(a, b backend.Server) int {
		switch {
		case a.ID == def:
			return -1
		case b.ID == def:
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return own, nil
}

// usable returns the view of a server the user may use, or false when
// they may not (or it is gone).
func (h *Handler) usable(
	ctx context.Context,
	me authz.User,
	id string,
	names *nameCache,
) (serverView, bool, error) {
	d, until, err := h.cfg.Authz.DecideUntil(ctx, me, id)
	if errors.Is(err, authz.ErrNoServer) {
		return serverView{}, false, nil
	}
	if err != nil {
		return serverView{}, false, fmt.Errorf("deciding for %s: %w", id, err)
	}
	if !d.CanUse() {
		return serverView{}, false, nil
	}
	s, err := h.cfg.Registry.Get(ctx, id)
	if errors.Is(err, backend.ErrNotFound) {
		return serverView{}, false, nil
	}
	if err != nil {
		return serverView{}, false, fmt.Errorf("loading server %s: %w", id, err)
	}
	return h.view(s, me, d, until, names.of(ctx, s.Owner)), true, nil
}

func (h *Handler) getServer(w http.ResponseWriter, r *http.Request, me authz.User) error {
	ctx := r.Context()
	id, err := ident.ServerID(r.PathValue("id"))
	if err != nil {
		return err
	}

	d, until, err := h.cfg.Authz.DecideUntil(ctx, me, id)
	if err != nil {
		return refuse(fmt.Errorf("deciding: %w", err), opView, id, "")
	}
	if !d.CanUse() {
		return refuse(errNoAccess, opView, id, "")
	}
	s, err := h.cfg.Registry.Get(ctx, id)
	if err != nil {
		return refuse(fmt.Errorf("loading server: %w", err), opView, id, "")
	}

	v := h.view(s, me, d, until, h.nameCache(me).of(ctx, s.Owner))
	requested := h.requestedServer(r)
	v.Active = id == requested || (requested == "" && id == ident.DefaultServerID(me.Name))
	writeJSON(w, http.StatusOK, v)
	return nil
}

// listShares answers who has access to a server: the owner, then each
// grantee, oldest share first. Only those who may change the shares may see them.
func (h *Handler) listShares(w http.ResponseWriter, r *http.Request, me authz.User) error {
	ctx := r.Context()
	id, err := ident.ServerID(r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := h.mayShare(ctx, me, id); err != nil {
		return err
	}

	owner, grants, err := h.cfg.Authz.People(ctx, id)
	if err != nil {
		return refuse(fmt.Errorf("listing people: %w", err), opView, id, "")
	}
	people := []personView{{User: owner.Name, DisplayName: owner.DisplayName, Role: "owner"}}
	names := h.nameCache(me)
	now := h.cfg.Now()
	for _, g := range grants {
		if expired(g, now) {
			continue
		}
		people = append(people, grantView(g, names.of(ctx, g.User)))
	}

	writeJSON(w, http.StatusOK, struct {
		Server string       `json:"server"`
		People []personView `json:"people"`
	}{id, people})
	return nil
}

// shareRequest is the body of PUT servers/{id}/shares/{user}.
type shareRequest struct {
	// StartStop is the Start/Stop permission. Required.
	StartStop *bool `json:"start_stop"`
	// ExpiresIn is "never" or a Go duration ("1h", "24h", "168h") from
	// now. Absent keeps the expiry of an existing share, and means never
	// for a new one.
	ExpiresIn *string `json:"expires_in"`
}

// putShare grants a share or changes it. With "If-None-Match: *" it only
// grants: an existing share is refused with already_shared, so that the
// share dialog can tell a person that nothing new happened.
func (h *Handler) putShare(w http.ResponseWriter, r *http.Request, me authz.User) error {
	ctx := r.Context()
	id, err := ident.ServerID(r.PathValue("id"))
	if err != nil {
		return err
	}
	user, err := ident.Username(r.PathValue("user"))
	if err != nil {
		return err
	}
	var req shareRequest
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	if req.StartStop == nil {
		return badRequest(`The body needs "start_stop": true or false.`)
	}
	var expires time.Time
	if req.ExpiresIn != nil {
		if expires, err = h.expiry(*req.ExpiresIn); err != nil {
			return err
		}
	}

	// is it new? (only those who may share may ask)
	if err := h.mayShare(ctx, me, id); err != nil {
		return err
	}
	_, grants, err := h.cfg.Authz.People(ctx, id)
	if err != nil {
		return refuse(fmt.Errorf("listing people: %w", err), opShare, id, user)
	}
	now := h.cfg.Now()
	exists := slices.ContainsFunc(grants, func(g authz.Grant) bool {
		return g.User == user && !expired(g, now)
	})
	if exists && r.Header.Get("If-None-Match") == "*" {
		return refuse(errAlreadyShared, opShare, id, user)
	}

	// A race with another grant between the look and the change is
	// harmless: granting is idempotent, and the last change wins.
	var g authz.Grant
	if exists && req.ExpiresIn == nil {
		g, err = h.cfg.Authz.SetStartStop(ctx, me, id, user, *req.StartStop)
	} else {
		g, err = h.cfg.Authz.Grant(ctx, me, id, user, *req.StartStop, expires)
	}
	if err != nil {
		return refuse(fmt.Errorf("sharing: %w", err), opShare, id, user)
	}
	h.log.Info("studio share changed", "user", me.Name, "server", id, "grantee", user,
		"start_stop", g.StartStop, "new", !exists)

	status := http.StatusOK
	if !exists {
		status = http.StatusCreated
	}
	writeJSON(w, status, grantView(g, h.nameCache(me).of(ctx, user)))
	return nil
}

func (h *Handler) deleteShare(w http.ResponseWriter, r *http.Request, me authz.User) error {
	id, err := ident.ServerID(r.PathValue("id"))
	if err != nil {
		return err
	}
	user, err := ident.Username(r.PathValue("user"))
	if err != nil {
		return err
	}

	if err := h.cfg.Authz.Revoke(r.Context(), me, id, user); err != nil {
		return refuse(fmt.Errorf("revoking: %w", err), opRevoke, id, user)
	}
	h.log.Info("studio share revoked", "user", me.Name, "server", id, "grantee", user)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) leave(w http.ResponseWriter, r *http.Request, me authz.User) error {
	id, err := ident.ServerID(r.PathValue("id"))
	if err != nil {
		return err
	}

	if err := h.cfg.Authz.Leave(r.Context(), me, id); err != nil {
		return refuse(fmt.Errorf("leaving: %w", err), opLeave, id, "")
	}
	h.log.Info("studio share left", "user", me.Name, "server", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// searchUsers suggests colleagues of the user's organization whose
// username or display name (or a later word of it) starts with q, leaving
// out the user themself.
func (h *Handler) searchUsers(w http.ResponseWriter, r *http.Request, me authz.User) error {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > ident.MaxLen {
		return badRequest(fmt.Sprintf("Search for at most %d characters.", ident.MaxLen))
	}

	found, err := h.cfg.Authz.SearchUsers(r.Context(), me.Org, q, maxSuggestions+1)
	if err != nil {
		return fmt.Errorf("searching users: %w", err)
	}
	users := []userView{}
	for _, u := range found {
		if u.Name != me.Name && len(users) < maxSuggestions {
			users = append(users, userView{Name: u.Name, DisplayName: u.DisplayName})
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Users []userView `json:"users"`
	}{users})
	return nil
}

// endSessions signs a user out on every replica and closes their open
// connections. An admin may do it for anyone of their organization; anyone
// for themselves.
func (h *Handler) endSessions(w http.ResponseWriter, r *http.Request, me authz.User) error {
	if h.cfg.Sessions == nil {
		return &apiError{status: http.StatusNotFound, code: "not_found",
			message: "Ending sessions is not available here."}
	}
	user, err := ident.Username(r.PathValue("user"))
	if err != nil {
		return err
	}
	if user != me.Name {
		// refuse non-admins before looking anyone up: who exists is not
		// theirs to learn here
		notAllowed := &apiError{status: http.StatusForbidden, code: "not_allowed",
			message: "Only an admin of their organization can sign " + user + " out."}
		if !me.Admin {
			return notAllowed
		}
		target, err := h.cfg.Authz.User(r.Context(), user)
		if err != nil {
			return refuse(fmt.Errorf("loading user: %w", err), opEndSessions, "", user)
		}
		if target.Org != me.Org {
			return notAllowed
		}
	}

	n, err := h.cfg.Sessions.EndSessions(r.Context(), user, me.Name)
	if err != nil {
		return fmt.Errorf("ending sessions: %w", err)
	}
	h.log.Info("studio sessions ended", "user", me.Name, "target", user, "sessions", n)
	writeJSON(w, http.StatusOK, struct {
		User  string `json:"user"`
		Ended int    `json:"ended"`
	}{user, n})
	return nil
}

// mayShare refuses unless the user may change the shares of the server.
func (h *Handler) mayShare(ctx context.Context, me authz.User, id string) error {
	d, _, err := h.cfg.Authz.DecideUntil(ctx, me, id)
	if err != nil {
		return refuse(fmt.Errorf("deciding: %w", err), opShare, id, "")
	}
	if !d.CanShare() {
		return refuse(authz.ErrNotAllowed, opShare, id, "")
	}
	return nil
}

// view makes the page's view of a server for the user with decision d.
func (h *Handler) view(
	s backend.Server,
	me authz.User,
	d authz.Decision,
	until time.Time,
	ownerName string,
) serverView {
	v := serverView{
		ID:               s.ID,
		Name:             s.Name,
		Label:            label(s, me.Name),
		Owner:            s.Owner,
		OwnerDisplayName: ownerName,
		State:            s.State,
		Reason:           s.Reason,
		URL:              h.cfg.BasePath(s.ID),
		Mine:             s.Owner == me.Name,
		Access:           access(d),
		CanUse:           d.CanUse(),
		CanStartStop:     d.CanStartStop(),
		CanShare:         d.CanShare(),
	}
	if d == authz.Grantee || d == authz.GranteeStartStop {
		v.Expires = until
	}
	return v
}

// label is how a server is called in the switcher: its own name for the
// user's servers ("My Server"), else after its owner ("alice's server",
// "alice's GPU box").
func label(s backend.Server, me string) string {
	switch {
	case s.Owner == me:
		return s.Name
	case s.Name == "" || s.Name == backend.DefaultName:
		return s.Owner + "'s server"
	}
	return s.Owner + "'s " + s.Name
}

func access(d authz.Decision) string {
	switch d {
	case authz.Owner:
		return "owner"
	case authz.Admin:
		return "admin"
	case authz.GranteeStartStop:
		return "start_stop"
	case authz.Grantee:
		return "use"
	}
	return "none"
}

func grantView(g authz.Grant, displayName string) personView {
	return personView{
		User:        g.User,
		DisplayName: displayName,
		Role:        "grantee",
		StartStop:   g.StartStop,
		GrantedBy:   g.GrantedBy,
		GrantedAt:   g.GrantedAt,
		Expires:     g.Expires,
	}
}

func expired(g authz.Grant, now time.Time) bool {
	return !g.Expires.IsZero() && !now.Before(g.Expires)
}

// expiry turns an expires_in value into the time a share ends.
func (h *Handler) expiry(in string) (time.Time, error) {
	if in == "never" {
		return time.Time{}, nil
	}
	d, err := time.ParseDuration(in)
	if err != nil || d < time.Minute || d > maxExpiresIn {
		return time.Time{}, badRequest(fmt.Sprintf(
			`"expires_in" must be "never" or a duration between "1m" and "%dh", such as "24h".`,
			int(maxExpiresIn.Hours())))
	}
	return h.cfg.Now().Add(d), nil
}

// requestedServer is the active-server cookie's server id, or "" when
// there is none or it is not a valid id.
func (h *Handler) requestedServer(r *http.Request) string {
	id, err := ident.ServerID(h.cfg.ActiveServer(r))
	if err != nil {
		return ""
	}
	return id
}

// decodeBody reads a small JSON body into v, refusing unknown fields.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return badRequest("The request needs a JSON body.")
		}
		return badRequest("The request body is not valid JSON for this call: " + err.Error() + ".")
	}
	if dec.More() {
		return badRequest("The request body must hold one JSON object.")
	}
	return nil
}

func badRequest(msg string) error {
	return &apiError{status: http.StatusBadRequest, code: "invalid", message: msg}
}

// nameCache looks up display names once per request. A name it cannot
// find is shown as the username alone.
type nameCache struct {
	h     *Handler
	names map[string]string
}

func (h *Handler) nameCache(me authz.User) *nameCache {
	return &nameCache{h: h, names: map[string]string{me.Name: me.DisplayName}}
}

func (c *nameCache) of(ctx context.Context, user string) string {
	if n, ok := c.names[user]; ok {
		return n
	}
	u, err := c.h.cfg.Authz.User(ctx, user)
	if err != nil && !errors.Is(err, authz.ErrUnknownUser) {
		c.h.log.Warn("studio display name unavailable", "user", user, "err", err)
	}
	c.names[user] = u.DisplayName
	return u.DisplayName
}
