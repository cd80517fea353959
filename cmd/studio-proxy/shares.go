package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/backend"
)

// sharesAction is one subcommand of "studio-proxy shares".
type sharesAction struct {
	name    string
	args    string // the positional arguments, for the usage
	summary string
	nargs   int
	// flags adds the action's own flags; run does the action.
	flags func(fs *flag.FlagSet) *shareOpts
	run   func(ctx context.Context, st *authz.Store, o *shareOpts, args []string, w io.Writer) error
}

// shareOpts holds the flags of all actions; each action sets up its own.
type shareOpts struct {
	json      bool
	startStop bool
	expires   expiry
}

func sharesActions() []sharesAction {
	return []sharesAction{
		{"list", "<server>", "list the people with access to a server", 1,
			noFlags, sharesList},
		{"shared-with", "<user>", "list the servers shared with a user", 1,
			noFlags, sharesSharedWith},
		{"grant", "<server> <user>", "share a server with a user (again: update the permission)", 2,
			grantFlags, sharesGrant},
		{"change", "<server> <user>", "change the start/stop permission of a share", 2,
			changeFlags, sharesChange},
		{"revoke", "<server> <user>", "end a share", 2,
			noFlags, sharesRevoke},
	}
}

// runShares lists, grants, changes and revokes shares as the operator,
// who may manage every server. Each change is audited as "operator".
func runShares(ctx context.Context, args []string, stdout io.Writer) error {
	actions := sharesActions()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		sharesUsage(stdout, actions)
		if len(args) == 0 {
			return errors.New("shares: no action given")
		}
		return nil
	}
	var act *sharesAction
	for i := range actions {
		if actions[i].name == args[0] {
			act = &actions[i]
		}
	}
	if act == nil {
		sharesUsage(stdout, actions)
		return fmt.Errorf("shares: unknown action %q", args[0])
	}

	fs := newFlagSet("shares "+act.name+" "+act.args, act.summary, stdout)
	rf := addRedisFlags(fs)
	o := act.flags(fs)
	fs.BoolVar(&o.json, "json", false, "print JSON, for scripts")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if act.name == "change" && !isSet(fs, "start-stop") {
		return errors.New("shares change: give --start-stop=true or --start-stop=false")
	}
	if len(pos) != act.nargs {
		fs.Usage()
		return fmt.Errorf("shares %s: want %d arguments (%s), got %d",
			act.name, act.nargs, act.args, len(pos))
	}

	rdb, err := rf.client()
	if err != nil {
		return err
	}
	defer rdb.Close()
	reg := backend.NewRegistry(rdb, backend.RegistryConfig{Prefix: rf.prefix})
	st, err := authz.New(rdb, authz.Config{Prefix: rf.prefix, Owners: reg})
	if err != nil {
		return err
	}
	return act.run(ctx, st, o, pos, stdout)
}

func sharesUsage(w io.Writer, actions []sharesAction) {
	fmt.Fprintln(w, "Usage: studio-proxy shares <action> [flags] <arguments>")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Acts as the operator, who may manage the shares of every server;")
	fmt.Fprintln(w, "changes are audited and announced like those made in the browser.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Actions:")
	for _, a := range actions {
		fmt.Fprintf(w, "  %-12s %-18s %s\n", a.name, a.args, a.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'studio-proxy shares <action> --help' for its flags.")
}

// parseInterspersed parses flags that may come before, between or after
// the positional arguments ("grant alice bob --start-stop"), and returns
// the positional ones. Environment variables fill the flags not given.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	if err := parseFlags(fs, nil); err != nil {
		return nil, err
	}
	return pos, nil
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func noFlags(*flag.FlagSet) *shareOpts { return &shareOpts{} }

func grantFlags(fs *flag.FlagSet) *shareOpts {
	o := &shareOpts{}
	fs.BoolVar(&o.startStop, "start-stop", false, "allow the user to start and stop the server")
	fs.Var(&o.expires, "expires",
		"end the share by itself after this duration (24h) or at this time (RFC 3339); empty: never")
	return o
}

func changeFlags(fs *flag.FlagSet) *shareOpts {
	o := &shareOpts{}
	fs.BoolVar(&o.startStop, "start-stop", false,
		"the new start/stop permission: --start-stop=true or --start-stop=false (required)")
	return o
}

// expiry is the value of --expires: a duration from now, or a time.
type expiry struct {
	text string
	in   time.Duration
	at   time.Time
}

func (e *expiry) String() string { return e.text }

func (e *expiry) Set(s string) error {
	*e = expiry{text: s}
	if s == "" {
		return nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return errors.New("duration must be positive")
		}
		e.in = d
		return nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return errors.New("want a duration such as 24h or a time such as 2030-01-02T15:04:05Z")
	}
	e.at = t
	return nil
}

// time is the expiry for a grant made now; zero for never.
func (e *expiry) time(now time.Time) time.Time {
	if e.in > 0 {
		return now.Add(e.in)
	}
	return e.at
}

func sharesList(ctx context.Context, st *authz.Store, o *shareOpts, args []string, w io.Writer) error {
	owner, grants, err := st.People(ctx, args[0])
	if err != nil {
		return err
	}
	if o.json {
		return writeJSON(w, struct {
			Server string        `json:"server"`
			Owner  authz.User    `json:"owner"`
			Grants []authz.Grant `json:"grants"`
		}{strings.ToLower(args[0]), owner, orEmpty(grants)})
	}

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tNAME\tPERMISSION\tGRANTED BY\tGRANTED AT\tEXPIRES")
	fmt.Fprintf(tw, "%s\t%s\towner\t\t\t\n", owner.Name, owner.DisplayName)
	for _, g := range grants {
		// the directory has the display name; a missing entry is no
		// reason to fail the listing
		name := ""
		if u, err := st.User(ctx, g.User); err == nil {
			name = u.DisplayName
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", g.User, name, permission(g),
			g.GrantedBy, when(g.GrantedAt), expires(g))
	}
	return tw.Flush()
}

func sharesSharedWith(ctx context.Context, st *authz.Store, o *shareOpts, args []string, w io.Writer) error {
	grants, err := st.SharedWith(ctx, args[0])
	if err != nil {
		return err
	}
	if o.json {
		return writeJSON(w, orEmpty(grants))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tPERMISSION\tGRANTED BY\tGRANTED AT\tEXPIRES")
	for _, g := range grants {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", g.Server, permission(g),
			g.GrantedBy, when(g.GrantedAt), expires(g))
	}
	return tw.Flush()
}

func sharesGrant(ctx context.Context, st *authz.Store, o *shareOpts, args []string, w io.Writer) error {
	g, err := st.Grant(ctx, authz.Operator(), args[0], args[1], o.startStop, o.expires.time(time.Now()))
	if err != nil {
		return err
	}
	return writeGrant(w, o, "shared", g)
}

func sharesChange(ctx context.Context, st *authz.Store, o *shareOpts, args []string, w io.Writer) error {
	g, err := st.SetStartStop(ctx, authz.Operator(), args[0], args[1], o.startStop)
	if err != nil {
		return err
	}
	return writeGrant(w, o, "changed", g)
}

func sharesRevoke(ctx context.Context, st *authz.Store, o *shareOpts, args []string, w io.Writer) error {
	if err := st.Revoke(ctx, authz.Operator(), args[0], args[1]); err != nil {
		return err
	}
	server, user := strings.ToLower(args[0]), strings.ToLower(args[1])
	if o.json {
		return writeJSON(w, map[string]any{"server": server, "user": user, "revoked": true})
	}
	_, err := fmt.Fprintf(w, "revoked: %s no longer has access to %s\n", user, server)
	return err
}

func writeGrant(w io.Writer, o *shareOpts, verb string, g authz.Grant) error {
	if o.json {
		return writeJSON(w, g)
	}
	_, err := fmt.Fprintf(w, "%s: %s has access to %s (%s, expires: %s)\n",
		verb, g.User, g.Server, permission(g), expires(g))
	return err
}

func permission(g authz.Grant) string {
	if g.StartStop {
		return "use, start/stop"
	}
	return "use"
}

func when(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

func expires(g authz.Grant) string {
	if g.Expires.IsZero() {
		return "never"
	}
	return when(g.Expires)
}

func orEmpty(gs []authz.Grant) []authz.Grant {
	if gs == nil {
		return []authz.Grant{}
	}
	return gs
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
