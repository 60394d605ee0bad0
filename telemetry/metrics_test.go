package telemetry

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Models past the bound are reported as "other", so a client choosing
// model names cannot grow the series without end.
func TestModelLabelsAreBounded(t *testing.T) {
	m := NewMetrics()
	for i := range 100 {
		m.UpstreamRequest(Upstream{Provider: "p", Model: fmt.Sprintf("model-%d", i), Project: "proj_a", Outcome: "ok", Duration: time.Millisecond})
	}
	if got := testutil.CollectAndCount(m.upstreamRequests); got != 65 {
		t.Errorf("%d series for 100 models, want 64 and other", got)
	}
	if got := testutil.ToFloat64(m.upstreamRequests.WithLabelValues("chat", "p", "other", "ok", "proj_a")); got != 36 {
		t.Errorf("other = %v, want 36", got)
	}
}

// Projects past the bound are reported as "other" too.
func TestProjectLabelsAreBounded(t *testing.T) {
	m := NewMetrics()
	for i := range 100 {
		m.UpstreamRequest(Upstream{Provider: "p", Model: "m", Project: fmt.Sprintf("proj_%d", i), Outcome: "ok", Duration: time.Millisecond})
	}
	if got := testutil.CollectAndCount(m.upstreamRequests); got != 65 {
		t.Errorf("%d series for 100 projects, want 64 and other", got)
	}
	if got := testutil.ToFloat64(m.upstreamRequests.WithLabelValues("chat", "p", "m", "ok", "other")); got != 36 {
		t.Errorf("other = %v, want 36", got)
	}
	if got := testutil.ToFloat64(m.upstreamRequests.WithLabelValues("chat", "p", "m", "ok", "proj_7")); got != 1 {
		t.Errorf("proj_7 = %v, want 1", got)
	}
}

// A nil *Metrics is a valid, silent metric set.
func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.HTTPRequest("/", "GET", 200, time.Second)
	m.UpstreamRequest(Upstream{})
	m.ToolExecuted("x", true, time.Second)
	m.RunFinished("completed", time.Second)
	m.Gauge("x", "x", func() float64 { return 0 })
	m.SSEOpened()
}
