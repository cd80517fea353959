package authz

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/studio-proxy/studio-proxy/internal/ident"
)

func TestDecide(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if _, err := e.store.Grant(ctx, alice, "alice", "bob", true, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Grant(ctx, alice, "alice", "carol", false, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Grant(ctx, eve, "eve", "frank", false, time.Time{}); err != nil {
		t.Fatal(err)
	}
	movedBob := bob
	movedBob.Org = "globex"

	tests := []struct {
		name    string
		user    User
		server  string
		want    Decision
		wantErr error
	}{
		{"owner", alice, "alice", Owner, nil},
		{"owner, any case", User{Name: "Alice", Org: "acme"}, "ALICE", Owner, nil},
		{"admin of the organization", dave, "alice", Admin, nil},
		{"admin of another organization", frank, "alice", None, nil},
		{"grantee with start/stop", bob, "alice", GranteeStartStop, nil},
		{"grantee without", carol, "alice", Grantee, nil},
		{"admin who is also a grantee", frank, "eve", Admin, nil},
		{"nobody", eve, "alice", None, nil},
		{"user of the organization without share", dave, "bob", Admin, nil},
		{"grantee who moved to another organization", movedBob, "alice", None, nil},
		{"admin of a server whose owner never signed in", dave, "ghost", None, nil},
		{"operator", Operator(), "alice", None, nil},
		{"no such server", alice, "nosuch", None, ErrNoServer},
		{"invalid user", User{Name: "bob\n"}, "alice", None, ident.ErrInvalid},
		{"invalid server", bob, "alice:x", None, ErrInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, until, err := e.store.DecideUntil(ctx, tt.user, tt.server)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			if !until.IsZero() {
				t.Fatalf("got until %v, want zero for a share without expiry", until)
			}
		})
	}
}

func TestDecisionPermissions(t *testing.T) {
	tests := []struct {
		d                     Decision
		use, startStop, share bool
	}{
		{None, false, false, false},
		{Grantee, true, false, false},
		{GranteeStartStop, true, true, false},
		{Admin, true, true, true},
		{Owner, true, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			if got := tt.d.CanUse(); got != tt.use {
				t.Errorf("CanUse: got %v, want %v", got, tt.use)
			}
			if got := tt.d.CanStartStop(); got != tt.startStop {
				t.Errorf("CanStartStop: got %v, want %v", got, tt.startStop)
			}
			if got := tt.d.CanShare(); got != tt.share {
				t.Errorf("CanShare: got %v, want %v", got, tt.share)
			}
		})
	}
}
