// Package testchild lets a test binary run itself as a notebook-server
// stand-in, so that the process driver is tested with real child
// processes. It serves the demo server (internal/demoserver) and can be
// told to start slowly, exit at once, ignore SIGTERM or crash.
//
// A test package calls Main first thing in TestMain; the child is then
// started with a command from Command and the environment entry Env.
package testchild

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/studio-proxy/studio-proxy/internal/demoserver"
)

// Env is the environment entry that makes a test binary run as a child.
const Env = "STUDIO_TESTCHILD=1"

// Main runs the child and exits if the test binary was started as one;
// otherwise it returns at once.
func Main() {
	if os.Getenv("STUDIO_TESTCHILD") != "1" {
		return
	}
	os.Exit(run(os.Args[1:]))
}

// Command returns a command template that runs the current test binary as
// a child with the given flags (see Main for the flags):
//
//	--ignore-term      ignore SIGTERM
//	--delay=D          wait D before listening
//	--exit=N           print a line with the secret and exit with status N
//	--count-file=PATH  append a line to PATH at start
//
// The child serves the demo server on {port} under {base_url}, with the
// secret from STUDIO_SERVER_SECRET; a request for <base_url>crash makes it
// exit with status 3, and <base_url>env lists the names of its environment
// variables. It accepts and ignores --notebook-dir.
func Command(flags ...string) string {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	return quote(exe) + " --port={port} --base-url={base_url} " + strings.Join(flags, " ")
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func run(args []string) int {
	fs := flag.NewFlagSet("testchild", flag.ContinueOnError)
	port := fs.Int("port", 0, "port to listen on")
	base := fs.String("base-url", "/", "base url")
	ignoreTerm := fs.Bool("ignore-term", false, "ignore SIGTERM")
	delay := fs.Duration("delay", 0, "wait before listening")
	exit := fs.Int("exit", -1, "exit at once with this status")
	countFile := fs.String("count-file", "", "append a line here at start")
	fs.String("notebook-dir", "", "accepted and ignored")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	secret := os.Getenv("STUDIO_SERVER_SECRET")
	fmt.Printf("testchild: args %q\n", args)

	if *countFile != "" {
		f, err := os.OpenFile(*countFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testchild:", err)
			return 2
		}
		fmt.Fprintln(f, os.Getpid())
		f.Close()
	}
	if *exit >= 0 {
		fmt.Fprintf(os.Stderr, "testchild: giving up, my token was %s\n", secret)
		return *exit
	}
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	time.Sleep(*delay)

	ds, err := demoserver.New(demoserver.Config{BaseURL: *base, Secret: secret})
	if err != nil {
		fmt.Fprintln(os.Stderr, "testchild:", err)
		return 2
	}
	mux := http.NewServeMux()
	mux.HandleFunc(*base+"crash", func(http.ResponseWriter, *http.Request) {
		fmt.Fprintln(os.Stderr, "testchild: crashing on request")
		os.Exit(3)
	})
	mux.HandleFunc(*base+"env", func(w http.ResponseWriter, r *http.Request) {
		// names only: the values include the secret
		var names []string
		for _, e := range os.Environ() {
			name, _, _ := strings.Cut(e, "=")
			names = append(names, name)
		}
		fmt.Fprintln(w, strings.Join(names, "\n"))
	})
	mux.Handle("/", ds)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "testchild:", err)
		return 2
	}
	fmt.Println("testchild: listening on", l.Addr())

	ctx := context.Background()
	if !*ignoreTerm {
		var stop func()
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGTERM)
		defer stop()
	}
	srv := &http.Server{Handler: mux}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	srv.Serve(l)
	fmt.Println("testchild: stopped")
	return 0
}
