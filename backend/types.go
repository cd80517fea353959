package backend

import (
	"context"
	"errors"
	"time"
)

// State is where a server is in its lifecycle.
type State string

// The states of a server.
const (
	Stopped  State = "stopped"
	Starting State = "starting"
	Running  State = "running"
	Stopping State = "stopping"
	Failed   State = "failed"
)

// DefaultName is the display name of each user's default server.
const DefaultName = "My Server"

// Server is one notebook server as the registry knows it.
type Server struct {
	// ID is the server id (see ident.ServerID); a user's default server
	// has the id ident.DefaultServerID(owner).
	ID    string `json:"id"`
	Owner string `json:"owner"`
	// Name is the display name, DefaultName for a default server.
	Name  string `json:"name"`
	State State  `json:"state"`
	// Reason says why a Failed server failed; empty otherwise.
	Reason string `json:"reason,omitempty"`
	// Addr is the backend's base URL (scheme, host and port) while it
	// runs; empty otherwise.
	Addr string `json:"-"`
	// Secret is the per-server token the proxy adds to every forwarded
	// request. It is never sent to a browser.
	Secret string `json:"-"`
	// Node names the proxy process whose driver runs the server, for
	// drivers whose servers live beside one replica (see Placed); empty
	// otherwise.
	Node      string    `json:"-"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Spec is what a driver needs to start a server.
type Spec struct {
	ID    string
	Owner string
	// BaseURL is the path prefix the server is served under, with leading
	// and trailing slash, for example "/servers/alice/".
	BaseURL string
	// Secret is the token the server must require.
	Secret string
}

// Status is what a driver reports of a server.
type Status struct {
	State State
	// Addr is the base URL of the running server, for example
	// "http://127.0.0.1:41234".
	Addr string
	// Reason says why a Failed server failed.
	Reason string
}

// Driver starts and stops servers on one kind of infrastructure.
// Implementations must be safe for concurrent use; the registry serializes
// Start and Stop of one server across replicas with a lock in Redis.
type Driver interface {
	// Start starts the server and returns once it answers HTTP, or with
	// an error. Starting a running server returns its status.
	Start(ctx context.Context, spec Spec) (Status, error)
	// Stop stops the server. Stopping a stopped server is not an error.
	Stop(ctx context.Context, id string) error
	// Status reports the server's current state.
	Status(ctx context.Context, id string) (Status, error)
}

// Watcher is implemented by drivers that notice by themselves when a
// server stops without being asked: its process exited, its pod died. The
// Manager uses it to mark such a server Failed at once; without it, the
// Manager learns of it at its next reconcile.
type Watcher interface {
	// Watch calls f with the new status (Stopped or Failed, with a
	// reason) of each server that stopped by itself, until ctx ends. f may
	// be called from several goroutines at once and may block.
	Watch(ctx context.Context, f func(id string, st Status))
}

// Placed is implemented by drivers whose servers run beside one proxy
// process and are out of reach of the others (the process driver). The
// Manager records Node with each server it starts; only the manager with
// that Node can stop it (the others ask it to), and when that node stops
// sending heartbeats its servers are marked Failed by whichever replica
// notices.
type Placed interface {
	// Node names this driver's place, unique to this proxy process.
	Node() string
}

// Errors that callers branch on.
var (
	ErrNotFound = errors.New("no such server")
	ErrBusy     = errors.New("server is being started or stopped by another request")
	// ErrElsewhere is returned for a server that runs beside another
	// live proxy replica, which alone can act on it (process driver): by
	// Stop when that replica did not carry out the stop within
	// ManagerConfig.ForwardTimeout, by Start when that replica's start or
	// stop of it was cut short.
	ErrElsewhere = errors.New("server runs beside another proxy replica")
	// ErrNotStopped is returned by Registry.Delete for a server that is
	// not stopped.
	ErrNotStopped = errors.New("server is not stopped")
)
