package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/backend"
	"github.com/studio-proxy/studio-proxy/internal/demoserver"
	"github.com/studio-proxy/studio-proxy/internal/devidp"
	"github.com/studio-proxy/studio-proxy/internal/events"
	"github.com/studio-proxy/studio-proxy/internal/redisproc"
	"github.com/studio-proxy/studio-proxy/proxy"
	"github.com/studio-proxy/studio-proxy/session"
)

const (
	prefix    = proxy.DefaultPrefix
	keyPrefix = "studio:"
	benchUser = "alice"
)

// env is everything one benchmark run measures: a Redis, the development
// provider, the proxy with alice signed in and her server running (a
// demo server), and nginx in front of the same server, for HTTP and
// websockets.
type env struct {
	log  *slog.Logger
	dir  string
	stop []func()

	rdb       redis.UniversalClient
	redisAddr string
	proxyURL  string
	// session is alice's session cookie, "name=value".
	session string

	// proxyCPU and nginxCPU tell the CPU time used so far by the proxy's
	// process and by nginx's; nil when the proxy runs in this process.
	proxyCPU, nginxCPU func() (time.Duration, bool)

	backendURL string // the demo server, "http://127.0.0.1:port"
	secret     string // its token
	nginxURL   string
}

// close stops everything, last started first.
func (e *env) close() {
	for i := len(e.stop) - 1; i >= 0; i-- {
		e.stop[i]()
	}
}

func setup(ctx context.Context, cfg Config) (*env, error) {
	e := &env{log: cfg.Log}
	dir, err := os.MkdirTemp("", "studio-bench-")
	if err != nil {
		return nil, err
	}
	e.dir = dir
	e.stop = append(e.stop, func() { os.RemoveAll(dir) })

	proxyStep := e.startProxy
	if cfg.Binary != "" {
		proxyStep = e.startProxyProcess
	}
	steps := []func(context.Context, Config) error{e.startRedis, proxyStep, e.startNginx}
	for _, step := range steps {
		if err := step(ctx, cfg); err != nil {
			e.close()
			return nil, err
		}
	}
	return e, nil
}

// startRedis runs a private redis-server on a free port.
func (e *env) startRedis(ctx context.Context, cfg Config) error {
	rp, err := redisproc.Start(ctx, cfg.RedisServer, filepath.Join(e.dir, "redis"))
	if err != nil {
		return err
	}
	e.stop = append(e.stop, rp.Stop)

	e.redisAddr = rp.Addr
	e.rdb = redis.NewClient(&redis.Options{Addr: e.redisAddr})
	e.stop = append(e.stop, func() { e.rdb.Close() })
	return nil
}

// startProxy runs the provider and the proxy, signs alice in and starts
// her server.
func (e *env) startProxy(ctx context.Context, cfg Config) error {
	ctx, cancel := context.WithCancel(ctx)
	e.stop = append(e.stop, cancel)

	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	e.proxyURL = "http://" + pl.Addr().String()
	il, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		pl.Close()
		return err
	}
	idp, err := devidp.New(devidp.Config{
		Issuer:       "http://" + il.Addr().String(),
		ClientID:     "bench",
		ClientSecret: "bench-secret",
		RedirectURIs: []string{e.proxyURL + prefix + "callback"},
		Log:          e.log,
	})
	if err != nil {
		pl.Close()
		il.Close()
		return fmt.Errorf("identity provider: %w", err)
	}
	e.serve(il, idp.Handler())

	sub := events.NewSubscriber(e.rdb, events.Channel(keyPrefix), e.log)
	reg := backend.NewRegistry(e.rdb, backend.RegistryConfig{Prefix: keyPrefix, Log: e.log})
	store, err := authz.New(e.rdb, authz.Config{Prefix: keyPrefix, Owners: reg, Log: e.log})
	if err != nil {
		pl.Close()
		return err
	}
	drv := &demoDriver{log: e.log, servers: map[string]*demoRun{}}
	e.stop = append(e.stop, drv.stopAll)
	mgr, err := backend.NewManager(e.rdb, reg, backend.ManagerConfig{
		Prefix: keyPrefix, Driver: drv, Log: e.log,
	})
	if err != nil {
		pl.Close()
		return err
	}
	sessions, err := session.New(ctx, e.rdb, session.Config{
		Issuer:       idp.Issuer(),
		ClientID:     "bench",
		ClientSecret: "bench-secret",
		ExternalURL:  e.proxyURL,
		KeyPrefix:    keyPrefix,
		Directory:    store,
		Events:       sub,
		OnSignIn: func(ctx context.Context, u authz.User) error {
			_, err := reg.EnsureDefault(ctx, u.Name)
			return err
		},
		Log: e.log,
	})
	if err != nil {
		pl.Close()
		return fmt.Errorf("sessions: %w", err)
	}
	p, err := proxy.New(proxy.Config{
		ExternalURL: e.proxyURL,
		Sessions:    sessions,
		Authz:       store,
		Registry:    reg,
		Lifecycle:   mgr,
		Events:      sub,
		Redis:       e.rdb,
		Log:         e.log,
	})
	if err != nil {
		pl.Close()
		return fmt.Errorf("proxy: %w", err)
	}
	go sub.Run(ctx)
	select {
	case <-sub.Ready():
	case <-time.After(10 * time.Second):
		pl.Close()
		return errors.New("events not subscribed after 10s")
	}
	e.serve(pl, p)

	// alice signs in and starts her server
	c, cookie, err := signIn(ctx, e.proxyURL, benchUser, idp.Password())
	if err != nil {
		return err
	}
	e.session = cookie
	if _, err := mgr.Start(ctx, benchUser, benchUser); err != nil {
		return fmt.Errorf("starting the server: %w", err)
	}
	srv, err := reg.Get(ctx, benchUser)
	if err != nil {
		return err
	}
	e.backendURL, e.secret = srv.Addr, srv.Secret

	// one request through the proxy proves it all works
	resp, err := c.Get(e.proxyURL + "/servers/" + benchUser + "/ready")
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("first request through the proxy: status %d", resp.StatusCode)
	}
	return nil
}

// startProxyProcess runs the proxy as its own process, "studio-proxy
// serve", whose process driver runs the server as "studio-proxy
// demo-server": every target then runs in a process of its own, as
// nginx does, and the load generator has this one to itself.
func (e *env) startProxyProcess(ctx context.Context, cfg Config) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	e.proxyURL = "http://127.0.0.1:" + strconv.Itoa(port)
	il, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	idp, err := devidp.New(devidp.Config{
		Issuer:       "http://" + il.Addr().String(),
		ClientID:     "bench",
		ClientSecret: "bench-secret",
		RedirectURIs: []string{e.proxyURL + prefix + "callback"},
		Log:          e.log,
	})
	if err != nil {
		il.Close()
		return fmt.Errorf("identity provider: %w", err)
	}
	e.serve(il, idp.Handler())

	command := quote(cfg.Binary) + " demo-server --port={port} --base-url={base_url} --name={id}"
	cmd := exec.Command(cfg.Binary, "serve",
		"--listen", "127.0.0.1:"+strconv.Itoa(port),
		"--metrics-listen", "",
		"--external-url", e.proxyURL,
		"--oidc-issuer", idp.Issuer(),
		"--oidc-client-id", "bench",
		"--oidc-client-secret", "bench-secret",
		"--redis-url", "redis://"+e.redisAddr,
		"--driver", "process",
		"--server-command", command,
		"--server-root", filepath.Join(e.dir, "notebooks"),
		"--server-log-dir", filepath.Join(e.dir, "logs"),
		"--log-level", "error",
	)
	// the Go runtime's tuning and the request loop's switch pass through:
	// GOGC=200 studio-proxy bench measures the proxy with GOGC=200, and
	// STUDIO_FAST_HTTP=false measures it with net/http's server alone
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.dir}
	for _, k := range []string{"GOGC", "GOMEMLIMIT", "GOMAXPROCS", "STUDIO_FAST_HTTP"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the proxy: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	pid := cmd.Process.Pid
	e.proxyCPU = func() (time.Duration, bool) { return processCPU(pid) }
	e.stop = append(e.stop, func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	err = waitUntil(ctx, "the proxy", func() error {
		select {
		case <-exited:
			return fmt.Errorf("proxy exited: %s", stderr.String())
		default:
		}
		resp, err := http.Get(e.proxyURL + prefix + "readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz answered %d", resp.StatusCode)
		}
		return nil
	})
	if err != nil {
		return err
	}

	// alice signs in and starts her server through the API
	c, cookie, err := signIn(ctx, e.proxyURL, benchUser, idp.Password())
	if err != nil {
		return err
	}
	e.session = cookie
	req, _ := http.NewRequestWithContext(ctx, "POST",
		e.proxyURL+prefix+"api/servers/"+benchUser+"/start", nil)
	req.Header.Set("X-Studio-CSRF", "1")
	req.Header.Set("Origin", e.proxyURL)
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("starting the server: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("starting the server: %d %s", resp.StatusCode, body)
	}
	reg := backend.NewRegistry(e.rdb, backend.RegistryConfig{Prefix: keyPrefix, Log: e.log})
	srv, err := reg.Get(ctx, benchUser)
	if err != nil {
		return err
	}
	e.backendURL, e.secret = srv.Addr, srv.Secret
	return nil
}

// quote makes a path one word of a command template.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// serve serves h on l until the run ends.
func (e *env) serve(l net.Listener, h http.Handler) {
	s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go s.Serve(l)
	e.stop = append(e.stop, func() { s.Close() })
}

// signIn drives the sign-in form like a browser and returns the client
// and its session cookie.
func signIn(ctx context.Context, proxyURL, user, password string) (*http.Client, string, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, _, err := devidp.SignIn(ctx, c,
		proxyURL+prefix+"login?rd="+url.QueryEscape(prefix+"healthz"), user, password)
	if err != nil {
		return nil, "", err
	}
	u, _ := url.Parse(proxyURL)
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "studio_session" {
			return c, ck.Name + "=" + ck.Value, nil
		}
	}
	return nil, "", fmt.Errorf("signing in: no session cookie (status %d)", resp.StatusCode)
}

// startNginx runs nginx as a plain reverse proxy in front of alice's
// server: it adds the server's token and forwards websocket upgrades,
// nothing else.
func (e *env) startNginx(ctx context.Context, cfg Config) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	backendHost := strings.TrimPrefix(e.backendURL, "http://")
	conf := fmt.Sprintf(nginxConf, e.dir, backendHost, port, e.secret)
	path := filepath.Join(e.dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(cfg.Nginx, "-p", e.dir, "-c", path, "-e", "stderr")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting nginx: %w", err)
	}
	e.stop = append(e.stop, func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	pid := cmd.Process.Pid
	e.nginxCPU = func() (time.Duration, bool) { return treeCPU(pid) }
	e.nginxURL = "http://127.0.0.1:" + strconv.Itoa(port)

	return waitUntil(ctx, "nginx", func() error {
		resp, err := http.Get(e.nginxURL + "/servers/" + benchUser + "/ready")
		if err != nil {
			if cmd.ProcessState != nil {
				return fmt.Errorf("nginx exited: %s", stderr.String())
			}
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("nginx answered %d", resp.StatusCode)
		}
		return nil
	})
}

// nginxConf is a plain reverse proxy: keepalive to the backend, the token
// added, the usual forwarding headers, and websocket upgrades passed on
// the usual way (HTTP/1.1, Upgrade and Connection from the client's
// Upgrade, a long read timeout for idle sockets). A request without
// Upgrade still sends an empty Connection, so it keeps its upstream
// connection alive as before. Everything else is nginx's default. Paths
// are all under the run's directory (-p), so nothing needs root.
const nginxConf = `
worker_processes auto;
daemon off;
pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	map $http_upgrade $connection_upgrade {
		default upgrade;
		"" "";
	}
	upstream backend {
		server %[2]s;
		keepalive 256;
	}
	server {
		listen 127.0.0.1:%[3]d;
		location / {
			proxy_pass http://backend;
			proxy_http_version 1.1;
			proxy_set_header Upgrade $http_upgrade;
			proxy_set_header Connection $connection_upgrade;
			proxy_read_timeout 1h;
			proxy_set_header Host $host;
			proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Proto $scheme;
			proxy_set_header Authorization "token %[4]s";
		}
	}
}
`

// demoDriver runs each server as a demo server on a loopback port, in
// this process.
type demoDriver struct {
	log     *slog.Logger
	mu      sync.Mutex
	servers map[string]*demoRun
}

type demoRun struct {
	addr string
	srv  *http.Server
}

func (d *demoDriver) Start(ctx context.Context, spec backend.Spec) (backend.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r, ok := d.servers[spec.ID]; ok {
		return backend.Status{State: backend.Running, Addr: r.addr}, nil
	}
	h, err := demoserver.New(demoserver.Config{
		BaseURL: spec.BaseURL, Secret: spec.Secret, Name: spec.ID, Log: d.log,
	})
	if err != nil {
		return backend.Status{}, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return backend.Status{}, err
	}
	r := &demoRun{addr: "http://" + l.Addr().String(), srv: &http.Server{Handler: h}}
	go r.srv.Serve(l)
	d.servers[spec.ID] = r
	return backend.Status{State: backend.Running, Addr: r.addr}, nil
}

func (d *demoDriver) Stop(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r, ok := d.servers[id]; ok {
		r.srv.Close()
		delete(d.servers, id)
	}
	return nil
}

func (d *demoDriver) Status(ctx context.Context, id string) (backend.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r, ok := d.servers[id]; ok {
		return backend.Status{State: backend.Running, Addr: r.addr}, nil
	}
	return backend.Status{State: backend.Stopped}, nil
}

func (d *demoDriver) stopAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, r := range d.servers {
		r.srv.Close()
		delete(d.servers, id)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitUntil calls f until it succeeds, for up to ten seconds.
func waitUntil(ctx context.Context, what string, f func() error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
