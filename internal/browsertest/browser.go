package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/studio-proxy/studio-proxy/internal/testenv"
)

// ScreenshotDir is where screenshots go, relative to the repository
// root. The README names it.
const ScreenshotDir = "test-artifacts/screenshots"

// WaitTimeout is how long Wait polls before it fails the test.
const WaitTimeout = 20 * time.Second

// Chromium returns the path of Debian's chromium. When it is missing the
// test is skipped, or failed when the environment variable CI is "true".
func Chromium(t testing.TB) string {
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

// Browser is one headless chromium with its own profile: its own
// cookies, like a second person on another computer.
type Browser struct {
	// Name says whose browser it is in failures.
	Name string
	// Ctx runs chromedp actions in the browser's one tab.
	Ctx context.Context

	t     *testing.T
	shots Screenshots
}

// New starts a browser for t, which closes it when t ends. exe is
// chromium's path (see Chromium); shots says where Shot saves.
func New(t *testing.T, name, exe string, shots Screenshots) *Browser {
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
	return &Browser{Name: name, Ctx: ctx, t: t, shots: shots}
}

// Do runs actions, failing the test with what was being done.
func (b *Browser) Do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.Ctx, actions...); err != nil {
		b.Shot("failed-" + b.Name)
		b.t.Fatalf("%s: %s: %v", b.Name, what, err)
	}
}

// Wait evaluates a JavaScript expression every 100ms until it is true,
// for up to WaitTimeout. Errors while a page is loading count as false.
func (b *Browser) Wait(what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	var err error
	for time.Now().Before(deadline) {
		var ok bool
		ok, err = chromedp.Run(b.Ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		if err == nil && ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Shot("failed-" + b.Name)
	b.t.Fatalf("%s: waiting until %s (%s): not true after %v (last error: %v)",
		b.Name, what, expr, WaitTimeout, err)
}

// Eval returns the value of a JavaScript expression in b's page,
// awaiting it when it is a promise.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.Ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: evaluating %s: %v", b.Name, expr, err)
	}
	return v
}

// Text returns the text of the first element matching a CSS selector,
// its blanks collapsed.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	return Eval[string](b, fmt.Sprintf(
		`(document.querySelector(%q)?.textContent ?? "").replace(/\s+/g, " ").trim()`, sel))
}

// OnNewDocument runs a script in every document the tab opens from now
// on, before the page's own scripts: instrumentation such as a wrapper
// that records websocket events.
func (b *Browser) OnNewDocument(script string) {
	b.t.Helper()
	b.Do("adding a script to new documents",
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument,
				page.AddScriptToEvaluateOnNewDocumentParams{Source: script})
			return err
		}))
}

// Shot saves a PNG of what the browser shows as <prefix><name>.png in
// the screenshot folder. A failure to take it is logged, not fatal.
func (b *Browser) Shot(name string) {
	b.t.Helper()
	if b.shots.Dir == "" {
		return
	}
	png, err := chromedp.Run(b.Ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Logf("%s: screenshot %s: %v", b.Name, name, err)
		return
	}
	path := filepath.Join(b.shots.Dir, b.shots.Prefix+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Errorf("saving screenshot: %v", err)
	}
}

// SignIn opens Studio home signed out, signs in as user at the
// development provider's form, and waits until the browser is back on
// Studio home.
func (b *Browser) SignIn(env *testenv.Env, user string) {
	b.t.Helper()
	b.Do("opening Studio signed out", chromedp.Navigate(env.ExternalURL+env.Prefix))
	b.Wait("the provider's sign-in form is shown", Exists("#password"))
	b.Do("signing in as "+user,
		chromedp.SetValue(chromedp.CSS("#username"), user),
		chromedp.SetValue(chromedp.CSS("#password"), env.IDP.Password()),
		chromedp.Click(chromedp.CSS(`button[value="login"]`)),
	)
	b.Wait("back on Studio home", fmt.Sprintf("location.pathname === %q", env.Prefix))
}

// Screenshots says where a test's browsers save their screenshots.
// The zero value saves none.
type Screenshots struct {
	// Dir is the folder.
	Dir string
	// Prefix starts every file name, for example "e2e-".
	Prefix string
}

// cleared holds the prefixes whose old screenshots were removed in this
// test run.
var cleared sync.Map

// NewScreenshots returns the screenshot folder at the repository root
// (ScreenshotDir), made if needed. The first call for a prefix in a test
// run removes the screenshots an earlier run left with that prefix.
func NewScreenshots(t testing.TB, prefix string) Screenshots {
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
	dir := filepath.Join(root, ScreenshotDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, done := cleared.LoadOrStore(prefix, true); !done {
		old, _ := filepath.Glob(filepath.Join(dir, prefix+"*.png"))
		for _, f := range old {
			os.Remove(f)
		}
	}
	t.Logf("screenshots in %s", dir)
	return Screenshots{Dir: dir, Prefix: prefix}
}
