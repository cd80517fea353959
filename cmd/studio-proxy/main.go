// Command studio-proxy runs the proxy that lets people share their
// notebook servers, and the tools that operate it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the proxy", runServe},
		{"dev", "run the proxy with a development identity provider, Redis and demo servers", runDev},
		{"shares", "list, grant, change and revoke shares", runShares},
		{"sessions", "end the login sessions of a user", runSessions},
		{"bench", "measure the proxy against a direct backend and nginx", runBench},
	}
}

// hidden are commands that studio-proxy runs itself and that usage does
// not list.
func hidden() []command {
	return []command{
		{"demo-server", "run the built-in demo notebook server", runDemoServer},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "studio-proxy: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return nil
	}
	for _, c := range append(commands(), hidden()...) {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout)
		}
	}
	usage(os.Stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: studio-proxy <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'studio-proxy <command> --help' for its flags. Every flag can also be")
	fmt.Fprintln(w, "set with an environment variable: --redis-url is STUDIO_REDIS_URL.")
}
