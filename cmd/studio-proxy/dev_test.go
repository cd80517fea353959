package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/studio-proxy/studio-proxy/internal/devidp"
	"github.com/studio-proxy/studio-proxy/internal/redistest"
)

// TestMain lets the test binary stand in for studio-proxy when the
// process driver runs it as a server: "demo-server" runs that command.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "demo-server" {
		if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestDev runs the dev command as a newcomer would: its own Redis, the
// development provider, the demo server; alice signs in at the address
// it prints, starts her server and reaches it through the proxy.
func TestDev(t *testing.T) {
	redistest.Require(t) // dev starts its own; skip (or fail in CI) without one
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"dev",
			"--listen", freeAddr(t),
			"--idp-listen", freeAddr(t),
			"--server-command", quoteWord(self) + " demo-server --port={port} " +
				"--base-url={base_url} --name={id}",
			"--data-dir", t.TempDir(),
			"--log-level", "error",
		}, w)
		w.Close()
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dev exited with %v, want a clean stop", err)
		}
	}()

	// the banner names the Studio address and the password
	home, password := "", ""
	lines := bufio.NewScanner(out)
	for lines.Scan() && (home == "" || password == "") {
		f := strings.Fields(lines.Text())
		switch {
		case len(f) == 2 && f[0] == "Studio:":
			home = f[1]
		case len(f) == 3 && f[0] == "password":
			password = f[2]
		}
	}
	go io.Copy(io.Discard, out)
	if home == "" || password != devidp.DefaultPassword {
		t.Fatalf("got Studio %q, password %q from the banner, want both", home, password)
	}

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, body, err := devidp.SignIn(ctx, c, home, "alice", password)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "<html") {
		t.Fatalf("after sign-in: got %d at %s, want the Studio page", resp.StatusCode, resp.Request.URL)
	}
	base := strings.TrimSuffix(home, "/studio/")

	// start alice's server and reach it
	req, _ := http.NewRequest(http.MethodPost, home+"api/servers/alice/start", nil)
	req.Header.Set("X-Studio-CSRF", "1")
	req.Header.Set("Origin", base)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ State string }
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || st.State != "running" {
		t.Fatalf("starting: got %d %q, want 200 running", resp.StatusCode, st.State)
	}
	resp, err = c.Get(base + "/servers/alice/api/whoami")
	if err != nil {
		t.Fatal(err)
	}
	var report struct{ User string }
	json.NewDecoder(resp.Body).Decode(&report)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || report.User != "alice" {
		t.Fatalf("through the proxy: got %d, user %q, want 200 from the demo server as alice",
			resp.StatusCode, report.User)
	}
}

func TestDevRefusesNonLoopback(t *testing.T) {
	err := run(context.Background(), []string{"dev", "--listen", "0.0.0.0:0"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--allow-non-loopback") {
		t.Fatalf("got %v, want a refusal that names --allow-non-loopback", err)
	}
}
