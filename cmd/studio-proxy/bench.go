package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"

	"github.com/studio-proxy/studio-proxy/internal/bench"
)

const benchSummary = `Measures, in one run on this machine, requests per second and p50/p99
latency of a demo backend reached directly, through the proxy (signed in
and authorized) and through nginx as a plain reverse proxy, and websocket
echo messages per second directly and through the proxy. It starts its own
redis-server, identity provider, backend and nginx, and prints the results
against the targets. See docs/benchmarks.md.`

func runBench(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("bench", benchSummary, stdout)
	var cfg bench.Config
	fs.IntVar(&cfg.Concurrency, "concurrency", 32,
		"clients of the throughput runs, and websocket connections")
	fs.DurationVar(&cfg.Duration, "duration", 10e9, "how long each target is measured")
	fs.DurationVar(&cfg.Warmup, "warmup", 2e9, "how long each target runs before it is measured")
	fs.IntVar(&cfg.Rounds, "rounds", 5,
		"turns the targets take within each measurement, so that other load hits all alike")
	fs.IntVar(&cfg.ModerateRate, "moderate-rate", 500,
		"requests per second of the latency runs (moderate load)")
	fs.IntVar(&cfg.MessageSize, "message-size", 1024, "websocket message size in bytes")
	fs.StringVar(&cfg.Nginx, "nginx", "/usr/sbin/nginx", "the nginx program (Debian package nginx)")
	fs.StringVar(&cfg.RedisServer, "redis-server", "redis-server", "the redis-server program")
	inProcess := fs.Bool("in-process", false,
		"run the proxy and the backend inside the bench process instead of as their own processes")
	cpuprofile := fs.String("cpuprofile", "",
		"write a CPU profile of this process (the load generator; with --in-process also the "+
			"proxy and the backend) to this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected arguments %q", fs.Args())
	}
	if !*inProcess {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: finding this program: %w", err)
		}
		cfg.Binary = self
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if _, err := bench.Run(ctx, cfg, stdout); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}
