package backend_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/studio-proxy/studio-proxy/backend"
	"github.com/studio-proxy/studio-proxy/internal/events"
	"github.com/studio-proxy/studio-proxy/internal/redistest"
)

// requestStop publishes a stop request on the channel of the replica r, as
// another replica would, and returns how many subscribers received it.
func requestStop(t *testing.T, r *replica, id, actor string) int64 {
	t.Helper()
	ev := events.Encode(events.Event{Kind: events.StopRequest, Server: id, Actor: actor})
	n, err := r.rdb.Publish(context.Background(), "studio:stop:"+r.driver.Node(), ev).Result()
	if err != nil {
		t.Fatalf("publishing stop request: %v", err)
	}
	return n
}

// listening waits until r hears stop requests.
func listening(t *testing.T, r *replica) {
	t.Helper()
	waitFor(t, "the replica to listen for stop requests", func() bool {
		n, err := r.rdb.PubSubNumSub(context.Background(), "studio:stop:"+r.driver.Node()).Result()
		return err == nil && n["studio:stop:"+r.driver.Node()] == 1
	})
}

func TestStopForwarded(t *testing.T) {
	srv := redistest.Start(t)
	a := newReplica(t, srv, replicaConfig{})
	b := newReplica(t, srv, replicaConfig{})
	a.run(t)
	b.run(t)
	listening(t, a)
	ensure(t, a, "alice")
	evs := watchEvents(t, srv)
	ctx := context.Background()

	started, err := a.m.Start(ctx, "alice", "alice")
	if err != nil {
		t.Fatalf("Start on a: %v", err)
	}

	got, err := b.m.Stop(ctx, "alice", "bob")
	if err != nil {
		t.Fatalf("Stop on b: %v", err)
	}
	if got.State != backend.Stopped || got.Addr != "" || got.Node != "" {
		t.Fatalf("Stop on b: got %+v, want stopped without address", got)
	}
	if st, _ := a.driver.Status(ctx, "alice"); st.State != backend.Stopped {
		t.Errorf("process on a after Stop on b: got %s, want stopped", st.State)
	}
	if resp, err := http.Get(started.Addr + "/servers/alice/"); err == nil {
		resp.Body.Close()
		t.Errorf("the server still answers after Stop on b")
	}
	if n := srv.Client().Exists(ctx, "studio:lock:server:alice").Val(); n != 0 {
		t.Errorf("lock left behind after a forwarded stop")
	}

	// a did the stop, in the name of bob
	want := "starting running stopping stopped"
	waitFor(t, "the state events", func() bool {
		return strings.Join(states(evs(), "alice"), " ") == want
	})
	for _, ev := range evs() {
		if ev.State == "stopping" || ev.State == "stopped" {
			if ev.Actor != "bob" {
				t.Errorf("event %+v: got actor %q, want bob", ev, ev.Actor)
			}
		}
	}

	// a stopped server can be started anywhere again
	if s, err := b.m.Start(ctx, "alice", "alice"); err != nil || s.Node != b.driver.Node() {
		t.Fatalf("Start on b after the stop: got %+v, %v, want running on b", s, err)
	}
}

func TestStopForwardedOwnerDown(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()

	t.Run("no answer", func(t *testing.T) {
		a := newReplica(t, srv, replicaConfig{})
		b := newReplica(t, srv, replicaConfig{forwardTimeout: time.Second})
		ensure(t, a, "alice")
		if _, err := a.m.Start(ctx, "alice", "alice"); err != nil {
			t.Fatalf("Start on a: %v", err)
		}

		// a runs the server and sends heartbeats, but does not listen
		began := time.Now()
		got, err := b.m.Stop(ctx, "alice", "bob")
		took := time.Since(began)
		if !errors.Is(err, backend.ErrElsewhere) ||
			!strings.Contains(err.Error(), "did not answer") {
			t.Fatalf("Stop on b: got %v, want ErrElsewhere saying a did not answer", err)
		}
		if took < time.Second || took > 5*time.Second {
			t.Errorf("Stop on b took %s, want about its ForwardTimeout of 1s", took)
		}
		if got.State != backend.Running {
			t.Errorf("Stop on b: got %s, want running", got.State)
		}
		if n := srv.Client().Exists(ctx, "studio:lock:server:alice").Val(); n != 0 {
			t.Errorf("lock left behind after an unanswered stop")
		}

		// the owner can still stop it
		if s, err := a.m.Stop(ctx, "alice", "alice"); err != nil || s.State != backend.Stopped {
			t.Fatalf("Stop on a: got %+v, %v, want stopped", s, err)
		}
	})

	t.Run("owner lost while waiting", func(t *testing.T) {
		a := newReplica(t, srv, replicaConfig{})
		b := newReplica(t, srv, replicaConfig{forwardTimeout: 20 * time.Second})
		ensure(t, a, "bob")
		if _, err := a.m.Start(ctx, "bob", "bob"); err != nil {
			t.Fatalf("Start on a: %v", err)
		}

		// a's heartbeat lapses while b waits: the server went with a
		time.AfterFunc(300*time.Millisecond, func() {
			srv.Client().Del(ctx, "studio:node:"+a.driver.Node())
		})
		began := time.Now()
		got, err := b.m.Stop(ctx, "bob", "bob")
		if err != nil || got.State != backend.Stopped {
			t.Fatalf("Stop on b: got %+v, %v, want stopped", got, err)
		}
		if took := time.Since(began); took > 5*time.Second {
			t.Errorf("Stop on b took %s, want it to end soon after a was lost", took)
		}
	})
}

func TestConcurrentStopFromTwoReplicas(t *testing.T) {
	srv := redistest.Start(t)
	// a stop that takes a second, so that the requests overlap
	rc := replicaConfig{flags: []string{"--ignore-term"}, stopGrace: time.Second}
	a := newReplica(t, srv, rc)
	b := newReplica(t, srv, rc)
	a.run(t)
	b.run(t)
	listening(t, a)
	ensure(t, a, "alice")
	ctx := context.Background()
	if _, err := a.m.Start(ctx, "alice", "alice"); err != nil {
		t.Fatalf("Start on a: %v", err)
	}

	type result struct {
		srv backend.Server
		err error
	}
	results := make([]result, 6)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			// b asks first, so that a's own stops meet a forwarded one
			r := b
			if i%2 == 1 {
				r = a
				time.Sleep(time.Duration(i) * 10 * time.Millisecond)
			}
			s, err := r.m.Stop(ctx, "alice", "alice")
			results[i] = result{s, err}
		})
	}
	wg.Wait()

	for i, r := range results {
		// a caller that found the stop under way gets "stopping"
		if r.err != nil || (r.srv.State != backend.Stopped && r.srv.State != backend.Stopping) {
			t.Errorf("caller %d: got %s, %v, want stopped or stopping without error",
				i, r.srv.State, r.err)
		}
	}
	waitFor(t, "the server to be stopped", func() bool {
		s, _ := a.reg.Get(ctx, "alice")
		return s.State == backend.Stopped
	})
	if st, _ := a.driver.Status(ctx, "alice"); st.State != backend.Stopped {
		t.Errorf("process on a: got %s, want stopped", st.State)
	}
}

func TestStopRequestForAnotherReplicaIgnored(t *testing.T) {
	srv := redistest.Start(t)
	a := newReplica(t, srv, replicaConfig{})
	b := newReplica(t, srv, replicaConfig{})
	a.run(t)
	b.run(t)
	listening(t, a)
	ctx := context.Background()
	for _, owner := range []string{"alice", "bob"} {
		ensure(t, a, owner)
	}
	if _, err := b.m.Start(ctx, "bob", "bob"); err != nil {
		t.Fatalf("Start on b: %v", err)
	}
	if _, err := a.m.Start(ctx, "alice", "alice"); err != nil {
		t.Fatalf("Start on a: %v", err)
	}

	// requests a must ignore: bob's server runs on b; the others are not
	// valid; then one it must carry out, which tells when it read them
	for _, req := range []struct{ id, actor string }{
		{"bob", "mallory"},
		{"BOB", ""},
		{"../bob", "mallory"},
		{"alice", "not a user"},
		{"alice", "alice"},
	} {
		if n := requestStop(t, a, req.id, req.actor); n != 1 {
			t.Fatalf("stop request %v: got %d receivers, want 1", req, n)
		}
	}
	waitFor(t, "alice's server to be stopped", func() bool {
		s, _ := a.reg.Get(ctx, "alice")
		return s.State == backend.Stopped
	})
	time.Sleep(200 * time.Millisecond)

	if s, _ := a.reg.Get(ctx, "bob"); s.State != backend.Running || s.Node != b.driver.Node() {
		t.Errorf("bob's server after requests to a: got %s on %s, want running on b",
			s.State, s.Node)
	}
	if st, _ := b.driver.Status(ctx, "bob"); st.State != backend.Running {
		t.Errorf("bob's process on b: got %s, want running", st.State)
	}
}
