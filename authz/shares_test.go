package authz

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/studio-proxy/studio-proxy/internal/events"
	"github.com/studio-proxy/studio-proxy/internal/ident"
)

func TestNewConfig(t *testing.T) {
	srv := newEnv(t)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no owners", Config{}},
		{"brace in prefix", Config{Owners: testOwners, Prefix: "a{b}:"}},
		{"negative audit length", Config{Owners: testOwners, AuditMaxLen: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(srv.rdb, tt.cfg); err == nil {
				t.Fatal("got no error, want one")
			}
		})
	}
}

func TestGrantRules(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		actor   User
		server  string
		user    string
		expires time.Duration
		want    error // nil for success
	}{
		{"owner grants", alice, "alice", "bob", 0, nil},
		{"owner grants with expiry", alice, "alice", "bob", time.Hour, nil},
		{"admin grants", dave, "alice", "carol", 0, nil},
		{"operator grants", Operator(), "alice", "carol", 0, nil},
		{"names are canonicalised", User{Name: "ALICE", Org: "acme"}, "Alice", "BOB", 0, nil},
		{"to oneself", alice, "alice", "alice", 0, ErrSelf},
		{"admin to oneself", dave, "alice", "dave", 0, ErrSelf},
		{"to the owner", dave, "alice", "alice", 0, ErrOwner},
		{"operator to the owner", Operator(), "alice", "alice", 0, ErrOwner},
		{"to an unknown user", alice, "alice", "zed", 0, ErrUnknownUser},
		{"to another organization", alice, "alice", "eve", 0, ErrOtherOrg},
		{"operator to another organization", Operator(), "alice", "eve", 0, ErrOtherOrg},
		{"by a grantee", bob, "alice", "carol", 0, ErrNotAllowed},
		{"by an admin of another organization", frank, "alice", "carol", 0, ErrNotAllowed},
		{"by a user who claims acme's admin", User{Name: "eve", Org: "globex", Admin: true},
			"alice", "carol", 0, ErrNotAllowed},
		{"of no such server", alice, "nosuch", "bob", 0, ErrNoServer},
		{"invalid user", alice, "alice", "bob}{x", 0, ident.ErrInvalid},
		{"invalid user is invalid input", alice, "alice", "bob:x", 0, ErrInvalidInput},
		{"invalid server", alice, "a/b", "bob", 0, ident.ErrInvalid},
		{"invalid actor", User{Name: "al ice"}, "alice", "bob", 0, ErrInvalidInput},
		{"expiry in the past", alice, "alice", "bob", -time.Second, ErrInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			var exp time.Time
			if tt.expires != 0 {
				exp = e.clock.Now().Add(tt.expires)
			}
			g, err := e.store.Grant(ctx, tt.actor, tt.server, tt.user, true, exp)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("got error %v, want %v", err, tt.want)
				}
				if keys := e.rdb.Keys(ctx, "*{shares}:grants:*").Val(); len(keys) != 0 {
					t.Fatalf("got keys %v after a refused grant, want none", keys)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			want := Grant{
				Server: strings.ToLower(tt.server), User: strings.ToLower(tt.user),
				StartStop: true, GrantedBy: strings.ToLower(tt.actor.Name),
				GrantedAt: e.clock.Now(), UpdatedAt: e.clock.Now(), Expires: exp,
			}
			if g != want {
				t.Fatalf("got %+v, want %+v", g, want)
			}
		})
	}
}

func TestGrantNeedsOwnerInDirectory(t *testing.T) {
	e := newEnv(t)
	_, err := e.store.Grant(context.Background(), Operator(), "ghost", "bob", false, time.Time{})
	if err == nil || !strings.Contains(err.Error(), "never signed in") {
		t.Fatalf("got error %v, want one about the owner never signing in", err)
	}
}

func TestChangeAndRevokeRules(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		actor  User
		server string
		user   string
		want   error
	}{
		{"owner", alice, "alice", "bob", nil},
		{"admin", dave, "alice", "bob", nil},
		{"operator", Operator(), "alice", "bob", nil},
		{"grantee", bob, "alice", "bob", ErrNotAllowed},
		{"admin of another organization", frank, "alice", "bob", ErrNotAllowed},
		{"no grant", alice, "alice", "carol", ErrNoGrant},
		{"no server", alice, "nosuch", "bob", ErrNoServer},
		{"invalid user", alice, "alice", "{shares}", ErrInvalidInput},
		{"invalid server", alice, "..", "bob", ident.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run("change by "+tt.name, func(t *testing.T) {
			e := newEnv(t)
			if _, err := e.store.Grant(ctx, alice, "alice", "bob", false, time.Time{}); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(time.Minute)
			g, err := e.store.SetStartStop(ctx, tt.actor, tt.server, tt.user, true)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got error %v, want %v", err, tt.want)
			}
			if tt.want != nil {
				return
			}
			if !g.StartStop || g.GrantedBy != "alice" || !g.UpdatedAt.Equal(e.clock.Now()) {
				t.Fatalf("got %+v, want start/stop, granted by alice, updated now", g)
			}
		})
		t.Run("revoke by "+tt.name, func(t *testing.T) {
			e := newEnv(t)
			if _, err := e.store.Grant(ctx, alice, "alice", "bob", false, time.Time{}); err != nil {
				t.Fatal(err)
			}
			err := e.store.Revoke(ctx, tt.actor, tt.server, tt.user)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got error %v, want %v", err, tt.want)
			}
			_, grants, err := e.store.People(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(grants), 1; tt.want == nil {
				want = 0
				if got != want {
					t.Fatalf("got %d grants after revoke, want %d", got, want)
				}
			} else if got != want {
				t.Fatalf("got %d grants after refused revoke, want %d", got, want)
			}
		})
	}
}

func TestRevokeAll(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	evs := collect(t, e.srv)
	for _, u := range []string{"bob", "carol"} {
		if _, err := e.store.Grant(ctx, alice, "alice", u, false, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.store.RevokeAll(ctx, bob, "alice"); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("by a grantee: got error %v, want ErrNotAllowed", err)
	}
	n, err := e.store.RevokeAll(ctx, dave, "alice")
	if err != nil || n != 2 {
		t.Fatalf("got %d, %v; want 2 revoked", n, err)
	}
	if _, grants, _ := e.store.People(ctx, "alice"); len(grants) != 0 {
		t.Fatalf("got %+v, want no grants left", grants)
	}
	if got := evs.wait(t, 4); got[2].Kind != events.Revoke || got[3].Kind != events.Revoke {
		t.Fatalf("got %+v, want two revokes after the grants", got)
	}
}

func TestGrantAgainIsIdempotent(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	evs := collect(t, e.srv)

	first, err := e.store.Grant(ctx, alice, "alice", "bob", false, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	exp := e.clock.Now().Add(24 * time.Hour)
	again, err := e.store.Grant(ctx, dave, "alice", "bob", true, exp)
	if err != nil {
		t.Fatal(err)
	}
	want := Grant{
		Server: "alice", User: "bob", StartStop: true,
		GrantedBy: "alice", GrantedAt: first.GrantedAt,
		UpdatedAt: e.clock.Now(), Expires: exp,
	}
	if again != want {
		t.Fatalf("got %+v, want %+v", again, want)
	}

	// granting once more without expiry removes the expiry
	e.clock.Advance(time.Minute)
	third, err := e.store.Grant(ctx, alice, "alice", "bob", true, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !third.Expires.IsZero() || !third.GrantedAt.Equal(first.GrantedAt) {
		t.Fatalf("got %+v, want no expiry and the first grant time", third)
	}
	if n := e.rdb.ZCard(ctx, DefaultPrefix+"{shares}:expiries").Val(); n != 0 {
		t.Fatalf("got %d expiry entries, want 0", n)
	}

	got := evs.wait(t, 3)
	kinds := []events.Kind{got[0].Kind, got[1].Kind, got[2].Kind}
	if want := []events.Kind{events.Grant, events.Change, events.Change}; !slices.Equal(kinds, want) {
		t.Fatalf("got events %v, want %v", kinds, want)
	}
	if got[1].Actor != "dave" || !got[1].StartStop {
		t.Fatalf("got second event %+v, want a change by dave to start/stop", got[1])
	}
	if _, grants, _ := e.store.People(ctx, "alice"); len(grants) != 1 {
		t.Fatalf("got %d grants, want 1", len(grants))
	}
}

func TestEventsAndAudit(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	evs := collect(t, e.srv)

	steps := []struct {
		name string
		do   func() error
		ev   events.Event
		want map[string]any // audit entry
	}{
		{
			"grant by the owner",
			func() error {
				_, err := e.store.Grant(ctx, alice, "alice", "bob", true, e.clock.Now().Add(time.Hour))
				return err
			},
			events.Event{Kind: events.Grant, Server: "alice", User: "bob", Actor: "alice", StartStop: true},
			map[string]any{"who": "alice", "role": "owner", "what": "grant", "server": "alice",
				"user": "bob", "start_stop": "true", "expires": "2030-01-02T04:04:05Z",
				"at": "2030-01-02T03:04:05Z"},
		},
		{
			"change by an admin",
			func() error { _, err := e.store.SetStartStop(ctx, dave, "alice", "bob", false); return err },
			events.Event{Kind: events.Change, Server: "alice", User: "bob", Actor: "dave"},
			map[string]any{"who": "dave", "role": "admin", "what": "change", "server": "alice",
				"user": "bob", "start_stop": "false", "expires": "", "at": "2030-01-02T03:04:05Z"},
		},
		{
			"revoke by the operator",
			func() error { return e.store.Revoke(ctx, Operator(), "alice", "bob") },
			events.Event{Kind: events.Revoke, Server: "alice", User: "bob", Actor: "operator"},
			map[string]any{"who": "operator", "role": "operator", "what": "revoke",
				"server": "alice", "user": "bob", "start_stop": "false", "expires": "",
				"at": "2030-01-02T03:04:05Z"},
		},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := st.do(); err != nil {
				t.Fatal(err)
			}
			got := evs.wait(t, i+1)[i]
			st.ev.At = e.clock.Now()
			if !got.At.Equal(st.ev.At) {
				t.Fatalf("got event at %v, want %v", got.At, st.ev.At)
			}
			got.At = st.ev.At
			if got != st.ev {
				t.Fatalf("got event %+v, want %+v", got, st.ev)
			}
			entries := audit(t, e.rdb)
			if len(entries) != i+1 {
				t.Fatalf("got %d audit entries, want %d", len(entries), i+1)
			}
			for k, v := range st.want {
				if entries[i][k] != v {
					t.Errorf("got audit %s=%v, want %v", k, entries[i][k], v)
				}
			}
		})
	}
}

func TestAuditIsBounded(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	store := e.newStore(t, e.rdb, Config{AuditMaxLen: 10})
	for i := range 500 {
		if _, err := store.Grant(ctx, alice, "alice", "bob", i%2 == 0, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	// MAXLEN ~ trims whole stream nodes (100 entries by default)
	n := e.rdb.XLen(ctx, DefaultPrefix+"{shares}:audit").Val()
	if n > 10+100 {
		t.Fatalf("got audit length %d, want at most %d", n, 10+100)
	}
}

func TestLeave(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	evs := collect(t, e.srv)
	if _, err := e.store.Grant(ctx, alice, "alice", "bob", false, time.Time{}); err != nil {
		t.Fatal(err)
	}

	if err := e.store.Leave(ctx, carol, "alice"); !errors.Is(err, ErrNoGrant) {
		t.Fatalf("carol leaving: got error %v, want ErrNoGrant", err)
	}
	if err := e.store.Leave(ctx, bob, "alice"); err != nil {
		t.Fatalf("bob leaving: got error %v, want none", err)
	}
	if err := e.store.Leave(ctx, bob, "alice"); !errors.Is(err, ErrNoGrant) {
		t.Fatalf("bob leaving again: got error %v, want ErrNoGrant", err)
	}
	if err := e.store.Leave(ctx, Operator(), "alice"); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("operator leaving: got error %v, want ErrNotAllowed", err)
	}
	if err := e.store.Leave(ctx, User{Name: "b{o}b"}, "alice"); !errors.Is(err, ident.ErrInvalid) {
		t.Fatalf("invalid user leaving: got error %v, want ident.ErrInvalid", err)
	}

	got := evs.wait(t, 2)[1]
	if got.Kind != events.Revoke || got.Actor != "bob" || got.User != "bob" {
		t.Fatalf("got event %+v, want a revoke by bob", got)
	}
	if last := audit(t, e.rdb)[1]; last["what"] != "leave" || last["role"] != "grantee" {
		t.Fatalf("got audit %v, want a leave by the grantee", last)
	}
	if d, _ := e.store.Decide(ctx, bob, "alice"); d != None {
		t.Fatalf("got decision %v after leaving, want none", d)
	}
}

func TestPeople(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)

	// carol first; a minute later dave and bob at once, ordered by name
	grant := func(user string, ss bool) {
		t.Helper()
		if _, err := e.store.Grant(ctx, alice, "alice", user, ss, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	grant("carol", true)
	e.clock.Advance(time.Minute)
	grant("dave", false)
	grant("bob", false)

	owner, grants, err := e.store.People(ctx, "Alice")
	if err != nil {
		t.Fatal(err)
	}
	if owner != alice {
		t.Fatalf("got owner %+v, want %+v", owner, alice)
	}
	var names []string
	for _, g := range grants {
		names = append(names, g.User)
	}
	if want := []string{"carol", "bob", "dave"}; !slices.Equal(names, want) {
		t.Fatalf("got grantees %v, want %v", names, want)
	}
	if !grants[0].StartStop || grants[1].StartStop || grants[0].GrantedBy != "alice" {
		t.Fatalf("got %+v, want carol with start/stop granted by alice, bob without", grants)
	}

	t.Run("owner never signed in", func(t *testing.T) {
		owner, grants, err := e.store.People(ctx, "ghost")
		if err != nil || owner != (User{Name: "nobody"}) || len(grants) != 0 {
			t.Fatalf("got %+v, %v, %v; want a bare owner nobody and no grants", owner, grants, err)
		}
	})
	t.Run("no such server", func(t *testing.T) {
		if _, _, err := e.store.People(ctx, "nosuch"); !errors.Is(err, ErrNoServer) {
			t.Fatalf("got error %v, want ErrNoServer", err)
		}
	})
	t.Run("invalid server", func(t *testing.T) {
		if _, _, err := e.store.People(ctx, "x{y}"); !errors.Is(err, ident.ErrInvalid) {
			t.Fatalf("got error %v, want ident.ErrInvalid", err)
		}
	})
}

func TestSharedWith(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if _, err := e.store.Grant(ctx, bob, "bob", "carol", true, time.Time{}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	if _, err := e.store.Grant(ctx, alice, "alice", "carol", false, time.Time{}); err != nil {
		t.Fatal(err)
	}

	got, err := e.store.SharedWith(ctx, "CAROL")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Server != "bob" || got[1].Server != "alice" {
		t.Fatalf("got %+v, want bob's then alice's server", got)
	}
	if !got[0].StartStop || got[1].StartStop || got[1].GrantedBy != "alice" {
		t.Fatalf("got %+v, want start/stop only on bob's", got)
	}
	if none, err := e.store.SharedWith(ctx, "dave"); err != nil || len(none) != 0 {
		t.Fatalf("got %v, %v for dave, want nothing", none, err)
	}
	if _, err := e.store.SharedWith(ctx, "-x"); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("got error %v, want ErrInvalidInput", err)
	}
}

func TestExpiry(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	evs := collect(t, e.srv)
	exp := e.clock.Now().Add(time.Hour)
	if _, err := e.store.Grant(ctx, alice, "alice", "bob", true, exp); err != nil {
		t.Fatal(err)
	}

	d, until, err := e.store.DecideUntil(ctx, bob, "alice")
	if err != nil || d != GranteeStartStop || !until.Equal(exp) {
		t.Fatalf("before expiry: got %v until %v (%v), want %v until %v",
			d, until, err, GranteeStartStop, exp)
	}

	// a millisecond before, still there; at the expiry, gone everywhere
	e.clock.Advance(time.Hour - time.Millisecond)
	if d, _ := e.store.Decide(ctx, bob, "alice"); d != GranteeStartStop {
		t.Fatalf("just before expiry: got %v, want %v", d, GranteeStartStop)
	}
	e.clock.Advance(time.Millisecond)
	d, until, err = e.store.DecideUntil(ctx, bob, "alice")
	if err != nil || d != None || !until.IsZero() {
		t.Fatalf("at expiry: got %v until %v (%v), want none", d, until, err)
	}
	if _, grants, _ := e.store.People(ctx, "alice"); len(grants) != 0 {
		t.Fatalf("got people %+v, want no grants", grants)
	}
	if grants, _ := e.store.SharedWith(ctx, "bob"); len(grants) != 0 {
		t.Fatalf("got shared with %+v, want none", grants)
	}
	if _, err := e.store.SetStartStop(ctx, alice, "alice", "bob", false); !errors.Is(err, ErrNoGrant) {
		t.Fatalf("changing: got %v, want ErrNoGrant", err)
	}
	if err := e.store.Revoke(ctx, alice, "alice", "bob"); !errors.Is(err, ErrNoGrant) {
		t.Fatalf("revoking: got %v, want ErrNoGrant", err)
	}
	if err := e.store.Leave(ctx, bob, "alice"); !errors.Is(err, ErrNoGrant) {
		t.Fatalf("leaving: got %v, want ErrNoGrant", err)
	}

	t.Run("sweep removes and announces", func(t *testing.T) {
		n, err := e.store.SweepExpired(ctx)
		if err != nil || n != 1 {
			t.Fatalf("got %d, %v; want 1 removed", n, err)
		}
		for _, k := range []string{"{shares}:grants:alice", "{shares}:shared-with:bob", "{shares}:expiries"} {
			if e.rdb.Exists(ctx, DefaultPrefix+k).Val() != 0 {
				t.Errorf("got key %s after sweep, want it gone", k)
			}
		}
		got := evs.wait(t, 2)[1]
		if got.Kind != events.Revoke || got.User != "bob" || got.Actor != "" {
			t.Fatalf("got event %+v, want a revoke of bob without actor", got)
		}
		if last := audit(t, e.rdb)[1]; last["what"] != "expire" || last["role"] != "system" {
			t.Fatalf("got audit %v, want an expire by the system", last)
		}
		if n, err := e.store.SweepExpired(ctx); err != nil || n != 0 {
			t.Fatalf("second sweep: got %d, %v; want 0", n, err)
		}
	})

	t.Run("granting an expired share anew", func(t *testing.T) {
		if _, err := e.store.Grant(ctx, alice, "alice", "carol", false, e.clock.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Hour)
		g, err := e.store.Grant(ctx, dave, "alice", "carol", true, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if !g.GrantedAt.Equal(e.clock.Now()) || g.GrantedBy != "dave" {
			t.Fatalf("got %+v, want a fresh grant by dave", g)
		}
		if got := evs.wait(t, 4)[3]; got.Kind != events.Grant {
			t.Fatalf("got event %+v, want a grant", got)
		}
		if n, err := e.store.SweepExpired(ctx); err != nil || n != 0 {
			t.Fatalf("sweep: got %d, %v; want nothing to sweep", n, err)
		}
	})

	t.Run("sweep leaves live shares", func(t *testing.T) {
		for i, u := range []string{"bob", "dave"} {
			exp := e.clock.Now().Add(time.Duration(i+1) * time.Minute)
			if _, err := e.store.Grant(ctx, alice, "alice", u, false, exp); err != nil {
				t.Fatal(err)
			}
		}
		e.clock.Advance(90 * time.Second)
		if n, err := e.store.SweepExpired(ctx); err != nil || n != 1 {
			t.Fatalf("got %d, %v; want 1 removed", n, err)
		}
		_, grants, _ := e.store.People(ctx, "alice")
		if len(grants) != 2 || grants[0].User != "carol" || grants[1].User != "dave" {
			t.Fatalf("got %+v, want carol and dave left", grants)
		}
	})
}

func TestKeys(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if _, err := e.store.Grant(ctx, alice, "alice", "bob", false, e.clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"studio:{shares}:audit",
		"studio:{shares}:expiries",
		"studio:{shares}:grants:alice",
		"studio:{shares}:shared-with:bob",
	}
	got := e.rdb.Keys(ctx, "studio:{shares}:*").Val()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("got keys %v, want %v", got, want)
	}
	// the whole key space: one hash tag, on share keys only
	for _, k := range e.rdb.Keys(ctx, "*").Val() {
		tag := strings.Count(k, "{") + strings.Count(k, "}")
		if strings.Contains(k, "{shares}") && tag != 2 || !strings.Contains(k, "{shares}") && tag != 0 {
			t.Errorf("key %q: want exactly the {shares} tag on share keys, none elsewhere", k)
		}
	}
}

func TestRedisDown(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if _, err := e.store.Grant(ctx, alice, "alice", "bob", true, time.Time{}); err != nil {
		t.Fatal(err)
	}
	// a client that does not retry, only to keep the test short
	rdb := redis.NewClient(&redis.Options{Addr: e.srv.Addr, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	e.store = e.newStore(t, rdb, Config{})
	e.srv.Stop()

	for _, u := range []User{alice, bob, dave, eve} {
		t.Run("decide for "+u.Name, func(t *testing.T) {
			// the owner is known without Redis here (a fixed table), so
			// only the owner decides; everyone else needs Redis
			d, err := e.store.Decide(ctx, u, "alice")
			if u.Name == "alice" {
				if err != nil || d != Owner {
					t.Fatalf("got %v, %v; want owner", d, err)
				}
				return
			}
			if err == nil || d != None {
				t.Fatalf("got %v, %v; want none and an error", d, err)
			}
		})
	}
	t.Run("grant", func(t *testing.T) {
		if _, err := e.store.Grant(ctx, alice, "alice", "carol", true, time.Time{}); err == nil {
			t.Fatal("got no error, want one")
		}
	})
	t.Run("people", func(t *testing.T) {
		if _, _, err := e.store.People(ctx, "alice"); err == nil {
			t.Fatal("got no error, want one")
		}
	})
}
