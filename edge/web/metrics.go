package web

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the device's Prometheus metrics. The counters and the latency histogram are fed
// by the daemon (Metrics implements edge.Observer); the gauges are read from the device at
// each scrape by the Server.
type Metrics struct {
	reg       *prometheus.Registry
	decisions *prometheus.CounterVec
	latency   prometheus.Histogram
	reader    *prometheus.CounterVec
}

// NewMetrics makes the metrics in their own registry (with the Go and process collectors).
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatecheck_decisions_total",
			Help: "Decisions recorded, by outcome.",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gatecheck_decision_seconds",
			Help: "Time to decide (record lookup and rules), from the card or entry to the decision.",
			// 10 us .. 82 ms: the decision target is well under a millisecond.
			Buckets: prometheus.ExponentialBuckets(10e-6, 2, 14),
		}),
		reader: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatecheck_reader_errors_total",
			Help: "Failed polls of the ID-card reader, by kind.",
		}, []string{"kind"}),
	}
	m.reg.MustRegister(m.decisions, m.latency, m.reader,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Decided counts a decision and observes its latency when it was timed.
func (m *Metrics) Decided(outcome string, took time.Duration) {
	m.decisions.WithLabelValues(outcome).Inc()
	if took > 0 {
		m.latency.Observe(took.Seconds())
	}
}

// ReaderError counts a reader error.
func (m *Metrics) ReaderError(kind string) { m.reader.WithLabelValues(kind).Inc() }

// gauges registers the gauges read from the device's status at each scrape.
func (m *Metrics) gauges(st func() Status) {
	g := func(name, help string, f func(Status) float64) {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(st()) }))
	}
	g("gatecheck_sync_lag_seconds", "Seconds since the last successful sync or import (-1: never).", func(s Status) float64 {
		if s.Sync.LastRefresh.IsZero() {
			return -1
		}
		return s.Now.Sub(s.Sync.LastRefresh).Seconds()
	})
	g("gatecheck_sync_cursor_behind_peers", "How many changes the checkpoint's most current peer holds that this device lacks.", func(s Status) float64 {
		return float64(s.Sync.BehindPeers)
	})
	g("gatecheck_audit_backlog", "Audit entries not yet acknowledged by the central server.", func(s Status) float64 {
		return float64(s.Audit.Pending)
	})
	g("gatecheck_snapshot_age_seconds", "Seconds since the snapshot in force took effect (-1: none in force).", func(s Status) float64 {
		if s.Snapshot == nil {
			return -1
		}
		return s.Now.Sub(s.Snapshot.EffectiveFrom).Seconds()
	})
	g("gatecheck_snapshot_expires_in_seconds", "Seconds until the snapshot in force expires (-1: none in force).", func(s Status) float64 {
		if s.Snapshot == nil {
			return -1
		}
		return s.Snapshot.ExpiresAt.Sub(s.Now).Seconds()
	})
	g("gatecheck_snapshot_version", "Version of the snapshot in force (0: none).", func(s Status) float64 {
		if s.Snapshot == nil {
			return 0
		}
		return float64(s.Snapshot.Version)
	})
	g("gatecheck_gossip_members", "Peers of the checkpoint this device sees (not counting itself).", func(s Status) float64 {
		return float64(len(s.Peers))
	})
	g("gatecheck_reader_up", "1 when the card reader is connected.", func(s Status) float64 {
		if s.Reader.Up {
			return 1
		}
		return 0
	})
}
