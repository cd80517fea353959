package studio_test

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"

	bt "github.com/studio-proxy/studio-proxy/internal/browsertest"
	"github.com/studio-proxy/studio-proxy/internal/testenv"
)

// The browser, its waits and its screenshots (test-artifacts/screenshots/
// studio-*.png) come from internal/browsertest; what is here knows the
// Studio page.

// signIn signs user in through the development provider's form and waits
// for Studio home to show their own server.
func signIn(b *bt.Browser, env *testenv.Env, user string) {
	b.SignIn(env, user)
	b.Wait("Studio home shows their server", bt.TextIs("#server-name", "My Server"))
}

// switcherItems describes the switcher's menu: "label:checked" each.
const switcherItems = `[...document.querySelectorAll("#switcher-menu [role=menuitemradio]")]
	.map(i => i.querySelector(".item-label").textContent + ":" + i.getAttribute("aria-checked"))
	.join(", ")`

// stateIs: the details panel shows the server in state s.
func stateIs(s string) string {
	return fmt.Sprintf(`document.querySelector("#server-state")?.dataset.state === %q`, s)
}

// startEnv starts the proxy with the Studio, the development provider,
// Redis and the demo servers: one replica, whose URL is the external one.
func startEnv(t *testing.T) *testenv.Env {
	t.Helper()
	// quiet unless STUDIO_TEST_LOG is set, like the rest of testenv
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("STUDIO_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	env := testenv.Start(t, testenv.Options{
		Log:    log,
		Studio: true,
	})
	if len(env.Replicas) != 1 {
		t.Fatalf("got %d replicas, want 1", len(env.Replicas))
	}
	return env
}
