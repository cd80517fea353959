package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/studio-proxy/studio-proxy/session"
)

const sessionsUsage = `Usage: studio-proxy sessions end [flags] <user>

Ends every login session of a user: they are signed out on every replica
at once, and their open connections are closed. They can sign in again;
to keep them out, remove them at the identity provider.
`

func runSessions(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, sessionsUsage)
		if len(args) == 0 {
			return errors.New("sessions: no subcommand given")
		}
		return nil
	}
	if args[0] != "end" {
		return fmt.Errorf("sessions: unknown subcommand %q (want end)", args[0])
	}
	return runSessionsEnd(ctx, args[1:], stdout)
}

func runSessionsEnd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("sessions end <user>",
		"End every login session of the user: signed out everywhere at once.", stdout)
	rf := addRedisFlags(fs)
	actor := fs.String("actor", "", "who is ending the sessions, recorded in the event")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("sessions end: no user given")
	}

	// flags may also follow the user: "sessions end alice --actor ops"
	user := fs.Arg(0)
	if err := parseFlags(fs, fs.Args()[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("sessions end: want one user, got also %q", fs.Args())
	}

	rdb, err := rf.client()
	if err != nil {
		return err
	}
	defer rdb.Close()
	n, err := session.EndSessions(ctx, rdb, rf.prefix, user, *actor)
	if err != nil {
		return fmt.Errorf("ending sessions of %s: %w", user, err)
	}
	fmt.Fprintf(stdout, "ended %d session(s) of %s\n", n, user)
	return nil
}
