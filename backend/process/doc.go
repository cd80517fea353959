// Package process is the lifecycle driver for one machine: it runs each
// notebook server as a child process of the proxy, from a configured
// command template, on a free loopback port. The documented example is
// Jupyter Notebook (DefaultCommand); see docs/backends.md.
//
// A child runs in its own process group, with a small environment (the
// proxy's own secrets are not passed on), its output in a log file per
// server, and dies with the proxy (Linux). The driver only knows the
// children of its own proxy process: it implements backend.Placed so that
// the Manager records which process runs each server.
package process
