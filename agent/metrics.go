package agent

import (
	"time"

	"github.com/assistantd/assistantd/telemetry"
)

// EnableMetrics makes the engine report to m: runs waiting for a worker
// and executing, queue waits and ends (learnt by the hub from the runs'
// events), upstream requests, tool executions, searches, and the
// inspector's queue and drops. Call it once, before Start, after
// EnableInspector.
func (e *Engine) EnableMetrics(m *telemetry.Metrics) {
	e.metrics = m
	e.hub.metrics = m
	m.Gauge("assistantd_runs_queued", "Runs waiting for a worker.", func() float64 {
		e.mu.Lock()
		defer e.mu.Unlock()
		return float64(len(e.pending))
	})
	m.Gauge("assistantd_runs_active", "Runs executing (a worker is on them).", func() float64 {
		e.mu.Lock()
		defer e.mu.Unlock()
		return float64(len(e.inflight))
	})
	if ins := e.inspector; ins != nil {
		m.Counter("assistantd_inspector_dropped_total",
			"Upstream exchanges (or their responses) the inspector did not record because its writer had fallen behind.",
			func() float64 { return float64(ins.Dropped()) })
		m.Gauge("assistantd_inspector_queue_bytes", "Bytes of upstream exchanges waiting for the inspector's writer.",
			func() float64 { _, b := ins.Queued(); return float64(b) })
	}
	for _, b := range e.builtins {
		if mb, ok := b.(interface{ enableMetrics(*telemetry.Metrics) }); ok {
			mb.enableMetrics(m)
		}
	}
}

// observeTool records a server-side tool execution that took since start.
func (e *Engine) observeTool(name string, err error, start time.Time) {
	e.metrics.ToolExecuted(name, err == nil, time.Since(start))
}
