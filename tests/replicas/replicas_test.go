package replicas

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
)

var jsonUnmarshal = json.Unmarshal

var weatherTool = openai.AssistantToolParamOfFunction(shared.FunctionDefinitionParam{
	Name: "get_weather",
	Parameters: shared.FunctionParameters{"type": "object",
		"properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []string{"city"}},
})

func newAssistant(t *testing.T, r *replica) string {
	t.Helper()
	a, err := r.Client.Beta.Assistants.New(context.Background(), openai.BetaAssistantNewParams{Model: "fake-model",
		Tools: []openai.AssistantToolUnionParam{weatherTool}})
	if err != nil {
		t.Fatalf("create assistant: %v", err)
	}
	return a.ID
}

// createRun creates a thread with text and a run on it through r.
func createRun(t *testing.T, r *replica, asst, text string) (threadID, runID string) {
	t.Helper()
	run, err := r.Client.Beta.Threads.NewAndRun(context.Background(), openai.BetaThreadNewAndRunParams{AssistantID: asst,
		Thread: openai.BetaThreadNewAndRunParamsThread{Messages: []openai.BetaThreadNewAndRunParamsThreadMessage{{Role: "user",
			Content: openai.BetaThreadNewAndRunParamsThreadMessageContentUnion{OfString: openai.String(text)}}}}})
	if err != nil {
		t.Fatalf("create run through %s: %v", r.name, err)
	}
	return run.ThreadID, run.ID
}

// waitStatus polls the run through r until its status is want.
func waitStatus(t *testing.T, r *replica, threadID, runID string, timeout time.Duration, want openai.RunStatus) *openai.Run {
	t.Helper()
	var run *openai.Run
	eventually(t, timeout, fmt.Sprintf("run %s to be %s", runID, want), func() bool {
		var err error
		run, err = r.Client.Beta.Threads.Runs.Get(context.Background(), threadID, runID)
		if err != nil {
			t.Fatalf("get run through %s: %v", r.name, err)
		}
		return run.Status == want
	})
	return run
}

func words(n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = fmt.Sprintf("w%d", i)
	}
	return strings.Join(w, " ")
}

// assistantMessages lists the thread's assistant messages as
// "status: text", through r.
func assistantMessages(t *testing.T, r *replica, threadID string) []string {
	t.Helper()
	page, err := r.Client.Beta.Threads.Messages.List(context.Background(), threadID,
		openai.BetaThreadMessageListParams{Order: openai.BetaThreadMessageListParamsOrderAsc, Limit: openai.Int(100)})
	if err != nil {
		t.Fatalf("list messages: %v", err)
	}
	var out []string
	for _, m := range page.Data {
		if m.Role != "assistant" {
			continue
		}
		var text []string
		for _, c := range m.Content {
			if c.Type == "text" {
				text = append(text, c.Text.Value)
			}
		}
		out = append(out, string(m.Status)+": "+strings.Join(text, ""))
	}
	return out
}

// executing waits until a replica holds the run's lease and returns it.
func (c *cluster) executing(runID string) *replica {
	c.t.Helper()
	var h *replica
	eventually(c.t, 10*time.Second, "a replica to claim "+runID, func() bool {
		row := c.runRow(runID)
		h = c.holder(row.ClaimedBy)
		return row.Status == "in_progress" && h != nil
	})
	return h
}

// TestThirtyRunsExactlyOnce: 30 runs created at once through an API-only
// replica are executed by two worker replicas, each exactly once: one
// claim (attempt 1) and one upstream request per run.
func TestThirtyRunsExactlyOnce(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	api := c.start("api", "--role", "api")
	c.start("worker-1", "--role", "worker")
	c.start("worker-2", "--role", "worker")
	asst := newAssistant(t, api)
	type created struct{ thread, run string }
	runs := make([]created, 30)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Go(func() {
			th, id := createRun(t, api, asst, fmt.Sprintf("once %02d [[chunks 5]]", i))
			runs[i] = created{th, id}
		})
	}
	wg.Wait()
	for i, r := range runs {
		waitStatus(t, api, r.thread, r.run, 60*time.Second, openai.RunStatusCompleted)
		if n := len(c.watch.requests(fmt.Sprintf("once %02d", i))); n != 1 {
			t.Errorf("run %d: %d upstream requests, want 1", i, n)
		}
		if row := c.runRow(r.run); row.Attempts != 1 {
			t.Errorf("run %d: %d claims, want 1", i, row.Attempts)
		}
		if got := assistantMessages(t, api, r.thread); len(got) != 1 {
			t.Errorf("run %d: assistant messages %q", i, got)
		}
	}
	var apiClaims int
	if err := c.db.QueryRow(`SELECT count(*) FROM runs WHERE claimed_by LIKE $1`, fmt.Sprintf("%%-%d-%%", api.pid())).Scan(&apiClaims); err != nil {
		t.Fatal(err)
	}
	if apiClaims != 0 {
		t.Errorf("the API-only replica claimed %d runs", apiClaims)
	}
}

// TestKillTakeover: the replica executing a run is killed mid-answer;
// another replica resumes the run once its lease has expired, the
// interrupted message is not left behind, and the run completes once:
// the upstream saw one abandoned request and one finished answer.
func TestKillTakeover(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", "--run-lease", "1s")
	c.start("b", "--run-lease", "1s")
	asst := newAssistant(t, a)
	th, id := createRun(t, a, asst, "takeover [[slow 30ms]] [[chunks 60]]")
	holder := c.executing(id)
	eventually(t, 10*time.Second, "the answer to be streaming", func() bool {
		var n int
		_ = c.db.QueryRow(`SELECT count(*) FROM messages WHERE thread_id = $1 AND role = 'assistant'`, th).Scan(&n)
		return n == 1
	})
	holder.kill()
	killed := time.Now()
	survivor := a
	if holder == a {
		survivor = c.replicas[1]
	}
	eventually(t, 15*time.Second, "another replica to claim the run", func() bool {
		row := c.runRow(id)
		return row.Attempts == 2 && c.holder(row.ClaimedBy) == survivor
	})
	t.Logf("kill -9 to claim by another replica: %v (lease 1s)", time.Since(killed).Round(time.Millisecond))
	waitStatus(t, survivor, th, id, 30*time.Second, openai.RunStatusCompleted)
	if got, want := assistantMessages(t, survivor, th), []string{"completed: " + words(60)}; !slices.Equal(got, want) {
		t.Errorf("assistant messages %q, want %q", got, want)
	}
	reqs := c.watch.requests("takeover")
	var finished, abandoned int
	for _, r := range reqs {
		if r.finished {
			finished++
		} else {
			abandoned++
		}
	}
	if finished != 1 || abandoned != 1 {
		t.Errorf("upstream requests: %d finished, %d abandoned; want 1 and 1", finished, abandoned)
	}
}

// TestStalledReplicaFenced: a replica stopped (SIGSTOP) for longer than
// its lease loses the run to another; when it continues (SIGCONT) its
// late writes are refused, and the run's record holds only the new
// owner's work.
func TestStalledReplicaFenced(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", "--run-lease", "1s")
	c.start("b", "--run-lease", "1s")
	asst := newAssistant(t, a)
	th, id := createRun(t, a, asst, "stall [[slow 20ms]] [[chunks 60]]")
	holder := c.executing(id)
	other := a
	if holder == a {
		other = c.replicas[1]
	}
	eventually(t, 10*time.Second, "the answer to be streaming", func() bool {
		return len(c.watch.requests("stall")) == 1
	})
	holder.signal(syscall.SIGSTOP)
	waitStatus(t, other, th, id, 30*time.Second, openai.RunStatusCompleted)
	if row := c.runRow(id); row.Attempts != 2 || c.holder(row.ClaimedBy) != other {
		t.Fatalf("run after takeover: %+v", row)
	}
	before := assistantMessages(t, other, th)
	holder.signal(syscall.SIGCONT)
	eventually(t, 15*time.Second, "the stalled replica to notice it lost the run", func() bool {
		return strings.Contains(holder.logs.String(), "run lease lost")
	})
	// Let the stalled replica finish reading its upstream answer, which
	// would complete its message if its writes were not fenced.
	eventually(t, 15*time.Second, "the stalled replica's upstream request to end", func() bool {
		reqs := c.watch.requests("stall")
		return len(reqs) == 2 && (reqs[0].finished || !reqs[0].abandoned.IsZero())
	})
	after := assistantMessages(t, other, th)
	if want := []string{"completed: " + words(60)}; !slices.Equal(after, want) || !slices.Equal(before, after) {
		t.Errorf("assistant messages before %q and after the stalled replica continued %q, want %q", before, after, want)
	}
	if row := c.runRow(id); row.Status != "completed" || row.Attempts != 2 || c.holder(row.ClaimedBy) != other {
		t.Errorf("run after the stalled replica continued: %+v", row)
	}
	var steps int
	if err := c.db.QueryRow(`SELECT count(*) FROM run_steps WHERE run_id = $1`, id).Scan(&steps); err != nil || steps != 1 {
		t.Errorf("run steps: %d (%v), want 1", steps, err)
	}
}

// TestCancelAcrossReplicas: a run cancelled through the replica that does
// not execute it stops on the one that does, through the control
// notification: long before the lease renewal (every 10 s here) could
// have told it, its upstream request is abandoned and the run cancelled.
func TestCancelAcrossReplicas(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", "--role", "api", "--run-lease", "30s")
	c.start("b", "--role", "worker", "--run-lease", "30s")
	asst := newAssistant(t, a)
	th, id := createRun(t, a, asst, "cancel me [[slow 50ms]] [[chunks 400]]")
	c.executing(id)
	eventually(t, 10*time.Second, "the answer to be streaming", func() bool {
		var n int
		_ = c.db.QueryRow(`SELECT count(*) FROM messages WHERE thread_id = $1 AND role = 'assistant'`, th).Scan(&n)
		return n == 1
	})
	if _, err := a.Client.Beta.Threads.Runs.Cancel(context.Background(), th, id); err != nil {
		t.Fatal(err)
	}
	cancelled := time.Now()
	waitStatus(t, a, th, id, 5*time.Second, openai.RunStatusCancelled)
	var reqs []watched
	eventually(t, 5*time.Second, "the worker to abandon the upstream request", func() bool {
		reqs = c.watch.requests("cancel me")
		return len(reqs) == 1 && !reqs[0].abandoned.IsZero()
	})
	t.Logf("cancel through A to upstream request abandoned by B: %v", reqs[0].abandoned.Sub(cancelled).Round(time.Millisecond))
	if got := assistantMessages(t, a, th); len(got) != 1 || !strings.HasPrefix(got[0], "incomplete: w0") {
		t.Errorf("assistant messages after the cancel: %q", got)
	}
}

// TestRequiresActionAcrossReplicas: a run reaches requires_action on a
// worker, its outputs are submitted through another API replica, and a
// worker completes it.
func TestRequiresActionAcrossReplicas(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", "--role", "api")
	c.start("b", "--role", "worker")
	cc := c.start("c", "--role", "api")
	asst := newAssistant(t, a)
	th, id := createRun(t, a, asst, `weather? [[call get_weather {"city":"Oslo"}]]`)
	run := waitStatus(t, cc, th, id, 20*time.Second, openai.RunStatusRequiresAction)
	calls := run.RequiredAction.SubmitToolOutputs.ToolCalls
	if len(calls) != 1 {
		t.Fatalf("required calls: %+v", calls)
	}
	_, err := cc.Client.Beta.Threads.Runs.SubmitToolOutputs(context.Background(), th, id, openai.BetaThreadRunSubmitToolOutputsParams{
		ToolOutputs: []openai.BetaThreadRunSubmitToolOutputsParamsToolOutput{{ToolCallID: openai.String(calls[0].ID), Output: openai.String("sunny")}}})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, a, th, id, 20*time.Second, openai.RunStatusCompleted)
	if got := assistantMessages(t, a, th); len(got) != 1 || got[0] != "completed: Tool results: sunny" {
		t.Errorf("assistant messages: %q", got)
	}
}

// TestThreadDeletedAcrossReplicas: deleting a thread through one replica
// stops its run on the replica executing it, and nothing of it is left.
func TestThreadDeletedAcrossReplicas(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", "--role", "api", "--run-lease", "30s")
	b := c.start("b", "--role", "worker", "--run-lease", "30s")
	asst := newAssistant(t, a)
	th, id := createRun(t, a, asst, "delete me [[slow 50ms]] [[chunks 400]]")
	c.executing(id)
	eventually(t, 10*time.Second, "the answer to be streaming", func() bool {
		return len(c.watch.requests("delete me")) == 1
	})
	if _, err := a.Client.Beta.Threads.Delete(context.Background(), th); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	// The control notification stops it at once; should it be lost, the
	// lease renewal (every 10 s here) finds the run gone.
	var reqs []watched
	eventually(t, 15*time.Second, "the worker to abandon the upstream request", func() bool {
		reqs = c.watch.requests("delete me")
		return len(reqs) == 1 && !reqs[0].abandoned.IsZero()
	})
	t.Logf("thread deleted through A to the upstream request abandoned by B: %v", reqs[0].abandoned.Sub(deleted).Round(time.Millisecond))
	eventually(t, 5*time.Second, "the worker to report the deleted thread", func() bool {
		return strings.Contains(b.logs.String(), `msg="run could not be recorded"`)
	})
	for _, tbl := range []string{"threads WHERE id", "runs WHERE thread_id", "messages WHERE thread_id", "run_steps WHERE thread_id"} {
		var n int
		if err := c.db.QueryRow(`SELECT count(*) FROM `+tbl+` = $1`, th).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s: %d rows left (%v)", tbl, n, err)
		}
	}
}

// TestWorkerRoleServesHealthOnly: a worker replica answers /healthz and
// nothing of the API.
func TestWorkerRoleServesHealthOnly(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	w := c.start("w", "--role", "worker")
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/v1/assistants": 404, "/": 404} {
		res, err := httpGet(w.URL+path, c.key)
		if err != nil {
			t.Fatal(err)
		}
		if res != want {
			t.Errorf("GET %s on a worker: %d, want %d", path, res, want)
		}
	}
}

// TestHousekeeperTakeover: the once-only sweeps run on the replica
// holding the housekeeper lease; when it is killed, another replica takes
// the lease once it lapses and sweeps at once (here: deletes a file whose
// expiry has passed).
func TestHousekeeperTakeover(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.start("a", "--run-lease", "1s")
	c.start("b", "--run-lease", "1s")
	var leader *replica
	eventually(t, 10*time.Second, "a housekeeper", func() bool {
		var holder string
		_ = c.db.QueryRow(`SELECT holder FROM leader_leases WHERE name = 'housekeeper'`).Scan(&holder)
		leader = c.holder(holder)
		return leader != nil
	})
	other := c.replicas[0]
	if leader == other {
		other = c.replicas[1]
	}
	if strings.Contains(other.logs.String(), "this replica is the housekeeper") {
		t.Fatalf("both replicas became the housekeeper")
	}
	f, err := other.Client.Files.New(context.Background(), openai.FileNewParams{File: openai.File(strings.NewReader("expiring"), "x.txt", "text/plain"),
		Purpose: openai.FilePurposeAssistants})
	if err != nil {
		t.Fatal(err)
	}
	leader.kill()
	killed := time.Now()
	if _, err := c.db.Exec(`UPDATE files SET expires_at = 1 WHERE id = $1`, f.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the other replica to sweep the expired file", func() bool {
		var n int
		_ = c.db.QueryRow(`SELECT count(*) FROM files WHERE id = $1`, f.ID).Scan(&n)
		return n == 0
	})
	t.Logf("kill -9 of the housekeeper to the other replica's sweep: %v (lease 1s)", time.Since(killed).Round(time.Millisecond))
	if !strings.Contains(other.logs.String(), "this replica is the housekeeper") {
		t.Errorf("the other replica did not log taking over")
	}
}

// TestBlobStoreDirRefused: beside a running replica, a replica keeping
// file contents on its own disk (--blob-store dir) refuses to start and
// says why; alone it starts, and then a second one refuses to join it.
func TestBlobStoreDirRefused(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a")
	if out := c.startFails("--blob-store", "dir"); !strings.Contains(out, "--blob-store dir keeps file contents on this machine's disk") {
		t.Errorf("refusal beside a replica: %s", out)
	}
	a.signal(syscall.SIGTERM)
	<-a.exited
	c.start("alone", "--blob-store", "dir")
	if out := c.startFails(); !strings.Contains(out, "keeps file contents on its own disk (--blob-store dir)") {
		t.Errorf("refusal beside a --blob-store dir replica: %s", out)
	}
}

// TestCancelWhileListenerLost: a cancel whose notification is sent while
// the executing replica's listening connection is down (its backend
// terminated) still stops the run within a few seconds: on listening
// again the replica reads the status of the runs it executes, instead of
// waiting for the lease renewal (every 20 s here).
func TestCancelWhileListenerLost(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", "--role", "api", "--run-lease", "60s")
	b := c.start("b", "--role", "worker", "--run-lease", "60s")
	asst := newAssistant(t, a)
	th, id := createRun(t, a, asst, "unheard [[slow 50ms]] [[chunks 1000]]")
	c.executing(id)
	eventually(t, 10*time.Second, "the answer to be streaming", func() bool {
		return len(c.watch.requests("unheard")) == 1
	})
	var n int
	if err := c.db.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN %'`).Scan(&n); err != nil || n == 0 {
		t.Fatalf("terminated %d listening connections (%v)", n, err)
	}
	if _, err := a.Client.Beta.Threads.Runs.Cancel(context.Background(), th, id); err != nil {
		t.Fatal(err)
	}
	cancelled := time.Now()
	var reqs []watched
	eventually(t, 8*time.Second, "the worker to abandon the upstream request", func() bool {
		reqs = c.watch.requests("unheard")
		return len(reqs) == 1 && !reqs[0].abandoned.IsZero()
	})
	t.Logf("cancel while the worker's listener was down to upstream request abandoned: %v", reqs[0].abandoned.Sub(cancelled).Round(time.Millisecond))
	waitStatus(t, a, th, id, 5*time.Second, openai.RunStatusCancelled)
	if !strings.Contains(b.logs.String(), "listening to other replicas again") {
		t.Errorf("the worker did not say it listened again")
	}
}
