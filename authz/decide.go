package authz

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Decide returns what user may do with server. See DecideUntil.
func (s *Store) Decide(ctx context.Context, user User, server string) (Decision, error) {
	d, _, err := s.DecideUntil(ctx, user, server)
	return d, err
}

// DecideUntil returns what user may do with server, and when that decision
// ends by itself: the expiry of the share that grants it, or the zero time
// when only an event (a change, a revoke) can end it. A caller that caches
// the decision must drop it at that time.
//
// The decision is Owner for the server's owner; Admin for an admin of the
// owner's organization; GranteeStartStop or Grantee for a user with a live
// share in the owner's organization; None otherwise. user is trusted as
// given (the session's copy of the directory entry): its Name, Org and
// Admin. The operator is not a user and decides None.
//
// Any failure to read Redis is an error with the decision None: the caller
// must deny. A server that does not exist is an error wrapping ErrNoServer.
func (s *Store) DecideUntil(ctx context.Context, user User, server string) (Decision, time.Time, error) {
	if user.IsOperator() {
		return None, time.Time{}, nil
	}
	name, err := canonUser(user.Name)
	if err != nil {
		return None, time.Time{}, err
	}
	server, err = canonServer(server)
	if err != nil {
		return None, time.Time{}, err
	}
	owner, err := s.owner(ctx, server)
	if err != nil {
		return None, time.Time{}, err
	}
	if name == owner {
		return Owner, time.Time{}, nil
	}

	// one round trip for the owner's organization and the share
	pipe := s.rdb.Pipeline()
	org := pipe.HMGet(ctx, s.userKey(owner), "name", "org")
	grant := pipe.HGet(ctx, s.grantsKey(server), name)
	_, err = pipe.Exec(ctx)
	if err != nil && !errors.Is(err, redis.Nil) {
		return None, time.Time{}, fmt.Errorf("deciding access to %s: %w", server, err)
	}
	vals, err := org.Result()
	if err != nil {
		return None, time.Time{}, fmt.Errorf("loading owner of %s: %w", server, err)
	}
	ownerOrg, _ := vals[1].(string)
	sameOrg := vals[0] != nil && user.Org == ownerOrg

	if user.Admin && sameOrg {
		return Admin, time.Time{}, nil
	}
	raw, err := grant.Result()
	if errors.Is(err, redis.Nil) {
		return None, time.Time{}, nil
	}
	if err != nil {
		return None, time.Time{}, fmt.Errorf("loading share of %s: %w", server, err)
	}
	r, err := decodeRecord(raw)
	if err != nil {
		return None, time.Time{}, err
	}
	if !r.live(s.clock()) || !sameOrg {
		// an expired share, or a grantee who has left the organization
		return None, time.Time{}, nil
	}
	if r.StartStop {
		return GranteeStartStop, fromMS(r.Expires), nil
	}
	return Grantee, fromMS(r.Expires), nil
}
