// Package browsertest drives Debian's headless chromium from Go tests
// through github.com/chromedp/chromedp: one browser per person, each with
// its own profile and cookies, steps that fail the test with what was
// being done, polling waits on JavaScript expressions, and screenshots
// under test-artifacts/screenshots/ for a person to look at. The Studio's
// browser tests and the end-to-end tests (package e2e) use it.
//
//	exe := browsertest.Chromium(t) // skips, or fails when CI=true
//	alice := browsertest.New(t, "alice", exe, browsertest.NewScreenshots(t, "e2e-"))
//	alice.SignIn(env, "alice")
//	alice.Wait("her server runs", browsertest.TextIs("#server-state", "Running"))
//	alice.Shot("01-home")
package browsertest
