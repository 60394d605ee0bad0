package replicas

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// scrapeValue reads one sample of the replica's /metrics (0 when absent).
func scrapeValue(t *testing.T, r *replica, sample string) float64 {
	t.Helper()
	res, err := http.Get(r.metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRunMetricsCountedOnce: a run created and streamed through an API
// replica and executed by a worker is counted once in the deployment's
// run metrics, by the worker that started and ended it, though the API
// replica's readers followed every event.
func TestRunMetricsCountedOnce(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", "--role", "api", "--metrics-addr", "127.0.0.1:0")
	b := c.start("b", "--role", "worker", "--metrics-addr", "127.0.0.1:0")
	asst := newAssistant(t, a)
	got := readStream(t, a.Client.Beta.Threads.NewAndRunStreaming(streamContext(t), streamParams(asst, "count me [[chunks 5]]")), nil)
	if got.names[len(got.names)-1] != "thread.run.completed" {
		t.Fatalf("stream: %q", got.names)
	}
	// The worker counts as it hands its events to its own hub, which may
	// come after the API replica's reader had them.
	eventually(t, 5*time.Second, "the worker to count the run", func() bool {
		return scrapeValue(t, b, `assistantd_runs_finished_total{status="completed"}`) == 1
	})
	for _, s := range []struct {
		sample string
		a, b   float64
	}{
		{`assistantd_runs_finished_total{status="completed"}`, 0, 1},
		{`assistantd_run_queue_wait_seconds_count`, 0, 1},
	} {
		if va, vb := scrapeValue(t, a, s.sample), scrapeValue(t, b, s.sample); va != s.a || vb != s.b {
			t.Errorf("%s: API replica %v, worker %v; want %v and %v", s.sample, va, vb, s.a, s.b)
		}
	}
}
