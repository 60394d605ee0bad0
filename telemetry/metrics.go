// Package telemetry holds assistantd's metrics (a Prometheus registry and
// the series the server reports) and its tracer setup (OpenTelemetry,
// configured by the standard OTEL_* environment variables).
//
// Names follow OpenTelemetry's semantic conventions as Prometheus spells
// them (dots become underscores, units become suffixes):
// http.server.request.duration is http_server_request_duration_seconds
// with http_route, http_request_method and http_response_status_code; the
// GenAI client metrics keep their gen_ai_ names and attributes
// (gen_ai_request_model, gen_ai_provider_name, gen_ai_token_type,
// gen_ai_tool_name). assistantd's own series start with assistantd_.
//
// Labels stay low-cardinality: route templates, never ids of objects;
// models, tool names (which clients choose) and projects (upstream
// requests and tokens carry the run's project id) pass through a bounded
// set, past which they are reported as "other".
//
// Every method of *Metrics accepts a nil receiver and then does nothing,
// so code paths that may run without metrics need no checks.
package telemetry

import (
	"database/sql"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Bucket boundaries as OpenTelemetry's conventions advise for each metric.
var (
	httpBuckets   = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
	genAIBuckets  = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	ttftBuckets   = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
	tokenBuckets  = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
	runBuckets    = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	searchBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
)

// Metrics is the server's metric set and the registry that serves it.
type Metrics struct {
	reg *prometheus.Registry

	httpDuration *prometheus.HistogramVec

	runsFinished *prometheus.CounterVec
	runQueueWait prometheus.Histogram
	runDuration  *prometheus.HistogramVec

	upstreamRequests *prometheus.CounterVec
	opDuration       *prometheus.HistogramVec
	tokenUsage       *prometheus.HistogramVec
	ttft             *prometheus.HistogramVec

	toolDuration *prometheus.HistogramVec

	sseStreams prometheus.Gauge

	searchDuration *prometheus.HistogramVec

	ingestDuration *prometheus.HistogramVec

	models, tools, projects *bounded
}

// NewMetrics returns the metric set, with Go runtime and process metrics.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), models: newBounded(64), tools: newBounded(64), projects: newBounded(64)}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }

	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "http_server_request_duration_seconds",
		Help:    "Duration of HTTP server requests (a stream's whole length), by route template.",
		Buckets: httpBuckets}, []string{"http_route", "http_request_method", "http_response_status_code"})
	f(m.httpDuration)

	m.runsFinished = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "assistantd_runs_finished_total",
		Help: "Runs that reached a terminal status, by status."}, []string{"status"})
	m.runQueueWait = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "assistantd_run_queue_wait_seconds",
		Help:    "Time a run waited queued (created, or given its tool outputs) before a worker took it up.",
		Buckets: searchBuckets})
	m.runDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "assistantd_run_duration_seconds",
		Help:    "Time from a run's creation to its terminal status, by status.",
		Buckets: runBuckets}, []string{"status"})
	f(m.runsFinished)
	f(m.runQueueWait)
	f(m.runDuration)

	up := []string{"gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"}
	m.upstreamRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "assistantd_upstream_requests_total",
		Help: "Requests to model providers (each attempt), by provider, model, outcome and project."}, append(up, "outcome", "project"))
	m.opDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gen_ai_client_operation_duration_seconds",
		Help: "Duration of model provider requests (to the end of a stream).", Buckets: genAIBuckets}, append(up, "error_type"))
	m.tokenUsage = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gen_ai_client_token_usage",
		Help: "Tokens per model provider request, by token type (input, output) and project.", Buckets: tokenBuckets}, append(up, "gen_ai_token_type", "project"))
	m.ttft = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gen_ai_server_time_to_first_token_seconds",
		Help: "Time from sending a streamed request to its first content or tool-call chunk.", Buckets: ttftBuckets}, up)
	f(m.upstreamRequests)
	f(m.opDuration)
	f(m.tokenUsage)
	f(m.ttft)

	m.toolDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gen_ai_execute_tool_duration_seconds",
		Help:    "Duration of server-side tool executions, by tool and outcome.",
		Buckets: genAIBuckets}, []string{"gen_ai_operation_name", "gen_ai_tool_name", "outcome"})
	f(m.toolDuration)

	m.sseStreams = prometheus.NewGauge(prometheus.GaugeOpts{Name: "assistantd_sse_subscribers",
		Help: "Server-Sent Event streams open (API run streams and the web app's live views)."})
	f(m.sseStreams)

	m.searchDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "assistantd_vector_store_search_duration_seconds",
		Help: "Duration of file_search searches over vector stores, by outcome.", Buckets: searchBuckets}, []string{"outcome"})
	f(m.searchDuration)

	m.ingestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "assistantd_vector_store_ingestion_duration_seconds",
		Help:    "Time to ingest one vector store file (read, extract, chunk, embed, store), by outcome (completed, failed).",
		Buckets: runBuckets}, []string{"outcome"})
	f(m.ingestDuration)
	return m
}

// Registry returns the registry, for further collectors and for tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Gauge registers a gauge whose value fn reads at each scrape.
func (m *Metrics) Gauge(name, help string, fn func() float64) {
	if m == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

// Counter registers a counter whose value fn reads at each scrape.
func (m *Metrics) Counter(name, help string, fn func() float64) {
	if m == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, fn))
}

// DBPools registers the database pools' figures (connections, waits for
// one: the write queue on SQLite's single writer), read at each scrape.
func (m *Metrics) DBPools(stats func() map[string]sql.DBStats) {
	if m == nil {
		return
	}
	m.reg.MustRegister(&dbStats{stats: stats})
}

// HTTPRequest records one finished HTTP request.
func (m *Metrics) HTTPRequest(route, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	m.httpDuration.WithLabelValues(route, method, strconv.Itoa(status)).Observe(d.Seconds())
}

// SSEOpened and SSEClosed count open event streams.
func (m *Metrics) SSEOpened() {
	if m != nil {
		m.sseStreams.Inc()
	}
}

// SSEClosed: see SSEOpened.
func (m *Metrics) SSEClosed() {
	if m != nil {
		m.sseStreams.Dec()
	}
}

// RunQueued records how long a run waited for a worker.
func (m *Metrics) RunQueued(wait time.Duration) {
	if m != nil {
		m.runQueueWait.Observe(wait.Seconds())
	}
}

// RunFinished records a run's terminal status and its age then.
func (m *Metrics) RunFinished(status string, age time.Duration) {
	if m == nil {
		return
	}
	m.runsFinished.WithLabelValues(status).Inc()
	m.runDuration.WithLabelValues(status).Observe(age.Seconds())
}

// Upstream is one finished request to a model provider.
type Upstream struct {
	Provider, Model string
	Project         string // the id of the run's project
	// Outcome is "ok", or what went wrong: "rate_limited", "server_error",
	// "client_error", "transport_error", "cancelled".
	Outcome  string
	Duration time.Duration
	// FirstToken is the time to the first content chunk of a stream; 0
	// when none came or the request was not streamed.
	FirstToken                time.Duration
	InputTokens, OutputTokens int64
	HasUsage                  bool
}

// UpstreamRequest records one upstream request.
func (m *Metrics) UpstreamRequest(u Upstream) {
	if m == nil {
		return
	}
	model, project := m.models.label(u.Model), m.projects.label(u.Project)
	m.upstreamRequests.WithLabelValues("chat", u.Provider, model, u.Outcome, project).Inc()
	errType := ""
	if u.Outcome != "ok" {
		errType = u.Outcome
	}
	m.opDuration.WithLabelValues("chat", u.Provider, model, errType).Observe(u.Duration.Seconds())
	if u.FirstToken > 0 {
		m.ttft.WithLabelValues("chat", u.Provider, model).Observe(u.FirstToken.Seconds())
	}
	if u.HasUsage {
		m.tokenUsage.WithLabelValues("chat", u.Provider, model, "input", project).Observe(float64(u.InputTokens))
		m.tokenUsage.WithLabelValues("chat", u.Provider, model, "output", project).Observe(float64(u.OutputTokens))
	}
}

// ToolExecuted records one server-side tool execution.
func (m *Metrics) ToolExecuted(tool string, ok bool, d time.Duration) {
	if m == nil {
		return
	}
	m.toolDuration.WithLabelValues("execute_tool", m.tools.label(tool), outcome(ok)).Observe(d.Seconds())
}

// Searched records one vector store search.
func (m *Metrics) Searched(ok bool, d time.Duration) {
	if m != nil {
		m.searchDuration.WithLabelValues(outcome(ok)).Observe(d.Seconds())
	}
}

// Ingested records one vector store file's ingestion.
func (m *Metrics) Ingested(outcome string, d time.Duration) {
	if m != nil {
		m.ingestDuration.WithLabelValues(outcome).Observe(d.Seconds())
	}
}

func outcome(ok bool) string {
	if ok {
		return "ok"
	}
	return "error"
}

// bounded passes through the first n distinct values it sees and reports
// every later one as "other", so a label clients choose cannot grow the
// series without end.
type bounded struct {
	mu   sync.Mutex
	max  int
	seen map[string]bool
}

func newBounded(n int) *bounded { return &bounded{max: n, seen: map[string]bool{}} }

func (b *bounded) label(v string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen[v] {
		return v
	}
	if len(b.seen) >= b.max {
		return "other"
	}
	b.seen[v] = true
	return v
}

// dbStats reports sql.DBStats of named pools.
type dbStats struct {
	stats func() map[string]sql.DBStats
}

var (
	dbOpen     = prometheus.NewDesc("assistantd_db_connections_open", "Connections open, by pool.", []string{"pool"}, nil)
	dbInUse    = prometheus.NewDesc("assistantd_db_connections_in_use", "Connections in use, by pool.", []string{"pool"}, nil)
	dbIdle     = prometheus.NewDesc("assistantd_db_connections_idle", "Idle connections, by pool.", []string{"pool"}, nil)
	dbMaxOpen  = prometheus.NewDesc("assistantd_db_connections_max_open", "Most connections the pool opens.", []string{"pool"}, nil)
	dbWaits    = prometheus.NewDesc("assistantd_db_connection_waits_total", "Waits for a free connection, by pool (on the writer: the write queue).", []string{"pool"}, nil)
	dbWaitTime = prometheus.NewDesc("assistantd_db_connection_wait_seconds_total", "Time spent waiting for a free connection, by pool.", []string{"pool"}, nil)
)

func (d *dbStats) Describe(ch chan<- *prometheus.Desc) {
	for _, desc := range []*prometheus.Desc{dbOpen, dbInUse, dbIdle, dbMaxOpen, dbWaits, dbWaitTime} {
		ch <- desc
	}
}

func (d *dbStats) Collect(ch chan<- prometheus.Metric) {
	for pool, s := range d.stats() {
		ch <- prometheus.MustNewConstMetric(dbOpen, prometheus.GaugeValue, float64(s.OpenConnections), pool)
		ch <- prometheus.MustNewConstMetric(dbInUse, prometheus.GaugeValue, float64(s.InUse), pool)
		ch <- prometheus.MustNewConstMetric(dbIdle, prometheus.GaugeValue, float64(s.Idle), pool)
		ch <- prometheus.MustNewConstMetric(dbMaxOpen, prometheus.GaugeValue, float64(s.MaxOpenConnections), pool)
		ch <- prometheus.MustNewConstMetric(dbWaits, prometheus.CounterValue, float64(s.WaitCount), pool)
		ch <- prometheus.MustNewConstMetric(dbWaitTime, prometheus.CounterValue, s.WaitDuration.Seconds(), pool)
	}
}
