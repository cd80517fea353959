package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/backend"
	"github.com/studio-proxy/studio-proxy/internal/redistest"
)

func TestSharesCommand(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	t.Setenv("STUDIO_REDIS_URL", "redis://"+srv.Addr+"/0")
	rdb := srv.Client()
	reg := backend.NewRegistry(rdb, backend.RegistryConfig{})
	if _, err := reg.EnsureDefault(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	st, err := authz.New(rdb, authz.Config{Owners: reg})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []authz.User{
		{Name: "alice", DisplayName: "Alice Liddell", Org: "acme"},
		{Name: "bob", DisplayName: "Bob Builder", Org: "acme"},
		{Name: "eve", Org: "globex"},
	} {
		if err := st.PutUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}

	// the steps build on each other
	steps := []struct {
		name    string
		args    string
		want    []string // substrings of the output
		wantErr error    // nil: any error when errText is set
		errText string
	}{
		{name: "grant with flags after the arguments",
			args: "grant alice bob --start-stop --expires 24h",
			want: []string{"shared: bob has access to alice (use, start/stop, expires: 2"}},
		{name: "list as a table",
			args: "list alice",
			want: []string{"alice  Alice Liddell  owner", "bob    Bob Builder    use, start/stop  operator"}},
		{name: "change",
			args: "change --start-stop=false alice bob",
			want: []string{"changed: bob has access to alice (use, expires: 2"}},
		{name: "change needs the permission",
			args:    "change alice bob",
			errText: "--start-stop"},
		{name: "shared with",
			args: "shared-with bob",
			want: []string{"SERVER", "alice   use"}},
		{name: "grant across organizations",
			args: "grant alice eve", wantErr: authz.ErrOtherOrg},
		{name: "grant to an unknown user",
			args: "grant alice zed", wantErr: authz.ErrUnknownUser},
		{name: "grant with a bad expiry",
			args: "grant alice bob --expires soon", errText: "duration"},
		{name: "list a server that does not exist",
			args: "list nosuch", wantErr: authz.ErrNoServer},
		{name: "revoke",
			args: "revoke alice bob --json",
			want: []string{`"revoked": true`}},
		{name: "revoke again",
			args: "revoke alice bob", wantErr: authz.ErrNoGrant},
		{name: "too few arguments",
			args: "grant alice", errText: "want 2 arguments"},
		{name: "unknown action",
			args: "share alice bob", errText: "unknown action"},
		{name: "help",
			args: "grant --help", wantErr: flag.ErrHelp,
			want: []string{"STUDIO_EXPIRES", "--start-stop"}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(ctx, append([]string{"shares"}, strings.Fields(step.args)...), &out)
			switch {
			case step.wantErr != nil:
				if !errors.Is(err, step.wantErr) {
					t.Fatalf("got error %v, want %v", err, step.wantErr)
				}
			case step.errText != "":
				if err == nil || !strings.Contains(err.Error(), step.errText) {
					t.Fatalf("got error %v, want one saying %q", err, step.errText)
				}
			case err != nil:
				t.Fatalf("got error %v, want none", err)
			}
			for _, w := range step.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("got output\n%s\nwant it to contain %q", out.String(), w)
				}
			}
		})
	}

	t.Run("list as JSON", func(t *testing.T) {
		if _, err := st.Grant(ctx, authz.Operator(), "alice", "bob", false, time.Time{}); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := run(ctx, []string{"shares", "list", "--json", "ALICE"}, &out); err != nil {
			t.Fatal(err)
		}
		var got struct {
			Server string
			Owner  authz.User
			Grants []authz.Grant
		}
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("decoding %s: %v", out.String(), err)
		}
		if got.Server != "alice" || got.Owner.Name != "alice" || len(got.Grants) != 1 ||
			got.Grants[0].User != "bob" || got.Grants[0].GrantedBy != "operator" {
			t.Fatalf("got %+v, want alice's server shared with bob by the operator", got)
		}
	})

	t.Run("audited as the operator", func(t *testing.T) {
		msgs, err := rdb.XRange(ctx, "studio:{shares}:audit", "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 4 {
			t.Fatalf("got %d audit entries, want 4 (grant, change, revoke, grant)", len(msgs))
		}
		for _, m := range msgs {
			if m.Values["who"] != "operator" || m.Values["role"] != "operator" {
				t.Errorf("got audit %v, want who and role operator", m.Values)
			}
		}
	})
}
