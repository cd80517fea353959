package k8s

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/studio-proxy/studio-proxy/backend"
	corev1 "k8s.io/api/core/v1"
)

// notes collects what Watch reports.
type notes struct {
	mu  sync.Mutex
	got []note
}

type note struct {
	id string
	st backend.Status
}

func (n *notes) notify(id string, st backend.Status) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = append(n.got, note{id, st})
}

// waitFor waits until a report of server id in state arrives, and
// returns it.
func (n *notes) waitFor(t *testing.T, id string, state backend.State) backend.Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		n.mu.Lock()
		for _, r := range n.got {
			if r.id == id && r.st.State == state {
				n.mu.Unlock()
				return r.st
			}
		}
		n.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	t.Fatalf("got reports %+v, want %s %s within 10s", n.got, id, state)
	return backend.Status{}
}

func TestWatch(t *testing.T) {
	e := newEnv(t, nil)
	k := e.startKubelet(t, readyPod)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// a server that failed before Watch began is reported first
	early := testSpec("early", "early")
	k.setBehaviour(crashingPod)
	if _, err := e.d.Start(ctx, early); !errors.Is(err, ErrStartFailed) {
		t.Fatalf("got %v, want ErrStartFailed", err)
	}
	k.setBehaviour(readyPod)

	n := &notes{}
	done := make(chan struct{})
	go func() {
		e.d.Watch(ctx, n.notify)
		close(done)
	}()
	st := n.waitFor(t, "early", backend.Failed)
	checkReason(t, st.Reason, []string{"CrashLoopBackOff"})

	// a server that crashes while running
	spec := testSpec("kim", "kim")
	if _, err := e.d.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	name := NamesFor("", spec.ID, "").Object
	e.change(t, name, crashingPod)
	st = n.waitFor(t, "kim", backend.Failed)
	checkReason(t, st.Reason, []string{"CrashLoopBackOff", "exit code 1"})

	// and whose pod is then deleted
	if err := e.d.Stop(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	n.waitFor(t, "kim", backend.Stopped)

	// a pod of something else in the namespace is not reported
	other := &corev1.Pod{}
	other.Name, other.Namespace = "unrelated", testNS
	other.Annotations = map[string]string{AnnotationServerID: "unrelated"}
	other.Status.Phase = corev1.PodFailed
	if err := e.cs.Tracker().Add(other); err != nil {
		t.Fatal(err)
	}
	// a last server, so that the pod above has been seen when it arrives
	last := testSpec("last", "last")
	if _, err := e.d.Start(ctx, last); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Stop(ctx, last.ID); err != nil {
		t.Fatal(err)
	}
	n.waitFor(t, "last", backend.Stopped)

	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return within 10s of its context ending")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range n.got {
		if r.id == "unrelated" {
			t.Errorf("got a report of a pod the driver does not manage: %+v", r)
		}
		if r.st.State != backend.Failed && r.st.State != backend.Stopped {
			t.Errorf("got report %+v, want only failed and stopped servers", r)
		}
	}
}

func TestWatchReportsChangesOnce(t *testing.T) {
	e := newEnv(t, nil)
	k := e.startKubelet(t, readyPod)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	n := &notes{}
	go e.d.watch(ctx, n.notify)
	spec := testSpec("lou", "lou")
	if _, err := e.d.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	name := k.waitPod(t)
	st := n.waitFor(t, "lou", backend.Running)
	if want := e.d.addr(name); st.Addr != want {
		t.Errorf("got addr %q, want %q", st.Addr, want)
	}

	// status updates that change nothing the driver reports
	for range 3 {
		e.change(t, name, func(p *corev1.Pod) { p.Status.Message = "unchanged" })
	}
	e.change(t, name, crashingPod)
	n.waitFor(t, "lou", backend.Failed)

	n.mu.Lock()
	defer n.mu.Unlock()
	var states []backend.State
	for _, r := range n.got {
		if r.id == "lou" {
			states = append(states, r.st.State)
		}
	}
	want := []backend.State{backend.Running, backend.Failed}
	if !slices.Equal(states, want) && !slices.Equal(states,
		append([]backend.State{backend.Starting}, want...)) {
		t.Errorf("got states %v, want %v, perhaps after starting", states, want)
	}
}
