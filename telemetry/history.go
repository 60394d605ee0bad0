package telemetry

import (
	"context"
	"math"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// History keeps the last hour of a few of the metrics, sampled from the
// same registry /metrics serves, in a ring buffer in memory: the web
// app's System page draws them. Nothing is stored.
type History struct {
	m     *Metrics
	every time.Duration
	now   func() time.Time

	mu      sync.Mutex
	ring    []Sample
	next    int
	full    bool
	last    totals // the counters at the last stored sample
	started bool
}

// Sample is the figures at one moment; the upstream ones cover the time
// since the sample before.
type Sample struct {
	At time.Time
	// Queued and Active are the runs waiting for a worker and executing.
	Queued, Active float64
	// KernelsRunning and KernelsPooled are the code interpreter's Python
	// kernels bound to a thread and waiting in the pool.
	KernelsRunning, KernelsPooled float64
	// Backlog is the vector store files waiting for or in ingestion.
	Backlog float64
	// Requests and Errors count upstream requests since the sample
	// before, and those that did not succeed.
	Requests, Errors float64
	// Latency is their mean duration in seconds (NaN when there were
	// none).
	Latency float64
}

// ErrorRate is the share of the sample's upstream requests that failed
// (NaN when there were none).
func (s Sample) ErrorRate() float64 {
	if s.Requests == 0 {
		return math.NaN()
	}
	return s.Errors / s.Requests
}

// totals are the cumulative counters a sample's interval figures are
// differences of.
type totals struct {
	requests, errors, durationSum, durationCount float64
}

// HistoryWindow is how far back a History reaches.
const HistoryWindow = time.Hour

// NewHistory returns a history of m sampled every every (over
// HistoryWindow). Start samples it.
func NewHistory(m *Metrics, every time.Duration) *History {
	n := max(int(HistoryWindow/every), 2)
	return &History{m: m, every: every, now: time.Now, ring: make([]Sample, n)}
}

// Every is the interval between stored samples.
func (h *History) Every() time.Duration { return h.every }

// Start stores a sample now and then every interval until ctx ends.
func (h *History) Start(ctx context.Context) {
	h.store()
	go func() {
		t := time.NewTicker(h.every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				h.store()
			}
		}
	}()
}

func (h *History) store() {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, tot := h.sample()
	h.ring[h.next] = s
	h.next = (h.next + 1) % len(h.ring)
	h.full = h.full || h.next == 0
	h.last, h.started = tot, true
}

// Samples returns the stored samples of the last hour, oldest first, and
// a fresh one for now (its upstream figures since the last stored one).
func (h *History) Samples() []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Sample
	if h.full {
		out = append(out, h.ring[h.next:]...)
	}
	out = append(out, h.ring[:h.next]...)
	now, _ := h.sample()
	return append(out, now)
}

// sample reads the registry; h.mu is held.
func (h *History) sample() (Sample, totals) {
	s := Sample{At: h.now(), Latency: math.NaN()}
	var tot totals
	fams, _ := h.m.reg.Gather() // a collector's error leaves its series out
	for _, f := range fams {
		switch f.GetName() {
		case "assistantd_runs_queued":
			s.Queued = gaugeSum(f)
		case "assistantd_runs_active":
			s.Active = gaugeSum(f)
		case "assistantd_code_kernels_running":
			s.KernelsRunning = gaugeSum(f)
		case "assistantd_code_kernels_pooled":
			s.KernelsPooled = gaugeSum(f)
		case "assistantd_vector_store_ingestion_backlog":
			s.Backlog = gaugeSum(f)
		case "assistantd_upstream_requests_total":
			for _, m := range f.Metric {
				v := m.GetCounter().GetValue()
				tot.requests += v
				if label(m, "outcome") != "ok" {
					tot.errors += v
				}
			}
		case "gen_ai_client_operation_duration_seconds":
			for _, m := range f.Metric {
				tot.durationSum += m.GetHistogram().GetSampleSum()
				tot.durationCount += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	if h.started {
		s.Requests, s.Errors = tot.requests-h.last.requests, tot.errors-h.last.errors
		if n := tot.durationCount - h.last.durationCount; n > 0 {
			s.Latency = (tot.durationSum - h.last.durationSum) / n
		}
	}
	return s, tot
}

func gaugeSum(f *dto.MetricFamily) float64 {
	var v float64
	for _, m := range f.Metric {
		v += m.GetGauge().GetValue()
	}
	return v
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
