package authz

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/studio-proxy/studio-proxy/internal/events"
)

// record is a grant as stored, in the grants hash of its server and,
// identical, in the reverse index of its user. Times are Unix ms; Expires
// is 0 for never.
type record struct {
	StartStop bool   `json:"start_stop"`
	GrantedBy string `json:"granted_by"`
	GrantedAt int64  `json:"granted_at"`
	UpdatedAt int64  `json:"updated_at"`
	Expires   int64  `json:"expires"`
}

func decodeRecord(raw string) (record, error) {
	var r record
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return record{}, fmt.Errorf("decoding grant: %w", err)
	}
	return r, nil
}

// live reports whether the grant has not expired at now.
func (r record) live(now time.Time) bool {
	return r.Expires == 0 || r.Expires > ms(now)
}

func (r record) grant(server, user string) Grant {
	return Grant{
		Server:    server,
		User:      user,
		StartStop: r.StartStop,
		GrantedBy: r.GrantedBy,
		GrantedAt: fromMS(r.GrantedAt),
		UpdatedAt: fromMS(r.UpdatedAt),
		Expires:   fromMS(r.Expires),
	}
}

// clock is the current time, to the millisecond that Redis keeps.
func (s *Store) clock() time.Time { return fromMS(s.now().UnixMilli()) }

// acting is who changes a share, and in which role: "owner", "admin",
// "operator" or, for Leave, "grantee".
type acting struct {
	name string
	role string
}

// serverInfo is a server's owner and organization.
type serverInfo struct {
	id    string
	owner string
	// org is the owner's organization; known is false when the owner has
	// no directory entry (never signed in): then nobody can be granted
	// access, as the organization to compare with is unknown.
	org   string
	known bool
}

// authorize checks that actor may manage the shares of server: its owner,
// an admin of the owner's organization, or the operator.
func (s *Store) authorize(ctx context.Context, actor User, server string) (acting, serverInfo, error) {
	owner, err := s.owner(ctx, server)
	if err != nil {
		return acting{}, serverInfo{}, err
	}
	info := serverInfo{id: server, owner: owner}
	ou, found, err := s.lookupUser(ctx, owner)
	if err != nil {
		return acting{}, serverInfo{}, err
	}
	if found {
		info.org, info.known = ou.Org, true
	}

	if actor.IsOperator() {
		return acting{name: OperatorName, role: "operator"}, info, nil
	}
	name, err := canonUser(actor.Name)
	if err != nil {
		return acting{}, serverInfo{}, err
	}
	switch {
	case name == owner:
		return acting{name: name, role: "owner"}, info, nil
	case actor.Admin && info.known && actor.Org == info.org:
		return acting{name: name, role: "admin"}, info, nil
	}
	return acting{}, serverInfo{}, fmt.Errorf("%w: %s", ErrNotAllowed, server)
}

// runScript runs one of the share table's scripts for (server, user) with
// the common arguments, then extra.
func (s *Store) runScript(
	ctx context.Context,
	sc *redis.Script,
	server, user string,
	act acting,
	now time.Time,
	extra ...any,
) *redis.Cmd {
	keys := []string{
		s.grantsKey(server),
		s.sharedWithKey(user),
		s.auditKey(),
		s.expiriesKey(),
	}
	args := []any{
		user, server, ms(now),
		act.name, act.role, s.maxLen,
		s.channel, now.Format(time.RFC3339Nano), expiryMember(server, user),
	}
	return sc.Run(ctx, s.rdb, keys, append(args, extra...)...)
}

// Grant shares server with user, with or without the start/stop
// permission, until expires (zero for never). Only the server's owner, an
// admin of its organization or the operator may grant. Granting again
// keeps the original GrantedBy and GrantedAt and sets the permission and
// the expiry to the new values. Each successful call publishes one event:
// events.Grant for a new share, events.Change for an existing one.
func (s *Store) Grant(
	ctx context.Context,
	actor User,
	server, user string,
	startStop bool,
	expires time.Time,
) (Grant, error) {
	server, err := canonServer(server)
	if err != nil {
		return Grant{}, err
	}
	user, err = canonUser(user)
	if err != nil {
		return Grant{}, err
	}
	now := s.clock()
	if !expires.IsZero() && ms(expires) <= ms(now) {
		return Grant{}, fmt.Errorf("%w: expiry %s is not in the future",
			ErrInvalidInput, expires.Format(time.RFC3339))
	}

	act, info, err := s.authorize(ctx, actor, server)
	if err != nil {
		return Grant{}, err
	}
	if user == act.name && act.role != "operator" {
		return Grant{}, ErrSelf
	}
	if user == info.owner {
		return Grant{}, fmt.Errorf("%w: %s owns %s", ErrOwner, user, server)
	}
	grantee, found, err := s.lookupUser(ctx, user)
	if err != nil {
		return Grant{}, err
	}
	if !found {
		return Grant{}, fmt.Errorf("%w: %s", ErrUnknownUser, user)
	}
	if !info.known {
		return Grant{}, fmt.Errorf("organization of server %s is unknown: "+
			"its owner %s has never signed in", server, info.owner)
	}
	if grantee.Org != info.org {
		return Grant{}, fmt.Errorf("%w: %s", ErrOtherOrg, user)
	}

	// the script decides whether this is a new share or a change; both
	// events are prepared
	ev := events.Event{Server: server, User: user, Actor: act.name, StartStop: startStop, At: now}
	grantEv, changeEv := ev, ev
	grantEv.Kind, changeEv.Kind = events.Grant, events.Change
	expText := ""
	if !expires.IsZero() {
		expText = fromMS(ms(expires)).Format(time.RFC3339Nano)
	}
	res, err := s.runScript(ctx, grantScript, server, user, act, now,
		flag(startStop), ms(expires), expText,
		events.Encode(grantEv), events.Encode(changeEv)).StringSlice()
	if err != nil {
		return Grant{}, fmt.Errorf("granting share: %w", err)
	}
	if len(res) != 2 {
		return Grant{}, fmt.Errorf("granting share: script returned %d values", len(res))
	}
	r, err := decodeRecord(res[1])
	if err != nil {
		return Grant{}, err
	}
	return r.grant(server, user), nil
}

// SetStartStop changes the start/stop permission of an existing share,
// keeping its expiry. It returns ErrNoGrant when server is not shared with
// user (or the share has expired). It publishes events.Change.
func (s *Store) SetStartStop(
	ctx context.Context,
	actor User,
	server, user string,
	startStop bool,
) (Grant, error) {
	server, err := canonServer(server)
	if err != nil {
		return Grant{}, err
	}
	user, err = canonUser(user)
	if err != nil {
		return Grant{}, err
	}
	act, _, err := s.authorize(ctx, actor, server)
	if err != nil {
		return Grant{}, err
	}

	now := s.clock()
	ev := events.Encode(events.Event{
		Kind: events.Change, Server: server, User: user,
		Actor: act.name, StartStop: startStop, At: now,
	})
	raw, err := s.runScript(ctx, changeScript, server, user, act, now,
		flag(startStop), ev).Text()
	if errors.Is(err, redis.Nil) {
		return Grant{}, fmt.Errorf("%w: %s, %s", ErrNoGrant, server, user)
	}
	if err != nil {
		return Grant{}, fmt.Errorf("changing share: %w", err)
	}
	r, err := decodeRecord(raw)
	if err != nil {
		return Grant{}, err
	}
	return r.grant(server, user), nil
}

// Revoke ends the share of server with user. It returns ErrNoGrant when
// there is none (or it has expired). It publishes events.Revoke.
func (s *Store) Revoke(ctx context.Context, actor User, server, user string) error {
	server, err := canonServer(server)
	if err != nil {
		return err
	}
	user, err = canonUser(user)
	if err != nil {
		return err
	}
	act, _, err := s.authorize(ctx, actor, server)
	if err != nil {
		return err
	}
	return s.remove(ctx, act, server, user, "revoke")
}

// Leave ends a share that was granted to user: recipients may leave a
// share without asking its owner. It returns ErrNoGrant when server is not
// shared with user. It publishes events.Revoke with user as the actor.
func (s *Store) Leave(ctx context.Context, user User, server string) error {
	if user.IsOperator() {
		return fmt.Errorf("%w: the operator has no shares to leave", ErrNotAllowed)
	}
	name, err := canonUser(user.Name)
	if err != nil {
		return err
	}
	server, err = canonServer(server)
	if err != nil {
		return err
	}
	return s.remove(ctx, acting{name: name, role: "grantee"}, server, name, "leave")
}

// RevokeAll ends every share of server, as Revoke does for each (one
// event each), and returns how many it ended. Call it before deleting a
// server, so that a new server with the same id does not inherit them.
func (s *Store) RevokeAll(ctx context.Context, actor User, server string) (int, error) {
	server, err := canonServer(server)
	if err != nil {
		return 0, err
	}
	act, _, err := s.authorize(ctx, actor, server)
	if err != nil {
		return 0, err
	}
	users, err := s.rdb.HKeys(ctx, s.grantsKey(server)).Result()
	if err != nil {
		return 0, fmt.Errorf("loading shares of %s: %w", server, err)
	}
	n := 0
	for _, u := range users {
		err := s.remove(ctx, act, server, u, "revoke")
		if errors.Is(err, ErrNoGrant) {
			continue // expired, or revoked meanwhile
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (s *Store) remove(ctx context.Context, act acting, server, user, what string) error {
	now := s.clock()
	ev := events.Encode(events.Event{
		Kind: events.Revoke, Server: server, User: user, Actor: act.name, At: now,
	})
	err := s.runScript(ctx, revokeScript, server, user, act, now, what, ev).Err()
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("%w: %s, %s", ErrNoGrant, server, user)
	}
	if err != nil {
		return fmt.Errorf("revoking share: %w", err)
	}
	return nil
}

// People returns who has access to server: its owner (from the user
// directory; a User with only Name when the owner never signed in), and
// the live shares, oldest first (ties by username).
func (s *Store) People(ctx context.Context, server string) (User, []Grant, error) {
	server, err := canonServer(server)
	if err != nil {
		return User{}, nil, err
	}
	owner, err := s.owner(ctx, server)
	if err != nil {
		return User{}, nil, err
	}
	ou, found, err := s.lookupUser(ctx, owner)
	if err != nil {
		return User{}, nil, err
	}
	if !found {
		ou = User{Name: owner}
	}

	all, err := s.rdb.HGetAll(ctx, s.grantsKey(server)).Result()
	if err != nil {
		return User{}, nil, fmt.Errorf("loading shares of %s: %w", server, err)
	}
	grants, err := s.liveGrants(all, func(user string) (string, string) { return server, user })
	if err != nil {
		return User{}, nil, err
	}
	slices.SortFunc(grants, func(a, b Grant) int {
		return cmp.Or(a.GrantedAt.Compare(b.GrantedAt), strings.Compare(a.User, b.User))
	})
	return ou, grants, nil
}

// SharedWith returns the live shares granted to user, oldest first (ties
// by server id).
func (s *Store) SharedWith(ctx context.Context, user string) ([]Grant, error) {
	user, err := canonUser(user)
	if err != nil {
		return nil, err
	}
	all, err := s.rdb.HGetAll(ctx, s.sharedWithKey(user)).Result()
	if err != nil {
		return nil, fmt.Errorf("loading shares with %s: %w", user, err)
	}
	grants, err := s.liveGrants(all, func(server string) (string, string) { return server, user })
	if err != nil {
		return nil, err
	}
	slices.SortFunc(grants, func(a, b Grant) int {
		return cmp.Or(a.GrantedAt.Compare(b.GrantedAt), strings.Compare(a.Server, b.Server))
	})
	return grants, nil
}

// liveGrants decodes a grants hash or a reverse index, leaving out expired
// shares. pair names the (server, user) of a field.
func (s *Store) liveGrants(all map[string]string, pair func(field string) (string, string)) ([]Grant, error) {
	now := s.clock()
	grants := make([]Grant, 0, len(all))
	for field, raw := range all {
		r, err := decodeRecord(raw)
		if err != nil {
			return nil, err
		}
		if r.live(now) {
			grants = append(grants, r.grant(pair(field)))
		}
	}
	return grants, nil
}

// SweepExpired removes the shares whose expiry has passed, and returns how
// many it removed. Each removal is audited ("expire") and announced with
// an events.Revoke without actor. Expired shares already decide None and
// are left out of every list; sweeping only frees their keys and tells the
// replicas. Safe to run on every replica at once.
func (s *Store) SweepExpired(ctx context.Context) (int, error) {
	const batch = 100
	removed, offset := 0, int64(0)
	for {
		now := s.clock()
		members, err := s.rdb.ZRangeByScore(ctx, s.expiriesKey(), &redis.ZRangeBy{
			Min: "-inf", Max: fmt.Sprint(ms(now)), Offset: offset, Count: batch,
		}).Result()
		if err != nil {
			return removed, fmt.Errorf("listing expired shares: %w", err)
		}

		for _, m := range members {
			server, user, ok := strings.Cut(m, "/")
			_, errS := canonServer(server)
			_, errU := canonUser(user)
			if !ok || errS != nil || errU != nil {
				// not written by this package: drop it
				if err := s.rdb.ZRem(ctx, s.expiriesKey(), m).Err(); err != nil {
					return removed, fmt.Errorf("dropping expiry entry: %w", err)
				}
				continue
			}
			ev := events.Encode(events.Event{Kind: events.Revoke, Server: server, User: user, At: now})
			system := acting{name: "", role: "system"}
			n, err := s.runScript(ctx, expireScript, server, user, system, now, ev).Int()
			if err != nil {
				return removed, fmt.Errorf("removing expired share: %w", err)
			}
			switch n {
			case 1:
				removed++
			case 0:
				offset++ // not expired after all: skip it
			}
		}
		if len(members) < batch {
			return removed, nil
		}
	}
}

// RunSweeper calls SweepExpired every interval until ctx ends.
func (s *Store) RunSweeper(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.SweepExpired(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("sweeping expired shares", "err", err)
		}
		if n > 0 {
			s.log.Info("expired shares removed", "count", n)
		}
	}
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
