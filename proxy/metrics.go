package proxy

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the proxy's Prometheus collectors.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	decisions *prometheus.HistogramVec
	// resolved children of the hot path
	decisionCache prometheus.Observer
	decisionRedis prometheus.Observer
	forwarded     prometheus.Counter
	websocket     prometheus.Gauge
	cuts          *prometheus.CounterVec
	lifecycle     *prometheus.CounterVec
	redisErrs     *prometheus.CounterVec
	events        *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "studio_proxy_requests_total",
			Help: "Requests by outcome: forwarded, own (the proxy's own routes) or the code of the refusal.",
		}, []string{"outcome"}),
		decisions: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "studio_proxy_decision_seconds",
			Help:    "Time to decide whether a user may use a server, by source (cache or redis).",
			Buckets: []float64{.00001, .00005, .0001, .0005, .001, .005, .01, .05, .1, .5, 1},
		}, []string{"source"}),
		websocket: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "studio_proxy_websockets_open",
			Help: "Websockets open through this replica.",
		}),
		cuts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "studio_proxy_connections_cut_total",
			Help: "Websockets and HTTP requests the proxy ended itself, by reason " +
				"(revoked, signed_out, server_stopped, cannot_check, shutdown).",
		}, []string{"reason", "kind"}),
		lifecycle: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "studio_proxy_lifecycle_total",
			Help: "Start and stop calls by action and result.",
		}, []string{"action", "result"}),
		redisErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "studio_proxy_redis_errors_total",
			Help: "Redis calls of the proxy that failed, by operation.",
		}, []string{"op"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "studio_proxy_events_total",
			Help: "Events received on the events channel, by kind.",
		}, []string{"kind"}),
	}
	reg.MustRegister(m.requests, m.decisions, m.websocket, m.cuts, m.lifecycle,
		m.redisErrs, m.events)
	m.decisionCache = m.decisions.WithLabelValues("cache")
	m.decisionRedis = m.decisions.WithLabelValues("redis")
	m.forwarded = m.requests.WithLabelValues("forwarded")
	return m
}

func (m *metrics) outcome(o string) { m.requests.WithLabelValues(o).Inc() }

func (m *metrics) redisError(op string) { m.redisErrs.WithLabelValues(op).Inc() }

// handler serves the registry in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
