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
	b.t.Fatalf("%s: waiting until %s (%s): not true after 20s (last error: %v)", b.name, what, expr, err)
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
	b.wait("back on Studio home", fmt.Sprintf(
		`location.pathname === %q && document.querySelector("#server-name")?.textContent === "My Server"`,
		env.Prefix))
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

// TestBrowserSharing walks through sharing a server in two real browsers:
// alice shares her server with bob, bob switches to it, alice changes and
// then removes his permission, and bob's page follows.
func TestBrowserSharing(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	exe := chromium(t)
	shots := screenshotsDir(t)

	env := startEnv(t)

	alice := newBrowser(t, "alice", exe, shots)
	bob := newBrowser(t, "bob", exe, shots)

	// both sign in: the user directory knows people from their first
	// sign-in on, and only known colleagues can be found and shared with
	alice.signIn(env, "alice")
	bob.signIn(env, "bob")
	env.Login(t, "mallory") // of another organization
	alice.wait("her server is stopped", `document.querySelector("#server-state").dataset.state === "stopped"`)
	if got := alice.text("#switcher-label"); got != "My Server" {
		t.Errorf("alice's switcher: got %q, want My Server", got)
	}
	alice.shot("01-alice-home")

	alice.do("starting her server", chromedp.Click(chromedp.CSS("#start-button")))
	alice.wait("her server runs", `document.querySelector("#server-state").dataset.state === "running"`)
	alice.wait("Open is enabled", `document.querySelector("#open-link").getAttribute("aria-disabled") === "false"`)
	alice.shot("02-alice-running")

	// alice shares it with bob: suggestions as she types, chosen with the
	// keyboard, Start/Stop Disabled
	alice.do("opening the share dialog", chromedp.Click(chromedp.CSS("#share-button")))
	alice.wait("the dialog is open", `document.querySelector("#share-dialog").open`)
	alice.wait("the owner is listed first",
		`document.querySelector("#people li")?.dataset.user === "alice"`)
	alice.do("typing a name", chromedp.SendKeys(chromedp.CSS("#share-user"), "bo"))
	alice.wait("bob is suggested",
		`!document.querySelector("#share-suggestions").hidden &&
		 document.querySelector("#share-suggestions").textContent.includes("Bob Baker")`)
	alice.shot("03-alice-suggestions")
	alice.do("picking bob with the keyboard", chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.Enter))
	alice.wait("the field holds bob", `document.querySelector("#share-user").value === "bob"`)
	if got := alice.text("#share-permission option:checked"); got != "Start/Stop Disabled" {
		t.Errorf("permission by default: got %q, want Start/Stop Disabled", got)
	}
	alice.do("sharing", chromedp.Click(chromedp.CSS("#share-submit")))
	alice.wait("the share is confirmed", `document.querySelector("#share-success").textContent.length > 0`)
	if got, want := alice.text("#share-success"), "Shared My Server with Bob Baker (bob)."; got != want {
		t.Errorf("success message: got %q, want %q", got, want)
	}
	alice.wait("bob is under People With Access, Start/Stop Disabled",
		`document.querySelector('#people li[data-user="bob"] select')?.value === "off"`)
	alice.shot("04-alice-shared-with-bob")

	// every refusal is a sentence in the dialog
	refusals := []struct{ user, want string }{
		{"bob", "already shared with bob"},
		{"mallory", "mallory belongs to another organization"},
		{"alice", "cannot share a server with yourself"},
		{"zed", `There is no user named "zed"`},
	}
	for _, r := range refusals {
		alice.do("sharing with "+r.user,
			chromedp.SetValue(chromedp.CSS("#share-user"), r.user),
			chromedp.Click(chromedp.CSS("#share-submit")))
		alice.wait("the refusal of "+r.user+" is shown", fmt.Sprintf(
			`document.querySelector("#share-error").textContent.includes(%q)`, r.want))
	}
	alice.shot("05-alice-refusal")

	// Escape closes the dialog and gives the focus back to Share
	alice.do("pressing Escape", chromedp.Focus(chromedp.CSS("#share-permission")), chromedp.KeyEvent(kb.Escape))
	alice.wait("the dialog is closed", `!document.querySelector("#share-dialog").open`)
	alice.wait("Share has the focus", `document.activeElement?.id === "share-button"`)

	// bob, in his own browser, finds alice's server in the switcher
	bob.do("reloading", chromedp.Reload())
	bob.wait("the switcher is filled", `document.querySelector("#switcher-label").textContent === "My Server"`)
	bob.do("opening the switcher", chromedp.Click(chromedp.CSS("#switcher-button")))
	bob.wait("the menu is open", `!document.querySelector("#switcher-menu").hidden`)
	if got, want := eval[string](bob, switcherItems), "My Server:true, alice's server:false"; got != want {
		t.Errorf("bob's switcher: got %q, want %q", got, want)
	}
	bob.shot("06-bob-switcher")

	bob.do("choosing alice's server with the keyboard",
		chromedp.KeyEvent(kb.ArrowDown), pressKey(kb.Enter))
	bob.wait("alice's server is active", `document.querySelector("#switcher-label").textContent === "alice's server" &&
		document.querySelector("#server-name").textContent === "alice's server"`)
	bob.wait("it runs", `document.querySelector("#server-state").dataset.state === "running"`)
	if got := eval[bool](bob, `document.querySelector("#stop-button").hidden`); !got {
		t.Error("bob sees Stop on alice's server, want it hidden (Start/Stop Disabled)")
	}
	if got := eval[bool](bob, `document.querySelector("#share-button").hidden`); !got {
		t.Error("bob sees Share on alice's server, want it hidden")
	}
	bob.do("opening the switcher again", chromedp.Click(chromedp.CSS("#switcher-button")))
	bob.wait("the checkmark moved", fmt.Sprintf(`(%s) === "My Server:false, alice's server:true"`, switcherItems))
	bob.shot("07-bob-switched")
	bob.do("closing it with Escape", chromedp.KeyEvent(kb.Escape))
	bob.wait("the menu is closed, focus on its button",
		`document.querySelector("#switcher-menu").hidden && document.activeElement?.id === "switcher-button"`)

	// he may not stop it, not even by calling the API himself
	stop := `fetch("/studio/api/servers/alice/stop",
		{method: "POST", headers: {"X-Studio-CSRF": "1"}}).then(r => r.status)`
	if got := eval[int](bob, stop); got != http.StatusForbidden {
		t.Errorf("bob's POST stop: got %d, want 403", got)
	}

	// Open takes him into alice's server, with no new sign-in
	bob.do("opening alice's server", chromedp.Click(chromedp.CSS("#open-link")))
	bob.wait("alice's server answers", `location.pathname === "/servers/alice/" &&
		document.body.textContent.includes("Demo server")`)
	bob.shot("08-bob-in-alice-server")
	bob.do("back to Studio", chromedp.Navigate(env.ExternalURL+env.Prefix))
	bob.wait("Studio shows alice's server", `document.querySelector("#server-name")?.textContent === "alice's server"`)

	// alice enables Start/Stop for bob; it takes effect at once
	alice.do("opening the share dialog", chromedp.Click(chromedp.CSS("#share-button")))
	alice.wait("bob is listed", `!!document.querySelector('#people li[data-user="bob"] select')`)
	alice.do("enabling start/stop for bob with the keyboard",
		chromedp.Focus(chromedp.CSS(`#people li[data-user="bob"] select`)),
		chromedp.KeyEvent(kb.ArrowUp))
	alice.wait("the change is confirmed",
		`document.querySelector("#share-success").textContent === "bob can now start and stop My Server."`)
	alice.shot("09-alice-enabled-start-stop")

	bob.do("reloading", chromedp.Reload())
	bob.wait("Stop is offered", `document.querySelector("#server-name")?.textContent === "alice's server" &&
		!document.querySelector("#stop-button").hidden && !document.querySelector("#stop-button").disabled`)
	bob.shot("10-bob-can-stop")
	bob.do("stopping alice's server", chromedp.Click(chromedp.CSS("#stop-button")))
	bob.wait("it is stopped", `document.querySelector("#server-state").dataset.state === "stopped"`)
	bob.do("starting it again", chromedp.Click(chromedp.CSS("#start-button")))
	bob.wait("it runs again", `document.querySelector("#server-state").dataset.state === "running"`)

	// alice removes bob's access with the trash button
	alice.do("removing bob", chromedp.Click(chromedp.CSS(`button[aria-label="Remove access for bob"]`)))
	alice.wait("bob is gone", `!document.querySelector('#people li[data-user="bob"]') &&
		document.querySelector("#share-success").textContent === "Removed access for bob."`)
	alice.shot("11-alice-removed-bob")

	// bob's next action is refused, and alice's server leaves his switcher
	bob.do("stopping alice's server once more", chromedp.Click(chromedp.CSS("#stop-button")))
	bob.wait("the refusal is shown", `!document.querySelector("#notice").hidden &&
		document.querySelector("#notice").textContent.includes("You no longer have access to alice's server")`)
	bob.wait("he is back on his own server", `document.querySelector("#switcher-label").textContent === "My Server" &&
		document.querySelector("#server-name").textContent === "My Server"`)
	bob.do("opening the switcher", chromedp.Click(chromedp.CSS("#switcher-button")))
	if got, want := eval[string](bob, switcherItems), "My Server:true"; got != want {
		t.Errorf("bob's switcher after the revoke: got %q, want %q", got, want)
	}
	bob.shot("12-bob-refused")
	bob.do("closing the switcher", chromedp.KeyEvent(kb.Escape))

	// signing out is one click
	bob.do("signing out", chromedp.Click(chromedp.CSS("#signout")))
	bob.wait("signed out", `location.pathname.endsWith("/signed-out")`)
	bob.do("opening Studio again", chromedp.Navigate(env.ExternalURL+env.Prefix))
	bob.wait("the sign-in form is shown", `!!document.querySelector("#password")`)
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

// TestBrowserStartingAndLeaving follows a slow start live, and leaves a
// share from the Shared with me list.
func TestBrowserStartingAndLeaving(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	exe := chromium(t)
	shots := screenshotsDir(t)
	env := startEnv(t)

	env.Login(t, "alice")
	bob := newBrowser(t, "bob", exe, shots)
	bob.signIn(env, "bob")
	env.Share(t, "alice", "alice", "bob", true)

	// the share is listed with its permission; Switch makes it active
	bob.do("reloading", chromedp.Reload())
	bob.wait("alice's server is shared with him", `document.querySelector('#shared-rows tr[data-id="alice"]')`)
	if got, want := bob.text(`#shared-rows tr[data-id="alice"] .pill`), "Start/Stop Enabled"; got != want {
		t.Errorf("permission shown: got %q, want %q", got, want)
	}
	bob.do("switching from the list",
		chromedp.Click(chromedp.CSS(`#shared-rows tr[data-id="alice"] button[aria-label="Switch to alice's server"]`)))
	bob.wait("alice's server is active", `document.querySelector("#server-name").textContent === "alice's server"`)

	// a slow start shows as starting, also after a reload, until it runs
	env.Driver.SetStartDelay(3 * time.Second)
	bob.do("starting alice's server", chromedp.Click(chromedp.CSS("#start-button")))
	bob.wait("it is starting", `document.querySelector("#server-state").dataset.state === "starting"`)
	bob.do("reloading while it starts", chromedp.Reload())
	bob.wait("the reloaded page shows it starting", `document.querySelector("#server-state")?.dataset.state === "starting" &&
		document.querySelector("#server-name").textContent === "alice's server"`)
	if got := bob.text("#server-state"); got != "Starting…" {
		t.Errorf("state badge: got %q, want Starting…", got)
	}
	bob.shot("21-bob-starting")
	bob.wait("the page sees it running without a reload",
		`document.querySelector("#server-state").dataset.state === "running"`)

	// leaving takes it out of the list and the switcher
	bob.do("leaving alice's server", chromedp.Click(chromedp.CSS(`button[aria-label="Leave alice's server"]`)))
	bob.wait("it is gone", `!document.querySelector('#shared-rows tr[data-id="alice"]') &&
		document.querySelector("#shared-message").textContent.startsWith("You left alice's server.")`)
	bob.wait("he is back on his own server", `document.querySelector("#switcher-label").textContent === "My Server" &&
		document.querySelector("#server-name").textContent === "My Server"`)
	bob.shot("22-bob-left")
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
