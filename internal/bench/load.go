package bench

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Result is what one measurement found.
type Result struct {
	// Name says what was measured.
	Name string
	// Concurrency is the number of clients; Rate the paced request rate
	// per second (zero when the clients went as fast as they could).
	Concurrency int
	Rate        int
	// Count is the number of requests (or websocket round trips) that
	// succeeded, Errors the number that failed.
	Count  int
	Errors int
	// PerSecond is Count over the measured time.
	PerSecond float64
	// P50 and P99 are latency percentiles.
	P50, P99 time.Duration
	// CPUPerRequest is the CPU time the target's own process used per
	// request (user and system, all cores), when it runs in a process of
	// its own; zero otherwise.
	CPUPerRequest time.Duration
}

// request sends one request and reports whether it succeeded.
type request func(ctx context.Context) bool

// httpGet returns a request that GETs url through c with hdr and reads
// the whole answer.
func httpGet(c *http.Client, url string, hdr http.Header) request {
	return func(ctx context.Context) bool {
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			return false
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		resp, err := c.Do(req)
		if err != nil {
			return false
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return err == nil && resp.StatusCode == http.StatusOK
	}
}

// sample is what one or more measurements of a target collected.
type sample struct {
	lats    []time.Duration
	errs    int
	elapsed time.Duration
	cpu     time.Duration // used by the target's process, when known
}

func (s *sample) add(o sample) {
	s.lats = append(s.lats, o.lats...)
	s.errs += o.errs
	s.elapsed += o.elapsed
	s.cpu += o.cpu
}

// closedLoop runs one client per request in reqs; each sends its next
// request as soon as the last one came back, for warmup (not measured)
// and then d.
func closedLoop(ctx context.Context, reqs []request, warmup, d time.Duration) sample {
	conc := len(reqs)
	run := func(d time.Duration, measure bool) sample {
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		lats := make([][]time.Duration, conc)
		errs := make([]int, conc)
		var wg sync.WaitGroup
		start := time.Now()
		for i, req := range reqs {
			wg.Go(func() {
				for ctx.Err() == nil {
					t0 := time.Now()
					ok := req(ctx)
					if ctx.Err() != nil {
						return // cut by the end of the run: not counted
					}
					if !ok {
						errs[i]++
						continue
					}
					if measure {
						lats[i] = append(lats[i], time.Since(t0))
					}
				}
			})
		}
		wg.Wait()
		return collect(time.Since(start), lats, errs)
	}
	if warmup > 0 {
		run(warmup, false)
	}
	return run(d, true)
}

// paced sends rate requests a second for d, spread over the clients of
// reqs. Latency counts from when a request was due, not from when a
// client got to it, so a slow answer that delays the next ones shows in
// the numbers.
func paced(ctx context.Context, reqs []request, rate int, d time.Duration) sample {
	conc := len(reqs)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()

	due := make(chan time.Time, conc)
	go func() {
		defer close(due)
		interval := time.Second / time.Duration(rate)
		next := time.Now()
		for {
			next = next.Add(interval)
			if wait := time.Until(next); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return
				}
			}
			select {
			case due <- next:
			case <-ctx.Done():
				return
			}
		}
	}()

	lats := make([][]time.Duration, conc)
	errs := make([]int, conc)
	var wg sync.WaitGroup
	start := time.Now()
	for i, req := range reqs {
		wg.Go(func() {
			for t := range due {
				ok := req(ctx)
				if ctx.Err() != nil {
					return
				}
				if !ok {
					errs[i]++
					continue
				}
				lats[i] = append(lats[i], time.Since(t))
			}
		})
	}
	wg.Wait()
	return collect(time.Since(start), lats, errs)
}

// wsEcho returns a request that sends depth copies of msg over conn
// back to back and then waits for their echoes: depth 1 is ping-pong.
func wsEcho(conn *websocket.Conn, msg []byte, depth int) request {
	return func(ctx context.Context) bool {
		for range depth {
			if err := conn.WriteMessage(websocket.BinaryMessage, msg); err != nil {
				return false
			}
		}
		for range depth {
			_, got, err := conn.ReadMessage()
			if err != nil || len(got) != len(msg) {
				return false
			}
		}
		return true
	}
}

// perMessage turns a result of bursts of n messages into one per
// message; the latencies stay those of a burst.
func perMessage(r Result, n int) Result {
	r.Count *= n
	r.Errors *= n
	r.PerSecond *= float64(n)
	r.CPUPerRequest /= time.Duration(n)
	return r
}

func collect(elapsed time.Duration, lats [][]time.Duration, errs []int) sample {
	s := sample{lats: slices.Concat(lats...), elapsed: elapsed}
	for _, e := range errs {
		s.errs += e
	}
	return s
}

// summarize turns a sample into a result.
func summarize(name string, conc, rate int, s sample) Result {
	slices.Sort(s.lats)
	r := Result{Name: name, Concurrency: conc, Rate: rate, Count: len(s.lats), Errors: s.errs}
	if s.elapsed > 0 {
		r.PerSecond = float64(len(s.lats)) / s.elapsed.Seconds()
	}
	if n := len(s.lats); n > 0 {
		r.CPUPerRequest = s.cpu / time.Duration(n)
		r.P50 = s.lats[n*50/100]
		r.P99 = s.lats[min(n*99/100, n-1)]
	}
	return r
}
