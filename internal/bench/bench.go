package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gorilla/websocket"
)

// Targets are what the proxy must reach (issue 4).
const (
	// TargetThroughput: authorized proxying at no less than this share
	// of nginx's requests per second.
	TargetThroughput = 0.8
	// TargetAddedP99: no more p99 latency than this over the backend
	// direct, at moderate load.
	TargetAddedP99 = time.Millisecond
	// TargetWebsocket: websocket echo through the proxy at no less than
	// this share of direct.
	TargetWebsocket = 0.7
)

// Config shapes a run. The zero value of each field has a default.
type Config struct {
	// Concurrency is the number of clients of the throughput runs. Zero
	// means 32.
	Concurrency int
	// Duration is how long each target is measured in all, Warmup how
	// long each runs before. Zero means 10 seconds and 2 seconds.
	Duration time.Duration
	Warmup   time.Duration
	// Rounds splits each measurement into turns: the targets take turns
	// Rounds times, so that load from elsewhere on the machine falls on
	// all of them alike. Zero means 5.
	Rounds int
	// ModerateRate is the paced request rate per second of the latency
	// runs. Zero means 500.
	ModerateRate int
	// MessageSize is the size of a websocket echo message in bytes.
	// Zero means 1024.
	MessageSize int
	// Nginx and RedisServer are the programs to run. Empty means
	// /usr/sbin/nginx and redis-server.
	Nginx       string
	RedisServer string
	// Binary is the studio-proxy program. When set, the proxy runs as
	// its own process ("serve") and the backend as another
	// ("demo-server"), like nginx; empty runs both inside this process,
	// beside the load generator.
	Binary string
	// Log receives the components' logs. Nil discards them.
	Log *slog.Logger
}

// Report is what a run measured.
type Report struct {
	Config  Config
	Results []Result
	// The ratios the targets are about.
	Throughput float64       // proxy over nginx requests per second
	AddedP99   time.Duration // proxy p99 minus direct p99, paced
	Websocket  float64       // proxy over direct echoes per second, ping-pong
	// WebsocketPipelined is proxy over direct echoed messages per second
	// with PipelineDepth messages in flight per connection.
	WebsocketPipelined float64

	// WebsocketNginx and WebsocketNginxPipelined are nginx over direct,
	// ping-pong and pipelined: what a plain relay reaches on the same
	// machine, a reference for the two above rather than a target.
	WebsocketNginx          float64
	WebsocketNginxPipelined float64
}

// PipelineDepth is how many messages each connection of the pipelined
// websocket echo keeps in flight.
const PipelineDepth = 8

// Run sets up a backend, the proxy and nginx, measures them, writes a
// table to out and returns the report. nginx is measured for HTTP and for
// websockets; for websockets it is a reference (what a plain relay gets on
// this machine), not a target.
func Run(ctx context.Context, cfg Config, out io.Writer) (*Report, error) {
	cfg = withDefaults(cfg)
	fmt.Fprintf(out, "setting up redis, the identity provider, the proxy and nginx...\n")
	e, err := setup(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer e.close()

	rep := &Report{Config: cfg}
	show := func(r Result) Result {
		rep.Results = append(rep.Results, r)
		fmt.Fprintf(out, "  %-34s %10.0f/s  p50 %-9s p99 %-9s errors %d",
			r.Name, r.PerSecond, fmtDur(r.P50), fmtDur(r.P99), r.Errors)
		if r.CPUPerRequest > 0 {
			fmt.Fprintf(out, "  cpu %s/req", fmtDur(r.CPUPerRequest))
		}
		fmt.Fprintln(out)
		return r
	}
	path := "/servers/" + benchUser + "/bench"
	direct := e.httpTarget(cfg, e.backendURL+path, http.Header{"Authorization": {"token " + e.secret}})
	proxied := e.httpTarget(cfg, e.proxyURL+path, http.Header{"Cookie": {e.session}})
	viaNginx := e.httpTarget(cfg, e.nginxURL+path, nil)
	names := []string{"backend direct", "proxy, signed in and authorized",
		"nginx, plain reverse proxy"}
	c, d, w, rounds := cfg.Concurrency, cfg.Duration, cfg.Warmup, cfg.Rounds
	slice := d / time.Duration(rounds)

	// throughput, clients as fast as they can; the targets take turns,
	// so that a neighbour's load on the machine falls on all of them
	fmt.Fprintf(out, "HTTP, %d clients, %s each in %d turns:\n", c, d, rounds)
	targets := [][]request{direct, proxied, viaNginx}
	cpus := []func() (time.Duration, bool){nil, e.proxyCPU, e.nginxCPU}
	samples := turns(ctx, targets, cpus, rounds, w, func(reqs []request) sample {
		return closedLoop(ctx, reqs, 0, slice)
	})
	var res []Result
	for i := range targets {
		res = append(res, show(summarize(names[i], c, 0, samples[i])))
	}
	p, n := res[1], res[2]

	// latency at a moderate, paced load
	rate := cfg.ModerateRate
	fmt.Fprintf(out, "HTTP, paced at %d requests/s, %s each in %d turns:\n", rate, d, rounds)
	samples = turns(ctx, targets, cpus, rounds, 0, func(reqs []request) sample {
		return paced(ctx, reqs, rate, slice)
	})
	res = res[:0]
	for i := range targets {
		res = append(res, show(summarize(names[i], c, rate, samples[i])))
	}
	pd, pp := res[0], res[1]

	// websocket echo
	fmt.Fprintf(out, "websocket echo, %d connections, %d-byte messages, %s each in %d turns:\n",
		c, cfg.MessageSize, d, rounds)
	wsPath := "/servers/" + benchUser + "/ws"
	wsTargets := func(depth int) ([][]request, error) {
		wd, err := e.wsTarget(ctx, cfg, depth, wsURL(e.backendURL)+wsPath,
			http.Header{"Authorization": {"token " + e.secret}})
		if err != nil {
			return nil, fmt.Errorf("websocket direct: %w", err)
		}
		wp, err := e.wsTarget(ctx, cfg, depth, wsURL(e.proxyURL)+wsPath,
			http.Header{"Cookie": {e.session}, "Origin": {e.proxyURL}})
		if err != nil {
			return nil, fmt.Errorf("websocket through the proxy: %w", err)
		}
		wn, err := e.wsTarget(ctx, cfg, depth, wsURL(e.nginxURL)+wsPath, nil)
		if err != nil {
			return nil, fmt.Errorf("websocket through nginx: %w", err)
		}
		return [][]request{wd, wp, wn}, nil
	}
	targets, err = wsTargets(1)
	if err != nil {
		return nil, err
	}
	samples = turns(ctx, targets, cpus, rounds, w, func(reqs []request) sample {
		return closedLoop(ctx, reqs, 0, slice)
	})
	wsd := show(summarize("websocket direct", c, 0, samples[0]))
	wsp := show(summarize("websocket through the proxy", c, 0, samples[1]))
	wsn := show(summarize("websocket through nginx", c, 0, samples[2]))

	// the same with several messages in flight per connection; counted
	// per message, latency per burst of PipelineDepth
	fmt.Fprintf(out, "websocket echo pipelined, %d connections, %d messages in flight each, "+
		"latency per burst:\n", c, PipelineDepth)
	targets, err = wsTargets(PipelineDepth)
	if err != nil {
		return nil, err
	}
	samples = turns(ctx, targets, cpus, rounds, w, func(reqs []request) sample {
		return closedLoop(ctx, reqs, 0, slice)
	})
	wpd := show(perMessage(summarize("pipelined direct", c, 0, samples[0]), PipelineDepth))
	wpp := show(perMessage(summarize("pipelined through the proxy", c, 0, samples[1]),
		PipelineDepth))
	wpn := show(perMessage(summarize("pipelined through nginx", c, 0, samples[2]),
		PipelineDepth))

	if n.PerSecond > 0 {
		rep.Throughput = p.PerSecond / n.PerSecond
	}
	rep.AddedP99 = pp.P99 - pd.P99
	if wsd.PerSecond > 0 {
		rep.Websocket = wsp.PerSecond / wsd.PerSecond
		rep.WebsocketNginx = wsn.PerSecond / wsd.PerSecond
	}
	if wpd.PerSecond > 0 {
		rep.WebsocketPipelined = wpp.PerSecond / wpd.PerSecond
		rep.WebsocketNginxPipelined = wpn.PerSecond / wpd.PerSecond
	}
	rep.print(out)
	return rep, nil
}

// turns warms each target up, then measures the targets in turn, rounds
// times, and returns each one's samples. cpus[i], when not nil, tells
// the CPU time target i's process has used: the sample keeps what it
// used while measured.
func turns(
	ctx context.Context,
	targets [][]request,
	cpus []func() (time.Duration, bool),
	rounds int,
	warmup time.Duration,
	measure func([]request) sample,
) []sample {
	if warmup > 0 {
		for _, reqs := range targets {
			closedLoop(ctx, reqs, 0, warmup)
		}
	}
	samples := make([]sample, len(targets))
	for range rounds {
		for i, reqs := range targets {
			var before time.Duration
			ok := cpus[i] != nil
			if ok {
				before, ok = cpus[i]()
			}
			s := measure(reqs)
			if ok {
				if after, ok := cpus[i](); ok {
					s.cpu = after - before
				}
			}
			samples[i].add(s)
		}
	}
	return samples
}

func withDefaults(cfg Config) Config {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 32
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Warmup < 0 {
		cfg.Warmup = 0
	} else if cfg.Warmup == 0 {
		cfg.Warmup = 2 * time.Second
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 5
	}
	if cfg.ModerateRate <= 0 {
		cfg.ModerateRate = 500
	}
	if cfg.MessageSize <= 0 {
		cfg.MessageSize = 1024
	}
	if cfg.Nginx == "" {
		cfg.Nginx = "/usr/sbin/nginx"
	}
	if cfg.RedisServer == "" {
		cfg.RedisServer = "redis-server"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return cfg
}

// httpTarget returns one request per client, all through one transport
// that keeps a connection per client.
func (e *env) httpTarget(cfg Config, url string, hdr http.Header) []request {
	c := &http.Client{Transport: &http.Transport{
		MaxIdleConns:        cfg.Concurrency * 2,
		MaxIdleConnsPerHost: cfg.Concurrency * 2,
		DisableCompression:  true,
	}}
	reqs := make([]request, cfg.Concurrency)
	for i := range reqs {
		reqs[i] = httpGet(c, url, hdr)
	}
	return reqs
}

// wsTarget opens one websocket per client, each echoing depth messages
// at a time (1: ping-pong).
func (e *env) wsTarget(
	ctx context.Context,
	cfg Config,
	depth int,
	url string,
	hdr http.Header,
) ([]request, error) {
	msg := make([]byte, cfg.MessageSize)
	for i := range msg {
		msg[i] = byte('a' + i%26)
	}
	reqs := make([]request, cfg.Concurrency)
	for i := range reqs {
		conn, _, err := websocket.DefaultDialer.DialContext(ctx, url, hdr)
		if err != nil {
			return nil, err
		}
		e.stop = append(e.stop, func() { conn.Close() })
		reqs[i] = wsEcho(conn, msg, depth)
	}
	return reqs, nil
}

func (r *Report) print(out io.Writer) {
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "measure\tresult\ttarget\t\n")
	fmt.Fprintf(tw, "proxy / nginx throughput\t%.2fx\t>= %.1fx\t%s\n",
		r.Throughput, TargetThroughput, verdict(r.Throughput >= TargetThroughput))
	fmt.Fprintf(tw, "added p99 at %d req/s\t%s\t<= %s\t%s\n", r.Config.ModerateRate,
		fmtDur(r.AddedP99), fmtDur(TargetAddedP99), verdict(r.AddedP99 <= TargetAddedP99))
	fmt.Fprintf(tw, "websocket proxy / direct\t%.2fx\t>= %.1fx\t%s\n",
		r.Websocket, TargetWebsocket, verdict(r.Websocket >= TargetWebsocket))
	fmt.Fprintf(tw, "websocket pipelined proxy / direct\t%.2fx\t>= %.1fx\t%s\n",
		r.WebsocketPipelined, TargetWebsocket, verdict(r.WebsocketPipelined >= TargetWebsocket))
	fmt.Fprintf(tw, "websocket nginx / direct\t%.2fx\tnone\treference\n", r.WebsocketNginx)
	fmt.Fprintf(tw, "websocket pipelined nginx / direct\t%.2fx\tnone\treference\n",
		r.WebsocketNginxPipelined)
	tw.Flush()
	fmt.Fprintf(out, "\nmachine: %d CPUs (GOMAXPROCS %d), %s, %s/%s\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// wsURL turns an http:// base URL into a ws:// one.
func wsURL(base string) string {
	return "ws" + strings.TrimPrefix(base, "http")
}

func fmtDur(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + fmtDur(-d)
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	default:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
}
