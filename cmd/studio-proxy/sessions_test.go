package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/studio-proxy/studio-proxy/internal/events"
	"github.com/studio-proxy/studio-proxy/internal/redistest"
)

func TestSessionsEndCommand(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	rdb := srv.Client()

	// two sessions of bob and one of carol, laid out as docs/sessions.md
	// describes (the session package's tests sign in for real)
	exp := float64(time.Now().Add(time.Hour).UnixMilli())
	for _, s := range []struct{ user, hash string }{
		{"bob", "b1"}, {"bob", "b2"}, {"carol", "c1"},
	} {
		rdb.HSet(ctx, "studio:session:"+s.hash, "r", "{}")
		rdb.ZAdd(ctx, "studio:sessions-of:"+s.user, redis.Z{Score: exp, Member: s.hash})
	}
	sub := events.NewSubscriber(rdb, events.Channel("studio:"), nil)
	got := make(chan events.Event, 10)
	sub.OnEvent(func(ev events.Event) { got <- ev })
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go sub.Run(runCtx)
	<-sub.Ready()

	url := "redis://" + srv.Addr + "/0"
	cases := []struct {
		name    string
		args    []string
		env     bool
		want    string
		errText string
	}{
		{name: "no user", args: []string{"end", "--redis-url", url}, errText: "no user given"},
		{name: "two users", args: []string{"end", "--redis-url", url, "bob", "carol"},
			errText: "want one user"},
		{name: "invalid user", args: []string{"end", "--redis-url", url, "bo/b"},
			errText: "invalid name"},
		{name: "unknown subcommand", args: []string{"list"}, errText: "unknown subcommand"},
		{name: "flags after the user, any case", args: []string{"end", "Bob", "--redis-url", url,
			"--actor", "ops"}, want: "ended 2 session(s) of Bob"},
		{name: "again: nothing left", args: []string{"end", "bob"}, env: true,
			want: "ended 0 session(s) of bob"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env {
				t.Setenv("STUDIO_REDIS_URL", url)
			}
			var out bytes.Buffer
			err := run(ctx, append([]string{"sessions"}, tc.args...), &out)
			if tc.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("got error %v, want one containing %q", err, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("got output %q, want %q", out.String(), tc.want)
			}
		})
	}

	if n := rdb.Exists(ctx, "studio:session:b1", "studio:session:b2").Val(); n != 0 {
		t.Errorf("got %d of bob's sessions left, want 0", n)
	}
	if n := rdb.Exists(ctx, "studio:session:c1").Val(); n != 1 {
		t.Error("got carol's session deleted, want it kept")
	}
	select {
	case ev := <-got:
		if ev.Kind != events.SessionsEnded || ev.User != "bob" || ev.Actor != "ops" {
			t.Errorf("got event %+v, want sessions_ended of bob by ops", ev)
		}
	case <-time.After(10 * time.Second):
		t.Error("no sessions_ended event published")
	}
}
