package main

import (
	"flag"
	"io"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestRedisFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr bool
		check   func(t *testing.T, c redis.UniversalClient)
	}{
		{name: "default url", check: func(t *testing.T, c redis.UniversalClient) {
			o := c.(*redis.Client).Options()
			if o.Addr != "127.0.0.1:6379" {
				t.Errorf("got addr %q, want 127.0.0.1:6379", o.Addr)
			}
		}},
		{name: "url from env", env: map[string]string{"STUDIO_REDIS_URL": "redis://:pw@h:7/2"},
			check: func(t *testing.T, c redis.UniversalClient) {
				o := c.(*redis.Client).Options()
				if o.Addr != "h:7" || o.Password != "pw" || o.DB != 2 {
					t.Errorf("got %s db %d, want h:7 with password, db 2", o.Addr, o.DB)
				}
			}},
		{name: "command line wins over env",
			args: []string{"--redis-url", "redis://a:1"},
			env:  map[string]string{"STUDIO_REDIS_URL": "redis://b:2"},
			check: func(t *testing.T, c redis.UniversalClient) {
				if got := c.(*redis.Client).Options().Addr; got != "a:1" {
					t.Errorf("got addr %q, want a:1", got)
				}
			}},
		{name: "sentinel with password",
			args: []string{"--redis-sentinel-master", "m", "--redis-sentinel-addrs", "s1:1,s2:2",
				"--redis-password", "pw"},
			check: func(t *testing.T, c redis.UniversalClient) {
				if _, ok := c.(*redis.Client); !ok {
					t.Errorf("got %T, want a failover *redis.Client", c)
				}
			}},
		{name: "cluster", args: []string{"--redis-cluster-addrs", "n1:1, n2:2"},
			check: func(t *testing.T, c redis.UniversalClient) {
				if _, ok := c.(*redis.ClusterClient); !ok {
					t.Errorf("got %T, want *redis.ClusterClient", c)
				}
			}},
		{name: "sentinel without addrs", args: []string{"--redis-sentinel-master", "m"},
			wantErr: true},
		{name: "url and cluster", wantErr: true,
			args: []string{"--redis-url", "redis://x:1", "--redis-cluster-addrs", "n:1"}},
		{name: "password beside url", args: []string{"--redis-password", "pw"}, wantErr: true},
		{name: "bad url", args: []string{"--redis-url", "http://x"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			rf := addRedisFlags(fs)
			if err := parseFlags(fs, tt.args); err != nil {
				t.Fatalf("parsing: %v", err)
			}
			c, err := rf.client()
			if tt.wantErr {
				if err == nil {
					c.Close()
					t.Fatal("got no error, want one")
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			defer c.Close()
			tt.check(t, c)
		})
	}
}
