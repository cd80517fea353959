package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/studio-proxy/studio-proxy/internal/devidp"
	"github.com/studio-proxy/studio-proxy/internal/redistest"
)

// TestServe runs the serve configuration against a real Redis and the
// development provider: it becomes ready, serves metrics, and shuts down
// when its context ends.
func TestServe(t *testing.T) {
	srv := redistest.Start(t)
	idpSrv := httptest.NewUnstartedServer(nil)
	idp, err := devidp.New(devidp.Config{
		Issuer:       "http://" + idpSrv.Listener.Addr().String(),
		ClientID:     "proxy",
		ClientSecret: "secret",
		RedirectURIs: []string{"http://127.0.0.1:1/studio/callback"},
	})
	if err != nil {
		t.Fatal(err)
	}
	idpSrv.Config.Handler = idp.Handler()
	idpSrv.Start()
	defer idpSrv.Close()
	metricsAddr := freeAddr(t)

	fs := newFlagSet("serve", serveSummary, io.Discard)
	rf := addRedisFlags(fs)
	f := addServeFlags(fs)
	err = parseFlags(fs, []string{
		"--redis-url", "redis://" + srv.Addr,
		"--listen", "127.0.0.1:0",
		"--metrics-listen", metricsAddr,
		"--external-url", "http://127.0.0.1:1",
		"--oidc-issuer", idp.Issuer(),
		"--oidc-client-id", "proxy",
		"--oidc-client-secret", "secret",
		"--trusted-proxies", "10.0.0.0/8, 192.0.2.1",
		"--server-command", "sleep 1000",
		"--server-log-dir", t.TempDir(),
		"--server-root", t.TempDir(),
		"--log-level", "error",
	})
	if err != nil {
		t.Fatal(err)
	}
	log, err := f.logger()
	if err != nil {
		t.Fatal(err)
	}
	sc, err := f.config(rf.prefix, log)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(sc.Proxy.TrustedProxies); got != 2 {
		t.Errorf("got %d trusted proxies, want 2", got)
	}
	rdb, err := rf.client()
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()

	addrc := make(chan string, 1)
	sc.Ready = func(addr string) { addrc <- addr }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runProxy(ctx, rdb, sc) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("runProxy ended early: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("proxy not listening after 20s")
	}

	// ready once subscribed
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/studio/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 10s: %v %v", resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "studio_proxy_requests_total") ||
		!strings.Contains(string(b), "go_goroutines") {
		t.Errorf("metrics lack the proxy's or Go's: %.300s", b)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("shutdown: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("not shut down after 20s")
	}
}

func TestServeFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no external url", []string{"--oidc-issuer", "x", "--oidc-client-id", "y"}, "--external-url"},
		{"no issuer", []string{"--external-url", "http://x", "--oidc-client-id", "y"}, "--oidc-issuer"},
		{"bad trusted proxy", []string{"--external-url", "http://x", "--oidc-issuer", "x",
			"--oidc-client-id", "y", "--trusted-proxies", "nope"}, "--trusted-proxies"},
		{"bad driver", []string{"--external-url", "http://x", "--oidc-issuer", "x",
			"--oidc-client-id", "y", "--driver", "docker"}, "--driver"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFlagSet("serve", serveSummary, io.Discard)
			rf := addRedisFlags(fs)
			f := addServeFlags(fs)
			if err := parseFlags(fs, tt.args); err != nil {
				t.Fatal(err)
			}
			_, err := f.config(rf.prefix, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
