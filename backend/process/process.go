package process

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/studio-proxy/studio-proxy/backend"
	"github.com/studio-proxy/studio-proxy/internal/ident"
)

// DefaultCommand runs Jupyter Notebook 6 (Debian's jupyter-notebook). Its
// token comes from the environment (JUPYTER_TOKEN, see DefaultEnv), so
// that it does not show in the process list. Jupyter's Quit button is
// hidden: servers start and stop in Studio, where the proxy checks who may,
// and a server that quits by itself looks failed. Notebook 7 and Jupyter
// Server spell the options --ServerApp.base_url and so on (docs/jupyter.md).
const DefaultCommand = "jupyter notebook --no-browser --ip={host} --port={port}" +
	" --NotebookApp.base_url={base_url} --notebook-dir={notebook_dir}" +
	" --NotebookApp.quit_button=False"

// DefaultEnv hands the secret to Jupyter through its environment.
var DefaultEnv = []string{"JUPYTER_TOKEN={secret}"}

// DefaultPassEnv names the variables of the proxy's environment that a
// server inherits when Config.PassEnv is nil. Everything else, in
// particular the proxy's STUDIO_ settings with their Redis and OIDC
// credentials, is withheld: a notebook runs its users' code.
var DefaultPassEnv = []string{
	"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
}

// host is the only address servers listen on.
const host = "127.0.0.1"

// Config configures a Driver.
type Config struct {
	// Command is the command template: words split like a shell would
	// (quotes, backslashes) but run without one, each placeholder (see
	// Placeholders) replaced inside its word, so a value never splits or
	// adds a word. Empty means DefaultCommand.
	Command string
	// Env adds NAME=value entries, with placeholders, to the server's
	// environment. Nil means DefaultEnv. The server always also gets
	// STUDIO_SERVER_SECRET, STUDIO_SERVER_ID, STUDIO_SERVER_OWNER,
	// STUDIO_SERVER_BASE_URL and STUDIO_SERVER_PORT.
	Env []string
	// PassEnv names the variables of the proxy's own environment that
	// the server inherits. Nil means DefaultPassEnv.
	PassEnv []string
	// NotebookRoot holds a directory per owner, {notebook_dir}, made on
	// first start with mode 0700. Empty means "notebooks" in the working
	// directory.
	NotebookRoot string
	// LogDir holds one log file per server, <id>.log, with the output of
	// its current run; the previous run's is kept as <id>.log.1. Empty
	// means studio-proxy/logs in the temporary directory.
	LogDir string
	// StartTimeout is how long a server may take to answer HTTP on its
	// base URL. Zero means 60 seconds.
	StartTimeout time.Duration
	// StopGrace is how long a server has to exit after SIGTERM before it
	// gets SIGKILL. Zero means 10 seconds.
	StopGrace time.Duration
	// Log receives starts, stops and exits. Nil means slog.Default().
	Log *slog.Logger
}

// Driver runs servers as child processes. It implements backend.Driver,
// backend.Watcher and backend.Placed.
type Driver struct {
	argv         []string
	env          []string
	passEnv      []string
	notebookRoot string
	usesNotebook bool
	logDir       string
	startTimeout time.Duration
	stopGrace    time.Duration
	log          *slog.Logger
	node         string

	mu       sync.Mutex
	procs    map[string]*proc
	ops      map[string]*sync.Mutex
	watchers map[int]func(string, backend.Status)
	nextW    int
}

// proc is one child process and what the driver knows of it.
type proc struct {
	id      string
	cmd     *exec.Cmd
	addr    string
	secret  string
	logPath string
	done    chan struct{} // closed once the process was reaped

	// guarded by Driver.mu
	state    backend.State
	reason   string
	stopping bool
	exit     string // how it ended, once done
}

// New returns a driver, or an error when the command template is unusable
// or its program is not installed (wrapping exec.ErrNotFound).
func New(cfg Config) (*Driver, error) {
	d := &Driver{
		env:          cfg.Env,
		passEnv:      cfg.PassEnv,
		notebookRoot: cfg.NotebookRoot,
		logDir:       cfg.LogDir,
		startTimeout: cfg.StartTimeout,
		stopGrace:    cfg.StopGrace,
		log:          cfg.Log,
		procs:        map[string]*proc{},
		ops:          map[string]*sync.Mutex{},
		watchers:     map[int]func(string, backend.Status){},
	}
	command := cfg.Command
	if command == "" {
		command = DefaultCommand
	}
	if d.env == nil {
		d.env = DefaultEnv
	}
	if d.passEnv == nil {
		d.passEnv = DefaultPassEnv
	}
	if d.notebookRoot == "" {
		d.notebookRoot = "notebooks"
	}
	if d.logDir == "" {
		d.logDir = filepath.Join(os.TempDir(), "studio-proxy", "logs")
	}
	if d.startTimeout <= 0 {
		d.startTimeout = 60 * time.Second
	}
	if d.stopGrace <= 0 {
		d.stopGrace = 10 * time.Second
	}
	if d.log == nil {
		d.log = slog.Default()
	}

	argv, err := splitWords(command)
	if err != nil {
		return nil, fmt.Errorf("server command: %w", err)
	}
	if len(argv) == 0 {
		return nil, errors.New("server command is empty")
	}
	if strings.Contains(argv[0], "{") {
		return nil, errors.New("server command: the program cannot be a placeholder")
	}
	d.argv = argv

	// try the template with sample values, so that a typo fails now
	sample := d.vars(backend.Spec{ID: "x", Owner: "x", BaseURL: "/", Secret: "x"}, 1)
	for _, w := range argv {
		if _, err := expand(w, sample); err != nil {
			return nil, fmt.Errorf("server command: %w", err)
		}
		d.usesNotebook = d.usesNotebook || strings.Contains(w, "{notebook_dir}")
	}
	for _, e := range d.env {
		name, _, ok := strings.Cut(e, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("server environment %q is not NAME=value", e)
		}
		if _, err := expand(e, sample); err != nil {
			return nil, fmt.Errorf("server environment %s: %w", name, err)
		}
		d.usesNotebook = d.usesNotebook || strings.Contains(e, "{notebook_dir}")
	}
	if _, err := exec.LookPath(argv[0]); err != nil {
		return nil, fmt.Errorf("server command: %w", err)
	}
	if d.notebookRoot, err = filepath.Abs(d.notebookRoot); err != nil {
		return nil, fmt.Errorf("notebook root: %w", err)
	}
	if d.logDir, err = filepath.Abs(d.logDir); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}

	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	d.node = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
	return d, nil
}

// Node names this proxy process; it implements backend.Placed.
func (d *Driver) Node() string { return d.node }

// LogPath returns the log file of the server with the given id.
func (d *Driver) LogPath(id string) string { return filepath.Join(d.logDir, id+".log") }

func (d *Driver) vars(spec backend.Spec, port int) map[string]string {
	return map[string]string{
		"port":         strconv.Itoa(port),
		"host":         host,
		"base_url":     spec.BaseURL,
		"secret":       spec.Secret,
		"id":           spec.ID,
		"owner":        spec.Owner,
		"notebook_dir": filepath.Join(d.notebookRoot, spec.Owner),
	}
}

// lockOp serializes the starts and stops of one server in this driver.
func (d *Driver) lockOp(id string) func() {
	d.mu.Lock()
	m := d.ops[id]
	if m == nil {
		m = &sync.Mutex{}
		d.ops[id] = m
	}
	d.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// Start runs the server and returns once it answers HTTP on its base URL
// (any status counts). Starting a server that runs returns its status.
func (d *Driver) Start(ctx context.Context, spec backend.Spec) (backend.Status, error) {
	if err := checkSpec(&spec); err != nil {
		return backend.Status{}, err
	}
	defer d.lockOp(spec.ID)()

	d.mu.Lock()
	p := d.procs[spec.ID]
	if p != nil && p.state == backend.Running {
		d.mu.Unlock()
		return backend.Status{State: backend.Running, Addr: p.addr}, nil
	}
	d.mu.Unlock()

	p, err := d.spawn(spec)
	if err != nil {
		d.setFailed(spec.ID, err.Error())
		return backend.Status{State: backend.Failed, Reason: err.Error()}, err
	}
	if err := d.waitReady(ctx, p, spec.BaseURL); err != nil {
		d.kill(p)
		d.mu.Lock()
		p.state, p.reason = backend.Failed, err.Error()
		d.mu.Unlock()
		d.log.Warn("server did not start", "server", spec.ID, "err", err)
		return backend.Status{State: backend.Failed, Reason: err.Error()}, err
	}

	d.mu.Lock()
	p.state = backend.Running
	d.mu.Unlock()
	d.log.Info("server started", "server", spec.ID, "addr", p.addr, "pid", p.cmd.Process.Pid)
	return backend.Status{State: backend.Running, Addr: p.addr}, nil
}

func checkSpec(spec *backend.Spec) error {
	id, err := ident.ServerID(spec.ID)
	if err != nil {
		return err
	}
	owner, err := ident.Username(spec.Owner)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(spec.BaseURL, "/") || !strings.HasSuffix(spec.BaseURL, "/") {
		return fmt.Errorf("base url %q must start and end with a slash", spec.BaseURL)
	}
	if spec.Secret == "" {
		return errors.New("server secret is empty")
	}
	spec.ID, spec.Owner = id, owner
	return nil
}

// spawn starts the child process and registers it as starting.
func (d *Driver) spawn(spec backend.Spec) (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	vars := d.vars(spec, port)
	argv := make([]string, len(d.argv))
	for i, w := range d.argv {
		argv[i], _ = expand(w, vars) // checked in New
	}

	env := []string{
		"STUDIO_SERVER_SECRET=" + spec.Secret,
		"STUDIO_SERVER_ID=" + spec.ID,
		"STUDIO_SERVER_OWNER=" + spec.Owner,
		"STUDIO_SERVER_BASE_URL=" + spec.BaseURL,
		"STUDIO_SERVER_PORT=" + strconv.Itoa(port),
	}
	for _, name := range d.passEnv {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	for _, e := range d.env {
		v, _ := expand(e, vars) // checked in New
		env = append(env, v)
	}

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.SysProcAttr = sysProcAttr()
	if d.usesNotebook {
		dir := vars["notebook_dir"]
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("making notebook directory: %w", err)
		}
		cmd.Dir = dir
	}

	logPath := d.LogPath(spec.ID)
	logf, err := openLog(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own copy
	fmt.Fprintf(logf, "studio-proxy: starting server %s on port %d at %s\n",
		spec.ID, port, time.Now().UTC().Format(time.RFC3339))
	cmd.Stdout = logf
	cmd.Stderr = logf

	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("running %s: %w", argv[0], err)
	}
	p := &proc{
		id:      spec.ID,
		cmd:     cmd,
		addr:    "http://" + net.JoinHostPort(host, strconv.Itoa(port)),
		secret:  spec.Secret,
		logPath: logPath,
		done:    make(chan struct{}),
		state:   backend.Starting,
	}
	d.mu.Lock()
	d.procs[spec.ID] = p
	d.mu.Unlock()
	go d.reap(p)
	return p, nil
}

// openLog keeps the previous run's log as .1 and opens a fresh one.
func openLog(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("making log directory: %w", err)
	}
	if err := os.Rename(path, path+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("keeping previous log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening server log: %w", err)
	}
	return f, nil
}

func freePort() (int, error) {
	// TODO: another program may take the port between this probe and the
	// server binding it; the start then fails and a retry picks another.
	// Handing the server the listening socket would close the gap, but
	// Jupyter cannot take one.
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls the server's base URL until it answers, exits, or the
// start timeout or ctx ends.
func (d *Driver) waitReady(ctx context.Context, p *proc, baseURL string) error {
	ctx, cancel := context.WithTimeout(ctx, d.startTimeout)
	defer cancel()
	client := &http.Client{
		Timeout: 2 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	url := p.addr + baseURL

	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-p.done:
			d.mu.Lock()
			exit := p.exit
			d.mu.Unlock()
			return fmt.Errorf("server %s before answering%s", exit, tail(p.logPath, p.secret))
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("server did not answer within %s%s",
					d.startTimeout, tail(p.logPath, p.secret))
			}
			return fmt.Errorf("waiting for server: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// reap waits for the process to end, records how, kills what is left of
// its process group, and reports an exit nobody asked for.
func (d *Driver) reap(p *proc) {
	err := p.cmd.Wait()
	exit := describeExit(p.cmd.ProcessState, err)
	// children the server left behind (kernels) go with it
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)

	d.mu.Lock()
	p.exit = exit
	unasked := p.state == backend.Running && !p.stopping
	if unasked {
		p.state = backend.Failed
		p.reason = "server " + exit + tail(p.logPath, p.secret)
	}
	reason := p.reason
	var ws []func(string, backend.Status)
	if unasked {
		for _, w := range d.watchers {
			ws = append(ws, w)
		}
	}
	d.mu.Unlock()
	close(p.done)

	if !unasked {
		return
	}
	d.log.Warn("server exited", "server", p.id, "exit", exit)
	st := backend.Status{State: backend.Failed, Reason: reason}
	for _, w := range ws {
		go w(p.id, st)
	}
}

func describeExit(ps *os.ProcessState, err error) string {
	if ps == nil {
		return fmt.Sprintf("ended (%v)", err)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Sprintf("was killed by signal %s", ws.Signal())
	}
	return fmt.Sprintf("exited with status %d", ps.ExitCode())
}

// tail returns the last lines of a server's log, with its secret
// redacted, as a suffix for an error or reason; empty when there is no
// output.
func tail(path, secret string) string {
	const maxLines, maxLine, maxRead = 3, 200, 8 << 10
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(0, st.Size()-maxRead)
	b := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil {
		return ""
	}

	var lines []string
	for _, l := range bytes.Split(b, []byte("\n")) {
		s := strings.TrimSpace(string(l))
		if s == "" || strings.HasPrefix(s, "studio-proxy: ") {
			continue
		}
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[secret]")
		}
		if len(s) > maxLine {
			s = s[:maxLine] + "..."
		}
		lines = append(lines, s)
	}
	if len(lines) == 0 {
		return ""
	}
	lines = lines[max(0, len(lines)-maxLines):]
	return "; last output: " + strings.Join(lines, " | ")
}

func (d *Driver) setFailed(id, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.procs[id] = &proc{id: id, state: backend.Failed, reason: reason, done: closed()}
}

func closed() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// kill ends a process group at once and waits until it was reaped.
func (d *Driver) kill(p *proc) {
	d.mu.Lock()
	p.stopping = true
	d.mu.Unlock()
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM to the server's process group, then SIGKILL after the
// grace period (or at once if ctx ends), and returns once the process was
// reaped. Stopping a server it does not run is not an error.
func (d *Driver) Stop(ctx context.Context, id string) error {
	id, err := ident.ServerID(id)
	if err != nil {
		return err
	}
	defer d.lockOp(id)()

	d.mu.Lock()
	p := d.procs[id]
	if p == nil {
		d.mu.Unlock()
		return nil
	}
	p.stopping = true
	p.state = backend.Stopping
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		if d.procs[id] == p {
			delete(d.procs, id)
		}
		d.mu.Unlock()
	}()

	select {
	case <-p.done:
		return nil // it failed to start or had exited already
	default:
	}
	pgid := p.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	grace := time.NewTimer(d.stopGrace)
	defer grace.Stop()
	select {
	case <-p.done:
		d.log.Info("server stopped", "server", id)
		return nil
	case <-grace.C:
	case <-ctx.Done():
	}

	syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-p.done:
		d.log.Warn("server killed after grace period", "server", id, "grace", d.stopGrace)
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("process %d did not end after SIGKILL", pgid)
	}
}

// Status reports the server: Running with its address, Starting, Failed
// with the reason of its last run, or Stopped when this driver does not
// run it (which includes servers run by other proxy processes).
func (d *Driver) Status(ctx context.Context, id string) (backend.Status, error) {
	id, err := ident.ServerID(id)
	if err != nil {
		return backend.Status{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.procs[id]
	switch {
	case p == nil:
		return backend.Status{State: backend.Stopped}, nil
	case p.state == backend.Running:
		return backend.Status{State: backend.Running, Addr: p.addr}, nil
	case p.state == backend.Failed:
		return backend.Status{State: backend.Failed, Reason: p.reason}, nil
	default:
		return backend.Status{State: p.state}, nil
	}
}

// Watch calls f for every server whose process exits while running and
// nobody asked it to, until ctx ends. It implements backend.Watcher.
func (d *Driver) Watch(ctx context.Context, f func(id string, st backend.Status)) {
	d.mu.Lock()
	n := d.nextW
	d.nextW++
	d.watchers[n] = f
	d.mu.Unlock()

	<-ctx.Done()
	d.mu.Lock()
	delete(d.watchers, n)
	d.mu.Unlock()
}

// StopAll stops every server this driver runs, for a proxy that shuts
// down. It returns the first error.
func (d *Driver) StopAll(ctx context.Context) error {
	d.mu.Lock()
	ids := make([]string, 0, len(d.procs))
	for id := range d.procs {
		ids = append(ids, id)
	}
	d.mu.Unlock()

	var wg sync.WaitGroup
	errs := make([]error, len(ids))
	for i, id := range ids {
		wg.Go(func() { errs[i] = d.Stop(ctx, id) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
