package authz

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/studio-proxy/studio-proxy/internal/events"
)

// TestConcurrentChanges runs many goroutines granting, changing, revoking
// and leaving the same and different shares through two separate clients,
// then checks that the grants and the reverse index agree exactly, that
// every successful change was announced exactly once, and that replaying
// the events in order gives the final table.
func TestConcurrentChanges(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	for _, n := range []string{"gina", "hank"} {
		if err := e.store.PutUser(ctx, User{Name: n, Org: "acme"}); err != nil {
			t.Fatal(err)
		}
	}
	evs := collect(t, e.srv)
	stores := []*Store{
		e.newStore(t, e.srv.Client(), Config{AuditMaxLen: 1 << 20}),
		e.newStore(t, e.srv.Client(), Config{AuditMaxLen: 1 << 20}),
	}
	servers := []string{"alice", "bob", "carol"}
	users := []string{"alice", "bob", "carol", "dave", "gina", "hank"}
	dir := map[string]User{"alice": alice, "bob": bob, "carol": carol, "dave": dave}

	const workers, ops = 16, 150
	var grants, changes, revokes atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(w), 42))
			for range ops {
				s := stores[rnd.IntN(len(stores))]
				server := servers[rnd.IntN(len(servers))]
				user := users[rnd.IntN(len(users))]
				if user == server { // each server is its owner's
					continue
				}
				actor := dir[server]
				if user != "dave" && rnd.IntN(3) == 0 {
					actor = dave
				}
				ss := rnd.IntN(2) == 0

				var err error
				var count *atomic.Int64
				switch rnd.IntN(4) {
				case 0:
					_, err = s.Grant(ctx, actor, server, user, ss, time.Time{})
					count = &grants
				case 1:
					_, err = s.SetStartStop(ctx, actor, server, user, ss)
					count = &changes
				case 2:
					err = s.Revoke(ctx, actor, server, user)
					count = &revokes
				case 3:
					err = s.Leave(ctx, User{Name: user, Org: "acme"}, server)
					count = &revokes
				}
				switch {
				case err == nil:
					count.Add(1)
				case !errors.Is(err, ErrNoGrant):
					t.Errorf("%s/%s: %v", server, user, err)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// every success announced exactly once
	total := int(grants.Load() + changes.Load() + revokes.Load())
	got := evs.wait(t, total)
	kinds := map[events.Kind]int{}
	for _, ev := range got {
		kinds[ev.Kind]++
	}
	if a, b := kinds[events.Grant]+kinds[events.Change], int(grants.Load()+changes.Load()); a != b {
		t.Errorf("got %d grant and change events, want %d", a, b)
	}
	if a, b := kinds[events.Revoke], int(revokes.Load()); a != b {
		t.Errorf("got %d revoke events, want %d", a, b)
	}
	if len(got) != total {
		t.Errorf("got %d events, want %d", len(got), total)
	}
	if n := int(e.rdb.XLen(ctx, DefaultPrefix+"{shares}:audit").Val()); n != total {
		t.Errorf("got %d audit entries, want %d", n, total)
	}
	t.Logf("%d grants, %d changes, %d revokes", grants.Load(), changes.Load(), revokes.Load())

	// replaying the events in order: a grant only where there was none,
	// a change or revoke only where there was one
	replay := map[string]bool{}
	for i, ev := range got {
		pair := ev.Server + "/" + ev.User
		switch ev.Kind {
		case events.Grant:
			if replay[pair] {
				t.Fatalf("event %d: grant of existing share %s", i, pair)
			}
			replay[pair] = true
		case events.Change, events.Revoke:
			if !replay[pair] {
				t.Fatalf("event %d: %s of absent share %s", i, ev.Kind, pair)
			}
			replay[pair] = ev.Kind == events.Change
		}
	}

	// the grants hashes and the reverse index hold the same records
	forward := rawShares(t, e, "grants:", false)
	reverse := rawShares(t, e, "shared-with:", true)
	if !maps.Equal(forward, reverse) {
		t.Fatalf("grants and reverse index differ:\n%v\n%v", forward, reverse)
	}
	for pair := range forward {
		if !replay[pair] {
			t.Errorf("share %s in the table but not in the replay", pair)
		}
	}
	for pair, on := range replay {
		if _, ok := forward[pair]; on && !ok {
			t.Errorf("share %s in the replay but not in the table", pair)
		}
	}

	// and the API reads the same
	listed := 0
	for _, server := range servers {
		_, gs, err := e.store.People(ctx, server)
		if err != nil {
			t.Fatal(err)
		}
		listed += len(gs)
	}
	for _, u := range users {
		gs, err := e.store.SharedWith(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		listed -= len(gs)
	}
	if listed != 0 {
		t.Errorf("People and SharedWith differ by %d shares", listed)
	}
}

// rawShares reads every record of one kind of share key straight from
// Redis, as "server/user" -> record.
func rawShares(t *testing.T, e *env, kind string, byUser bool) map[string]string {
	t.Helper()
	ctx := context.Background()
	prefix := DefaultPrefix + "{shares}:" + kind
	out := map[string]string{}
	for _, k := range e.rdb.Keys(ctx, prefix+"*").Val() {
		owner := strings.TrimPrefix(k, prefix)
		for field, rec := range e.rdb.HGetAll(ctx, k).Val() {
			pair := owner + "/" + field
			if byUser {
				pair = field + "/" + owner
			}
			if _, dup := out[pair]; dup {
				t.Fatalf("share %s twice", pair)
			}
			out[pair] = rec
		}
	}
	if len(out) == 0 {
		t.Logf("no %s shares left", kind)
	}
	return out
}
