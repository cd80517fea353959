package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/studio-proxy/studio-proxy/backend"
	"github.com/studio-proxy/studio-proxy/internal/ident"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

func TestStartCreatesServer(t *testing.T) {
	e := newEnv(t, nil)
	e.startKubelet(t, readyPod)
	spec := testSpec("alice@example.com", "alice@example.com")
	ctx := context.Background()

	st, err := e.d.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	names := NamesFor("", spec.ID, spec.Owner)
	wantAddr := "http://" + names.Object + ".servers.svc:8888"
	if st.State != backend.Running || st.Addr != wantAddr {
		t.Errorf("got %+v, want running at %s", st, wantAddr)
	}

	core := e.cs.CoreV1()
	pod, err := core.Pods(testNS).Get(ctx, names.Object, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading pod: %v", err)
	}
	svc, err := core.Services(testNS).Get(ctx, names.Object, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading service: %v", err)
	}
	secret, err := core.Secrets(testNS).Get(ctx, names.Object, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading secret: %v", err)
	}
	pvc, err := core.PersistentVolumeClaims(testNS).Get(ctx, names.Claim, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading claim: %v", err)
	}

	t.Run("token only in the secret", func(t *testing.T) {
		if got := string(secret.Data[secretKey]); got != spec.Secret {
			t.Errorf("got secret data %q, want %q", got, spec.Secret)
		}
		for what, obj := range map[string]any{"pod": pod, "service": svc, "claim": pvc} {
			b, _ := json.Marshal(obj)
			if strings.Contains(string(b), spec.Secret) {
				t.Errorf("the %s holds the token in plain text", what)
			}
		}
		env := pod.Spec.Containers[0].Env[0]
		ref := env.ValueFrom.SecretKeyRef
		if env.Name != DefaultSecretEnv || ref == nil || ref.Name != secret.Name ||
			ref.Key != secretKey {
			t.Errorf("got env %+v, want %s from secret %s key %s",
				env, DefaultSecretEnv, secret.Name, secretKey)
		}
	})

	t.Run("command line", func(t *testing.T) {
		got := strings.Join(pod.Spec.Containers[0].Args, " ")
		for _, want := range []string{
			"--ServerApp.port=8888",
			"--ServerApp.base_url=/servers/alice@example.com/",
			"--IdentityProvider.token=$(STUDIO_SERVER_SECRET)",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("got args %q, want them to contain %q", got, want)
			}
		}
		probe := pod.Spec.Containers[0].ReadinessProbe.HTTPGet
		if probe.Path != "/servers/alice@example.com/api" {
			t.Errorf("got readiness path %q, want /servers/alice@example.com/api", probe.Path)
		}
	})

	t.Run("labels and annotations", func(t *testing.T) {
		for _, obj := range []metav1.Object{pod, svc, secret, pvc} {
			checkLabels(t, obj)
			if got := obj.GetAnnotations()[AnnotationOwner]; got != spec.Owner {
				t.Errorf("%s: got owner annotation %q, want %q", obj.GetName(), got, spec.Owner)
			}
		}
		if got := pod.Annotations[AnnotationServerID]; got != spec.ID {
			t.Errorf("got server annotation %q, want %q", got, spec.ID)
		}
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		if !sel.Matches(labels.Set(pod.Labels)) {
			t.Errorf("service selector %v does not select pod labels %v",
				svc.Spec.Selector, pod.Labels)
		}
		if svc.Spec.Type != corev1.ServiceTypeClusterIP {
			t.Errorf("got service type %s, want ClusterIP", svc.Spec.Type)
		}
	})

	t.Run("security", func(t *testing.T) {
		checkRestricted(t, &pod.Spec)
		if a := pod.Spec.AutomountServiceAccountToken; a == nil || *a {
			t.Error("the pod mounts a service account token")
		}
	})

	t.Run("owner volume", func(t *testing.T) {
		vol := pod.Spec.Volumes[0]
		if vol.PersistentVolumeClaim == nil || vol.PersistentVolumeClaim.ClaimName != pvc.Name {
			t.Errorf("got volume %+v, want claim %s", vol, pvc.Name)
		}
		mount := pod.Spec.Containers[0].VolumeMounts[0]
		if mount.MountPath != DefaultWorkDir || mount.SubPath != "" {
			t.Errorf("got mount %+v, want %s without sub path", mount, DefaultWorkDir)
		}
		if _, has := pvc.Annotations[AnnotationServerID]; has {
			t.Error("the owner's claim names a server")
		}
	})
}

// checkLabels fails t unless every label of obj is valid.
func checkLabels(t *testing.T, obj metav1.Object) {
	t.Helper()
	if len(obj.GetLabels()) == 0 {
		t.Errorf("%s has no labels", obj.GetName())
	}
	for k, v := range obj.GetLabels() {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			t.Errorf("%s: label key %q: %v", obj.GetName(), k, errs)
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			t.Errorf("%s: label %s=%q: %v", obj.GetName(), k, v, errs)
		}
	}
}

// checkRestricted fails t unless spec meets the "restricted" Pod
// Security Standard and has a read-only root file system.
func checkRestricted(t *testing.T, spec *corev1.PodSpec) {
	t.Helper()
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("pod: runAsNonRoot is not set")
	}
	if psc != nil && psc.RunAsUser != nil && *psc.RunAsUser == 0 {
		t.Error("pod: runs as uid 0")
	}
	if psc == nil || psc.SeccompProfile == nil ||
		psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod: seccomp profile is not RuntimeDefault")
	}
	for _, c := range spec.Containers {
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("container %s: no security context", c.Name)
			continue
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("container %s: privilege escalation allowed", c.Name)
		case sc.Privileged != nil && *sc.Privileged:
			t.Errorf("container %s: privileged", c.Name)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("container %s: root file system is writable", c.Name)
		case sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 ||
			sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) > 0:
			t.Errorf("container %s: got capabilities %+v, want drop ALL", c.Name, sc.Capabilities)
		}
	}
}

func TestStartAdoptsExisting(t *testing.T) {
	t.Run("running", func(t *testing.T) {
		e := newEnv(t, nil)
		e.startKubelet(t, readyPod)
		spec := testSpec("bob", "bob")
		if _, err := e.d.Start(context.Background(), spec); err != nil {
			t.Fatalf("first Start: %v", err)
		}
		e.cs.ClearActions()

		// another replica, or this one after a restart
		st, err := e.otherReplica(t).Start(context.Background(), spec)
		if err != nil || st.State != backend.Running {
			t.Fatalf("got %+v, %v, want running", st, err)
		}
		for _, res := range []string{"pods", "services", "secrets", "persistentvolumeclaims"} {
			if n := countActions(e.cs, "create", res) + countActions(e.cs, "delete", res); n > 0 {
				t.Errorf("got %d creates and deletes of %s, want none", n, res)
			}
		}
		if !contains(e.log.String(), "server pod adopted") {
			t.Errorf("got log %q, want it to say the pod was adopted", e.log.String())
		}
	})

	t.Run("still starting", func(t *testing.T) {
		e := newEnv(t, nil)
		k := e.startKubelet(t, pendingPod)
		spec := testSpec("bob", "bob")
		first := startAsync(e.d, spec)
		name := k.waitPod(t)

		second := startAsync(e.otherReplica(t), spec)
		e.change(t, name, readyPod)
		for i, ch := range []<-chan startResult{first, second} {
			r := await(t, ch)
			if r.err != nil || r.st.State != backend.Running {
				t.Errorf("Start %d: got %+v, %v, want running", i+1, r.st, r.err)
			}
		}
		if n := countActions(e.cs, "create", "pods"); n != 1 {
			t.Errorf("got %d pod creates, want 1", n)
		}
	})

	t.Run("service of another server", func(t *testing.T) {
		e := newEnv(t, nil)
		e.startKubelet(t, readyPod)
		spec := testSpec("bob", "bob")
		svc := e.d.serviceObject(e.d.server(spec))
		svc.Annotations[AnnotationServerID] = "mallory"
		_, err := e.cs.CoreV1().Services(testNS).Create(context.Background(), svc,
			metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.d.Start(context.Background(), spec)
		if !errors.Is(err, ErrConflict) {
			t.Errorf("got %v, want ErrConflict", err)
		}
	})
}

func TestStartConcurrent(t *testing.T) {
	e := newEnv(t, nil)
	k := e.startKubelet(t, pendingPod)
	spec := testSpec("carol", "carol")

	// many replicas start the same server at once
	const n = 8
	results := make([]<-chan startResult, n)
	for i := range results {
		results[i] = startAsync(e.otherReplica(t), spec)
	}
	name := k.waitPod(t)
	e.change(t, name, readyPod)

	for i, ch := range results {
		r := await(t, ch)
		if r.err != nil || r.st.State != backend.Running {
			t.Errorf("Start %d: got %+v, %v, want running", i, r.st, r.err)
		}
	}
	pods, err := e.cs.CoreV1().Pods(testNS).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 {
		t.Errorf("got %d pods, want 1", len(pods.Items))
	}
	ctx, core := context.Background(), e.cs.CoreV1()
	services, err := core.Services(testNS).List(ctx, metav1.ListOptions{})
	if err != nil || len(services.Items) != 1 {
		t.Errorf("got %d services (%v), want 1", len(services.Items), err)
	}
	secrets, err := core.Secrets(testNS).List(ctx, metav1.ListOptions{})
	if err != nil || len(secrets.Items) != 1 {
		t.Errorf("got %d secrets (%v), want 1", len(secrets.Items), err)
	}
	claims, err := core.PersistentVolumeClaims(testNS).List(ctx, metav1.ListOptions{})
	if err != nil || len(claims.Items) != 1 {
		t.Errorf("got %d claims (%v), want 1", len(claims.Items), err)
	}
	if got := countActions(e.cs, "update", "secrets"); got != 0 {
		t.Errorf("got %d secret updates, want 0", got)
	}
}

func TestStartFailures(t *testing.T) {
	tests := []struct {
		name    string
		pod     func(*corev1.Pod)
		timeout time.Duration
		// want are parts of the reason, in order
		want []string
	}{
		{
			name:    "image pull",
			pod:     imagePullPod,
			timeout: 300 * time.Millisecond,
			want:    []string{"not ready after 300ms", "ImagePullBackOff", "Back-off pulling image"},
		},
		{
			name:    "unschedulable",
			pod:     unschedulablePod,
			timeout: 300 * time.Millisecond,
			want:    []string{"not ready after 300ms", "Unschedulable", "Insufficient memory"},
		},
		{
			name:    "never ready",
			pod:     pendingPod,
			timeout: 300 * time.Millisecond,
			want:    []string{"not ready after 300ms", "ContainerCreating"},
		},
		{
			name:    "crash loop",
			pod:     crashingPod,
			timeout: time.Hour,
			want:    []string{"CrashLoopBackOff", "container exited", "Error, exit code 1"},
		},
		{
			name:    "invalid image",
			pod:     waitingPod("InvalidImageName", `couldn't parse image name "x::y"`),
			timeout: time.Hour,
			want:    []string{"InvalidImageName", "couldn't parse image name"},
		},
		{
			name: "container exited",
			pod: func(p *corev1.Pod) {
				pendingPod(p)
				p.Status.ContainerStatuses[0].State = corev1.ContainerState{
					Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error"},
				}
			},
			timeout: time.Hour,
			want:    []string{"container exited", "exit code 2"},
		},
		{
			name: "evicted",
			pod: func(p *corev1.Pod) {
				p.Status = corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted",
					Message: "The node was low on resource: memory."}
			},
			timeout: time.Hour,
			want:    []string{"Evicted", "low on resource"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.StartTimeout = tt.timeout })
			e.startKubelet(t, tt.pod)
			spec := testSpec("dave", "dave")

			st, err := e.d.Start(context.Background(), spec)
			if !errors.Is(err, ErrStartFailed) {
				t.Fatalf("got error %v, want ErrStartFailed", err)
			}
			if st.State != backend.Failed {
				t.Errorf("got state %s, want failed", st.State)
			}
			checkReason(t, st.Reason, tt.want)
			if !strings.Contains(err.Error(), st.Reason) {
				t.Errorf("got error %q, want it to carry the reason %q", err, st.Reason)
			}

			// later, Status tells the same story
			e.clock.Advance(tt.timeout + time.Second)
			st, err = e.d.Status(context.Background(), spec.ID)
			if err != nil {
				t.Fatalf("Status: %v", err)
			}
			if st.State != backend.Failed {
				t.Errorf("Status: got state %s, want failed", st.State)
			}
			checkReason(t, st.Reason, tt.want)
		})
	}
}

// checkReason fails t unless reason holds each of want, in order.
func checkReason(t *testing.T, reason string, want []string) {
	t.Helper()
	rest := reason
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Errorf("got reason %q, want it to contain %q after the earlier parts", reason, w)
			return
		}
		rest = rest[i+len(w):]
	}
}

func TestStartReplaces(t *testing.T) {
	t.Run("failed pod", func(t *testing.T) {
		e := newEnv(t, nil)
		k := e.startKubelet(t, crashingPod)
		spec := testSpec("erin", "erin")
		if _, err := e.d.Start(context.Background(), spec); !errors.Is(err, ErrStartFailed) {
			t.Fatalf("first Start: got %v, want ErrStartFailed", err)
		}
		k.waitPod(t)

		// the image is fixed; starting again tries afresh
		k.setBehaviour(readyPod)
		st, err := e.d.Start(context.Background(), spec)
		if err != nil || st.State != backend.Running {
			t.Fatalf("got %+v, %v, want running", st, err)
		}
		if n := countActions(e.cs, "create", "pods"); n != 2 {
			t.Errorf("got %d pod creates, want 2", n)
		}
	})

	t.Run("new token", func(t *testing.T) {
		e := newEnv(t, nil)
		e.startKubelet(t, readyPod)
		spec := testSpec("erin", "erin")
		if _, err := e.d.Start(context.Background(), spec); err != nil {
			t.Fatal(err)
		}

		spec.Secret = "a-new-token"
		st, err := e.d.Start(context.Background(), spec)
		if err != nil || st.State != backend.Running {
			t.Fatalf("got %+v, %v, want running", st, err)
		}
		name := NamesFor("", spec.ID, "").Object
		secret, err := e.cs.CoreV1().Secrets(testNS).Get(context.Background(), name,
			metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := string(secret.Data[secretKey]); got != "a-new-token" {
			t.Errorf("got token %q, want a-new-token", got)
		}
		if n := countActions(e.cs, "create", "pods"); n != 2 {
			t.Errorf("got %d pod creates, want 2: the old pod holds the old token", n)
		}
	})

	t.Run("terminating pod", func(t *testing.T) {
		e := newEnv(t, nil)
		k := e.startKubelet(t, readyPod)
		spec := testSpec("erin", "erin")

		// a pod left terminating by a stop a moment ago
		old := e.d.podObject(e.d.server(spec))
		old.UID = "old-pod"
		old.Finalizers = []string{"example.com/slow"}
		now := metav1.NewTime(e.clock.Now())
		old.DeletionTimestamp = &now
		if err := e.cs.Tracker().Add(old); err != nil {
			t.Fatal(err)
		}
		<-k.seen

		result := startAsync(e.d, spec)
		// the old pod goes once Start has looked at it
		deadline := time.Now().Add(10 * time.Second)
		for countActions(e.cs, "get", "pods") < 2 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if err := e.cs.Tracker().Delete(podsGVR, testNS, old.Name); err != nil {
			t.Fatal(err)
		}

		r := await(t, result)
		if r.err != nil || r.st.State != backend.Running {
			t.Fatalf("got %+v, %v, want running", r.st, r.err)
		}
		pod, err := e.cs.CoreV1().Pods(testNS).Get(context.Background(), old.Name,
			metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pod.UID == old.UID || pod.DeletionTimestamp != nil {
			t.Error("got the old pod, want a new one")
		}
	})
}

func TestStopWhileStarting(t *testing.T) {
	e := newEnv(t, nil)
	k := e.startKubelet(t, pendingPod)
	spec := testSpec("frank", "frank")

	result := startAsync(e.d, spec)
	k.waitPod(t)
	if err := e.otherReplica(t).Stop(context.Background(), spec.ID); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	r := await(t, result)
	if !errors.Is(r.err, ErrStopped) {
		t.Errorf("got %+v, %v, want ErrStopped", r.st, r.err)
	}
}

func TestStop(t *testing.T) {
	ctx := context.Background()

	t.Run("idempotent", func(t *testing.T) {
		e := newEnv(t, nil)
		e.startKubelet(t, readyPod)
		spec := testSpec("gina", "gina")
		if _, err := e.d.Start(ctx, spec); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := e.d.Stop(ctx, spec.ID); err != nil {
				t.Fatalf("Stop %d: %v", i+1, err)
			}
		}
		names := NamesFor("", spec.ID, spec.Owner)
		core := e.cs.CoreV1()
		_, podErr := core.Pods(testNS).Get(ctx, names.Object, metav1.GetOptions{})
		_, svcErr := core.Services(testNS).Get(ctx, names.Object, metav1.GetOptions{})
		_, secErr := core.Secrets(testNS).Get(ctx, names.Object, metav1.GetOptions{})
		for what, err := range map[string]error{"pod": podErr, "service": svcErr,
			"secret": secErr} {
			if !apierrors.IsNotFound(err) {
				t.Errorf("%s: got %v, want it gone", what, err)
			}
		}
		if _, err := core.PersistentVolumeClaims(testNS).Get(ctx, names.Claim,
			metav1.GetOptions{}); err != nil {
			t.Errorf("got %v, want the owner's claim kept", err)
		}
		st, err := e.d.Status(ctx, spec.ID)
		if err != nil || st.State != backend.Stopped {
			t.Errorf("Status: got %+v, %v, want stopped", st, err)
		}
	})

	t.Run("never started", func(t *testing.T) {
		e := newEnv(t, nil)
		if err := e.d.Stop(ctx, "nobody"); err != nil {
			t.Errorf("got %v, want nil", err)
		}
	})

	t.Run("object of another server", func(t *testing.T) {
		e := newEnv(t, nil)
		spec := testSpec("gina", "gina")
		pod := e.d.podObject(e.d.server(spec))
		pod.Annotations[AnnotationServerID] = "mallory"
		if err := e.cs.Tracker().Add(pod); err != nil {
			t.Fatal(err)
		}
		if err := e.d.Stop(ctx, spec.ID); !errors.Is(err, ErrConflict) {
			t.Errorf("got %v, want ErrConflict", err)
		}
		if _, err := e.cs.CoreV1().Pods(testNS).Get(ctx, pod.Name,
			metav1.GetOptions{}); err != nil {
			t.Errorf("got %v, want the other server's pod left alone", err)
		}
	})

	t.Run("invalid id", func(t *testing.T) {
		e := newEnv(t, nil)
		if err := e.d.Stop(ctx, "../etc"); !errors.Is(err, ident.ErrInvalid) {
			t.Errorf("got %v, want ident.ErrInvalid", err)
		}
	})
}

func TestStatus(t *testing.T) {
	spec := testSpec("hank", "hank")
	tests := []struct {
		name string
		// pod sets the pod's status; nil means no pod
		pod func(*corev1.Pod)
		// age is how long ago the pod was created
		age       time.Duration
		noService bool
		deleting  bool
		want      backend.State
		reason    []string
	}{
		{name: "no pod", want: backend.Stopped},
		{name: "pending", pod: pendingPod, want: backend.Starting},
		{name: "image pull, young", pod: imagePullPod, want: backend.Starting},
		{name: "image pull, past the start timeout", pod: imagePullPod, age: time.Hour,
			want: backend.Failed, reason: []string{"not ready after 1m0s", "ImagePullBackOff"}},
		{name: "unschedulable, past the start timeout", pod: unschedulablePod,
			age: time.Hour, want: backend.Failed, reason: []string{"Unschedulable"}},
		{name: "running, not ready yet", age: time.Hour, want: backend.Starting,
			pod: func(p *corev1.Pod) {
				readyPod(p)
				p.Status.Conditions[1].Status = corev1.ConditionFalse
			}},
		{name: "ready", pod: readyPod, want: backend.Running},
		{name: "ready without service", pod: readyPod, noService: true,
			want: backend.Failed, reason: []string{"service is missing"}},
		{name: "crash loop", pod: crashingPod, want: backend.Failed,
			reason: []string{"CrashLoopBackOff", "exit code 1"}},
		{name: "config error", want: backend.Failed, reason: []string{"CreateContainerConfigError"},
			pod: waitingPod("CreateContainerConfigError", `secret "x" not found`)},
		{name: "failed phase", want: backend.Failed, reason: []string{"OOMKilled", "exit code 137"},
			pod: func(p *corev1.Pod) {
				p.Status = corev1.PodStatus{Phase: corev1.PodFailed,
					ContainerStatuses: []corev1.ContainerStatus{{Name: containerName,
						State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
							ExitCode: 137, Reason: "OOMKilled"}}}}}
			}},
		{name: "succeeded phase", want: backend.Failed, reason: []string{"exit code 0"},
			pod: func(p *corev1.Pod) {
				p.Status = corev1.PodStatus{Phase: corev1.PodSucceeded,
					ContainerStatuses: []corev1.ContainerStatus{{Name: containerName,
						State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
							ExitCode: 0, Reason: "Completed"}}}}}
			}},
		{name: "terminating", pod: readyPod, deleting: true, want: backend.Stopping},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			s := e.d.server(spec)
			if tt.pod != nil {
				pod := e.d.podObject(s)
				pod.CreationTimestamp = metav1.NewTime(e.clock.Now().Add(-tt.age))
				if tt.deleting {
					pod.Finalizers = []string{"example.com/slow"}
					pod.DeletionTimestamp = &pod.CreationTimestamp
				}
				tt.pod(pod)
				if err := e.cs.Tracker().Add(pod); err != nil {
					t.Fatal(err)
				}
				if !tt.noService {
					if err := e.cs.Tracker().Add(e.d.serviceObject(s)); err != nil {
						t.Fatal(err)
					}
				}
			}

			st, err := e.d.Status(context.Background(), spec.ID)
			if err != nil {
				t.Fatalf("Status: %v", err)
			}
			if st.State != tt.want {
				t.Errorf("got state %s (%q), want %s", st.State, st.Reason, tt.want)
			}
			checkReason(t, st.Reason, tt.reason)
			wantAddr := ""
			if tt.want == backend.Running {
				wantAddr = "http://" + s.names.Object + ".servers.svc:8888"
			}
			if st.Addr != wantAddr {
				t.Errorf("got addr %q, want %q", st.Addr, wantAddr)
			}
		})
	}

	t.Run("pod of another server", func(t *testing.T) {
		e := newEnv(t, nil)
		pod := e.d.podObject(e.d.server(spec))
		pod.Annotations[AnnotationServerID] = "mallory"
		if err := e.cs.Tracker().Add(pod); err != nil {
			t.Fatal(err)
		}
		if _, err := e.d.Status(context.Background(), spec.ID); !errors.Is(err, ErrConflict) {
			t.Errorf("got %v, want ErrConflict", err)
		}
	})

	t.Run("invalid id", func(t *testing.T) {
		e := newEnv(t, nil)
		_, err := e.d.Status(context.Background(), "a b")
		if !errors.Is(err, ident.ErrInvalid) {
			t.Errorf("got %v, want ident.ErrInvalid", err)
		}
	})
}

func TestStartRefusesBadSpec(t *testing.T) {
	tests := []struct {
		name string
		edit func(*backend.Spec)
	}{
		{"invalid id", func(s *backend.Spec) { s.ID = "a/b" }},
		{"invalid owner", func(s *backend.Spec) { s.Owner = "{x}" }},
		{"base url without slashes", func(s *backend.Spec) { s.BaseURL = "servers/x" }},
		{"base url with a variable", func(s *backend.Spec) { s.BaseURL = "/$(HOME)/" }},
		{"base url with a placeholder", func(s *backend.Spec) { s.BaseURL = "/{secret}/" }},
		{"base url with a space", func(s *backend.Spec) { s.BaseURL = "/a b/" }},
		{"empty secret", func(s *backend.Spec) { s.Secret = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			spec := testSpec("ivy", "ivy")
			tt.edit(&spec)
			if _, err := e.d.Start(context.Background(), spec); err == nil {
				t.Fatal("got nil error, want a refusal")
			}
			if n := len(e.cs.Actions()); n != 0 {
				t.Errorf("got %d API calls, want none", n)
			}
		})
	}
}

func TestExistingClaim(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ExistingClaim = "studio-work" })
	e.startKubelet(t, readyPod)
	spec := testSpec("jane~analysis", "jane")
	if _, err := e.d.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	names := NamesFor("", spec.ID, spec.Owner)
	pod, err := e.cs.CoreV1().Pods(testNS).Get(context.Background(), names.Object,
		metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := pod.Spec.Volumes[0].PersistentVolumeClaim.ClaimName; got != "studio-work" {
		t.Errorf("got claim %q, want studio-work", got)
	}
	if got := pod.Spec.Containers[0].VolumeMounts[0].SubPath; got != names.OwnerLabel {
		t.Errorf("got sub path %q, want %q", got, names.OwnerLabel)
	}
	if n := countActions(e.cs, "create", "persistentvolumeclaims"); n != 0 {
		t.Errorf("got %d claims created, want none", n)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no image", Config{}},
		{"bad namespace", Config{Image: "x", Namespace: "Servers"}},
		{"bad prefix", Config{Image: "x", NamePrefix: "1-"}},
		{"long prefix", Config{Image: "x", NamePrefix: "a-very-long-prefix-indeed-"}},
		{"bad secret variable", Config{Image: "x", SecretEnv: "1TOKEN"}},
		{"bad port", Config{Image: "x", Port: 70000}},
		{"relative work dir", Config{Image: "x", WorkDir: "work"}},
		{"bad volume size", Config{Image: "x", VolumeSize: "lots"}},
		{"bad claim", Config{Image: "x", ExistingClaim: "Work_Claim"}},
		{"negative uid", Config{Image: "x", RunAsUser: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(newEnv(t, nil).cs, tt.cfg); err == nil {
				t.Error("got nil error, want one")
			}
		})
	}

	t.Run("zero value but image", func(t *testing.T) {
		d, err := New(newEnv(t, nil).cs, Config{Image: "x"})
		if err != nil {
			t.Fatal(err)
		}
		if d.cfg.Namespace != DefaultNamespace || d.cfg.Port != DefaultPort {
			t.Errorf("got namespace %q port %d, want the defaults", d.cfg.Namespace, d.cfg.Port)
		}
	})

	t.Run("nil client", func(t *testing.T) {
		if _, err := New(nil, Config{Image: "x"}); err == nil {
			t.Error("got nil error, want one")
		}
	})
}

func TestConcurrentDifferentServers(t *testing.T) {
	e := newEnv(t, nil)
	e.startKubelet(t, readyPod)
	var wg sync.WaitGroup
	ids := []string{"a.b", "a-b", "a_b", "a@b", "a~b"}
	for _, id := range ids {
		wg.Go(func() {
			st, err := e.d.Start(context.Background(), testSpec(id, "a"))
			if err != nil || st.State != backend.Running {
				t.Errorf("%s: got %+v, %v, want running", id, st, err)
			}
		})
	}
	wg.Wait()
	pods, err := e.cs.CoreV1().Pods(testNS).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != len(ids) {
		t.Errorf("got %d pods, want %d: ids that read alike must not share a pod",
			len(pods.Items), len(ids))
	}
}
