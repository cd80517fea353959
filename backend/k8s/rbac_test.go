package k8s

import (
	"context"
	"slices"
	"testing"

	"github.com/studio-proxy/studio-proxy/backend"
)

// TestRequiredRulesMatchDriver runs every path of the driver and compares
// the API calls it made with RequiredRules, both ways: each call is
// allowed, and each allowed verb is used.
func TestRequiredRulesMatchDriver(t *testing.T) {
	e := newEnv(t, nil)
	e.startKubelet(t, readyPod)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Watch: list and watch
	n := &notes{}
	watched := make(chan struct{})
	go func() {
		e.d.Watch(ctx, n.notify)
		close(watched)
	}()

	// Start: get and create of everything, watch of the pod
	spec := testSpec("lee", "lee")
	if _, err := e.d.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}

	// a new token: update of the secret, delete of the pod
	spec.Secret = "rotated"
	if _, err := e.d.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Status(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Stop(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	n.waitFor(t, "lee", backend.Stopped)
	cancel()
	<-watched

	used := map[string]map[string]bool{}
	for _, a := range e.cs.Actions() {
		if a.GetSubresource() != "" {
			t.Errorf("driver used subresource %s of %s", a.GetSubresource(),
				a.GetResource().Resource)
			continue
		}
		res := a.GetResource().Resource
		if used[res] == nil {
			used[res] = map[string]bool{}
		}
		used[res][a.GetVerb()] = true
		if a.GetNamespace() != testNS {
			t.Errorf("driver called %s %s in namespace %q, want %q",
				a.GetVerb(), res, a.GetNamespace(), testNS)
		}
	}

	allowed := map[string][]string{}
	for _, r := range RequiredRules() {
		if !slices.Equal(r.APIGroups, []string{""}) {
			t.Errorf("got API groups %q, want only the core group", r.APIGroups)
		}
		if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
			t.Errorf("got rule %+v, want resources and verbs only", r)
		}
		for _, res := range r.Resources {
			allowed[res] = append(allowed[res], r.Verbs...)
		}
	}
	for res, verbs := range used {
		for verb := range verbs {
			if !slices.Contains(allowed[res], verb) {
				t.Errorf("driver calls %s %s, which RequiredRules does not allow", verb, res)
			}
		}
	}
	for res, verbs := range allowed {
		for _, verb := range verbs {
			if !used[res][verb] {
				t.Errorf("RequiredRules allows %s %s, which the driver never calls", verb, res)
			}
		}
	}
}

// TestWatchFallsBackToPolling checks that Start still sees readiness when
// the API refuses to watch.
func TestWatchFallsBackToPolling(t *testing.T) {
	e := newEnv(t, nil)
	e.cs.PrependWatchReactor("pods", refuseWatch)
	k := e.startKubelet(t, pendingPod)
	result := startAsync(e.d, testSpec("max", "max"))
	name := k.waitPod(t)
	e.change(t, name, readyPod)
	r := await(t, result)
	if r.err != nil || r.st.State != backend.Running {
		t.Errorf("got %+v, %v, want running", r.st, r.err)
	}
}
