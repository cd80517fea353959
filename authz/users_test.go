package authz

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/studio-proxy/studio-proxy/internal/events"
	"github.com/studio-proxy/studio-proxy/internal/ident"
)

func TestPutUserAndUser(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	login := time.Date(2030, 5, 6, 7, 8, 9, 123456789, time.UTC)
	in := User{Name: "Ada.L", DisplayName: "Ada Lovelace", Email: "ada@acme.test",
		Org: "acme", Admin: true, LastLogin: login}
	if err := e.store.PutUser(ctx, in); err != nil {
		t.Fatal(err)
	}
	got, err := e.store.User(ctx, "ADA.l")
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.Name = "ada.l"
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	refused := []struct {
		name string
		u    User
		want error
	}{
		{"invalid name", User{Name: "a:b", Org: "acme"}, ident.ErrInvalid},
		{"empty name", User{Org: "acme"}, ErrInvalidInput},
		{"control character in display name", User{Name: "x", DisplayName: "a\x00b"}, ErrInvalidInput},
		{"long organization", User{Name: "x", Org: strings.Repeat("o", 300)}, ErrInvalidInput},
		{"invalid UTF-8 email", User{Name: "x", Email: "\xff@x"}, ErrInvalidInput},
		{"the operator", Operator(), ErrInvalidInput},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			if err := e.store.PutUser(ctx, tt.u); !errors.Is(err, tt.want) {
				t.Fatalf("got error %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("unknown user", func(t *testing.T) {
		if _, err := e.store.User(ctx, "zed"); !errors.Is(err, ErrUnknownUser) {
			t.Fatalf("got error %v, want ErrUnknownUser", err)
		}
	})
}

func TestPutUserAnnouncesAdminAndOrgChanges(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	evs := collect(t, e.srv)

	steps := []struct {
		name     string
		u        User
		announce bool
	}{
		{"new user", User{Name: "gina", Org: "acme"}, false},
		{"new display name", User{Name: "gina", DisplayName: "Gina", Org: "acme"}, false},
		{"made admin", User{Name: "gina", Org: "acme", Admin: true}, true},
		{"same again", User{Name: "gina", Org: "acme", Admin: true}, false},
		{"other organization", User{Name: "gina", Org: "globex", Admin: true}, true},
		{"no longer admin", User{Name: "gina", Org: "globex"}, true},
	}
	announced := 0
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := e.store.PutUser(ctx, st.u); err != nil {
				t.Fatal(err)
			}
			if st.announce {
				announced++
			}
			// a marker after each step tells how many announcements came
			marker := events.Event{Kind: events.Logout, Session: fmt.Sprint(i)}
			if err := events.Publish(ctx, e.rdb, events.Channel(DefaultPrefix), marker); err != nil {
				t.Fatal(err)
			}
			got := evs.wait(t, announced+i+1)
			var changes int
			for _, ev := range got {
				if ev.Kind == events.UserChanged {
					changes++
					if ev.User != "gina" {
						t.Fatalf("got %+v, want a change of gina", ev)
					}
				}
			}
			if changes != announced {
				t.Fatalf("got %d user changes, want %d", changes, announced)
			}
		})
	}
}

func TestSearchUsers(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	for _, u := range []User{
		{Name: "ada", DisplayName: "Ada Lovelace", Org: "acme"},
		{Name: "grace", DisplayName: "Grace  HOPPER", Org: "acme"},
		{Name: "lovelace2", DisplayName: "Someone Else", Org: "acme"},
		{Name: "ada.g", DisplayName: "Ada Globex", Org: "globex"},
		{Name: "zoe", DisplayName: "Zoë Ünal", Org: "acme{x}:1"},
	} {
		if err := e.store.PutUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name   string
		org    string
		prefix string
		limit  int
		want   []string
	}{
		{"by username", "acme", "bo", 0, []string{"bob"}},
		{"by first name, any case", "acme", "ADA", 0, []string{"ada"}},
		{"by last name", "acme", "hop", 0, []string{"grace"}},
		{"by full name", "acme", "grace hop", 0, []string{"grace"}},
		{"by full name, spaces collapsed", "acme", " grace   h", 0, []string{"grace"}},
		{"name and username in text order", "acme", "love", 0, []string{"ada", "lovelace2"}},
		{"no match", "acme", "xyz", 0, nil},
		{"other organization only", "globex", "ada", 0, []string{"ada.g"}},
		{"unicode", "acme{x}:1", "zoë ü", 0, []string{"zoe"}},
		{"unknown organization", "initech", "", 0, nil},
		{"whole organization in text order", "acme", "", 3, []string{"ada", "dave", "alice"}},
		{"limited", "acme", "a", 1, []string{"ada"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users, err := e.store.SearchUsers(ctx, tt.org, tt.prefix, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range users {
				got = append(got, u.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("whole organization, each user once", func(t *testing.T) {
		users, err := e.store.SearchUsers(ctx, "acme", "", 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(users) != 7 {
			t.Fatalf("got %d users, want 7", len(users))
		}
	})

	t.Run("after a move and a rename", func(t *testing.T) {
		moved := User{Name: "grace", DisplayName: "Grace Brewster", Org: "globex"}
		if err := e.store.PutUser(ctx, moved); err != nil {
			t.Fatal(err)
		}
		for _, q := range []struct {
			org, prefix string
			want        int
		}{{"acme", "grace", 0}, {"acme", "hopper", 0}, {"globex", "hopper", 0}, {"globex", "brew", 1}} {
			users, err := e.store.SearchUsers(ctx, q.org, q.prefix, 10)
			if err != nil || len(users) != q.want {
				t.Fatalf("%s/%s: got %v, %v; want %d users", q.org, q.prefix, users, err, q.want)
			}
		}
	})

	t.Run("refused input", func(t *testing.T) {
		if _, err := e.store.SearchUsers(ctx, "acme", "a\nb", 10); !errors.Is(err, ErrInvalidInput) {
			t.Fatalf("got error %v, want ErrInvalidInput", err)
		}
	})
}
