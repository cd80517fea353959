package k8s

import (
	"context"
	"fmt"
	"time"

	"github.com/studio-proxy/studio-proxy/backend"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
)

// watchSeconds is how long one watch request lasts before Watch lists
// again; the new list also catches a pod that timed out while nothing
// about it changed.
const watchSeconds = 300

// Watch tells f of each server that stops by itself, until ctx ends: it
// calls f with a Failed status and the reason when a server's pod fails
// (a crash loop, an eviction, an exit) and with Stopped when the pod is
// gone. Its first reports cover the pods that have failed already. Each
// call of f runs in a goroutine of its own, so f may block. Watch
// implements backend.Watcher.
//
// Stops that Stop made are reported too; the caller knows those from the
// ones nobody asked for.
func (d *Driver) Watch(ctx context.Context, f func(id string, st backend.Status)) {
	d.watch(ctx, func(id string, st backend.Status) {
		if st.State == backend.Failed || st.State == backend.Stopped {
			go f(id, st)
		}
	})
}

// watch calls notify, from this goroutine, with each change of state of
// each server pod, until ctx ends.
func (d *Driver) watch(ctx context.Context, notify func(id string, st backend.Status)) {
	selector := labels.SelectorFromSet(ServerSelector())
	opts := metav1.ListOptions{LabelSelector: selector.String()}

	// last is what notify was last told of each server with a pod
	last := map[string]backend.Status{}
	report := func(p *corev1.Pod) {
		id := p.Annotations[AnnotationServerID]
		if id == "" || !selector.Matches(labels.Set(p.Labels)) {
			return
		}
		st := d.status(p, d.addr(p.Name))
		if old, ok := last[id]; ok && old == st {
			return
		}
		last[id] = st
		notify(id, st)
	}
	gone := func(id string) {
		if _, ok := last[id]; ok {
			delete(last, id)
			notify(id, backend.Status{State: backend.Stopped})
		}
	}

	for {
		err := d.watchOnce(ctx, opts, report, gone, last)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			d.cfg.Log.Warn("watching server pods", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(d.cfg.PollInterval):
		}
	}
}

// watchOnce lists the server pods, reports each and those gone since the
// last list, then follows a watch until it ends.
func (d *Driver) watchOnce(
	ctx context.Context,
	opts metav1.ListOptions,
	report func(*corev1.Pod),
	gone func(id string),
	last map[string]backend.Status,
) error {
	pods := d.client.CoreV1().Pods(d.cfg.Namespace)
	list, err := pods.List(ctx, opts)
	if err != nil {
		return fmt.Errorf("listing server pods: %w", err)
	}
	present := map[string]bool{}
	for i := range list.Items {
		present[list.Items[i].Annotations[AnnotationServerID]] = true
		report(&list.Items[i])
	}
	for id := range last {
		if !present[id] {
			gone(id)
		}
	}

	timeout := int64(watchSeconds)
	wopts := opts
	wopts.ResourceVersion = list.ResourceVersion
	wopts.TimeoutSeconds = &timeout
	w, err := pods.Watch(ctx, wopts)
	if err != nil {
		return fmt.Errorf("watching server pods: %w", err)
	}
	defer w.Stop()
	for {
		var ev watch.Event
		var open bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, open = <-w.ResultChan():
		}
		if !open {
			return nil
		}
		switch ev.Type {
		case watch.Added, watch.Modified:
			if p, ok := ev.Object.(*corev1.Pod); ok {
				report(p)
			}
		case watch.Deleted:
			if p, ok := ev.Object.(*corev1.Pod); ok {
				gone(p.Annotations[AnnotationServerID])
			}
		case watch.Error:
			return fmt.Errorf("watching server pods: %w", apierrors.FromObject(ev.Object))
		}
	}
}

// addr is the base URL of the service called name.
func (d *Driver) addr(name string) string {
	return fmt.Sprintf("http://%s.%s.svc:%d", name, d.cfg.Namespace, d.cfg.Port)
}
