package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// newFlagSet returns a flag set whose help lists each flag's environment
// variable. Call parseFlags, not fs.Parse.
func newFlagSet(name, summary string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: studio-proxy %s [flags]\n\n%s\n\nFlags:\n", name, summary)
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" {
				def = fmt.Sprintf(" (default %q)", f.DefValue)
			}
			fmt.Fprintf(out, "  --%s, %s%s\n      %s\n", f.Name, envName(f.Name), def, f.Usage)
		})
	}
	return fs
}

// envName is the environment variable of a flag: --redis-url is
// STUDIO_REDIS_URL.
func envName(flagName string) string {
	return "STUDIO_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags parses args, then sets every flag not given on the command
// line from its environment variable. The command line wins.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := os.LookupEnv(envName(f.Name))
		if given[f.Name] || !ok || err != nil {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = fmt.Errorf("environment variable %s: %w", envName(f.Name), e)
		}
	})
	return err
}

const defaultRedisURL = "redis://127.0.0.1:6379/0"

// redisFlags configures the connection to Redis: one node by URL, or
// Sentinel, or Cluster.
type redisFlags struct {
	url            string
	sentinelMaster string
	sentinelAddrs  string
	clusterAddrs   string
	username       string
	password       string
	tls            bool
	prefix         string
}

func addRedisFlags(fs *flag.FlagSet) *redisFlags {
	r := &redisFlags{}
	fs.StringVar(&r.url, "redis-url", defaultRedisURL,
		"Redis URL (redis:// or rediss://, with password and database)")
	fs.StringVar(&r.sentinelMaster, "redis-sentinel-master", "",
		"name of the Sentinel master; with --redis-sentinel-addrs, used instead of --redis-url")
	fs.StringVar(&r.sentinelAddrs, "redis-sentinel-addrs", "",
		"comma-separated host:port of the Sentinels")
	fs.StringVar(&r.clusterAddrs, "redis-cluster-addrs", "",
		"comma-separated host:port of Redis Cluster nodes; used instead of --redis-url")
	fs.StringVar(&r.username, "redis-username", "",
		"Redis ACL user for Sentinel or Cluster (with --redis-url, put it in the URL)")
	fs.StringVar(&r.password, "redis-password", "",
		"Redis password for Sentinel or Cluster (with --redis-url, put it in the URL)")
	fs.BoolVar(&r.tls, "redis-tls", false,
		"connect to Sentinel or Cluster with TLS (with --redis-url, use rediss://)")
	fs.StringVar(&r.prefix, "redis-prefix", "studio:",
		"prefix of every key and channel, so that several installations can share a Redis")
	return r
}

// client opens the configured Redis client. It does not connect yet.
func (r *redisFlags) client() (redis.UniversalClient, error) {
	opts := &redis.UniversalOptions{
		DialTimeout:  2 * time.Second,
		ReadTimeout:  2 * time.Second,
		WriteTimeout: 2 * time.Second,
	}
	if r.url != defaultRedisURL && (r.clusterAddrs != "" || r.sentinelMaster != "") {
		return nil, fmt.Errorf("--redis-url cannot be combined with Sentinel or Cluster addresses")
	}
	if r.tls {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	opts.Username, opts.Password = r.username, r.password

	switch {
	case r.clusterAddrs != "":
		opts.Addrs = splitList(r.clusterAddrs)
		opts.IsClusterMode = true
	case r.sentinelMaster != "":
		if r.sentinelAddrs == "" {
			return nil, fmt.Errorf("--redis-sentinel-master needs --redis-sentinel-addrs")
		}
		opts.MasterName = r.sentinelMaster
		opts.Addrs = splitList(r.sentinelAddrs)
	default:
		if r.username != "" || r.password != "" || r.tls {
			return nil, fmt.Errorf("with --redis-url, give the user, password and TLS " +
				"(rediss://) in the URL")
		}
		u, err := redis.ParseURL(r.url)
		if err != nil {
			return nil, fmt.Errorf("parsing --redis-url: %w", err)
		}
		opts.Addrs = []string{u.Addr}
		opts.Username, opts.Password, opts.DB = u.Username, u.Password, u.DB
		opts.TLSConfig = u.TLSConfig
	}
	return redis.NewUniversalClient(opts), nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
