package server

import (
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/observe"
	"github.com/vigil-project/vigil/envoy"
	"github.com/vigil-project/vigil/server/config"
)

// metrics holds Vigil's Prometheus metrics in a registry of its own. Every
// series used on the hot path is resolved once, so observing allocates
// nothing.
type metrics struct {
	reg      *prometheus.Registry
	attacks  *prometheus.CounterVec
	services map[string]*serviceMetrics
	panics   prometheus.Counter
}

type serviceMetrics struct {
	calls    prometheus.Counter
	latency  prometheus.Observer
	protoErr prometheus.Counter
	// verdicts by outcome (allow, deny, would_block) and reason
	verdicts [][]prometheus.Counter
}

func newMetrics(q *detect.Queue, allow, block *detect.List) *metrics {
	reg := prometheus.NewRegistry()
	// The Go collector's defaults, and the live heap the last GC marked
	// (go_gc_heap_live_bytes): what the memory budget is about, without the
	// garbage not yet collected that go_memstats_heap_inuse_bytes counts.
	reg.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
		collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/live:bytes$`)},
	)), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_calls_total", Help: "Decisions made, by service.",
	}, []string{"service"})
	verdicts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_verdicts_total", Help: "Verdicts by service, outcome (allow, deny, would_block) and reason.",
	}, []string{"service", "outcome", "reason"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "vigil_decision_seconds",
		Help:    "Time spent deciding, from the message's arrival to the reply being built (gRPC transport excluded).",
		Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 1e-2},
	}, []string{"service"})
	protoErr := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_protocol_errors_total", Help: "Malformed or out-of-order messages from Envoy, by service.",
	}, []string{"service"})
	m := &metrics{
		reg:      reg,
		services: map[string]*serviceMetrics{},
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_panics_total", Help: "Panics recovered in gRPC and admin HTTP handlers.",
		}),
	}
	m.attacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_attacks_total", Help: "Attacks detected, by API, type and action.",
	}, []string{"api", "type", "action"})
	reg.MustRegister(calls, verdicts, latency, protoErr, m.panics, m.attacks)
	for _, svc := range []string{envoy.ServiceExtProc, envoy.ServiceExtAuthz} {
		sm := &serviceMetrics{calls: calls.WithLabelValues(svc), latency: latency.WithLabelValues(svc), protoErr: protoErr.WithLabelValues(svc)}
		for _, o := range detect.Outcomes() {
			var byReason []prometheus.Counter
			for _, r := range detect.Reasons() {
				byReason = append(byReason, verdicts.WithLabelValues(svc, o.String(), r.String()))
			}
			sm.verdicts = append(sm.verdicts, byReason)
		}
		m.services[svc] = sm
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_queue_depth", Help: "Transaction records waiting for detection."},
			func() float64 { return float64(q.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_queue_capacity", Help: "Capacity of the transaction queue."},
			func() float64 { return float64(q.Cap()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vigil_queue_dropped_total", Help: "Transaction records dropped because the queue was full."},
			func() float64 { return float64(q.Dropped()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vigil_queue_pushed_total", Help: "Transaction records queued for detection."},
			func() float64 { return float64(q.Pushed()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_blocklist_entries", Help: "Entries on the block list (expired ones not yet swept included)."},
			func() float64 { return float64(block.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_allowlist_entries", Help: "Entries on the allow list (expired ones not yet swept included)."},
			func() float64 { return float64(allow.Len()) }),
	)
	return m
}

// watchInventory exports what the API inventory turned away or gave up.
func (m *metrics) watchInventory(inv *observe.Inventory) {
	overflow := func(what string, f func() uint64) prometheus.CounterFunc {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "vigil_inventory_overflow_total", Help: "Calls not recorded in the API inventory because it was full, by what was new (api, endpoint).",
			ConstLabels: prometheus.Labels{"new": what},
		}, func() float64 { return float64(f()) })
	}
	m.reg.MustRegister(
		overflow("api", inv.OverflowAPIs),
		overflow("endpoint", inv.OverflowEndpoints),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vigil_inventory_evicted_endpoints_total",
			Help: "Endpoints never answered 2xx or 3xx given up at the per-API limit for one that was."},
			func() float64 { return float64(inv.EvictedEndpoints()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vigil_inventory_misses_total",
			Help: "Calls to paths that are no endpoint answered 400, 404 or 405 (kept out of the inventory)."},
			func() float64 { return float64(inv.Misses()) }),
	)
}

var _ envoy.Metrics = (*metrics)(nil)

// Decision implements envoy.Metrics.
func (m *metrics) Decision(service string, o detect.Outcome, r detect.Reason, elapsed time.Duration) {
	sm := m.services[service]
	if sm == nil {
		return
	}
	sm.calls.Inc()
	sm.latency.Observe(elapsed.Seconds())
	if int(o) < len(sm.verdicts) && int(r) < len(sm.verdicts[o]) {
		sm.verdicts[o][r].Inc()
	}
}

// ProtocolError implements envoy.Metrics.
func (m *metrics) ProtocolError(service, _ string) {
	if sm := m.services[service]; sm != nil {
		sm.protoErr.Inc()
	}
}

// attack counts a detected attack. API names are bounded by
// discovery.max_apis, types and actions are fixed sets.
func (m *metrics) attack(a *detect.Attack) {
	m.attacks.WithLabelValues(a.API, string(a.Type), a.Action).Inc()
}

// streams exports the gRPC stream limit's open and refused counts.
func (m *metrics) streams(l *streamLimit) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_grpc_streams_open", Help: "gRPC streams open across all connections (grpc.max_streams bounds them)."},
			func() float64 { return float64(l.open.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vigil_grpc_streams_refused_total", Help: "gRPC streams refused with RESOURCE_EXHAUSTED because grpc.max_streams were open."},
			func() float64 { return float64(l.refused.Load()) }),
	)
}

// stateStats are the behaviour engine's counts (behaviour.Engine.Stats).
type stateStats struct {
	States    [detect.NumKinds]int64 // tracked (API, identity) states by identity kind
	Evictions uint64                 // states forgotten to stay within the budget or max_states
	Bytes     int64                  // their estimated size
}

// memorySources are what the memory metrics read at scrape time; a nil
// function leaves its series out.
type memorySources struct {
	budget    config.Budget
	states    func() stateStats
	forensics func() int64 // bytes
	inventory func() int64
	attacks   func() int64
}

// memoryCollector exports the tracked states, their evictions and the
// estimated size of each structure under detection.max_memory, read once
// per scrape: the engine's counts take a lock per shard, so one read serves
// every series.
type memoryCollector struct {
	src                                      memorySources
	states, evictions, estimated, budgetDesc *prometheus.Desc
}

func newMemoryCollector(src memorySources) *memoryCollector {
	return &memoryCollector{
		src: src,
		states: prometheus.NewDesc("vigil_tracked_states",
			"Tracked (API, identity) behaviour states, by identity kind.", []string{"kind"}, nil),
		evictions: prometheus.NewDesc("vigil_state_evictions_total",
			"Behaviour states forgotten, least recently seen first, to stay within detection.max_memory or detection.max_states: an evicted identity starts again.", nil, nil),
		estimated: prometheus.NewDesc("vigil_memory_estimated_bytes",
			"Estimated memory of the structures that grow with identities and endpoints, by structure (states, forensics, inventory, attacks).", []string{"structure"}, nil),
		budgetDesc: prometheus.NewDesc("vigil_memory_budget_bytes",
			"detection.max_memory by share (states, forensics, and the rest for the count-bounded structures); their sum is max_memory.", []string{"structure"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *memoryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.states
	ch <- c.evictions
	ch <- c.estimated
	ch <- c.budgetDesc
}

// Collect implements prometheus.Collector.
func (c *memoryCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, label string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, label)
	}
	if f := c.src.states; f != nil {
		st := f()
		for _, k := range detect.Kinds() {
			gauge(c.states, float64(st.States[k]), k.String())
		}
		ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(st.Evictions))
		gauge(c.estimated, float64(st.Bytes), "states")
	}
	for _, s := range []struct {
		name string
		f    func() int64
	}{{"forensics", c.src.forensics}, {"inventory", c.src.inventory}, {"attacks", c.src.attacks}} {
		if s.f != nil {
			gauge(c.estimated, float64(s.f()), s.name)
		}
	}
	b := c.src.budget
	gauge(c.budgetDesc, float64(b.States), "states")
	gauge(c.budgetDesc, float64(b.Forensics), "forensics")
	gauge(c.budgetDesc, float64(b.Rest), "rest")
}
