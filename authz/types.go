package authz

import (
	"context"
	"errors"
	"time"
)

// User is a person as last seen at sign-in. The user directory holds one
// per username; shares are only granted to users in it.
type User struct {
	// Name is the canonical username (see ident.Username).
	Name string `json:"name"`
	// DisplayName is the person's full name; empty when the provider gave
	// none.
	DisplayName string `json:"display_name,omitempty"`
	Email       string `json:"email,omitempty"`
	// Org is the user's organization. Shares never cross organizations.
	Org string `json:"org"`
	// Admin users may use, start, stop and share every server of their
	// organization.
	Admin bool `json:"admin,omitempty"`
	// LastLogin is the time of the last sign-in; zero for a user created
	// by an operator.
	LastLogin time.Time `json:"last_login,omitzero"`

	// operator marks the actor returned by Operator. It is unexported so
	// that no user seen at sign-in, nor any decoded JSON, can carry it.
	operator bool
}

// OperatorName is the name under which operator actions are recorded in
// grants, events and the audit stream. The audit's role field tells them
// from the actions of a user who happens to be called "operator".
const OperatorName = "operator"

// Operator returns the actor of the admin command line: someone with access
// to Redis, who may manage the shares of every server in every
// organization. It is not a user and never decides as one.
func Operator() User { return User{Name: OperatorName, operator: true} }

// IsOperator reports whether u is the actor returned by Operator.
func (u User) IsOperator() bool { return u.operator }

// Decision is what a user may do with a server.
type Decision int

// The decisions, from least to most access.
const (
	// None: the user may not use the server at all.
	None Decision = iota
	// Grantee: a share without the start/stop permission.
	Grantee
	// GranteeStartStop: a share with the start/stop permission.
	GranteeStartStop
	// Admin: an admin of the server's organization who is not its owner.
	Admin
	// Owner: the server is the user's own.
	Owner
)

// CanUse reports whether the decision allows using the server.
func (d Decision) CanUse() bool { return d != None }

// CanStartStop reports whether the decision allows starting and stopping
// the server.
func (d Decision) CanStartStop() bool { return d >= GranteeStartStop }

// CanShare reports whether the decision allows granting, changing and
// revoking shares of the server.
func (d Decision) CanShare() bool { return d >= Admin }

func (d Decision) String() string {
	switch d {
	case Grantee:
		return "grantee"
	case GranteeStartStop:
		return "grantee_start_stop"
	case Admin:
		return "admin"
	case Owner:
		return "owner"
	}
	return "none"
}

// Grant is one share of a server with one user.
type Grant struct {
	Server string `json:"server"`
	User   string `json:"user"`
	// StartStop is true for Start/Stop Enabled.
	StartStop bool `json:"start_stop"`
	// GrantedBy is the owner or admin who first granted the share.
	GrantedBy string    `json:"granted_by"`
	GrantedAt time.Time `json:"granted_at"`
	// UpdatedAt is the time of the last change of permission or expiry.
	UpdatedAt time.Time `json:"updated_at"`
	// Expires is when the share ends by itself; zero for never.
	Expires time.Time `json:"expires,omitzero"`
}

// ServerOwners tells the owner of a server. The server registry
// (package backend) implements it.
type ServerOwners interface {
	// Owner returns the canonical username of the server's owner, or
	// ("", nil) when the server does not exist. An error wrapping
	// ErrNoServer is taken to mean the same; any other error is passed on.
	Owner(ctx context.Context, server string) (string, error)
}

// Errors that callers branch on. Each becomes its own message to the user.
var (
	ErrNoServer     = errors.New("no such server")
	ErrUnknownUser  = errors.New("no such user")
	ErrOtherOrg     = errors.New("user belongs to another organization")
	ErrSelf         = errors.New("cannot share a server with yourself")
	ErrOwner        = errors.New("user owns this server")
	ErrNotAllowed   = errors.New("only the owner or an admin may change the shares of a server")
	ErrNoGrant      = errors.New("server is not shared with this user")
	ErrInvalidInput = errors.New("invalid input")
)
