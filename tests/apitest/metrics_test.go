package apitest

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/assistantd/assistantd/db"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/openai/openai-go/v3"
)

var metricsLine = regexp.MustCompile(`metrics listening on (http://\S+/metrics)`)

// scrape reads the metrics endpoint and parses its text format.
func scrape(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", res.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	return fams
}

// series finds the one series of family name whose labels include want,
// failing the test if there is not exactly one.
func series(t testing.TB, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no %s in the metrics", name)
	}
	found := matching(f, want)
	if len(found) != 1 {
		var all []string
		for _, m := range f.Metric {
			all = append(all, m.String())
		}
		t.Fatalf("%d series of %s with %v, want 1; all:\n%s", len(found), name, want, strings.Join(all, "\n"))
	}
	return found[0]
}

// matching returns f's series whose labels include want.
func matching(f *dto.MetricFamily, want map[string]string) []*dto.Metric {
	var found []*dto.Metric
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && labels[k] == v
		}
		if match {
			found = append(found, m)
		}
	}
	return found
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}

// A streamed run whose function a webhook answers: /metrics on its own
// listener shows the stream and the run while the tool runs, and
// afterwards the request, run, upstream, token and tool series with their
// labels and counts. The main listener does not serve the metrics.
func TestMetrics(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t, "--webhook-allow-networks", "127.0.0.0/8", "--metrics-addr", "127.0.0.1:0")
	m := metricsLine.FindStringSubmatch(s.out.String())
	if m == nil {
		t.Fatalf("no metrics address in the output:\n%s", s.out.String())
	}
	metricsURL := m[1]

	res, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode == http.StatusOK || strings.Contains(string(body), "http_server_request_duration_seconds") {
		t.Fatalf("the main listener served /metrics without credentials: %d\n%.300s", res.StatusCode, body)
	}

	// The webhook holds the run until the test has looked at it mid-run.
	hold := make(chan struct{})
	h := newHookReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
		answerOutput("18C")(n, w, r)
	})
	asst := newWebhookAssistant(t, s)
	h.configure(t, s, asst, "get_weather", "")
	thread := threadWith(t, s, `metered [[call get_weather {"city":"Oslo"}]]`)

	ctx, cancel := context.WithTimeout(context.Background(), streamDeadline)
	defer cancel()
	stream := s.Client.Beta.Threads.Runs.NewStreaming(ctx, thread, openai.BetaThreadRunNewParams{AssistantID: asst})
	events := make(chan string, 256)
	go func() {
		defer close(events)
		for stream.Next() {
			events <- stream.Current().Event
		}
	}()
	h.waitArrival(t)
	mid := scrape(t, metricsURL)
	if v := value(series(t, mid, "assistantd_sse_subscribers", nil)); v != 1 {
		t.Errorf("assistantd_sse_subscribers = %v mid-run, want 1", v)
	}
	if v := value(series(t, mid, "assistantd_runs_active", nil)); v != 1 {
		t.Errorf("assistantd_runs_active = %v mid-run, want 1", v)
	}
	close(hold)
	last := ""
	for ev := range events {
		last = ev
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if last != "thread.run.completed" {
		t.Fatalf("the stream ended with %q", last)
	}

	// The stream's request is counted when its connection is done, just
	// after its last event (a detached stream counts at its end, not when
	// the handler returns), and the run stops counting as active when its
	// worker returns, just after publishing its end: poll for all three.
	streamRoute := map[string]string{"http_route": "/v1/threads/:thread_id/runs", "http_request_method": "POST",
		"http_response_status_code": "200"}
	var fams map[string]*dto.MetricFamily
	for deadline := time.Now().Add(runDeadline); ; time.Sleep(20 * time.Millisecond) {
		fams = scrape(t, metricsURL)
		f, a := fams["assistantd_sse_subscribers"], fams["assistantd_runs_active"]
		counted := fams["http_server_request_duration_seconds"] != nil && len(matching(fams["http_server_request_duration_seconds"], streamRoute)) == 1
		if f != nil && value(f.Metric[0]) == 0 && a != nil && value(a.Metric[0]) == 0 && counted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stream or the run stayed counted after it ended, or the stream's request was never counted")
		}
	}
	type check struct {
		name   string
		labels map[string]string
		want   float64
	}
	checks := []check{
		{"http_server_request_duration_seconds", streamRoute, 1},
		{"http_server_request_duration_seconds", map[string]string{"http_route": "/v1/threads", "http_request_method": "POST",
			"http_response_status_code": "200"}, 1},
		{"assistantd_runs_finished_total", map[string]string{"status": "completed"}, 1},
		{"assistantd_run_duration_seconds", map[string]string{"status": "completed"}, 1},
		{"assistantd_run_queue_wait_seconds", nil, 1},
		{"assistantd_runs_queued", nil, 0},
		{"assistantd_runs_active", nil, 0},
		{"assistantd_upstream_requests_total", map[string]string{"gen_ai_operation_name": "chat", "gen_ai_provider_name": "default",
			"gen_ai_request_model": "fake-model", "outcome": "ok", "project": db.DefaultProjectID}, 2},
		{"gen_ai_client_operation_duration_seconds", map[string]string{"gen_ai_provider_name": "default",
			"gen_ai_request_model": "fake-model", "error_type": ""}, 2},
		{"gen_ai_server_time_to_first_token_seconds", map[string]string{"gen_ai_request_model": "fake-model"}, 2},
		{"gen_ai_client_token_usage", map[string]string{"gen_ai_request_model": "fake-model", "gen_ai_token_type": "input", "project": db.DefaultProjectID}, 2},
		{"gen_ai_client_token_usage", map[string]string{"gen_ai_request_model": "fake-model", "gen_ai_token_type": "output", "project": db.DefaultProjectID}, 2},
		{"gen_ai_execute_tool_duration_seconds", map[string]string{"gen_ai_tool_name": "get_weather", "outcome": "ok"}, 1},
		{"assistantd_inspector_dropped_total", nil, 0},
		{"assistantd_sse_subscribers", nil, 0},
	}
	// SQLite has one writer; PostgreSQL one pool of --db-max-conns (20).
	if onPostgres {
		checks = append(checks, check{"assistantd_db_connections_max_open", map[string]string{"pool": "postgres"}, 20})
	} else {
		checks = append(checks, check{"assistantd_db_connections_max_open", map[string]string{"pool": "writer"}, 1})
	}
	for _, c := range checks {
		if got := value(series(t, fams, c.name, c.labels)); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Routes are templates: no id ever becomes a label.
	for _, m := range fams["http_server_request_duration_seconds"].Metric {
		for _, l := range m.Label {
			if l.GetName() == "http_route" && regexp.MustCompile(`(asst|thread|run|msg|step)_[A-Za-z0-9]{16,}`).MatchString(l.GetValue()) {
				t.Errorf("an id in http_route: %q", l.GetValue())
			}
		}
	}
	if fams["go_goroutines"] == nil || fams["process_resident_memory_bytes"] == nil {
		t.Error("no Go runtime or process metrics")
	}
}

var profilerLine = regexp.MustCompile(`profiler listening on (http://\S+/debug/pprof/)`)

// --debug-addr serves Go's profiler on its own loopback listener, and
// refuses any other address.
func TestDebugAddr(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--debug-addr", "127.0.0.1:0")
	m := profilerLine.FindStringSubmatch(s.out.String())
	if m == nil {
		t.Fatalf("no profiler address in the output:\n%s", s.out.String())
	}
	for _, path := range []string{"", "heap?debug=1", "goroutine?debug=1"} {
		res, err := http.Get(m[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("GET %s: %d", m[1]+path, res.StatusCode)
		}
	}
	res, err := http.Get(s.URL + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode == http.StatusOK {
		t.Error("the main listener serves the profiler")
	}

	out, err := exec.Command(serverBin, "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--debug-addr", "0.0.0.0:0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "loopback") {
		t.Errorf("--debug-addr 0.0.0.0:0: %v\n%s", err, out)
	}
}

// Vector store ingestion and the code interpreter's kernels on /metrics:
// the ingestion of two files is timed by outcome, one completed and one
// failed, and the backlog is empty after; the kernel gauges exist, at 0
// while no code ran; on SQLite the group commit counts its writes.
func TestMetricsIngestionAndKernels(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--metrics-addr", "127.0.0.1:0")
	m := metricsLine.FindStringSubmatch(s.out.String())
	if m == nil {
		t.Fatalf("no metrics address in the output:\n%s", s.out.String())
	}
	ctx := context.Background()
	good := uploadText(t, s, "good.txt", "The capybara is the largest living rodent.")
	bad, err := s.Client.Files.New(ctx, openai.FileNewParams{
		File: openai.File(strings.NewReader("\x00\x01\x02 not a document"), "bad.pdf", "application/pdf"), Purpose: openai.FilePurposeAssistants})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := s.Client.VectorStores.New(ctx, openai.VectorStoreNewParams{Name: openai.String("metered"), FileIDs: []string{good, bad.ID}})
	if err != nil {
		t.Fatal(err)
	}
	vs = waitStore(t, s, vs.ID)
	if vs.FileCounts.Completed != 1 || vs.FileCounts.Failed != 1 {
		t.Fatalf("after ingestion: %s", vs.RawJSON())
	}
	// The duration is observed as the worker finishes with the file, just
	// after its status is written: poll for it.
	var fams map[string]*dto.MetricFamily
	for deadline := time.Now().Add(runDeadline); ; time.Sleep(20 * time.Millisecond) {
		fams = scrape(t, m[1])
		if f := fams["assistantd_vector_store_ingestion_duration_seconds"]; f != nil && len(f.Metric) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the two ingestions were not both observed")
		}
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"assistantd_vector_store_ingestion_duration_seconds", map[string]string{"outcome": "completed"}, 1},
		{"assistantd_vector_store_ingestion_duration_seconds", map[string]string{"outcome": "failed"}, 1},
		{"assistantd_vector_store_ingestion_backlog", nil, 0},
		{"assistantd_vector_store_ingestion_active", nil, 0},
		{"assistantd_code_kernels_running", nil, 0},
		{"assistantd_code_kernels_pooled", nil, 0},
	}
	for _, c := range checks {
		if got := value(series(t, fams, c.name, c.labels)); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	groups := value(series(t, fams, "assistantd_db_write_groups_total", nil))
	writes := value(series(t, fams, "assistantd_db_group_writes_total", nil))
	if onPostgres {
		if groups != 0 || writes != 0 {
			t.Errorf("group commit on PostgreSQL: %v groups, %v writes", groups, writes)
		}
	} else if groups < 1 || writes < groups {
		t.Errorf("group commit: %v groups of %v writes", groups, writes)
	}
}
