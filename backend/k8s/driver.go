package k8s

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/studio-proxy/studio-proxy/backend"
	"github.com/studio-proxy/studio-proxy/internal/ident"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Errors that callers branch on.
var (
	// ErrStartFailed is wrapped by Start when the pod failed or did not
	// become ready in time; the returned Status says why.
	ErrStartFailed = errors.New("server did not start")
	// ErrStopped is wrapped by Start when the server was stopped (its pod
	// deleted) while it was starting.
	ErrStopped = errors.New("server was stopped while starting")
	// ErrConflict is wrapped when an object with a server's name belongs
	// to another server. The driver leaves such an object alone.
	ErrConflict = errors.New("kubernetes object belongs to another server")
)

// Driver starts and stops servers as pods. It holds no state of its own
// beyond its configuration, so any number of proxy replicas may drive
// the same servers, and its methods are safe for concurrent use.
type Driver struct {
	client kubernetes.Interface
	cfg    Config
}

var (
	_ backend.Driver  = (*Driver)(nil)
	_ backend.Watcher = (*Driver)(nil)
)

// New returns a driver that keeps servers in cfg.Namespace through
// client. It does not contact the cluster.
func New(client kubernetes.Interface, cfg Config) (*Driver, error) {
	if client == nil {
		return nil, errors.New("kubernetes client is nil")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("configuring kubernetes driver: %w", err)
	}
	return &Driver{client: client, cfg: cfg}, nil
}

// Start creates the server's Secret, the owner's claim, the Pod and the
// Service, adopting any that exist, and waits until the pod is ready. A
// pod that failed, or that runs with an older token, is replaced. When
// the pod fails or is not ready within StartTimeout, Start returns a
// Failed status with the reason and an error wrapping ErrStartFailed.
func (d *Driver) Start(ctx context.Context, spec backend.Spec) (backend.Status, error) {
	spec, err := checkSpec(spec)
	if err != nil {
		return backend.Status{}, err
	}
	s := d.server(spec)
	began := time.Now()

	// the token first: the pod reads it when its container starts
	tokenChanged, err := d.ensureSecret(ctx, s)
	if err != nil {
		return backend.Status{}, err
	}
	if d.cfg.ExistingClaim == "" {
		if err := d.ensureClaim(ctx, s); err != nil {
			return backend.Status{}, err
		}
	}
	pod, err := d.ensurePod(ctx, s, tokenChanged)
	if err != nil {
		return backend.Status{}, err
	}
	svc, err := d.ensureService(ctx, s)
	if err != nil {
		return backend.Status{}, err
	}

	st, err := d.waitReady(ctx, pod, serviceAddr(svc))
	log := d.cfg.Log.With("server", spec.ID, "pod", s.names.Object)
	switch {
	case err == nil:
		log.Info("server ready", "duration_ms", time.Since(began).Milliseconds())
	case st.State == backend.Failed:
		log.Warn("server failed to start", "reason", st.Reason)
	default:
		log.Warn("server start interrupted", "err", err)
	}
	return st, err
}

// Stop deletes the server's Pod, Service and Secret. The owner's claim
// stays. Objects already gone are fine, so Stop may be repeated. It does
// not wait for the pod to terminate: Status says Stopping until it has.
func (d *Driver) Stop(ctx context.Context, id string) error {
	id, err := ident.ServerID(id)
	if err != nil {
		return err
	}
	name := NamesFor(d.cfg.NamePrefix, id, "").Object
	ns := d.cfg.Namespace

	// the pod first, so that the server stops serving before its
	// address and token go
	if err := deleteOwned(ctx, d.client.CoreV1().Pods(ns), "pod", name, id); err != nil {
		return err
	}
	if err := deleteOwned(ctx, d.client.CoreV1().Services(ns), "service", name, id); err != nil {
		return err
	}
	if err := deleteOwned(ctx, d.client.CoreV1().Secrets(ns), "secret", name, id); err != nil {
		return err
	}
	d.cfg.Log.Info("server stopped", "server", id, "pod", name)
	return nil
}

// Status reads the server's pod: none is Stopped, one being deleted is
// Stopping, a ready one with its Service is Running, a failed or crashing
// one (or one still pending past StartTimeout) is Failed with the reason,
// and any other is Starting.
func (d *Driver) Status(ctx context.Context, id string) (backend.Status, error) {
	id, err := ident.ServerID(id)
	if err != nil {
		return backend.Status{}, err
	}
	name := NamesFor(d.cfg.NamePrefix, id, "").Object
	ns := d.cfg.Namespace

	pod, err := d.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return backend.Status{State: backend.Stopped}, nil
	}
	if err != nil {
		return backend.Status{}, fmt.Errorf("reading pod %s: %w", name, err)
	}
	if err := owned(pod, "pod", id); err != nil {
		return backend.Status{}, err
	}
	st := d.status(pod, "")
	if st.State != backend.Running {
		return st, nil
	}

	// a ready pod is reachable only through its service
	svc, err := d.client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return backend.Status{State: backend.Failed,
			Reason: "the server's service is missing; start the server again"}, nil
	}
	if err != nil {
		return backend.Status{}, fmt.Errorf("reading service %s: %w", name, err)
	}
	if err := owned(svc, "service", id); err != nil {
		return backend.Status{}, err
	}
	st.Addr = serviceAddr(svc)
	return st, nil
}

// checkSpec returns spec with canonical ids, or an error saying what is
// wrong with it.
func checkSpec(spec backend.Spec) (backend.Spec, error) {
	id, err := ident.ServerID(spec.ID)
	if err != nil {
		return spec, err
	}
	owner, err := ident.Username(spec.Owner)
	if err != nil {
		return spec, err
	}
	spec.ID, spec.Owner = id, owner
	if err := checkBaseURL(spec.BaseURL); err != nil {
		return spec, err
	}
	if spec.Secret == "" {
		return spec, errors.New("server secret is empty")
	}
	return spec, nil
}

// checkBaseURL accepts a path with leading and trailing slash made of
// characters that need no quoting in a command line or a probe, and none
// that the kubelet would expand ('$') or a template would ('{', '}').
func checkBaseURL(p string) error {
	if len(p) < 1 || p[0] != '/' || p[len(p)-1] != '/' {
		return fmt.Errorf("base url %q must start and end with '/'", p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("/-._~@%", c) >= 0
		if !ok {
			return fmt.Errorf("base url %q contains %q", p, c)
		}
	}
	return nil
}

// ensureSecret creates the server's Secret, or brings an existing one's
// token up to date; changed says the token was replaced.
func (d *Driver) ensureSecret(ctx context.Context, s server) (changed bool, err error) {
	secrets := d.client.CoreV1().Secrets(d.cfg.Namespace)
	want := d.secretObject(s)
	got, created, err := getOrCreate(ctx, secrets, "secret", want)
	if err != nil || created {
		return false, err
	}
	if err := owned(got, "secret", s.spec.ID); err != nil {
		return false, err
	}
	if bytes.Equal(got.Data[secretKey], want.Data[secretKey]) {
		return false, nil
	}

	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := secrets.Get(ctx, want.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Data = want.Data
		_, err = secrets.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("updating secret %s: %w", want.Name, err)
	}
	return true, nil
}

// ensureClaim creates the owner's claim unless it exists.
func (d *Driver) ensureClaim(ctx context.Context, s server) error {
	claims := d.client.CoreV1().PersistentVolumeClaims(d.cfg.Namespace)
	got, created, err := getOrCreate(ctx, claims, "claim", d.claimObject(s))
	if err != nil {
		return err
	}
	if created {
		d.cfg.Log.Info("owner volume claim created", "user", s.spec.Owner, "claim", got.Name)
		return nil
	}
	if owner := got.Annotations[AnnotationOwner]; owner != s.spec.Owner {
		return fmt.Errorf("%w: claim %s is annotated with owner %q", ErrConflict, got.Name, owner)
	}
	return nil
}

// ensurePod creates the server's pod or adopts the existing one. A pod
// that is being deleted is waited for, and one that failed or runs with a
// replaced token is deleted, and a new one created in its place.
func (d *Driver) ensurePod(ctx context.Context, s server, tokenChanged bool) (*corev1.Pod, error) {
	pods := d.client.CoreV1().Pods(d.cfg.Namespace)
	log := d.cfg.Log.With("server", s.spec.ID, "pod", s.names.Object)

	// each round either returns or waits for a pod to go, so a few
	// rounds suffice unless something else keeps recreating the pod
	for range 4 {
		pod, created, err := getOrCreate(ctx, pods, "pod", d.podObject(s))
		if err != nil {
			return nil, err
		}
		if created {
			log.Info("server pod created")
			return pod, nil
		}
		if err := owned(pod, "pod", s.spec.ID); err != nil {
			return nil, err
		}

		st := d.status(pod, "")
		replace := st.State == backend.Failed || tokenChanged
		// TODO: a pod made from an older configuration (image, resources)
		// is adopted as it is and takes the new one only after a stop:
		// comparing with a spec that the API server has defaulted is
		// error-prone, and replacing a running server would lose work.
		if st.State != backend.Stopping && !replace {
			log.Info("server pod adopted", "state", st.State)
			return pod, nil
		}
		if replace {
			log.Info("server pod replaced", "state", st.State, "reason", st.Reason,
				"token_changed", tokenChanged)
			err := pods.Delete(ctx, pod.Name, deleteExactly(pod))
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return nil, fmt.Errorf("deleting pod %s: %w", pod.Name, err)
			}
			tokenChanged = false
		}
		if err := d.waitGone(ctx, pod); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("creating pod %s: it keeps being replaced", s.names.Object)
}

// waitGone waits, at most StartTimeout, until pod no longer exists (a pod
// of the same name but another uid counts as gone).
func (d *Driver) waitGone(ctx context.Context, pod *corev1.Pod) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.StartTimeout)
	defer cancel()
	pods := d.client.CoreV1().Pods(d.cfg.Namespace)
	tick := time.NewTicker(d.cfg.PollInterval)
	defer tick.Stop()
	for {
		got, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err == nil && got.UID != pod.UID:
			return nil
		case err != nil && ctx.Err() == nil:
			return fmt.Errorf("reading pod %s: %w", pod.Name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for old pod %s to terminate: %w", pod.Name, ctx.Err())
		case <-tick.C:
		}
	}
}

// ensureService creates the server's service or adopts the existing one.
func (d *Driver) ensureService(ctx context.Context, s server) (*corev1.Service, error) {
	services := d.client.CoreV1().Services(d.cfg.Namespace)
	svc, created, err := getOrCreate(ctx, services, "service", d.serviceObject(s))
	if err != nil {
		return nil, err
	}
	if !created {
		if err := owned(svc, "service", s.spec.ID); err != nil {
			return nil, err
		}
	}
	return svc, nil
}

// waitReady follows pod until it is ready, fails, is deleted, or has
// had StartTimeout since it was created. A watch tells of changes as
// they happen; a Get every PollInterval covers a watch that is refused
// or ends.
//
// TODO: a ready pod may take a moment longer to appear among its
// service's endpoints; waiting for the EndpointSlice would close that gap
// but needs one more permission (discovery.k8s.io endpointslices).
func (d *Driver) waitReady(
	ctx context.Context,
	pod *corev1.Pod,
	addr string,
) (backend.Status, error) {
	timeout := d.cfg.StartTimeout
	if created := pod.CreationTimestamp.Time; !created.IsZero() {
		timeout -= max(d.cfg.Now().Sub(created), 0)
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pods := d.client.CoreV1().Pods(d.cfg.Namespace)
	tick := time.NewTicker(d.cfg.PollInterval)
	defer tick.Stop()

	// holdup is what the pod last waited for, for the timeout's reason
	holdup := ""
	check := func(p *corev1.Pod) (backend.Status, bool, error) {
		v := judge(p)
		switch v.state {
		case backend.Running:
			return backend.Status{State: backend.Running, Addr: addr}, true, nil
		case backend.Failed:
			return backend.Status{State: backend.Failed, Reason: v.reason}, true,
				fmt.Errorf("%w: %s", ErrStartFailed, v.reason)
		case backend.Stopping:
			return backend.Status{State: backend.Stopping}, true, ErrStopped
		}
		holdup = v.reason
		return backend.Status{}, false, nil
	}
	if st, done, err := check(pod); done {
		return st, err
	}

	byName := fields.OneTermEqualSelector("metadata.name", pod.Name).String()
	for {
		// watch first, then read, so that no change falls between the two
		var events <-chan watch.Event
		w, err := pods.Watch(wctx, metav1.ListOptions{FieldSelector: byName})
		if err == nil {
			events = w.ResultChan()
		}
		st, done, err := d.recheck(wctx, pod.Name, check)
		if done {
			stopWatch(w)
			return st, err
		}

	follow:
		for {
			select {
			case ev, ok := <-events:
				if !ok || ev.Type == watch.Error {
					break follow
				}
				p, isPod := ev.Object.(*corev1.Pod)
				if !isPod || p.Name != pod.Name {
					continue
				}
				if ev.Type == watch.Deleted {
					stopWatch(w)
					return backend.Status{State: backend.Stopped}, ErrStopped
				}
				if st, done, err := check(p); done {
					stopWatch(w)
					return st, err
				}
			case <-tick.C:
				if st, done, err := d.recheck(wctx, pod.Name, check); done {
					stopWatch(w)
					return st, err
				}
			case <-wctx.Done():
				stopWatch(w)
				if ctx.Err() != nil {
					return backend.Status{State: backend.Starting},
						fmt.Errorf("waiting for pod %s: %w", pod.Name, ctx.Err())
				}
				reason := d.notReady(holdup)
				return backend.Status{State: backend.Failed, Reason: reason},
					fmt.Errorf("%w: %s", ErrStartFailed, reason)
			}
		}
		stopWatch(w)
	}
}

// recheck reads the pod and checks it. Errors reading are left for the
// next tick, except that a pod that is gone ends the wait.
func (d *Driver) recheck(
	ctx context.Context,
	name string,
	check func(*corev1.Pod) (backend.Status, bool, error),
) (backend.Status, bool, error) {
	p, err := d.client.CoreV1().Pods(d.cfg.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return backend.Status{State: backend.Stopped}, true, ErrStopped
	}
	if err != nil {
		return backend.Status{}, false, nil
	}
	return check(p)
}

func stopWatch(w watch.Interface) {
	if w != nil {
		w.Stop()
	}
}

// serviceAddr is the base URL of a service's http port.
func serviceAddr(svc *corev1.Service) string {
	var port int32
	for _, p := range svc.Spec.Ports {
		if p.Name == portName || port == 0 {
			port = p.Port
		}
	}
	return fmt.Sprintf("http://%s.%s.svc:%d", svc.Name, svc.Namespace, port)
}
