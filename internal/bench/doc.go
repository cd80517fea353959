// Package bench measures the proxy in one run on one machine: requests
// per second and latency percentiles for a backend reached directly,
// through the proxy signed in and authorized, and through nginx as a
// plain reverse proxy, plus websocket echo direct, through the proxy and
// through nginx (a reference: what a plain relay gets on the machine).
// It starts everything it needs itself (redis-server, the development
// identity provider, a demo server, nginx as a child with its files in a
// temporary directory) and generates the load in-process. The command
// "studio-proxy bench" runs it; docs/benchmarks.md has results.
package bench
