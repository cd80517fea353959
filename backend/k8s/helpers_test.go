package k8s

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/studio-proxy/studio-proxy/backend"
	"github.com/studio-proxy/studio-proxy/internal/testclock"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

const testNS = "servers"

var podsGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// syncBuffer is a log sink that tests may read while the driver writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is one test's cluster: a fake clientset, a driver on it, a clock
// and the driver's log.
type env struct {
	cs    *fake.Clientset
	d     *Driver
	clock *testclock.Clock
	log   *syncBuffer
}

// newEnv returns a driver on an empty fake cluster. edit, when not nil,
// changes the test configuration before New.
func newEnv(t *testing.T, edit func(*Config)) *env {
	t.Helper()
	e := &env{
		cs:    fake.NewClientset(),
		clock: testclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)),
		log:   &syncBuffer{},
	}
	cfg := Config{
		Namespace:    testNS,
		Image:        "quay.io/jupyter/base-notebook:test",
		StartTimeout: time.Minute,
		PollInterval: 10 * time.Millisecond,
		Log:          slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:          e.clock.Now,
	}
	if edit != nil {
		edit(&cfg)
	}
	d, err := New(e.cs, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.d = d
	return e
}

// otherReplica is a second driver on the same cluster, as a second
// proxy replica would have.
func (e *env) otherReplica(t *testing.T) *Driver {
	t.Helper()
	d, err := New(e.cs, e.d.cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

func testSpec(id, owner string) backend.Spec {
	return backend.Spec{
		ID:      id,
		Owner:   owner,
		BaseURL: "/servers/" + id + "/",
		Secret:  "s3cr3t-token-" + id,
	}
}

// kubelet plays the cluster for the fake clientset: the API server's
// creation timestamp and the kubelet's status reports. It works on the
// object tracker directly, so that the clientset's record of actions
// holds only the driver's.
type kubelet struct {
	t      *testing.T
	e      *env
	mu     sync.Mutex
	behave func(*corev1.Pod)
	seen   chan string
}

// startKubelet gives every pod created from now on the status behave
// sets. Each created pod's name is sent on k.seen when there is room.
func (e *env) startKubelet(t *testing.T, behave func(*corev1.Pod)) *kubelet {
	t.Helper()
	k := &kubelet{t: t, e: e, behave: behave, seen: make(chan string, 16)}
	w, err := e.cs.Tracker().Watch(podsGVR, testNS)
	if err != nil {
		t.Fatalf("watching pods: %v", err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		w.Stop()
		<-done
	})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added {
				continue
			}
			p := ev.Object.(*corev1.Pod).DeepCopy()
			p.CreationTimestamp = metav1.NewTime(e.clock.Now())
			k.mu.Lock()
			behave := k.behave
			k.mu.Unlock()
			if behave != nil {
				behave(p)
			}
			k.update(p)
			select {
			case k.seen <- p.Name:
			default:
			}
		}
	}()
	return k
}

// setBehaviour changes what the kubelet does with pods created next.
func (k *kubelet) setBehaviour(behave func(*corev1.Pod)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.behave = behave
}

// update writes p's status as it is now.
func (k *kubelet) update(p *corev1.Pod) {
	if err := k.e.cs.Tracker().Update(podsGVR, p, p.Namespace); err != nil {
		k.t.Errorf("kubelet updating pod %s: %v", p.Name, err)
	}
}

// change reads pod name, lets edit change it, and writes it back.
func (e *env) change(t *testing.T, name string, edit func(*corev1.Pod)) {
	t.Helper()
	obj, err := e.cs.Tracker().Get(podsGVR, testNS, name)
	if err != nil {
		t.Fatalf("reading pod %s: %v", name, err)
	}
	p := obj.(*corev1.Pod).DeepCopy()
	edit(p)
	if err := e.cs.Tracker().Update(podsGVR, p, testNS); err != nil {
		t.Fatalf("updating pod %s: %v", name, err)
	}
}

// waitPod waits until the kubelet has seen a pod created.
func (k *kubelet) waitPod(t *testing.T) string {
	t.Helper()
	select {
	case name := <-k.seen:
		return name
	case <-time.After(10 * time.Second):
		t.Fatal("no pod was created within 10s")
		return ""
	}
}

// The pod states the kubelet can report.

func readyPod(p *corev1.Pod) {
	p.Status = corev1.PodStatus{
		Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue},
		},
		ContainerStatuses: []corev1.ContainerStatus{{
			Name:  containerName,
			Ready: true,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
		}},
	}
}

func pendingPod(p *corev1.Pod) {
	p.Status = corev1.PodStatus{
		Phase: corev1.PodPending,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
			{Type: corev1.PodReady, Status: corev1.ConditionFalse},
		},
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: containerName,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
				Reason: "ContainerCreating",
			}},
		}},
	}
}

func unschedulablePod(p *corev1.Pod) {
	p.Status = corev1.PodStatus{
		Phase: corev1.PodPending,
		Conditions: []corev1.PodCondition{{
			Type:    corev1.PodScheduled,
			Status:  corev1.ConditionFalse,
			Reason:  "Unschedulable",
			Message: "0/3 nodes are available: 3 Insufficient memory.",
		}},
	}
}

func waitingPod(reason, message string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		pendingPod(p)
		p.Status.ContainerStatuses[0].State.Waiting = &corev1.ContainerStateWaiting{
			Reason: reason, Message: message,
		}
	}
}

func imagePullPod(p *corev1.Pod) {
	waitingPod("ImagePullBackOff",
		`Back-off pulling image "quay.io/jupyter/base-notebook:test"`)(p)
}

func crashingPod(p *corev1.Pod) {
	readyPod(p)
	p.Status.Conditions[1].Status = corev1.ConditionFalse
	cs := &p.Status.ContainerStatuses[0]
	cs.Ready = false
	cs.RestartCount = 3
	cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
		Reason:  "CrashLoopBackOff",
		Message: "back-off 40s restarting failed container=server",
	}}
	cs.LastTerminationState = corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"},
	}
}

// startAsync runs Start in a goroutine; the result arrives on the channel.
func startAsync(d *Driver, spec backend.Spec) <-chan startResult {
	out := make(chan startResult, 1)
	go func() {
		st, err := d.Start(context.Background(), spec)
		out <- startResult{st, err}
	}()
	return out
}

type startResult struct {
	st  backend.Status
	err error
}

func await(t *testing.T, ch <-chan startResult) startResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("Start did not return within 20s")
		return startResult{}
	}
}

// countActions counts the client's actions with verb on resource.
func countActions(cs *fake.Clientset, verb, resource string) int {
	n := 0
	for _, a := range cs.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == resource &&
			a.GetSubresource() == "" {
			n++
		}
	}
	return n
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// refuseWatch is a watch reactor that answers as a cluster without the
// watch permission would.
func refuseWatch(action clienttesting.Action) (bool, watch.Interface, error) {
	return true, nil, apierrors.NewForbidden(
		schema.GroupResource{Resource: action.GetResource().Resource}, "",
		errors.New("watch is not allowed"))
}
