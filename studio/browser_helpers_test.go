package studio_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/studio-proxy/studio-proxy/internal/devidp"
	"github.com/studio-proxy/studio-proxy/internal/testenv"
	"github.com/studio-proxy/studio-proxy/studio"
)

// screenshotDir is where the browser tests leave their screenshots,
// relative to the repository root. The README names it.
const screenshotDir = "test-artifacts/screenshots"

// chromium returns the path of Debian's chromium. When it is missing the
// test is skipped, or failed when CI=true.
func chromium(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("chromium")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("chromium not found (run scripts/install-test-deps): %v", err)
	}
	t.Skipf("chromium not found, skipping (scripts/install-test-deps installs it): %v", err)
	return ""
}

// browser is one headless chromium with its own profile: its own cookies,
// like a second person on another computer.
type browser struct {
	t    *testing.T
	name string
	ctx  context.Context
	dir  string // where screenshots go
}

func newBrowser(t *testing.T, name, exe, shots string) *browser {
	t.Helper()
	actx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 820),
	)
	t.Cleanup(cancel)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(cancelTab)
	ctx, cancelAll := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancelAll)

	// start the browser now, so that a failure names it
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s's browser: %v", name, err)
	}
	return &browser{t: t, name: name, ctx: ctx, dir: shots}
}

// do runs actions, failing the test with what was being done.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.shot("failed-" + b.name)
		b.t.Fatalf("%s: %s: %v", b.name, what, err)
	}
}

// wait evaluates a JavaScript expression every 100ms until it is true,
// for up to 20 seconds. Errors while a page is loading count as false.
func (b *browser) wait(what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		var ok bool
		ok, err = chromedp.Run(b.ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		if err == nil && ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.shot("failed-" + b.name)
	b.t.Fatalf("%s: waiting until %s (%s): not true after 20s (last error: %v)",
		b.name, what, expr, err)
}

// eval returns the value of a JavaScript expression (awaiting a promise).
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: evaluating %s: %v", b.name, expr, err)
	}
	return v
}

// text returns the text of the first element matching a CSS selector.
func (b *browser) text(sel string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(
		`(document.querySelector(%q)?.textContent ?? "").replace(/\s+/g, " ").trim()`, sel))
}

// shot saves a PNG of what the browser shows.
func (b *browser) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Logf("%s: screenshot %s: %v", b.name, name, err)
		return
	}
	path := filepath.Join(b.dir, "studio-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Errorf("saving screenshot: %v", err)
	}
}

// signIn opens Studio signed out, signs in at the development provider's
// form, and lands back on Studio home.
func (b *browser) signIn(env *testenv.Env, user string) {
	b.t.Helper()
	b.do("opening Studio signed out", chromedp.Navigate(env.ExternalURL+env.Prefix))
	b.wait("the provider's sign-in form is shown", `!!document.querySelector("#password")`)
	b.do("signing in",
		chromedp.SetValue(chromedp.CSS("#username"), user),
		chromedp.SetValue(chromedp.CSS("#password"), devidp.DefaultPassword),
		chromedp.Click(chromedp.CSS(`button[value="login"]`)),
	)
	b.wait("back on Studio home", and(
		fmt.Sprintf("location.pathname === %q", env.Prefix),
		textIs("#server-name", "My Server")))
}

// pressKey presses a key the way a browser delivers it to a page that
// handles its keydown: chromedp's KeyEvent also sends the character
// event, which a real browser drops once keydown's default is prevented,
// and which would press the button that has the focus by then.
func pressKey(key string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, r := range key {
			for _, k := range kb.Encode(r) {
				if k.Type == kb.KeyChar {
					continue
				}
				if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, *k); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// switcherItems describes the switcher's menu: "label:checked" each.
const switcherItems = `[...document.querySelectorAll("#switcher-menu [role=menuitemradio]")]
	.map(i => i.querySelector(".item-label").textContent + ":" + i.getAttribute("aria-checked"))
	.join(", ")`

// The expressions the tests wait for and check.

// and joins expressions with &&.
func and(exprs ...string) string {
	return "(" + strings.Join(exprs, ") && (") + ")"
}

// textIs: the first element matching sel has exactly the text want.
func textIs(sel, want string) string {
	return fmt.Sprintf("document.querySelector(%q)?.textContent === %q", sel, want)
}

// textHas: the first element matching sel contains the text part.
func textHas(sel, part string) string {
	return fmt.Sprintf("document.querySelector(%q)?.textContent.includes(%q)", sel, part)
}

// exists: an element matches sel.
func exists(sel string) string {
	return fmt.Sprintf("!!document.querySelector(%q)", sel)
}

// shown: an element matches sel and is not hidden.
func shown(sel string) string {
	return fmt.Sprintf("document.querySelector(%q)?.hidden === false", sel)
}

// stateIs: the details panel shows the server in state s.
func stateIs(s string) string {
	return fmt.Sprintf(`document.querySelector("#server-state")?.dataset.state === %q`, s)
}

// focused: the element with this id has the focus.
func focused(id string) string {
	return fmt.Sprintf("document.activeElement?.id === %q", id)
}

// click clicks the first element matching a CSS selector.
func click(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Click(chromedp.CSS(sel))
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
		Log: log,
		Studio: func(r *testenv.Replica) http.Handler {
			h, err := studio.New(studio.Config{
				Authz:       r.Authz,
				Registry:    r.Registry,
				ExternalURL: r.URL,
				Log:         log,
			})
			if err != nil {
				t.Fatalf("studio.New: %v", err)
			}
			return h
		},
	})
	if len(env.Replicas) != 1 {
		t.Fatalf("got %d replicas, want 1", len(env.Replicas))
	}
	return env
}

// clearShots empties the screenshot folder of this package's earlier
// screenshots, once per test run.
var clearShots sync.Once

// screenshotsDir returns the screenshot folder at the repository root.
func screenshotsDir(t *testing.T) string {
	t.Helper()
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			t.Fatal("repository root (go.mod) not found")
		}
		root = parent
	}
	dir := filepath.Join(root, screenshotDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	clearShots.Do(func() {
		old, _ := filepath.Glob(filepath.Join(dir, "studio-*.png"))
		for _, f := range old {
			os.Remove(f)
		}
	})
	t.Logf("screenshots in %s", dir)
	return dir
}
