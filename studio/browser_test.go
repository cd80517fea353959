package studio_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	bt "github.com/studio-proxy/studio-proxy/internal/browsertest"
)

// Selectors of the page that the tests use more than once.
const (
	bobsRow    = `#people li[data-user="bob"]`
	bobsSelect = `#people li[data-user="bob"] select`
	alicesRow  = `#shared-rows tr[data-id="alice"]`
)

// TestBrowserSharing walks through sharing a server in two real browsers:
// alice shares her server with bob, bob switches to it, alice changes and
// then removes his permission, and bob's page follows.
func TestBrowserSharing(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	exe := bt.Chromium(t)
	shots := bt.NewScreenshots(t, "studio-")
	env := startEnv(t)
	alice := bt.New(t, "alice", exe, shots)
	bob := bt.New(t, "bob", exe, shots)

	// both sign in: the user directory knows people from their first
	// sign-in on, and only known colleagues can be found and shared with
	signIn(alice, env, "alice")
	signIn(bob, env, "bob")
	env.Login(t, "mallory") // of another organization

	// alice starts her server
	alice.Wait("her server is stopped", stateIs("stopped"))
	if got := alice.Text("#switcher-label"); got != "My Server" {
		t.Errorf("alice's switcher: got %q, want My Server", got)
	}
	alice.Shot("01-alice-home")
	alice.Do("starting her server", bt.Click("#start-button"))
	alice.Wait("her server runs", stateIs("running"))
	alice.Wait("Open is enabled",
		`document.querySelector("#open-link").getAttribute("aria-disabled") === "false"`)
	alice.Shot("02-alice-running")

	// she shares it with bob: suggestions as she types, one chosen with
	// the keyboard, Start/Stop Disabled
	alice.Do("opening the share dialog", bt.Click("#share-button"))
	alice.Wait("the dialog is open", `document.querySelector("#share-dialog").open`)
	alice.Wait("the owner is listed first",
		`document.querySelector("#people li")?.dataset.user === "alice"`)
	alice.Do("typing a name", chromedp.SendKeys(chromedp.CSS("#share-user"), "bo"))
	alice.Wait("bob is suggested",
		bt.And(bt.Shown("#share-suggestions"), bt.TextHas("#share-suggestions", "Bob Baker")))
	alice.Shot("03-alice-suggestions")
	alice.Do("picking bob with the keyboard",
		chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.Enter))
	alice.Wait("the field holds bob", `document.querySelector("#share-user").value === "bob"`)
	if got := alice.Text("#share-permission option:checked"); got != "Start/Stop Disabled" {
		t.Errorf("permission by default: got %q, want Start/Stop Disabled", got)
	}
	alice.Do("sharing", bt.Click("#share-submit"))
	alice.Wait("the share is confirmed",
		bt.TextIs("#share-success", "Shared My Server with Bob Baker (bob)."))
	alice.Wait("bob is under People With Access, Start/Stop Disabled",
		fmt.Sprintf("document.querySelector(%q)?.value === %q", bobsSelect, "off"))
	alice.Shot("04-alice-shared-with-bob")

	// every refusal is a sentence in the dialog
	refusals := []struct{ user, want string }{
		{"bob", "already shared with bob"},
		{"mallory", "mallory belongs to another organization"},
		{"alice", "cannot share a server with yourself"},
		{"zed", `There is no user named "zed"`},
	}
	for _, r := range refusals {
		alice.Do("sharing with "+r.user,
			chromedp.SetValue(chromedp.CSS("#share-user"), r.user),
			bt.Click("#share-submit"))
		alice.Wait("the refusal of "+r.user+" is shown", bt.TextHas("#share-error", r.want))
	}
	alice.Shot("05-alice-refusal")

	// Escape closes the dialog and gives the focus back to Share
	alice.Do("pressing Escape",
		chromedp.Focus(chromedp.CSS("#share-permission")), chromedp.KeyEvent(kb.Escape))
	alice.Wait("the dialog is closed", `!document.querySelector("#share-dialog").open`)
	alice.Wait("Share has the focus", bt.Focused("share-button"))

	// bob, in his own browser, finds alice's server in the switcher
	bob.Do("reloading", chromedp.Reload())
	bob.Wait("the switcher is filled", bt.TextIs("#switcher-label", "My Server"))
	bob.Do("opening the switcher", bt.Click("#switcher-button"))
	bob.Wait("the menu is open", bt.Shown("#switcher-menu"))
	got, want := bt.Eval[string](bob, switcherItems), "My Server:true, alice's server:false"
	if got != want {
		t.Errorf("bob's switcher: got %q, want %q", got, want)
	}
	bob.Shot("06-bob-switcher")

	bob.Do("choosing alice's server with the keyboard",
		chromedp.KeyEvent(kb.ArrowDown), bt.PressKey(kb.Enter))
	bob.Wait("alice's server is active", bt.And(
		bt.TextIs("#switcher-label", "alice's server"),
		bt.TextIs("#server-name", "alice's server")))
	bob.Wait("it runs", stateIs("running"))
	if bt.Eval[bool](bob, bt.Shown("#stop-button")) {
		t.Error("bob sees Stop on alice's server, want it hidden (Start/Stop Disabled)")
	}
	if bt.Eval[bool](bob, bt.Shown("#share-button")) {
		t.Error("bob sees Share on alice's server, want it hidden")
	}
	bob.Do("opening the switcher again", bt.Click("#switcher-button"))
	bob.Wait("the checkmark moved",
		fmt.Sprintf(`(%s) === "My Server:false, alice's server:true"`, switcherItems))
	bob.Shot("07-bob-switched")
	bob.Do("closing it with Escape", chromedp.KeyEvent(kb.Escape))
	bob.Wait("the menu is closed, focus on its button",
		bt.And(`document.querySelector("#switcher-menu").hidden`, bt.Focused("switcher-button")))

	// he may not stop it, not even by calling the API himself
	stop := `fetch("/studio/api/servers/alice/stop",
		{method: "POST", headers: {"X-Studio-CSRF": "1"}}).then(r => r.status)`
	if got := bt.Eval[int](bob, stop); got != http.StatusForbidden {
		t.Errorf("bob's POST stop: got %d, want 403", got)
	}

	// Open takes him into alice's server, with no new sign-in
	bob.Do("opening alice's server", bt.Click("#open-link"))
	bob.Wait("alice's server answers", bt.And(
		`location.pathname === "/servers/alice/"`,
		`document.body.textContent.includes("Demo server")`))
	bob.Shot("08-bob-in-alice-server")
	bob.Do("back to Studio", chromedp.Navigate(env.ExternalURL+env.Prefix))
	bob.Wait("Studio shows alice's server", bt.TextIs("#server-name", "alice's server"))

	// alice enables Start/Stop for bob; it takes effect at once
	alice.Do("opening the share dialog", bt.Click("#share-button"))
	alice.Wait("bob is listed", bt.Exists(bobsSelect))
	alice.Do("enabling start/stop for bob with the keyboard",
		chromedp.Focus(chromedp.CSS(bobsSelect)), chromedp.KeyEvent(kb.ArrowUp))
	alice.Wait("the change is confirmed",
		bt.TextIs("#share-success", "bob can now start and stop My Server."))
	alice.Shot("09-alice-enabled-start-stop")

	bob.Do("reloading", chromedp.Reload())
	bob.Wait("Stop is offered", bt.And(
		bt.TextIs("#server-name", "alice's server"),
		bt.Shown("#stop-button"),
		`!document.querySelector("#stop-button").disabled`))
	bob.Shot("10-bob-can-stop")
	bob.Do("stopping alice's server", bt.Click("#stop-button"))
	bob.Wait("it is stopped", stateIs("stopped"))
	bob.Do("starting it again", bt.Click("#start-button"))
	bob.Wait("it runs again", stateIs("running"))

	// alice removes bob's access with the trash button
	alice.Do("removing bob", bt.Click(`button[aria-label="Remove access for bob"]`))
	alice.Wait("bob is gone", bt.And(
		"!"+bt.Exists(bobsRow),
		bt.TextIs("#share-success", "Removed access for bob.")))
	alice.Shot("11-alice-removed-bob")

	// bob's next action is refused, and alice's server leaves his switcher
	bob.Do("stopping alice's server once more", bt.Click("#stop-button"))
	bob.Wait("the refusal is shown", bt.And(
		bt.Shown("#notice"),
		bt.TextHas("#notice", "You no longer have access to alice's server")))
	bob.Wait("he is back on his own server", bt.And(
		bt.TextIs("#switcher-label", "My Server"),
		bt.TextIs("#server-name", "My Server")))
	bob.Do("opening the switcher", bt.Click("#switcher-button"))
	if got, want := bt.Eval[string](bob, switcherItems), "My Server:true"; got != want {
		t.Errorf("bob's switcher after the revoke: got %q, want %q", got, want)
	}
	bob.Shot("12-bob-refused")
	bob.Do("closing the switcher", chromedp.KeyEvent(kb.Escape))

	// signing out is one click
	bob.Do("signing out", bt.Click("#signout"))
	bob.Wait("signed out", `location.pathname.endsWith("/signed-out")`)
	bob.Do("opening Studio again", chromedp.Navigate(env.ExternalURL+env.Prefix))
	bob.Wait("the sign-in form is shown", bt.Exists("#password"))
}

// TestBrowserStartingAndLeaving follows a slow start live, and leaves a
// share from the Shared with me list.
func TestBrowserStartingAndLeaving(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	exe := bt.Chromium(t)
	shots := bt.NewScreenshots(t, "studio-")
	env := startEnv(t)

	env.Login(t, "alice")
	bob := bt.New(t, "bob", exe, shots)
	signIn(bob, env, "bob")
	env.Share(t, "alice", "alice", "bob", true)

	// the share is listed with its permission; Switch makes it active
	bob.Do("reloading", chromedp.Reload())
	bob.Wait("alice's server is shared with him", bt.Exists(alicesRow))
	if got, want := bob.Text(alicesRow+" .pill"), "Start/Stop Enabled"; got != want {
		t.Errorf("permission shown: got %q, want %q", got, want)
	}
	bob.Do("switching from the list",
		bt.Click(alicesRow+` button[aria-label="Switch to alice's server"]`))
	bob.Wait("alice's server is active", bt.TextIs("#server-name", "alice's server"))

	// a slow start shows as starting, also after a reload, until it runs
	env.Driver.SetStartDelay(3 * time.Second)
	bob.Do("starting alice's server", bt.Click("#start-button"))
	bob.Wait("it is starting", stateIs("starting"))
	bob.Do("reloading while it starts", chromedp.Reload())
	bob.Wait("the reloaded page shows it starting",
		bt.And(stateIs("starting"), bt.TextIs("#server-name", "alice's server")))
	if got := bob.Text("#server-state"); got != "Starting…" {
		t.Errorf("state badge: got %q, want Starting…", got)
	}
	bob.Shot("21-bob-starting")
	bob.Wait("the page sees it running without a reload", stateIs("running"))

	// leaving takes it out of the list and the switcher
	bob.Do("leaving alice's server", bt.Click(`button[aria-label="Leave alice's server"]`))
	bob.Wait("it is gone", bt.And(
		"!"+bt.Exists(alicesRow),
		bt.TextHas("#shared-message", "You left alice's server.")))
	bob.Wait("he is back on his own server", bt.And(
		bt.TextIs("#switcher-label", "My Server"),
		bt.TextIs("#server-name", "My Server")))
	bob.Shot("22-bob-left")
}
