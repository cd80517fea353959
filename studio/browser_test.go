package studio_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
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

	// alice starts her server
	alice.wait("her server is stopped", stateIs("stopped"))
	if got := alice.text("#switcher-label"); got != "My Server" {
		t.Errorf("alice's switcher: got %q, want My Server", got)
	}
	alice.shot("01-alice-home")
	alice.do("starting her server", click("#start-button"))
	alice.wait("her server runs", stateIs("running"))
	alice.wait("Open is enabled",
		`document.querySelector("#open-link").getAttribute("aria-disabled") === "false"`)
	alice.shot("02-alice-running")

	// she shares it with bob: suggestions as she types, one chosen with
	// the keyboard, Start/Stop Disabled
	alice.do("opening the share dialog", click("#share-button"))
	alice.wait("the dialog is open", `document.querySelector("#share-dialog").open`)
	alice.wait("the owner is listed first",
		`document.querySelector("#people li")?.dataset.user === "alice"`)
	alice.do("typing a name", chromedp.SendKeys(chromedp.CSS("#share-user"), "bo"))
	alice.wait("bob is suggested",
		and(shown("#share-suggestions"), textHas("#share-suggestions", "Bob Baker")))
	alice.shot("03-alice-suggestions")
	alice.do("picking bob with the keyboard",
		chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.Enter))
	alice.wait("the field holds bob", `document.querySelector("#share-user").value === "bob"`)
	if got := alice.text("#share-permission option:checked"); got != "Start/Stop Disabled" {
		t.Errorf("permission by default: got %q, want Start/Stop Disabled", got)
	}
	alice.do("sharing", click("#share-submit"))
	alice.wait("the share is confirmed",
		textIs("#share-success", "Shared My Server with Bob Baker (bob)."))
	alice.wait("bob is under People With Access, Start/Stop Disabled",
		fmt.Sprintf("document.querySelector(%q)?.value === %q", bobsSelect, "off"))
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
			click("#share-submit"))
		alice.wait("the refusal of "+r.user+" is shown", textHas("#share-error", r.want))
	}
	alice.shot("05-alice-refusal")

	// Escape closes the dialog and gives the focus back to Share
	alice.do("pressing Escape",
		chromedp.Focus(chromedp.CSS("#share-permission")), chromedp.KeyEvent(kb.Escape))
	alice.wait("the dialog is closed", `!document.querySelector("#share-dialog").open`)
	alice.wait("Share has the focus", focused("share-button"))

	// bob, in his own browser, finds alice's server in the switcher
	bob.do("reloading", chromedp.Reload())
	bob.wait("the switcher is filled", textIs("#switcher-label", "My Server"))
	bob.do("opening the switcher", click("#switcher-button"))
	bob.wait("the menu is open", shown("#switcher-menu"))
	got, want := eval[string](bob, switcherItems), "My Server:true, alice's server:false"
	if got != want {
		t.Errorf("bob's switcher: got %q, want %q", got, want)
	}
	bob.shot("06-bob-switcher")

	bob.do("choosing alice's server with the keyboard",
		chromedp.KeyEvent(kb.ArrowDown), pressKey(kb.Enter))
	bob.wait("alice's server is active", and(
		textIs("#switcher-label", "alice's server"),
		textIs("#server-name", "alice's server")))
	bob.wait("it runs", stateIs("running"))
	if eval[bool](bob, shown("#stop-button")) {
		t.Error("bob sees Stop on alice's server, want it hidden (Start/Stop Disabled)")
	}
	if eval[bool](bob, shown("#share-button")) {
		t.Error("bob sees Share on alice's server, want it hidden")
	}
	bob.do("opening the switcher again", click("#switcher-button"))
	bob.wait("the checkmark moved",
		fmt.Sprintf(`(%s) === "My Server:false, alice's server:true"`, switcherItems))
	bob.shot("07-bob-switched")
	bob.do("closing it with Escape", chromedp.KeyEvent(kb.Escape))
	bob.wait("the menu is closed, focus on its button",
		and(`document.querySelector("#switcher-menu").hidden`, focused("switcher-button")))

	// he may not stop it, not even by calling the API himself
	stop := `fetch("/studio/api/servers/alice/stop",
		{method: "POST", headers: {"X-Studio-CSRF": "1"}}).then(r => r.status)`
	if got := eval[int](bob, stop); got != http.StatusForbidden {
		t.Errorf("bob's POST stop: got %d, want 403", got)
	}

	// Open takes him into alice's server, with no new sign-in
	bob.do("opening alice's server", click("#open-link"))
	bob.wait("alice's server answers", and(
		`location.pathname === "/servers/alice/"`,
		`document.body.textContent.includes("Demo server")`))
	bob.shot("08-bob-in-alice-server")
	bob.do("back to Studio", chromedp.Navigate(env.ExternalURL+env.Prefix))
	bob.wait("Studio shows alice's server", textIs("#server-name", "alice's server"))

	// alice enables Start/Stop for bob; it takes effect at once
	alice.do("opening the share dialog", click("#share-button"))
	alice.wait("bob is listed", exists(bobsSelect))
	alice.do("enabling start/stop for bob with the keyboard",
		chromedp.Focus(chromedp.CSS(bobsSelect)), chromedp.KeyEvent(kb.ArrowUp))
	alice.wait("the change is confirmed",
		textIs("#share-success", "bob can now start and stop My Server."))
	alice.shot("09-alice-enabled-start-stop")

	bob.do("reloading", chromedp.Reload())
	bob.wait("Stop is offered", and(
		textIs("#server-name", "alice's server"),
		shown("#stop-button"),
		`!document.querySelector("#stop-button").disabled`))
	bob.shot("10-bob-can-stop")
	bob.do("stopping alice's server", click("#stop-button"))
	bob.wait("it is stopped", stateIs("stopped"))
	bob.do("starting it again", click("#start-button"))
	bob.wait("it runs again", stateIs("running"))

	// alice removes bob's access with the trash button
	alice.do("removing bob", click(`button[aria-label="Remove access for bob"]`))
	alice.wait("bob is gone", and(
		"!"+exists(bobsRow),
		textIs("#share-success", "Removed access for bob.")))
	alice.shot("11-alice-removed-bob")

	// bob's next action is refused, and alice's server leaves his switcher
	bob.do("stopping alice's server once more", click("#stop-button"))
	bob.wait("the refusal is shown", and(
		shown("#notice"),
		textHas("#notice", "You no longer have access to alice's server")))
	bob.wait("he is back on his own server", and(
		textIs("#switcher-label", "My Server"),
		textIs("#server-name", "My Server")))
	bob.do("opening the switcher", click("#switcher-button"))
	if got, want := eval[string](bob, switcherItems), "My Server:true"; got != want {
		t.Errorf("bob's switcher after the revoke: got %q, want %q", got, want)
	}
	bob.shot("12-bob-refused")
	bob.do("closing the switcher", chromedp.KeyEvent(kb.Escape))

	// signing out is one click
	bob.do("signing out", click("#signout"))
	bob.wait("signed out", `location.pathname.endsWith("/signed-out")`)
	bob.do("opening Studio again", chromedp.Navigate(env.ExternalURL+env.Prefix))
	bob.wait("the sign-in form is shown", exists("#password"))
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
	bob.wait("alice's server is shared with him", exists(alicesRow))
	if got, want := bob.text(alicesRow+" .pill"), "Start/Stop Enabled"; got != want {
		t.Errorf("permission shown: got %q, want %q", got, want)
	}
	bob.do("switching from the list",
		click(alicesRow+` button[aria-label="Switch to alice's server"]`))
	bob.wait("alice's server is active", textIs("#server-name", "alice's server"))

	// a slow start shows as starting, also after a reload, until it runs
	env.Driver.SetStartDelay(3 * time.Second)
	bob.do("starting alice's server", click("#start-button"))
	bob.wait("it is starting", stateIs("starting"))
	bob.do("reloading while it starts", chromedp.Reload())
	bob.wait("the reloaded page shows it starting",
		and(stateIs("starting"), textIs("#server-name", "alice's server")))
	if got := bob.text("#server-state"); got != "Starting…" {
		t.Errorf("state badge: got %q, want Starting…", got)
	}
	bob.shot("21-bob-starting")
	bob.wait("the page sees it running without a reload", stateIs("running"))

	// leaving takes it out of the list and the switcher
	bob.do("leaving alice's server", click(`button[aria-label="Leave alice's server"]`))
	bob.wait("it is gone", and(
		"!"+exists(alicesRow),
		textHas("#shared-message", "You left alice's server.")))
	bob.wait("he is back on his own server", and(
		textIs("#switcher-label", "My Server"),
		textIs("#server-name", "My Server")))
	bob.shot("22-bob-left")
}
