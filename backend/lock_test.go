package backend

import (
	"context"
	"testing"
	"time"

	"github.com/studio-proxy/studio-proxy/internal/redistest"
)

func TestLock(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	const key = "studio:lock:server:alice"

	t.Run("one holder at a time", func(t *testing.T) {
		a, err := tryLock(ctx, rdb, key, time.Minute)
		if err != nil || a == nil {
			t.Fatalf("first tryLock: got %v, %v, want the lock", a, err)
		}
		b, err := tryLock(ctx, rdb, key, time.Minute)
		if err != nil || b != nil {
			t.Fatalf("second tryLock: got %v, %v, want nil, nil", b, err)
		}
		if err := a.release(); err != nil {
			t.Fatalf("release: %v", err)
		}
		b, err = tryLock(ctx, rdb, key, time.Minute)
		if err != nil || b == nil {
			t.Fatalf("tryLock after release: got %v, %v, want the lock", b, err)
		}
		b.release()
	})

	t.Run("expired holder cannot release the next one", func(t *testing.T) {
		a, _ := tryLock(ctx, rdb, key, 100*time.Millisecond)
		var b *lock
		deadline := time.Now().Add(10 * time.Second)
		for b == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			b, _ = tryLock(ctx, rdb, key, time.Minute)
		}
		if b == nil {
			t.Fatal("lock did not expire")
		}
		a.release()
		if ok, _ := a.extend(ctx); ok {
			t.Errorf("the expired holder extended the new holder's lock")
		}
		if got := rdb.Get(ctx, key).Val(); got != b.token {
			t.Fatalf("lock holds %q after the old holder's release, want %q", got, b.token)
		}
		b.release()
	})

	t.Run("keep alive outlives the ttl", func(t *testing.T) {
		a, _ := tryLock(ctx, rdb, key, 300*time.Millisecond)
		stop := a.keepAlive(func(err error) { t.Errorf("lock lost: %v", err) })
		time.Sleep(time.Second)
		if got := rdb.Get(ctx, key).Val(); got != a.token {
			t.Errorf("lock holds %q, want the holder's token", got)
		}
		stop()
		a.release()
	})

	t.Run("redis down", func(t *testing.T) {
		srv.Stop()
		defer srv.Restart()
		if l, err := tryLock(ctx, rdb, key, time.Minute); err == nil {
			t.Fatalf("tryLock with Redis down: got %v, want an error", l)
		}
	})
}
