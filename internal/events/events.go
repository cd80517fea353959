// Package events carries the changes that every proxy replica must learn
// at once (grants, revokes, server states, logouts) over one Redis pub/sub
// channel, and tells its listeners whether they can trust that they heard
// everything.
package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Kind names what changed.
type Kind string

// The kinds of event. Grant, Change and Revoke concern one (server, user)
// share; ServerState a server; Logout one login session; SessionsEnded every
// session of one user; UserChanged a user's profile (admin flag,
// organization).
//
// StopRequest asks the replica that runs a server to stop it (package
// backend); it travels on that replica's own channel, never on the events
// channel, and carries only Server and Actor.
const (
	Grant         Kind = "grant"
	Change        Kind = "change"
	Revoke        Kind = "revoke"
	ServerState   Kind = "server_state"
	Logout        Kind = "logout"
	SessionsEnded Kind = "sessions_ended"
	UserChanged   Kind = "user_changed"
	StopRequest   Kind = "stop_request"
)

// Event is one change. Fields that do not apply to a Kind are empty.
type Event struct {
	Kind Kind `json:"kind"`
	// Server is the server id the change is about.
	Server string `json:"server,omitempty"`
	// User is the user the change is about: the grantee of a share, the
	// owner of a session.
	User string `json:"user,omitempty"`
	// Actor is who made the change; empty for the system.
	Actor string `json:"actor,omitempty"`
	// StartStop is the grantee's start/stop permission after Grant or
	// Change.
	StartStop bool `json:"start_stop,omitempty"`
	// State is the server's state after ServerState.
	State string `json:"state,omitempty"`
	// Session is the hashed id of the session that ended, for Logout.
	Session string `json:"session,omitempty"`
	// At is when the change was made.
	At time.Time `json:"at"`
}

// Channel is the name of the events channel under a key prefix.
func Channel(prefix string) string { return prefix + "events" }

// Publish sends ev on channel. An event that cannot be published is an
// error: the caller's change is already made, and replicas that missed it
// are protected by their own re-subscription flush (see Subscriber).
func Publish(ctx context.Context, rdb redis.UniversalClient, channel string, ev Event) error {
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encoding event: %w", err)
	}
	if err := rdb.Publish(ctx, channel, b).Err(); err != nil {
		return fmt.Errorf("publishing %s event: %w", ev.Kind, err)
	}
	return nil
}

// Encode returns the wire form of ev, for callers that publish inside a
// MULTI/EXEC transaction or a Lua script.
func Encode(ev Event) string {
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	b, _ := json.Marshal(ev) // cannot fail: plain fields only
	return string(b)
}

// Subscriber listens on the events channel and calls its handlers. It
// keeps track of whether it is subscribed right now: a replica that is not
// may have missed events and must not trust what it cached.
//
// Handlers run on the subscriber's goroutine, one at a time, and must not
// block.
type Subscriber struct {
	rdb     redis.UniversalClient
	channel string
	log     *slog.Logger

	// PingInterval is how long the connection may be silent before the
	// subscriber pings it; after three unanswered intervals it reconnects.
	// Zero means one second.
	PingInterval time.Duration

	subscribed atomic.Bool
	mu         sync.Mutex
	onEvent    []func(Event)
	onState    []func(subscribed bool)
	ready      chan struct{}
	readyOnce  sync.Once
}

// NewSubscriber returns a subscriber for channel. Call Run to start it.
func NewSubscriber(rdb redis.UniversalClient, channel string, log *slog.Logger) *Subscriber {
	if log == nil {
		log = slog.Default()
	}
	return &Subscriber{rdb: rdb, channel: channel, log: log, ready: make(chan struct{})}
}

// OnEvent adds a handler for every event received.
func (s *Subscriber) OnEvent(f func(Event)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onEvent = append(s.onEvent, f)
}

// OnState adds a handler called whenever the subscription is established
// (true) or lost (false). On true, listeners must drop what they cached:
// events may have been missed while unsubscribed.
func (s *Subscriber) OnState(f func(subscribed bool)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onState = append(s.onState, f)
}

// Subscribed reports whether the subscriber is subscribed right now.
func (s *Subscriber) Subscribed() bool { return s.subscribed.Load() }

// Ready is closed the first time the subscription is established.
func (s *Subscriber) Ready() <-chan struct{} { return s.ready }

// Run subscribes and dispatches events until ctx ends, reconnecting with a
// backoff whenever the connection fails.
func (s *Subscriber) Run(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := s.session(ctx)
		s.setState(false)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("events subscription lost", "channel", s.channel, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// session runs one subscription until it fails.
func (s *Subscriber) session(ctx context.Context) error {
	ps := s.rdb.Subscribe(ctx)
	defer ps.Close()
	if err := ps.Subscribe(ctx, s.channel); err != nil {
		return fmt.Errorf("subscribing: %w", err)
	}
	interval := s.PingInterval
	if interval <= 0 {
		interval = time.Second
	}

	silent := 0
	for {
		msg, err := ps.ReceiveTimeout(ctx, interval)
		if err != nil {
			var nerr interface{ Timeout() bool }
			if ctx.Err() != nil || !errors.As(err, &nerr) || !nerr.Timeout() {
				return err
			}
			// silent connection: ping it, and give up after three
			// unanswered intervals
			silent++
			if silent >= 3 {
				return errors.New("no answer to ping")
			}
			if err := ps.Ping(ctx); err != nil {
				return fmt.Errorf("pinging: %w", err)
			}
			continue
		}
		silent = 0

		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				s.setState(true)
			}
		case *redis.Message:
			var ev Event
			if err := json.Unmarshal([]byte(m.Payload), &ev); err != nil {
				s.log.Warn("undecodable event ignored", "channel", s.channel, "err", err)
				continue
			}
			s.dispatch(ev)
		case *redis.Pong:
		}
	}
}

func (s *Subscriber) setState(on bool) {
	if s.subscribed.Load() == on {
		return
	}
	s.mu.Lock()
	hs := append([]func(bool){}, s.onState...)
	s.mu.Unlock()

	// losing the subscription is announced before anyone can act on it;
	// gaining it only after the listeners dropped what they cached, so that
	// nobody trusts a cache filled while events were being missed
	if !on {
		s.subscribed.Store(false)
	}
	for _, h := range hs {
		h(on)
	}
	if on {
		s.subscribed.Store(true)
		s.readyOnce.Do(func() { close(s.ready) })
		s.log.Info("events subscribed", "channel", s.channel)
	}
}

func (s *Subscriber) dispatch(ev Event) {
	s.mu.Lock()
	hs := append([]func(Event){}, s.onEvent...)
	s.mu.Unlock()
	for _, h := range hs {
		h(ev)
	}
}
