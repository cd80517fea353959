package backend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// lock is one holder's claim on one server, a Redis key set with NX and
// an expiry and holding a random token: only the holder that set it can
// extend or release it, and a holder that died loses it when it expires.
type lock struct {
	rdb   redis.UniversalClient
	key   string
	token string
	ttl   time.Duration
}

// releaseScript deletes the lock only if it still holds our token.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// extendScript renews the lock's expiry only if it still holds our token.
var extendScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// tryLock takes the lock at key, or returns nil and no error when another
// holds it.
func tryLock(
	ctx context.Context,
	rdb redis.UniversalClient,
	key string,
	ttl time.Duration,
) (*lock, error) {
	b := make([]byte, 16)
	rand.Read(b)
	l := &lock{rdb: rdb, key: key, token: hex.EncodeToString(b), ttl: ttl}
	ok, err := rdb.SetNX(ctx, key, l.token, ttl).Result()
	if err != nil {
		return nil, fmt.Errorf("taking lock: %w", err)
	}
	if !ok {
		return nil, nil
	}
	return l, nil
}

// waitLock takes the lock at key, polling while another holds it, until
// ctx ends.
func waitLock(
	ctx context.Context,
	rdb redis.UniversalClient,
	key string,
	ttl time.Duration,
) (*lock, error) {
	for {
		l, err := tryLock(ctx, rdb, key, ttl)
		if err != nil || l != nil {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for lock: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// extend renews the lock's expiry; it reports false when the lock was
// lost (expired and perhaps taken by another).
func (l *lock) extend(ctx context.Context) (bool, error) {
	n, err := extendScript.Run(ctx, l.rdb, []string{l.key}, l.token, l.ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("extending lock: %w", err)
	}
	return n == 1, nil
}

// keepAlive extends the lock every third of its lifetime until the
// returned stop function is called, so that an operation longer than the
// lock's expiry keeps it. lost is called with each failure to extend it;
// once the lock is gone, the keep-alive ends.
func (l *lock) keepAlive(lost func(err error)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(l.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			ok, err := l.extend(ctx)
			if ctx.Err() != nil {
				return
			}
			if err == nil && !ok {
				lost(fmt.Errorf("lock %s expired", l.key))
				return
			}
			if err != nil {
				// keep trying: Redis may come back before the expiry
				lost(err)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// release gives the lock up, if it is still ours. It uses its own short
// context so that a cancelled caller still releases.
func (l *lock) release() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := releaseScript.Run(ctx, l.rdb, []string{l.key}, l.token).Err(); err != nil {
		return fmt.Errorf("releasing lock: %w", err)
	}
	return nil
}
