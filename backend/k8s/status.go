package k8s

import (
	"fmt"

	"github.com/studio-proxy/studio-proxy/backend"
	corev1 "k8s.io/api/core/v1"
)

// maxReason bounds a reason's length; a kubelet message can be long.
const maxReason = 300

// fatalWaiting are the reasons a container waits for that do not go away
// by themselves: the pod is failed as soon as one is seen. Image pulls
// that fail (ErrImagePull, ImagePullBackOff) are retried by the kubelet
// and may yet succeed, so they only fail a pod that stays unready past
// the start timeout.
var fatalWaiting = map[string]bool{
	"CrashLoopBackOff":           true,
	"InvalidImageName":           true,
	"ErrImageNeverPull":          true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
	"RunContainerError":          true,
	"PreStartHookError":          true,
	"PostStartHookError":         true,
}

// verdict is what a pod says of its server.
type verdict struct {
	state backend.State
	// reason says why a Failed server failed, or what a Starting one
	// waits for (empty when nothing in particular).
	reason string
	// running is true when a container has started, so the pod is past
	// scheduling and image pulls.
	running bool
}

// judge reads a pod's phase, conditions and container states.
func judge(p *corev1.Pod) verdict {
	if p.DeletionTimestamp != nil {
		return verdict{state: backend.Stopping}
	}
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		return verdict{state: backend.Failed, reason: endedReason(p)}
	}

	running := false
	var waiting string
	statuses := make([]corev1.ContainerStatus, 0,
		len(p.Status.InitContainerStatuses)+len(p.Status.ContainerStatuses))
	statuses = append(statuses, p.Status.InitContainerStatuses...)
	statuses = append(statuses, p.Status.ContainerStatuses...)
	for _, cs := range statuses {
		switch {
		case cs.State.Waiting != nil:
			w := cs.State.Waiting
			if fatalWaiting[w.Reason] {
				return verdict{state: backend.Failed, reason: waitingReason(cs)}
			}
			if waiting == "" && w.Reason != "" {
				waiting = clip(join(w.Reason, w.Message))
			}
		case cs.State.Terminated != nil:
			t := cs.State.Terminated
			if t.ExitCode != 0 || !isInit(p, cs.Name) {
				return verdict{state: backend.Failed, reason: terminatedReason(t)}
			}
		case cs.State.Running != nil:
			running = true
		}
	}

	if ready(p) {
		return verdict{state: backend.Running, running: true}
	}
	reason := waiting
	if reason == "" {
		reason = unscheduledReason(p)
	}
	if reason == "" && running {
		reason = "waiting for the readiness probe"
	}
	return verdict{state: backend.Starting, reason: reason, running: running}
}

// status is the driver's report of a server whose pod is p: judge, and a
// pod that no container has started on in StartTimeout since it was
// created is failed with what holds it up.
func (d *Driver) status(p *corev1.Pod, addr string) backend.Status {
	v := judge(p)
	switch v.state {
	case backend.Running:
		return backend.Status{State: backend.Running, Addr: addr}
	case backend.Starting:
		created := p.CreationTimestamp.Time
		if !v.running && !created.IsZero() && d.cfg.Now().Sub(created) > d.cfg.StartTimeout {
			return backend.Status{State: backend.Failed, Reason: d.notReady(v.reason)}
		}
	}
	return backend.Status{State: v.state, Reason: v.reason}
}

// notReady is the reason of a pod that missed the start timeout.
func (d *Driver) notReady(holdup string) string {
	return clip(join(fmt.Sprintf("not ready after %s", d.cfg.StartTimeout), holdup))
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func isInit(p *corev1.Pod, name string) bool {
	for _, c := range p.Spec.InitContainers {
		if c.Name == name {
			return true
		}
	}
	return false
}

// unscheduledReason says why the scheduler has not placed p, if it said.
func unscheduledReason(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return clip(join(c.Reason, c.Message))
		}
	}
	return ""
}

// endedReason says why a pod in phase Failed or Succeeded ended: the
// pod's own reason (Evicted, ...) or its container's exit.
func endedReason(p *corev1.Pod) string {
	if p.Status.Reason != "" {
		return clip(join(p.Status.Reason, p.Status.Message))
	}
	for _, cs := range p.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil {
			return terminatedReason(t)
		}
	}
	return fmt.Sprintf("pod %s", p.Status.Phase)
}

// waitingReason is a waiting container's reason with, for a crash loop,
// how the last run ended.
func waitingReason(cs corev1.ContainerStatus) string {
	w := cs.State.Waiting
	if t := cs.LastTerminationState.Terminated; t != nil && w.Reason == "CrashLoopBackOff" {
		return clip(join(w.Reason, terminatedReason(t)))
	}
	return clip(join(w.Reason, w.Message))
}

func terminatedReason(t *corev1.ContainerStateTerminated) string {
	msg := fmt.Sprintf("exit code %d", t.ExitCode)
	if t.Signal != 0 {
		msg = fmt.Sprintf("signal %d", t.Signal)
	}
	if t.Reason != "" {
		msg = t.Reason + ", " + msg
	}
	return clip(join("container exited", join(msg, t.Message)))
}

func join(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + ": " + b
}

// clip shortens s to maxReason bytes, on a rune boundary.
func clip(s string) string {
	if len(s) <= maxReason {
		return s
	}
	cut := maxReason
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
