package backend_test

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/studio-proxy/studio-proxy/backend"
	"github.com/studio-proxy/studio-proxy/backend/internal/testchild"
	"github.com/studio-proxy/studio-proxy/internal/ident"
	"github.com/studio-proxy/studio-proxy/internal/redistest"
)

func TestMain(m *testing.M) {
	testchild.Main()
	os.Exit(m.Run())
}

var clock = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// noRetry returns a client that fails at once when Redis is down.
func noRetry(t *testing.T, srv *redistest.Server) redis.UniversalClient {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

func newRegistry(t *testing.T, srv *redistest.Server) *backend.Registry {
	t.Helper()
	return backend.NewRegistry(srv.Client(), backend.RegistryConfig{
		Now: func() time.Time { return clock },
	})
}

func TestEnsureDefault(t *testing.T) {
	srv := redistest.Start(t)
	reg := newRegistry(t, srv)
	ctx := context.Background()

	got, err := reg.EnsureDefault(ctx, "Alice")
	if err != nil {
		t.Fatalf("EnsureDefault: %v", err)
	}
	want := backend.Server{
		ID:        "alice",
		Owner:     "alice",
		Name:      backend.DefaultName,
		State:     backend.Stopped,
		Secret:    got.Secret,
		UpdatedAt: clock,
	}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if b, err := hex.DecodeString(got.Secret); err != nil || len(b) != 32 {
		t.Errorf("secret %q: want 32 bytes in hex", got.Secret)
	}

	t.Run("idempotent", func(t *testing.T) {
		again, err := reg.EnsureDefault(ctx, "alice")
		if err != nil || again != got {
			t.Fatalf("second EnsureDefault: got %+v, %v, want %+v", again, err, got)
		}
	})

	t.Run("concurrent from two replicas", func(t *testing.T) {
		regs := []*backend.Registry{reg, newRegistry(t, srv)}
		secrets := make([]string, 20)
		var wg sync.WaitGroup
		for i := range secrets {
			wg.Go(func() {
				s, err := regs[i%2].EnsureDefault(ctx, "bob")
				if err != nil {
					t.Errorf("EnsureDefault: %v", err)
				}
				secrets[i] = s.Secret
			})
		}
		wg.Wait()
		for i, s := range secrets {
			if s != secrets[0] {
				t.Fatalf("caller %d got secret %q, caller 0 got %q: want one server",
					i, s, secrets[0])
			}
		}
	})

	t.Run("secrets differ between servers", func(t *testing.T) {
		bob, _ := reg.EnsureDefault(ctx, "bob")
		if bob.Secret == got.Secret {
			t.Fatal("alice and bob share a secret")
		}
	})

	t.Run("invalid owner", func(t *testing.T) {
		for _, owner := range []string{"", "a/b", "{x}", "a:b", "a~b"} {
			if _, err := reg.EnsureDefault(ctx, owner); !errors.Is(err, ident.ErrInvalid) {
				t.Errorf("EnsureDefault(%q): got %v, want ident.ErrInvalid", owner, err)
			}
		}
	})
}

func TestGetAndOwner(t *testing.T) {
	srv := redistest.Start(t)
	reg := newRegistry(t, srv)
	ctx := context.Background()
	alice, err := reg.EnsureDefault(ctx, "alice")
	if err != nil {
		t.Fatalf("EnsureDefault: %v", err)
	}

	tests := []struct {
		name      string
		id        string
		wantOwner string
		wantErr   error // of Get
		ownerErr  bool
	}{
		{"existing", "alice", "alice", nil, false},
		{"canonical case", "ALICE", "alice", nil, false},
		{"absent", "bob", "", backend.ErrNotFound, false},
		{"invalid", "../alice", "", ident.ErrInvalid, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := reg.Get(ctx, tt.id)
			if tt.wantErr == nil && (err != nil || got != alice) {
				t.Errorf("Get(%q): got %+v, %v, want %+v", tt.id, got, err, alice)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Get(%q): got %v, want %v", tt.id, err, tt.wantErr)
			}
			owner, err := reg.Owner(ctx, tt.id)
			if owner != tt.wantOwner || (err != nil) != tt.ownerErr {
				t.Errorf("Owner(%q): got %q, %v, want %q, error %v",
					tt.id, owner, err, tt.wantOwner, tt.ownerErr)
			}
		})
	}
}

func TestListCreateDelete(t *testing.T) {
	srv := redistest.Start(t)
	reg := newRegistry(t, srv)
	ctx := context.Background()

	if got, err := reg.List(ctx, "alice"); err != nil || len(got) != 0 {
		t.Fatalf("List of nobody's servers: got %v, %v, want none", got, err)
	}
	for _, name := range []string{"zeta", "gpu"} {
		s, err := reg.Create(ctx, "alice", name)
		if err != nil {
			t.Fatalf("Create(%s): %v", name, err)
		}
		if want := ident.NamedServerID("alice", name); s.ID != want || s.Name != name {
			t.Fatalf("Create(%s): got id %q name %q, want %q %q", name, s.ID, s.Name, want, name)
		}
	}
	reg.EnsureDefault(ctx, "alice")
	reg.EnsureDefault(ctx, "bob")

	ids := func(owner string) []string {
		t.Helper()
		servers, err := reg.List(ctx, owner)
		if err != nil {
			t.Fatalf("List(%s): %v", owner, err)
		}
		var ids []string
		for _, s := range servers {
			ids = append(ids, s.ID)
		}
		return ids
	}
	got, want := ids("alice"), []string{"alice", "alice~gpu", "alice~zeta"}
	if !slices.Equal(got, want) {
		t.Fatalf("List(alice): got %q, want %q (default first, then by name)", got, want)
	}
	if got, want := ids("bob"), []string{"bob"}; !slices.Equal(got, want) {
		t.Fatalf("List(bob): got %q, want %q", got, want)
	}
	if _, err := reg.Create(ctx, "alice", "a~b"); !errors.Is(err, ident.ErrInvalid) {
		t.Errorf("Create with a bad name: got %v, want ident.ErrInvalid", err)
	}

	t.Run("delete stopped", func(t *testing.T) {
		if err := reg.Delete(ctx, "alice~zeta"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := reg.Get(ctx, "alice~zeta"); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("Get after Delete: got %v, want ErrNotFound", err)
		}
		if got, want := ids("alice"), []string{"alice", "alice~gpu"}; !slices.Equal(got, want) {
			t.Errorf("List after Delete: got %q, want %q", got, want)
		}
		if err := reg.Delete(ctx, "alice~zeta"); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("second Delete: got %v, want ErrNotFound", err)
		}
	})

	t.Run("delete running refused", func(t *testing.T) {
		srv.Client().HSet(ctx, "studio:server:alice~gpu", "state", "running")
		if err := reg.Delete(ctx, "alice~gpu"); !errors.Is(err, backend.ErrNotStopped) {
			t.Fatalf("Delete of a running server: got %v, want ErrNotStopped", err)
		}
	})
}

func TestRegistryKeys(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	reg := backend.NewRegistry(rdb, backend.RegistryConfig{Prefix: "p1:"})
	ctx := context.Background()
	if _, err := reg.EnsureDefault(ctx, "alice"); err != nil {
		t.Fatalf("EnsureDefault: %v", err)
	}

	h := rdb.HGetAll(ctx, "p1:server:alice").Val()
	for _, f := range []string{"id", "owner", "name", "state", "secret", "updated"} {
		if h[f] == "" {
			t.Errorf("hash p1:server:alice lacks field %s: %v", f, h)
		}
	}
	got := rdb.SMembers(ctx, "p1:servers-of:alice").Val()
	if !slices.Equal(got, []string{"alice"}) {
		t.Errorf("p1:servers-of:alice: got %q, want [alice]", got)
	}
	if got := rdb.SMembers(ctx, "p1:servers").Val(); !slices.Equal(got, []string{"alice"}) {
		t.Errorf("p1:servers: got %q, want [alice]", got)
	}

	// another prefix is another installation
	other := backend.NewRegistry(rdb, backend.RegistryConfig{Prefix: "p2:"})
	if _, err := other.Get(ctx, "alice"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Get under another prefix: got %v, want ErrNotFound", err)
	}
}

func TestRegistryRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	reg := backend.NewRegistry(noRetry(t, srv), backend.RegistryConfig{})
	ctx := context.Background()
	reg.EnsureDefault(ctx, "alice")
	srv.Stop()

	if _, err := reg.Get(ctx, "alice"); err == nil || errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Get: got %v, want a connection error, not ErrNotFound", err)
	}
	// an owner lookup that fails must not look like "no such server"
	if owner, err := reg.Owner(ctx, "alice"); err == nil {
		t.Errorf("Owner: got %q, nil, want an error", owner)
	}
	if _, err := reg.EnsureDefault(ctx, "bob"); err == nil {
		t.Errorf("EnsureDefault: got nil, want an error")
	}
	if _, err := reg.List(ctx, "alice"); err == nil {
		t.Errorf("List: got nil, want an error")
	}
}
