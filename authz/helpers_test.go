package authz

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/studio-proxy/studio-proxy/internal/events"
	"github.com/studio-proxy/studio-proxy/internal/redistest"
	"github.com/studio-proxy/studio-proxy/internal/testclock"
)

// owners is a fixed table of server owners. The real registry lives in
// package backend; the share table only needs the interface.
type owners map[string]string

func (o owners) Owner(_ context.Context, server string) (string, error) {
	return o[server], nil
}

// The organizations and servers of most tests: acme with its admin dave,
// globex with its admin frank. "ghost" is owned by someone who never
// signed in.
var (
	alice = User{Name: "alice", DisplayName: "Alice Liddell", Org: "acme"}
	bob   = User{Name: "bob", DisplayName: "Bob Builder", Org: "acme"}
	carol = User{Name: "carol", DisplayName: "Carol Danvers", Org: "acme"}
	dave  = User{Name: "dave", DisplayName: "Dave Admin", Org: "acme", Admin: true}
	eve   = User{Name: "eve", DisplayName: "Eve Polastri", Org: "globex"}
	frank = User{Name: "frank", DisplayName: "Frank Admin", Org: "globex", Admin: true}

	testOwners = owners{
		"alice": "alice", "bob": "bob", "carol": "carol",
		"eve": "eve", "ghost": "nobody",
	}
)

func newClock() *testclock.Clock {
	return testclock.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
}

// env is one test's Redis, store and clock, with the users above in the
// directory.
type env struct {
	srv   *redistest.Server
	rdb   redis.UniversalClient
	store *Store
	clock *testclock.Clock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := redistest.Start(t)
	e := &env{srv: srv, rdb: srv.Client(), clock: newClock()}
	e.store = e.newStore(t, e.rdb, Config{})
	for _, u := range []User{alice, bob, carol, dave, eve, frank} {
		if err := e.store.PutUser(context.Background(), u); err != nil {
			t.Fatalf("putting %s: %v", u.Name, err)
		}
	}
	return e
}

// newStore returns a store on rdb with cfg's blanks filled for the test.
func (e *env) newStore(t *testing.T, rdb redis.UniversalClient, cfg Config) *Store {
	t.Helper()
	if cfg.Owners == nil {
		cfg.Owners = testOwners
	}
	if cfg.Now == nil {
		cfg.Now = e.clock.Now
	}
	s, err := New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// collector gathers the events published under the default prefix.
type collector struct {
	mu  sync.Mutex
	evs []events.Event
}

// collect subscribes to the events channel and returns once subscribed.
func collect(t *testing.T, srv *redistest.Server) *collector {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c := &collector{}
	sub := events.NewSubscriber(srv.Client(), events.Channel(DefaultPrefix),
		slog.New(slog.DiscardHandler))
	sub.OnEvent(func(ev events.Event) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.evs = append(c.evs, ev)
	})
	go sub.Run(ctx)
	select {
	case <-sub.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("events subscription not ready")
	}
	return c
}

// wait returns the events once there are n of them, failing the test when
// they do not arrive within a generous deadline.
func (c *collector) wait(t *testing.T, n int) []events.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		got := append([]events.Event(nil), c.evs...)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d events, want %d: %+v", len(got), n, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// audit returns the entries of the audit stream, oldest first.
func audit(t *testing.T, rdb redis.UniversalClient) []map[string]any {
	t.Helper()
	msgs, err := rdb.XRange(context.Background(), DefaultPrefix+"{shares}:audit", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]map[string]any, len(msgs))
	for i, m := range msgs {
		out[i] = m.Values
	}
	return out
}
