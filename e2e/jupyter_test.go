package e2e_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/studio-proxy/studio-proxy/backend/process"
	bt "github.com/studio-proxy/studio-proxy/internal/browsertest"
	"github.com/studio-proxy/studio-proxy/internal/testenv"
)

// revokeCut is how soon after a revoke a grantee's kernel websocket must
// be closed: the product's promise.
const revokeCut = time.Second

// TestJupyterSharing walks two people through a real Jupyter Notebook
// behind the proxy, in two browsers. alice starts her server from Studio
// and runs a cell in a new notebook; the output comes back over the
// kernel websocket through the proxy. She shares the server with bob,
// who switches to it, opens the same notebook, and runs a cell in the
// same kernel. She revokes, and bob's kernel websocket is closed at once
// with the proxy's close code; his page can no longer reach the server.
func TestJupyterSharing(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	exe := bt.Chromium(t)
	shots := bt.NewScreenshots(t, "e2e-")
	env, notebooks := startJupyterEnv(t)

	alice := bt.New(t, "alice", exe, shots)
	alice.OnNewDocument(recordWebsockets)
	alice.SignIn(env, "alice")

	// alice starts her server from Studio home and opens it
	alice.Wait("her server is stopped", stateIs("stopped"))
	alice.Do("starting her server", bt.Click("#start-button"))
	alice.Wait("her server runs", stateIs("running"))
	alice.Shot("01-alice-studio-running")
	alice.Do("opening it", bt.Click("#open-link"))
	alice.Wait("Jupyter's file list is shown", bt.And(
		`location.pathname === "/servers/alice/tree"`,
		treeLoaded))
	alice.Shot("02-alice-jupyter-tree")

	// New → Python 3 makes a notebook; Jupyter opens it in a new tab
	// unless told to use this one
	alice.Do("choosing New",
		chromedp.Evaluate[chromedp.Void](`Jupyter._target = "_self"`),
		bt.Click("#new-dropdown-button"))
	alice.Wait("Python 3 is offered", bt.Exists("#kernel-python3 a"))
	alice.Do("choosing Python 3", bt.Click("#kernel-python3 a"))
	alice.Wait("the new notebook is open with its kernel", kernelIdle)
	path := bt.Eval[string](alice, "Jupyter.notebook.notebook_path")

	// she types code into the first cell and runs it with the toolbar
	runCell(alice, 0, "x = 6*7; print(x)")
	alice.Wait("the output is shown", outputIs(0, "42"))
	alice.Do("saving", bt.Click(`button[data-jupyter-action="jupyter-notebook:save-notebook"]`))
	alice.Wait("it is saved", `!Jupyter.notebook.dirty`)
	alice.Shot("03-alice-ran-a-cell")

	// the notebook is in alice's own directory
	if _, err := os.Stat(filepath.Join(notebooks, "alice", path)); err != nil {
		t.Errorf("alice's notebook on disk: %v", err)
	}

	// bob signs in (people can be found once they have signed in), and
	// she shares her server with him
	bob := bt.New(t, "bob", exe, shots)
	bob.OnNewDocument(recordWebsockets)
	bob.SignIn(env, "bob")
	share := fmt.Sprintf(`fetch(%q, {method: "PUT",
		headers: {"X-Studio-CSRF": "1", "Content-Type": "application/json"},
		body: JSON.stringify({start_stop: false})}).then(r => r.status)`, bobsShare(env))
	if got := bt.Eval[int](alice, share); got != http.StatusCreated {
		t.Fatalf("alice shares with bob: got %d, want 201", got)
	}

	// bob switches to her server and opens the same notebook
	bob.Do("reloading Studio", chromedp.Reload())
	bob.Wait("his switcher is filled", bt.TextIs("#switcher-label", "My Server"))
	bob.Do("opening the switcher", bt.Click("#switcher-button"))
	bob.Wait("alice's server is listed", bt.Exists(`#switcher-menu [data-id="alice"]`))
	bob.Do("choosing alice's server", bt.Click(`#switcher-menu [data-id="alice"]`))
	bob.Wait("alice's server is active and runs", bt.And(
		bt.TextIs("#switcher-label", "alice's server"), stateIs("running")))
	bob.Shot("04-bob-switched-to-alice")
	bob.Do("opening it", bt.Click("#open-link"))
	bob.Wait("alice's notebook is listed", bt.And(
		`location.pathname === "/servers/alice/tree"`,
		treeLoaded,
		bt.TextHas("#notebook_list", path)))
	bob.Shot("05-bob-alice-tree")
	if bt.Eval[bool](bob, bt.Exists("#shutdown")) {
		t.Error("Jupyter shows its Quit button, want it hidden (servers stop in Studio)")
	}
	bob.Do("opening alice's notebook",
		chromedp.Navigate(env.ExternalURL+"/servers/alice/notebooks/"+path))
	bob.Wait("it shows alice's cell and its output, kernel connected",
		bt.And(kernelIdle, outputIs(0, "42")))

	// the same kernel: bob sees the variable alice's cell set
	bob.Do("adding a cell",
		bt.Click(`button[data-jupyter-action="jupyter-notebook:insert-cell-below"]`))
	runCell(bob, 1, "print(x + 1)")
	bob.Wait("his output is shown", outputIs(1, "43"))
	bob.Shot("06-bob-ran-a-cell")
	if n := bt.Eval[int](bob, openKernelSockets); n != 1 {
		t.Fatalf("bob's open kernel websockets: got %d, want 1", n)
	}

	// alice revokes; the moment her call returns is the start of the clock
	revoke := fmt.Sprintf(`fetch(%q, {method: "DELETE",
		headers: {"X-Studio-CSRF": "1"}}).then(r => [r.status, Date.now()])`, bobsShare(env))
	res := bt.Eval[[]int64](alice, revoke)
	if res[0] != http.StatusNoContent {
		t.Fatalf("alice revokes: got %d, want 204", res[0])
	}
	revokedAt := res[1]

	// bob's kernel websocket is closed with the proxy's revoke code
	cut := `window.__wsCloses.find(c => c.url.includes("/api/kernels/") && c.code === 4403)`
	bob.Wait("his kernel websocket is closed as revoked", cut)
	closed := bt.Eval[wsClose](bob, cut)
	if d := time.Duration(closed.At-revokedAt) * time.Millisecond; d > revokeCut {
		t.Errorf("bob's kernel websocket closed %v after the revoke, want within %v",
			d, revokeCut)
	} else {
		t.Logf("bob's kernel websocket closed %v after the revoke (reason %q)",
			d, closed.Reason)
	}
	if closed.Reason == "" {
		t.Errorf("close reason: got none, want one the page can show")
	}
	if n := bt.Eval[int](bob, openKernelSockets); n != 0 {
		t.Errorf("bob's open kernel websockets after the revoke: got %d, want 0", n)
	}

	// his page can no longer reach the server, not even by reconnecting
	reach := `fetch("/servers/alice/api/contents").then(r => r.status)`
	if got := bt.Eval[int](bob, reach); got != http.StatusForbidden {
		t.Errorf("bob's page fetching alice's contents: got %d, want 403", got)
	}

	// Jupyter's page tries to reconnect and to restart the kernel, is
	// refused, and tells bob: which of its two dialogs comes first
	// depends on the timing of its retries (under load, the reconnect
	// gives up before the restart is tried)
	bob.Wait("Jupyter gives up on the kernel", bt.And(
		bt.Or(
			bt.And(`document.querySelector("#kernel_indicator_icon.kernel_dead_icon")`,
				bt.TextHas(".modal.in .modal-title", "Dead kernel")),
			bt.TextHas(".modal.in .modal-title", "Connection failed")),
		`getComputedStyle(document.querySelector(".modal.in")).opacity === "1"`))
	bob.Shot("07-bob-revoked")

	// alice's own connection is untouched and her kernel still answers
	if n := bt.Eval[int](alice, openKernelSockets); n != 1 {
		t.Errorf("alice's open kernel websockets: got %d, want 1", n)
	}
	alice.Do("adding a cell",
		bt.Click(`button[data-jupyter-action="jupyter-notebook:insert-cell-below"]`))
	runCell(alice, 1, "print(x * 2)")
	alice.Wait("her output is shown", outputIs(1, "84"))
	alice.Shot("08-alice-still-working")
}

// startJupyterEnv starts the proxy with the Studio page, the development
// provider, Redis and the process driver running the default command:
// real Jupyter Notebook, one notebook directory per owner under the
// returned root.
func startJupyterEnv(t *testing.T) (*testenv.Env, string) {
	t.Helper()
	if _, err := exec.LookPath("jupyter-notebook"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("jupyter-notebook not found (scripts/install-test-deps installs it): %v", err)
		}
		t.Skipf("jupyter-notebook not found, skipping: %v", err)
	}
	// Jupyter's and IPython's runtime and config files
	t.Setenv("HOME", t.TempDir())

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("STUDIO_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	command := process.DefaultCommand
	if os.Geteuid() == 0 {
		command += " --allow-root" // CI runs as root; Jupyter refuses it otherwise
	}
	notebooks := t.TempDir()
	logs := t.TempDir()
	d, err := process.New(process.Config{
		Command:      command,
		NotebookRoot: notebooks,
		LogDir:       logs,
		Log:          log,
	})
	if err != nil {
		t.Fatalf("process driver: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(d.LogPath("alice")); err == nil {
				t.Logf("alice's Jupyter log:\n%s", b)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		d.StopAll(ctx)
	})

	env := testenv.Start(t, testenv.Options{
		Driver: d,
		Log:    log,
		Studio: true,
	})
	return env, notebooks
}

// recordWebsockets wraps the page's WebSocket so that a test can see
// every socket's end: window.__wsCloses gets {url, code, reason, at} for
// each close (at is Date.now()), and window.__wsOpen holds the sockets
// themselves. It runs before the page's own scripts, so
// Jupyter's kernel connection uses the wrapper.
const recordWebsockets = `(() => {
	if (window.__wsCloses) return;
	window.__wsCloses = [];
	window.__wsOpen = [];
	const Native = window.WebSocket;
	window.WebSocket = class extends Native {
		constructor(url, protocols) {
			super(url, protocols);
			window.__wsOpen.push(this);
			this.addEventListener("close", (e) => {
				window.__wsCloses.push({url: String(url), code: e.code, reason: e.reason,
					at: Date.now()});
			});
		}
	};
})();`

// wsClose is one entry of window.__wsCloses.
type wsClose struct {
	URL    string `json:"url"`
	Code   int    `json:"code"`
	Reason string `json:"reason"`
	At     int64  `json:"at"`
}

// bobsShare is the Studio API's address of bob's share of alice's server.
func bobsShare(env *testenv.Env) string {
	return env.Prefix + "api/servers/alice/shares/bob"
}

// openKernelSockets counts the page's kernel websockets that are open.
const openKernelSockets = `window.__wsOpen.filter(s =>
	s.url.includes("/api/kernels/") && s.readyState === WebSocket.OPEN).length`

// treeLoaded: Jupyter's file list has been drawn and New knows the
// kernels.
const treeLoaded = `document.querySelector("#notebook_list .list_item") &&
	document.querySelector("#kernel-python3 a")`

// kernelIdle: a notebook is open, its kernel connected and idle.
const kernelIdle = `window.Jupyter?.notebook?.kernel?.is_connected() &&
	document.querySelector("#kernel_indicator_icon")?.classList.contains("kernel_idle_icon")`

// stateIs: Studio's details panel shows the server in state s.
func stateIs(s string) string {
	return fmt.Sprintf(`document.querySelector("#server-state")?.dataset.state === %q`, s)
}

// outputIs: the i-th cell of the notebook shows exactly this output.
func outputIs(i int, want string) string {
	return fmt.Sprintf(`document.querySelectorAll("#notebook .cell")[%d]
		?.querySelector(".output_subarea")?.textContent.trim() === %q`, i, want)
}

// runCell types code into the i-th cell, the way a person does, and runs
// it with the toolbar's Run button.
func runCell(b *bt.Browser, i int, code string) {
	cell := fmt.Sprintf(`#notebook .cell:nth-child(%d)`, i+1)
	b.Wait("the cell is there", bt.Exists(cell+" .CodeMirror"))
	b.Do("typing code",
		bt.Click(cell+" .CodeMirror-lines"),
		chromedp.KeyEvent(code))
	b.Wait("the cell holds the code", fmt.Sprintf(
		`Jupyter.notebook.get_cell(%d).get_text() === %q`, i, code))
	b.Do("running the cell",
		bt.Click(`button[data-jupyter-action="jupyter-notebook:run-cell-and-select-next"]`))
}
