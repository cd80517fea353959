package events

import (
	"context"
	"testing"
	"time"

	"github.com/studio-proxy/studio-proxy/internal/redistest"
)

func TestSubscriberDeliversAndTracksState(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	sub := NewSubscriber(rdb, Channel("test:"), nil)
	sub.PingInterval = 100 * time.Millisecond
	got := make(chan Event, 10)
	states := make(chan bool, 10)
	sub.OnEvent(func(ev Event) { got <- ev })
	sub.OnState(func(on bool) { states <- on })
	go sub.Run(ctx)

	waitState(t, states, true)
	// listeners hear of the subscription before Subscribed says so: they
	// drop their caches first
	deadline := time.Now().Add(5 * time.Second)
	for !sub.Subscribed() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !sub.Subscribed() {
		t.Fatal("got Subscribed() false after subscribe, want true")
	}
	if err := Publish(ctx, rdb, Channel("test:"), Event{Kind: Revoke, Server: "alice", User: "bob"}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-got:
		if ev.Kind != Revoke || ev.Server != "alice" || ev.User != "bob" {
			t.Fatalf("got %+v, want revoke alice/bob", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event delivered")
	}

	// a stopped Redis is noticed, and a restarted one subscribed again
	srv.Stop()
	waitState(t, states, false)
	if sub.Subscribed() {
		t.Fatal("got Subscribed() true with Redis down, want false")
	}
	srv.Restart()
	waitState(t, states, true)
	if err := Publish(ctx, rdb, Channel("test:"), Event{Kind: Grant, Server: "alice", User: "carol"}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-got:
		if ev.User != "carol" {
			t.Fatalf("got %+v, want grant to carol", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event delivered after restart")
	}
}

func waitState(t *testing.T, states <-chan bool, want bool) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case on := <-states:
			if on == want {
				return
			}
		case <-deadline:
			t.Fatalf("subscription state never became %v", want)
		}
	}
}
