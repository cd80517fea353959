package backend

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/studio-proxy/studio-proxy/internal/ident"
)

// DefaultPrefix is the key prefix used when a config leaves it empty.
const DefaultPrefix = "studio:"

// RegistryConfig configures a Registry.
type RegistryConfig struct {
	// Prefix starts every key. Empty means DefaultPrefix.
	Prefix string
	// Log receives the registry's warnings. Nil means slog.Default().
	Log *slog.Logger
	// Now is the clock for UpdatedAt. Nil means time.Now.
	Now func() time.Time
}

// Registry keeps every server's owner, name, state, address and secret in
// Redis.
//
// Keys (P is the prefix):
//
//	P server:<id>         hash: one server (see the field names below)
//	P servers-of:<owner>  set: the ids of an owner's servers
//	P servers             set: every server id, for reconciling
//
// The hash is the truth; the two sets are indexes written after it, so a
// reader of an index skips ids whose hash is gone. Every write touches one
// key at a time (a Lua script where it must be atomic), so the registry
// works on Redis Cluster without hash tags.
type Registry struct {
	rdb    redis.UniversalClient
	prefix string
	log    *slog.Logger
	now    func() time.Time
}

// NewRegistry returns a registry on rdb.
func NewRegistry(rdb redis.UniversalClient, cfg RegistryConfig) *Registry {
	r := &Registry{rdb: rdb, prefix: cfg.Prefix, log: cfg.Log, now: cfg.Now}
	if r.prefix == "" {
		r.prefix = DefaultPrefix
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// the hash fields of a server
const (
	fieldID      = "id"
	fieldOwner   = "owner"
	fieldName    = "name"
	fieldState   = "state"
	fieldReason  = "reason"
	fieldAddr    = "addr"
	fieldSecret  = "secret"
	fieldNode    = "node"
	fieldUpdated = "updated"
)

func (r *Registry) serverKey(id string) string   { return r.prefix + "server:" + id }
func (r *Registry) ownerKey(owner string) string { return r.prefix + "servers-of:" + owner }
func (r *Registry) allKey() string               { return r.prefix + "servers" }

// createScript creates the server hash unless it exists, and returns the
// hash as it is afterwards.
var createScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
	redis.call('HSET', KEYS[1], unpack(ARGV))
end
return redis.call('HGETALL', KEYS[1])
`)

// updateScript sets fields of an existing server hash; it returns 0 when
// the server does not exist, so that an update never resurrects a
// deleted server.
var updateScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
	return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
`)

// Get returns the server with the given id, or an error wrapping
// ErrNotFound, or ident.ErrInvalid for an id that cannot exist.
func (r *Registry) Get(ctx context.Context, id string) (Server, error) {
	id, err := ident.ServerID(id)
	if err != nil {
		return Server{}, err
	}
	m, err := r.rdb.HGetAll(ctx, r.serverKey(id)).Result()
	if err != nil {
		return Server{}, fmt.Errorf("loading server %s: %w", id, err)
	}
	if len(m) == 0 {
		return Server{}, fmt.Errorf("server %s: %w", id, ErrNotFound)
	}
	return decodeServer(m)
}

// Owner returns the owner of the server, or "" and no error when there is
// no such server. It implements authz.ServerOwners.
func (r *Registry) Owner(ctx context.Context, id string) (string, error) {
	id, err := ident.ServerID(id)
	if err != nil {
		return "", err
	}
	owner, err := r.rdb.HGet(ctx, r.serverKey(id), fieldOwner).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("loading owner of server %s: %w", id, err)
	}
	return owner, nil
}

// EnsureDefault returns the owner's default server ("My Server", id
// ident.DefaultServerID(owner)), creating it stopped and with a fresh
// secret if it does not exist yet. Calling it again, from any replica,
// returns the same server.
func (r *Registry) EnsureDefault(ctx context.Context, owner string) (Server, error) {
	owner, err := ident.Username(owner)
	if err != nil {
		return Server{}, err
	}
	return r.create(ctx, ident.DefaultServerID(owner), owner, DefaultName)
}

// Create returns the owner's server named name (id
// ident.NamedServerID(owner, name)), creating it stopped and with a fresh
// secret if it does not exist yet. name follows the rules of a username.
func (r *Registry) Create(ctx context.Context, owner, name string) (Server, error) {
	owner, err := ident.Username(owner)
	if err != nil {
		return Server{}, err
	}
	name, err = ident.Username(name)
	if err != nil {
		return Server{}, fmt.Errorf("server name: %w", err)
	}
	return r.create(ctx, ident.NamedServerID(owner, name), owner, name)
}

func (r *Registry) create(ctx context.Context, id, owner, name string) (Server, error) {
	secret, err := NewSecret()
	if err != nil {
		return Server{}, err
	}
	args := []any{
		fieldID, id,
		fieldOwner, owner,
		fieldName, name,
		fieldState, string(Stopped),
		fieldReason, "",
		fieldAddr, "",
		fieldSecret, secret,
		fieldNode, "",
		fieldUpdated, r.now().UTC().Format(time.RFC3339Nano),
	}
	res, err := createScript.Run(ctx, r.rdb, []string{r.serverKey(id)}, args...).StringSlice()
	if err != nil {
		return Server{}, fmt.Errorf("creating server %s: %w", id, err)
	}
	m := make(map[string]string, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		m[res[i]] = res[i+1]
	}
	srv, err := decodeServer(m)
	if err != nil {
		return Server{}, err
	}

	// the indexes are written even when the server existed, which
	// repairs them after a writer that died between the two steps
	if err := r.rdb.SAdd(ctx, r.ownerKey(srv.Owner), id).Err(); err != nil {
		return Server{}, fmt.Errorf("indexing server %s: %w", id, err)
	}
	if err := r.rdb.SAdd(ctx, r.allKey(), id).Err(); err != nil {
		return Server{}, fmt.Errorf("indexing server %s: %w", id, err)
	}
	return srv, nil
}

// List returns the owner's servers, the default server first, then by
// name.
func (r *Registry) List(ctx context.Context, owner string) ([]Server, error) {
	owner, err := ident.Username(owner)
	if err != nil {
		return nil, err
	}
	ids, err := r.rdb.SMembers(ctx, r.ownerKey(owner)).Result()
	if err != nil {
		return nil, fmt.Errorf("listing servers of %s: %w", owner, err)
	}
	servers, err := r.getMany(ctx, ids)
	if err != nil {
		return nil, err
	}

	def := ident.DefaultServerID(owner)
	slices.SortFunc(servers, func(a, b Server) int {
		if (a.ID == def) != (b.ID == def) {
			if a.ID == def {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	return servers, nil
}

// Delete removes a stopped or failed server. It returns an error wrapping
// ErrNotStopped for any other state, and ErrNotFound when it is absent.
//
// TODO: the server's shares stay in the share table; nothing deletes
// servers yet, and whoever adds that must revoke them through authz.
func (r *Registry) Delete(ctx context.Context, id string) error {
	srv, err := r.Get(ctx, id)
	if err != nil {
		return err
	}
	if srv.State != Stopped && srv.State != Failed {
		return fmt.Errorf("deleting server %s (%s): %w", srv.ID, srv.State, ErrNotStopped)
	}
	if err := r.rdb.Del(ctx, r.serverKey(srv.ID)).Err(); err != nil {
		return fmt.Errorf("deleting server %s: %w", srv.ID, err)
	}
	if err := r.rdb.SRem(ctx, r.ownerKey(srv.Owner), srv.ID).Err(); err != nil {
		return fmt.Errorf("unindexing server %s: %w", srv.ID, err)
	}
	if err := r.rdb.SRem(ctx, r.allKey(), srv.ID).Err(); err != nil {
		return fmt.Errorf("unindexing server %s: %w", srv.ID, err)
	}
	return nil
}

// ids returns the id of every server.
func (r *Registry) ids(ctx context.Context) ([]string, error) {
	ids, err := r.rdb.SMembers(ctx, r.allKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("listing servers: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}

// getMany loads the servers with the given ids in one pipeline, skipping
// those that are gone.
func (r *Registry) getMany(ctx context.Context, ids []string) ([]Server, error) {
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, r.serverKey(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading servers: %w", err)
	}
	servers := make([]Server, 0, len(ids))
	for _, c := range cmds {
		m := c.Val()
		if len(m) == 0 {
			continue
		}
		srv, err := decodeServer(m)
		if err != nil {
			r.log.Warn("undecodable server skipped", "err", err)
			continue
		}
		servers = append(servers, srv)
	}
	return servers, nil
}

// update is the change of a server's lifecycle fields that a Manager
// writes.
type update struct {
	State  State
	Reason string
	Addr   string
	Node   string
}

// setState writes u to the server and returns the server as it is
// afterwards. It never creates a server: a deleted one stays deleted and
// the error wraps ErrNotFound.
func (r *Registry) setState(ctx context.Context, id string, u update) (Server, error) {
	args := []any{
		fieldState, string(u.State),
		fieldReason, u.Reason,
		fieldAddr, u.Addr,
		fieldNode, u.Node,
		fieldUpdated, r.now().UTC().Format(time.RFC3339Nano),
	}
	n, err := updateScript.Run(ctx, r.rdb, []string{r.serverKey(id)}, args...).Int()
	if err != nil {
		return Server{}, fmt.Errorf("saving state of server %s: %w", id, err)
	}
	if n == 0 {
		return Server{}, fmt.Errorf("server %s: %w", id, ErrNotFound)
	}
	return r.Get(ctx, id)
}

func decodeServer(m map[string]string) (Server, error) {
	srv := Server{
		ID:     m[fieldID],
		Owner:  m[fieldOwner],
		Name:   m[fieldName],
		State:  State(m[fieldState]),
		Reason: m[fieldReason],
		Addr:   m[fieldAddr],
		Secret: m[fieldSecret],
		Node:   m[fieldNode],
	}
	if srv.ID == "" || srv.Owner == "" || srv.Secret == "" {
		return Server{}, fmt.Errorf("server %q: incomplete record", srv.ID)
	}
	switch srv.State {
	case Stopped, Starting, Running, Stopping, Failed:
	default:
		return Server{}, fmt.Errorf("server %s: unknown state %q", srv.ID, srv.State)
	}
	if u := m[fieldUpdated]; u != "" {
		t, err := time.Parse(time.RFC3339Nano, u)
		if err != nil {
			return Server{}, fmt.Errorf("server %s: bad updated time: %w", srv.ID, err)
		}
		srv.UpdatedAt = t
	}
	return srv, nil
}

// NewSecret returns a fresh per-server secret: 32 random bytes in hex.
// Hex, unlike base64url, never starts with '-', so a secret can never be
// mistaken for a flag in a command line.
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making server secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}
