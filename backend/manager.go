package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/studio-proxy/studio-proxy/internal/events"
	"github.com/studio-proxy/studio-proxy/internal/ident"
)

// nodeTTL is how long a proxy process counts as alive after its last
// heartbeat; Run beats three times per nodeTTL.
const nodeTTL = 15 * time.Second

// busyWait is how long a request that finds a server's lock taken watches
// for the holder's first state change (see Manager.begin).
const busyWait = time.Second

// maxReason is the longest failure reason kept in the registry.
const maxReason = 600

// A forwarded stop (see Manager.forwardStop) reads the registry every
// forwardPoll, and sends its request again every forwardResend in case
// the owning replica's subscription was down for a moment.
const (
	forwardPoll   = 100 * time.Millisecond
	forwardResend = 2 * time.Second
)

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// Prefix starts every key and the events channel. Empty means
	// DefaultPrefix; it must match the registry's.
	Prefix string
	// Driver starts and stops the servers. It is required.
	Driver Driver
	// LockTTL is how long a server's lock outlives a holder that died.
	// A live holder extends it while its operation lasts. Zero means 30
	// seconds.
	LockTTL time.Duration
	// ReconcileInterval is how often Run compares the registry with the
	// driver. Zero means 30 seconds.
	ReconcileInterval time.Duration
	// ForwardTimeout is how long Stop waits for the replica that runs a
	// server (see Placed) to stop it when the stop lands on another
	// replica; it must cover that replica's stop grace. Zero means 30
	// seconds, which covers the process driver's default grace of 10.
	ForwardTimeout time.Duration
	// BasePath returns the path a server is served under, with leading
	// and trailing slash. Nil means DefaultBasePath.
	BasePath func(id string) string
	// Log receives state changes and failures. Nil means slog.Default().
	Log *slog.Logger
}

// DefaultBasePath is where the proxy serves a server: "/servers/<id>/".
func DefaultBasePath(id string) string { return "/servers/" + id + "/" }

// Manager starts and stops servers through a Driver and keeps their state
// in the Registry true, safely when several proxy replicas share Redis.
//
// Start and Stop of one server are serialized across replicas by a lock
// in Redis (see docs/backends.md). A request that finds the lock taken
// does not wait: it returns the server as it is now, with no error when
// the server is already on its way where the caller wants it (a second
// Start while one is starting), and with ErrBusy otherwise (a Start while
// a Stop runs). A state event follows every change.
type Manager struct {
	rdb       redis.UniversalClient
	reg       *Registry
	driver    Driver
	prefix    string
	node      string
	lockTTL   time.Duration
	reconcile time.Duration
	forward   time.Duration
	basePath  func(string) string
	log       *slog.Logger

	// stopping holds the ids whose forwarded stop this replica is
	// carrying out, so that a repeated request does not start another
	stopMu   sync.Mutex
	stopping map[string]bool
}

// NewManager returns a manager of the servers in reg.
func NewManager(rdb redis.UniversalClient, reg *Registry, cfg ManagerConfig) (*Manager, error) {
	if rdb == nil || reg == nil {
		return nil, errors.New("manager needs a redis client and a registry")
	}
	if cfg.Driver == nil {
		return nil, errors.New("manager needs a driver")
	}
	m := &Manager{
		rdb:       rdb,
		reg:       reg,
		driver:    cfg.Driver,
		prefix:    cfg.Prefix,
		lockTTL:   cfg.LockTTL,
		reconcile: cfg.ReconcileInterval,
		forward:   cfg.ForwardTimeout,
		basePath:  cfg.BasePath,
		log:       cfg.Log,
		stopping:  make(map[string]bool),
	}
	if m.prefix == "" {
		m.prefix = DefaultPrefix
	}
	if m.prefix != reg.prefix {
		return nil, fmt.Errorf("manager prefix %q differs from registry prefix %q",
			m.prefix, reg.prefix)
	}
	if m.lockTTL <= 0 {
		m.lockTTL = 30 * time.Second
	}
	if m.reconcile <= 0 {
		m.reconcile = 30 * time.Second
	}
	if m.forward <= 0 {
		m.forward = 30 * time.Second
	}
	if m.basePath == nil {
		m.basePath = DefaultBasePath
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if p, ok := cfg.Driver.(Placed); ok {
		m.node = p.Node()
	}
	return m, nil
}

func (m *Manager) lockKey(id string) string   { return m.prefix + "lock:server:" + id }
func (m *Manager) nodeKey(node string) string { return m.prefix + "node:" + node }

// stopChannel is the pub/sub channel on which the replica with the given
// node hears requests to stop its servers.
func (m *Manager) stopChannel(node string) string { return m.prefix + "stop:" + node }

// Start starts the server and returns it running, or failed with the
// driver's error. Starting a running server returns it as it is. See
// Manager for what a concurrent request gets.
func (m *Manager) Start(ctx context.Context, id, actor string) (Server, error) {
	srv, err := m.reg.Get(ctx, id)
	if err != nil {
		return Server{}, err
	}
	if srv.State == Running && !m.lost(ctx, srv) {
		return srv, nil
	}

	h, srv, err := m.begin(ctx, srv.ID, Starting, Running)
	if h == nil {
		return srv, err
	}
	defer h.end()
	lost := m.lost(ctx, srv)
	if srv.State == Running && !lost {
		return srv, nil
	}
	if (srv.State == Starting || srv.State == Stopping) && m.elsewhere(srv) && !lost {
		// an operation of a live replica was cut short; that replica's
		// reconcile settles it
		return srv, fmt.Errorf("starting server %s: %w", srv.ID, ErrElsewhere)
	}

	// the caller may go away (a closed tab); the start goes on regardless
	ctx = context.WithoutCancel(ctx)
	if err := m.beat(ctx); err != nil {
		return srv, fmt.Errorf("starting server %s: %w", srv.ID, err)
	}
	srv, err = m.transition(ctx, srv, update{State: Starting, Node: m.node}, actor)
	if err != nil {
		return srv, err
	}
	st, err := m.driver.Start(ctx, Spec{
		ID:      srv.ID,
		Owner:   srv.Owner,
		BaseURL: m.basePath(srv.ID),
		Secret:  srv.Secret,
	})
	if err != nil {
		reason := m.reason(srv, err.Error())
		failed, werr := m.transition(ctx, srv, update{State: Failed, Reason: reason}, actor)
		if werr != nil {
			return srv, fmt.Errorf("starting server %s: %w (saving the failure: %v)",
				srv.ID, err, werr)
		}
		return failed, fmt.Errorf("starting server %s: %w", srv.ID, err)
	}

	u := update{State: st.State, Addr: st.Addr, Node: m.node}
	if u.State == "" {
		u.State = Running
	}
	return m.transition(ctx, srv, u, actor)
}

// Stop stops the server and returns it stopped. Stopping a stopped server
// returns it as it is. A server that runs beside another live proxy
// replica can only be stopped there: Stop asks that replica and waits for
// it, for at most ForwardTimeout, and returns an error wrapping
// ErrElsewhere when it does not answer in time. See Manager for what a
// concurrent request gets.
func (m *Manager) Stop(ctx context.Context, id, actor string) (Server, error) {
	return m.stop(ctx, id, actor, true)
}

// stop is Stop; a server of another live replica is asked of that replica
// when forward is true, and is an ErrElsewhere otherwise.
func (m *Manager) stop(ctx context.Context, id, actor string, forward bool) (Server, error) {
	srv, err := m.reg.Get(ctx, id)
	if err != nil {
		return Server{}, err
	}
	if srv.State == Stopped {
		return srv, nil
	}

	h, srv, err := m.begin(ctx, srv.ID, Stopping, Stopped)
	if h == nil {
		return srv, err
	}
	if srv.State != Stopped && srv.State != Failed && m.elsewhere(srv) && !m.lost(ctx, srv) {
		// the owning replica takes the lock to stop it, so we let go first
		h.end()
		if !forward {
			return srv, fmt.Errorf("stopping server %s: %w", srv.ID, ErrElsewhere)
		}
		return m.forwardStop(ctx, srv, actor)
	}
	defer h.end()
	if srv.State == Stopped {
		return srv, nil
	}

	ctx = context.WithoutCancel(ctx)
	stopping := update{State: Stopping, Addr: srv.Addr, Node: srv.Node}
	srv, err = m.transition(ctx, srv, stopping, actor)
	if err != nil {
		return srv, err
	}
	if err := m.driver.Stop(ctx, srv.ID); err != nil {
		reason := m.reason(srv, "stopping: "+err.Error())
		failed, werr := m.transition(ctx, srv, update{State: Failed, Reason: reason}, actor)
		if werr != nil {
			return srv, fmt.Errorf("stopping server %s: %w (saving the failure: %v)",
				srv.ID, err, werr)
		}
		return failed, fmt.Errorf("stopping server %s: %w", srv.ID, err)
	}
	return m.transition(ctx, srv, update{State: Stopped}, actor)
}

// forwardStop asks the replica that runs srv to stop it, and waits until
// the registry shows the outcome, for at most ForwardTimeout. It returns
// what a local Stop would: the server stopped, or failed with an error,
// or ErrBusy when a start got in between.
func (m *Manager) forwardStop(ctx context.Context, srv Server, actor string) (Server, error) {
	node := srv.Node
	req := events.Event{Kind: events.StopRequest, Server: srv.ID, Actor: actor}
	deadline := time.NewTimer(m.forward)
	defer deadline.Stop()
	poll := time.NewTicker(forwardPoll)
	defer poll.Stop()

	var sent time.Time
	for {
		// a request is sent again now and then: one that arrived while the
		// owner was resubscribing is lost, and a repeated one is harmless
		if time.Since(sent) >= forwardResend {
			err := events.Publish(ctx, m.rdb, m.stopChannel(node), req)
			if err != nil {
				return srv, fmt.Errorf("stopping server %s: asking its replica: %w", srv.ID, err)
			}
			sent = time.Now()
		}
		select {
		case <-ctx.Done():
			return srv, fmt.Errorf("stopping server %s: %w", srv.ID, ctx.Err())
		case <-deadline.C:
			return srv, fmt.Errorf("stopping server %s: owning replica did not answer within %s: %w",
				srv.ID, m.forward, ErrElsewhere)
		case <-poll.C:
		}

		cur, err := m.reg.Get(ctx, srv.ID)
		if err != nil {
			return srv, err
		}
		switch {
		case cur.State == Stopped:
			return cur, nil
		case cur.State == Failed:
			return cur, fmt.Errorf("stopping server %s: its replica reports: %s", cur.ID, cur.Reason)
		case cur.Node != node, cur.State == Starting && cur.UpdatedAt.After(srv.UpdatedAt):
			// stopped, and started again by another request
			return cur, fmt.Errorf("stopping server %s: %w", cur.ID, ErrBusy)
		case m.lost(ctx, cur):
			// the owner went away, and its server with it: finish here
			return m.stop(ctx, cur.ID, actor, false)
		}
		srv = cur
	}
}

// serveStops carries out the stops that other replicas ask of this one
// (see forwardStop) until ctx ends, and waits for those under way.
func (m *Manager) serveStops(ctx context.Context) {
	var wg sync.WaitGroup
	sub := events.NewSubscriber(m.rdb, m.stopChannel(m.node), m.log)
	sub.OnEvent(func(ev events.Event) {
		// the proxy that sent it authorized the stop; only the id and the
		// actor are taken from the request, and both are checked
		if ev.Kind != events.StopRequest {
			return
		}
		id, err := ident.ServerID(ev.Server)
		if err != nil {
			m.log.Warn("stop request ignored", "err", err)
			return
		}
		actor := ev.Actor
		if actor != "" {
			if actor, err = ident.Username(actor); err != nil {
				m.log.Warn("stop request ignored", "server", id, "err", err)
				return
			}
		}

		m.stopMu.Lock()
		busy := m.stopping[id]
		m.stopping[id] = true
		m.stopMu.Unlock()
		if busy {
			return
		}
		wg.Go(func() {
			defer func() {
				m.stopMu.Lock()
				delete(m.stopping, id)
				m.stopMu.Unlock()
			}()
			m.stopRequested(ctx, id, actor)
		})
	})
	sub.Run(ctx)
	wg.Wait()
}

// stopRequested stops the server for another replica, if it runs here.
func (m *Manager) stopRequested(ctx context.Context, id, actor string) {
	srv, err := m.reg.Get(ctx, id)
	if err != nil {
		m.log.Warn("requested stop failed", "server", id, "actor", actor, "err", err)
		return
	}
	if srv.Node != m.node {
		m.log.Debug("stop request ignored", "server", id, "node", srv.Node)
		return
	}
	m.log.Info("stop requested by another replica", "server", id, "actor", actor)
	if _, err := m.stop(ctx, id, actor, false); err != nil {
		m.log.Warn("requested stop failed", "server", id, "actor", actor, "err", err)
	}
}

// Shutdown stops every server that runs beside this proxy process, through
// Stop, so that the registry shows them stopped rather than lost, for a
// graceful shutdown. With a driver that is not Placed it does nothing: those
// servers do not depend on this process.
func (m *Manager) Shutdown(ctx context.Context) error {
	if m.node == "" {
		return nil
	}
	ids, err := m.reg.ids(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		srv, err := m.reg.Get(ctx, id)
		if err != nil || srv.Node != m.node || !active(srv.State) {
			continue
		}
		if _, err := m.Stop(ctx, id, ""); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// held is a server lock that is being kept alive.
type held struct {
	l    *lock
	stop func()
	log  *slog.Logger
}

func (h *held) end() {
	h.stop()
	if err := h.l.release(); err != nil {
		h.log.Warn("server lock not released", "key", h.l.key, "err", err)
	}
}

// hold takes the server's lock, waiting for it when wait is true, and
// keeps it alive. It returns nil and no error when the lock is taken and
// wait is false.
func (m *Manager) hold(ctx context.Context, id string, wait bool) (*held, error) {
	var l *lock
	var err error
	if wait {
		l, err = waitLock(ctx, m.rdb, m.lockKey(id), m.lockTTL)
	} else {
		l, err = tryLock(ctx, m.rdb, m.lockKey(id), m.lockTTL)
	}
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", id, err)
	}
	if l == nil {
		return nil, nil
	}
	stop := l.keepAlive(func(err error) {
		m.log.Warn("server lock not extended", "server", id, "err", err)
	})
	return &held{l: l, stop: stop, log: m.log}, nil
}

// begin takes the server's lock for an operation that passes through the
// state via on its way to goal, and returns the server as it is once the
// lock is held. When another request holds the lock, it returns a nil
// lock and the server as it is now, with no error if the server is
// already on its way to goal, or ErrBusy.
//
// A holder writes its first state just after taking the lock, so a busy
// lock is watched for up to busyWait before the state counts as the
// other request's.
func (m *Manager) begin(ctx context.Context, id string, via, goal State) (*held, Server, error) {
	deadline := time.Now().Add(busyWait)
	for {
		h, err := m.hold(ctx, id, false)
		if err != nil {
			return nil, Server{}, err
		}
		srv, err := m.reg.Get(ctx, id)
		if err != nil {
			if h != nil {
				h.end()
			}
			return nil, Server{}, err
		}
		if h != nil {
			return h, srv, nil
		}
		if srv.State == via || srv.State == goal {
			return nil, srv, nil
		}
		if time.Now().After(deadline) {
			return nil, srv, fmt.Errorf("server %s: %w", id, ErrBusy)
		}
		select {
		case <-ctx.Done():
			return nil, srv, fmt.Errorf("server %s: %w", id, ctx.Err())
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// transition writes the change u of srv to the registry and publishes it.
func (m *Manager) transition(
	ctx context.Context,
	srv Server,
	u update,
	actor string,
) (Server, error) {
	next, err := m.reg.setState(ctx, srv.ID, u)
	if err != nil {
		return srv, err
	}
	m.log.Info("server state changed", "server", next.ID, "state", next.State,
		"reason", next.Reason, "actor", actor)

	ev := events.Event{
		Kind:   events.ServerState,
		Server: next.ID,
		User:   next.Owner,
		Actor:  actor,
		State:  string(next.State),
		At:     next.UpdatedAt,
	}
	if err := events.Publish(ctx, m.rdb, events.Channel(m.prefix), ev); err != nil {
		// the registry holds the truth; replicas that missed the event
		// re-read it when they resubscribe
		m.log.Warn("server state event not published", "server", next.ID, "err", err)
	}
	return next, nil
}

// reason makes a failure reason fit for the registry, which users read:
// never the secret, never unbounded.
func (m *Manager) reason(srv Server, s string) string {
	if srv.Secret != "" {
		s = strings.ReplaceAll(s, srv.Secret, "[secret]")
	}
	if len(s) > maxReason {
		s = s[:maxReason] + "..."
	}
	return s
}

// elsewhere reports whether srv was started beside another proxy process.
func (m *Manager) elsewhere(srv Server) bool {
	return srv.Node != "" && srv.Node != m.node
}

// lost reports whether srv was started beside another proxy process that
// no longer sends heartbeats. When Redis cannot tell, it is not lost.
func (m *Manager) lost(ctx context.Context, srv Server) bool {
	if !m.elsewhere(srv) {
		return false
	}
	n, err := m.rdb.Exists(ctx, m.nodeKey(srv.Node)).Result()
	return err == nil && n == 0
}

// beat tells the other replicas that this process is alive, for drivers
// whose servers live beside it.
func (m *Manager) beat(ctx context.Context) error {
	if m.node == "" {
		return nil
	}
	host, _ := os.Hostname()
	if err := m.rdb.Set(ctx, m.nodeKey(m.node), host, nodeTTL).Err(); err != nil {
		return fmt.Errorf("sending heartbeat: %w", err)
	}
	return nil
}

// Run keeps the registry true until ctx ends: it marks servers that the
// driver reports stopped by themselves as Failed (drivers that implement
// Watcher), sends this process's heartbeat (drivers that implement
// Placed), carries out the stops other replicas ask of it (Placed too),
// and reconciles every ReconcileInterval, starting at once. Run must be
// running wherever Start is called with a Placed driver: the servers of a
// process without heartbeat count as lost, and those of a process that
// does not listen cannot be stopped from elsewhere.
func (m *Manager) Run(ctx context.Context) {
	var bg sync.WaitGroup
	if m.node != "" {
		bg.Go(func() { m.serveStops(ctx) })
	}
	bg.Go(func() {
		t := time.NewTicker(nodeTTL / 3)
		defer t.Stop()
		for {
			if err := m.beat(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("heartbeat not sent", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	if w, ok := m.driver.(Watcher); ok {
		go w.Watch(ctx, func(id string, st Status) { m.exited(ctx, id, st) })
	}

	t := time.NewTicker(m.reconcile)
	defer t.Stop()
	for {
		if err := m.Reconcile(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("reconcile incomplete", "err", err)
		}
		select {
		case <-ctx.Done():
			bg.Wait()
			return
		case <-t.C:
		}
	}
}

// exited handles the driver's report that a server stopped by itself.
func (m *Manager) exited(ctx context.Context, id string, st Status) {
	// a start or stop under way finishes first; then the driver is asked
	// again, since that start may have brought the server back
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	h, err := m.hold(ctx, id, true)
	if err != nil {
		m.log.Warn("server exit not recorded", "server", id, "err", err)
		return
	}
	defer h.end()

	srv, err := m.reg.Get(ctx, id)
	if err != nil {
		m.log.Warn("server exit not recorded", "server", id, "err", err)
		return
	}
	if srv.Node != m.node || (srv.State != Running && srv.State != Starting) {
		return
	}
	if cur, err := m.driver.Status(ctx, id); err == nil && cur.State == Running {
		return
	}
	reason := st.Reason
	if reason == "" {
		reason = "the server stopped without being asked"
	}
	u := update{State: Failed, Reason: m.reason(srv, reason)}
	if _, err := m.transition(ctx, srv, u, ""); err != nil {
		m.log.Warn("server exit not recorded", "server", id, "err", err)
	}
}

// Reconcile compares every server the registry says is starting, running
// or stopping with what the driver knows, and corrects the registry:
//
//   - a server of a replica that sends no more heartbeats is Failed
//     (Stopped if it was stopping): it went with its replica;
//   - a server the driver reports running is Running, with its address;
//   - a server the driver does not know, or reports stopped or failed, is
//     Failed with the driver's reason;
//   - a stop that was cut short is finished.
//
// Servers whose lock is held are skipped: their operation settles them.
// Servers of other live replicas are theirs to reconcile.
func (m *Manager) Reconcile(ctx context.Context) error {
	ids, err := m.reg.ids(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if err := m.reconcileOne(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) reconcileOne(ctx context.Context, id string) error {
	srv, err := m.reg.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !active(srv.State) || (m.elsewhere(srv) && !m.lost(ctx, srv)) {
		return nil
	}

	h, err := m.hold(ctx, id, false)
	if err != nil || h == nil {
		return err
	}
	defer h.end()
	srv, err = m.reg.Get(ctx, id)
	if err != nil || !active(srv.State) {
		return err
	}

	if m.lost(ctx, srv) {
		u := update{State: Failed, Reason: "the proxy replica that ran the server stopped"}
		if srv.State == Stopping {
			u = update{State: Stopped}
		}
		_, err := m.transition(ctx, srv, u, "")
		return err
	}
	if m.elsewhere(srv) {
		return nil
	}

	st, err := m.driver.Status(ctx, id)
	if err != nil {
		return fmt.Errorf("server %s: reading status: %w", id, err)
	}
	switch {
	case srv.State == Stopping:
		if err := m.driver.Stop(ctx, id); err != nil {
			return fmt.Errorf("server %s: finishing stop: %w", id, err)
		}
		_, err = m.transition(ctx, srv, update{State: Stopped}, "")
	case st.State == Running:
		if srv.State != Running || srv.Addr != st.Addr {
			_, err = m.transition(ctx, srv, update{State: Running, Addr: st.Addr, Node: m.node}, "")
		}
	case st.State == Starting:
		// a start of the driver's own (a pod coming up) goes on
	default:
		reason := st.Reason
		if reason == "" {
			reason = "the server is no longer running"
		}
		_, err = m.transition(ctx, srv, update{State: Failed, Reason: m.reason(srv, reason)}, "")
	}
	return err
}

func active(s State) bool { return s == Starting || s == Running || s == Stopping }
