package telemetry

import (
	"math"
	"testing"
	"time"
)

// The history reads the figures /metrics serves: gauges as they are, the
// upstream requests, errors and mean latency of each interval; it keeps
// an hour's samples, oldest first, and adds a fresh one for now.
func TestHistory(t *testing.T) {
	m := NewMetrics()
	queued := 3.0
	m.Gauge("assistantd_runs_queued", "", func() float64 { return queued })
	m.Gauge("assistantd_vector_store_ingestion_backlog", "", func() float64 { return 7 })
	h := NewHistory(m, 20*time.Minute) // 3 samples an hour
	clock := time.Unix(1_000_000, 0)
	h.now = func() time.Time { return clock }
	h.store() // the first sample: no interval yet
	m.UpstreamRequest(Upstream{Provider: "p", Model: "x", Outcome: "ok", Duration: time.Second})
	m.UpstreamRequest(Upstream{Provider: "p", Model: "x", Outcome: "server_error", Duration: 3 * time.Second})
	clock = clock.Add(time.Minute)
	queued = 1
	got := h.Samples()
	if len(got) != 2 {
		t.Fatalf("%d samples, want the stored one and now", len(got))
	}
	first, now := got[0], got[1]
	if first.Queued != 3 || first.Requests != 0 || !math.IsNaN(first.Latency) || !math.IsNaN(first.ErrorRate()) {
		t.Errorf("first sample %+v", first)
	}
	if now.Queued != 1 || now.Backlog != 7 || now.Requests != 2 || now.Errors != 1 || now.Latency != 2 ||
		now.ErrorRate() != 0.5 || !now.At.Equal(clock) {
		t.Errorf("now %+v, want 1 queued, 7 in the backlog, 2 requests, 1 error, 2 s mean", now)
	}
	// The ring keeps the last three; each stored sample's interval starts
	// at the one before.
	for i := range 4 {
		clock = clock.Add(20 * time.Minute)
		if i == 0 {
			m.UpstreamRequest(Upstream{Provider: "p", Model: "x", Outcome: "ok", Duration: time.Second})
		}
		h.store()
	}
	got = h.Samples()
	if len(got) != 4 {
		t.Fatalf("%d samples after wrapping, want 3 and now", len(got))
	}
	for i := 1; i < len(got); i++ {
		if !got[i].At.After(got[i-1].At) && i < len(got)-1 {
			t.Errorf("samples out of order: %v then %v", got[i-1].At, got[i].At)
		}
	}
	for _, s := range got {
		if s.Requests != 0 {
			t.Errorf("sample at %v counts %v requests: the ring should have dropped the interval that had 3", s.At, s.Requests)
		}
	}
}
