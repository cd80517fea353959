package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/studio-proxy/studio-proxy/backend/process"
	"github.com/studio-proxy/studio-proxy/internal/devidp"
	"github.com/studio-proxy/studio-proxy/internal/redisproc"
	"github.com/studio-proxy/studio-proxy/proxy"
	"github.com/studio-proxy/studio-proxy/session"
)

const devSummary = `Runs studio-proxy for development, with everything it needs started for
you: a development identity provider with a few users, a private Redis
(redis-server, in memory) and a notebook server per user: Jupyter Notebook
when it is installed, the built-in demo server otherwise. Anyone who reaches
it can sign in with a well-known password, so it listens on loopback only
unless --allow-non-loopback is given.`

func runDev(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("dev", devSummary, stdout)
	listen := fs.String("listen", "127.0.0.1:8080", "address of the proxy")
	idpListen := fs.String("idp-listen", "127.0.0.1:8081",
		"address of the development identity provider")
	redisURL := fs.String("redis-url", "",
		"use this Redis instead of starting a private redis-server")
	command := fs.String("server-command", "",
		"command template of a server (see serve --help); empty: Jupyter Notebook "+
			"when installed, else the built-in demo server")
	dataDir := fs.String("data-dir", "",
		"directory for notebooks and server logs; empty: a temporary directory removed at exit")
	allowRemote := fs.Bool("allow-non-loopback", false,
		"listen on addresses other machines can reach (anyone can then sign in)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("dev: unexpected arguments %q", fs.Args())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	// both listeners first: their addresses are the URLs
	for _, addr := range []string{*listen, *idpListen} {
		if err := devidp.CheckListenAddr(addr, *allowRemote); err != nil {
			return fmt.Errorf("dev: %w (pass --allow-non-loopback to allow it)", err)
		}
	}
	pl, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	proxyAddr := pl.Addr().String()
	pl.Close() // runProxy listens again on the same address
	il, err := net.Listen("tcp", *idpListen)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer il.Close()
	external := "http://" + browsable(proxyAddr)
	issuer := "http://" + browsable(il.Addr().String())

	// working directories
	dir := *dataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "studio-proxy-dev-"); err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		defer os.RemoveAll(dir)
	}

	// Redis
	url := *redisURL
	if url == "" {
		rp, err := redisproc.Start(ctx, "", filepath.Join(dir, "redis"))
		if err != nil {
			return fmt.Errorf("dev: %w; or pass --redis-url", err)
		}
		defer rp.Stop()
		url = "redis://" + rp.Addr + "/0"
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return fmt.Errorf("dev: --redis-url: %w", err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()

	// the identity provider
	secret := randomHex()
	idp, err := devidp.New(devidp.Config{
		Issuer:                 issuer,
		ClientID:               "studio-proxy-dev",
		ClientSecret:           secret,
		RedirectURIs:           []string{external + proxy.DefaultPrefix + "callback"},
		PostLogoutRedirectURIs: []string{external + proxy.DefaultPrefix + "signed-out"},
		AllowNonLoopback:       *allowRemote,
		Log:                    log,
	})
	if err != nil {
		return fmt.Errorf("dev: identity provider: %w", err)
	}
	isrv := &http.Server{Handler: idp.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go isrv.Serve(il)
	defer isrv.Close()

	// the servers
	tmpl, kind, err := devServerCommand(*command)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	driver, err := process.New(process.Config{
		Command:      tmpl,
		NotebookRoot: filepath.Join(dir, "notebooks"),
		LogDir:       filepath.Join(dir, "logs"),
		Log:          log,
	})
	if err != nil {
		return fmt.Errorf("dev: process driver: %w", err)
	}

	sc := serveConfig{
		Listen:    proxyAddr,
		KeyPrefix: "studio:",
		Session: session.Config{
			Issuer:       issuer,
			ClientID:     "studio-proxy-dev",
			ClientSecret: secret,
			ExternalURL:  external,
			AdminGroup:   devidp.AdminGroup,
		},
		Proxy: proxy.Config{
			Prefix:      proxy.DefaultPrefix,
			ExternalURL: external,
		},
		Driver:          driver,
		ShutdownTimeout: 10 * time.Second,
		Log:             log,
		Ready: func(string) {
			printDevBanner(stdout, external+proxy.DefaultPrefix, issuer, idp, kind, url, dir)
		},
	}
	return runProxy(ctx, rdb, sc)
}

// devServerCommand picks the servers' command: the one given, else
// Jupyter Notebook when installed, else this binary's demo server. It
// returns the template and a phrase saying which it chose.
func devServerCommand(given string) (tmpl, kind string, err error) {
	if given != "" {
		return given, "the given --server-command", nil
	}
	if path, err := exec.LookPath("jupyter"); err == nil {
		tmpl := process.DefaultCommand
		if os.Geteuid() == 0 {
			// Jupyter refuses to run as root unless told
			tmpl += " --allow-root"
		}
		return tmpl, "Jupyter Notebook (" + path + ")", nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", "", fmt.Errorf("finding this binary for the demo server: %w", err)
	}
	tmpl = quoteWord(self) + " demo-server --port={port} --base-url={base_url} --name={id}"
	return tmpl, "the built-in demo server (jupyter is not installed)", nil
}

// quoteWord quotes a path for the process driver's shell-like splitting.
func quoteWord(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// browsable turns a listen address into one a browser can open:
// an unspecified host becomes localhost.
func browsable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func printDevBanner(
	w io.Writer,
	home, issuer string,
	idp *devidp.Provider,
	kind, redisURL, dir string,
) {
	fmt.Fprintf(w, "\nstudio-proxy dev is ready\n\n")
	fmt.Fprintf(w, "  Studio:             %s\n", home)
	fmt.Fprintf(w, "  identity provider:  %s\n", issuer)
	fmt.Fprintf(w, "  password (all):     %s\n", idp.Password())
	fmt.Fprintf(w, "  users:\n")
	for _, u := range idp.Users() {
		role := "organization " + u.Org
		for _, g := range u.Groups {
			if g == devidp.AdminGroup {
				role += ", admin"
			}
		}
		fmt.Fprintf(w, "    %-10s %s\n", u.Username, role)
	}
	fmt.Fprintf(w, "  servers run:        %s\n", kind)
	fmt.Fprintf(w, "  Redis:              %s\n", redisURL)
	fmt.Fprintf(w, "  notebooks and logs: %s\n\n", dir)
	fmt.Fprintf(w, "Press Ctrl-C to stop.\n\n")
}

func randomHex() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}
