package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/tests/upstream"
)

// These tests drive the tool seam in-process: a real store on a SQLite
// file, the scripted upstream over HTTP through the real openai-go client,
// and runners written for the test, so each property of the seam (what
// runs where, in parallel, recorded once, stopped by cancel, resumed after
// a restart) is checked without any particular tool.

const waitFor = 20 * time.Second

// echoCode is a fake code_interpreter: it "runs" {"code": ...} by echoing
// it, streams the code as input deltas, and reports logs as its output.
type echoCode struct {
	runs    atomic.Int32
	started chan string // receives each call's code as it starts, if set
	block   func(ctx context.Context, code string) error
}

func (e *echoCode) Type() string { return "code_interpreter" }

func (e *echoCode) Offer(db.Run, db.Tool) db.FunctionDef {
	return db.FunctionDef{Name: "code_interpreter", Description: "Runs Python.",
		Parameters: json.RawMessage(`{"type":"object","properties":{"code":{"type":"string"}},"required":["code"]}`)}
}

func (e *echoCode) Stream() agent.ArgStream { return rawInput{} }

func (e *echoCode) Run(ctx context.Context, call agent.ToolCall) (agent.ToolResult, error) {
	e.runs.Add(1)
	var args struct{ Code string }
	if err := json.Unmarshal([]byte(call.Arguments), &args); err != nil {
		return agent.ToolResult{}, err
	}
	if e.started != nil {
		e.started <- args.Code
	}
	if e.block != nil {
		if err := e.block(ctx, args.Code); err != nil {
			return agent.ToolResult{}, err
		}
	}
	logs := "out:" + args.Code
	return agent.ToolResult{
		Output:      logs,
		Details:     db.ToolCall{CodeInterpreter: &db.CodeInterpreterCall{Input: args.Code, Outputs: []db.CodeOutput{{Type: "logs", Logs: logs}}}},
		Delta:       map[string]any{"outputs": []any{map[string]any{"index": 0, "type": "logs", "logs": logs}}},
		Attachments: []db.ContentPart{{Type: "image_file", ImageFile: &db.ImageFile{FileID: "file-fig" + args.Code}}},
	}, nil
}

// Annotate marks every "sandbox:" link.
func (e *echoCode) Annotate(_ context.Context, _ db.Run, text string) ([]db.Annotation, error) {
	var anns []db.Annotation
	for i := strings.Index(text, "sandbox:"); i >= 0; {
		end := i + len("sandbox:x")
		anns = append(anns, db.Annotation{Type: "file_path", Text: text[i:end], StartIndex: i, EndIndex: end, FilePath: &db.FilePath{FileID: "file-x"}})
		next := strings.Index(text[end:], "sandbox:")
		if next < 0 {
			break
		}
		i = end + next
	}
	return anns, nil
}

// rawInput streams the raw arguments as "input" (the real tool decodes
// the JSON; the seam only forwards what the stream makes of it).
type rawInput struct{}

func (rawInput) Start() any            { return map[string]any{"input": "", "outputs": []any{}} }
func (rawInput) Write(frag string) any { return map[string]any{"input": frag} }

// router serves the functions in runners.
type router struct{ runners map[string]agent.Runner }

func (r router) Function(_ context.Context, _ db.Run, name string) (agent.Runner, bool, error) {
	x, ok := r.runners[name]
	return x, ok, nil
}

// runnerFunc adapts a function to agent.Runner.
type runnerFunc func(ctx context.Context, call agent.ToolCall) (agent.ToolResult, error)

func (f runnerFunc) Run(ctx context.Context, call agent.ToolCall) (agent.ToolResult, error) {
	return f(ctx, call)
}

type env struct {
	store   *db.Store
	up      *upstream.Server
	engine  *agent.Engine
	stop    context.CancelFunc
	dir     string
	upURL   string
	tools   agent.Config
	assist  db.Assistant
	stopped bool
	prepare func(*agent.Engine) // called on each engine before it starts
}

func newEnv(t *testing.T, cfg agent.Config, prepare ...func(*agent.Engine)) *env {
	t.Helper()
	up := upstream.New()
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	store, err := db.Open(testCtx(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e := &env{store: store, up: up, dir: dir, upURL: srv.URL + "/v1", tools: cfg}
	for _, p := range prepare {
		e.prepare = p
	}
	e.start(t)
	tools := []db.Tool{{Type: "code_interpreter"}}
	for _, name := range []string{"get_weather", "get_time"} {
		tools = append(tools, db.Tool{Type: "function", Function: &db.FunctionDef{Name: name,
			Parameters: json.RawMessage(`{"type":"object","properties":{}}`)}})
	}
	e.assist, err = store.CreateAssistant(testCtx(), db.Assistant{Model: "fake-model", Tools: tools})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) start(t *testing.T) {
	t.Helper()
	providers, err := agent.NewProviders([]agent.ProviderConfig{{Name: "fake", BaseURL: e.upURL, APIKey: "k", Models: []string{"*"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.tools
	cfg.RetryBackoff = time.Millisecond
	cfg.SweepInterval = 50 * time.Millisecond
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.engine = agent.New(e.store, providers, agent.NewHub(time.Minute), log, cfg)
	if e.prepare != nil {
		e.prepare(e.engine)
	}
	ctx, cancel := context.WithCancel(testCtx())
	if err := e.engine.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e.stop = func() { cancel(); e.engine.Wait() }
	e.stopped = false
	t.Cleanup(func() {
		if !e.stopped {
			e.stop()
		}
	})
}

func (e *env) restart(t *testing.T) {
	e.stop()
	e.stopped = true
	e.start(t)
}

// run starts a run on a new thread whose message is text.
func (e *env) run(t *testing.T, text string) db.Run {
	t.Helper()
	ctx := testCtx()
	th, _, err := e.store.CreateThread(ctx, db.Thread{}, []db.Message{{Role: "user", Status: "completed",
		Content: []db.ContentPart{{Type: "text", Text: &db.Text{Value: text, Annotations: []db.Annotation{}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	run, err := e.engine.CreateRun(ctx, db.Run{ThreadID: th.ID, AssistantID: e.assist.ID, Model: "fake-model",
		Tools: e.assist.Tools, ToolChoice: json.RawMessage(`"auto"`), ResponseFormat: json.RawMessage(`"auto"`),
		ParallelToolCalls: true, TruncationStrategy: &db.TruncationStrategy{Type: "auto"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// events reads the run's events until its stream segment ends.
func (e *env) events(t *testing.T, runID string) []agent.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(testCtx(), waitFor)
	defer cancel()
	sub := e.engine.Events(runID, 0)
	var evs []agent.Event
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("run %s: no end of stream: %v; got %s", runID, err, names(evs))
		}
		evs = append(evs, ev)
		if ev.EndsSegment() {
			return evs
		}
	}
}

func names(evs []agent.Event) string {
	var n []string
	for _, ev := range evs {
		n = append(n, ev.Name)
	}
	return strings.Join(n, " ")
}

// waitStatus polls the store until the run has one of the statuses.
func (e *env) waitStatus(t *testing.T, run db.Run, want ...string) db.Run {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		r, err := e.store.GetRun(testCtx(), run.ThreadID, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if r.Status == w {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s is %s, want %v", run.ID, r.Status, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func toolSteps(t *testing.T, e *env, run db.Run) []db.RunStep {
	t.Helper()
	steps, err := e.store.ThreadSteps(testCtx(), run.ThreadID)
	if err != nil {
		t.Fatal(err)
	}
	var out []db.RunStep
	for _, st := range steps {
		if st.RunID == run.ID && st.Type == db.StepToolCalls {
			out = append(out, st)
		}
	}
	return out
}

// toolMessages are the tool results the upstream was sent, by call id.
func toolMessages(up *upstream.Server) map[string]string {
	out := map[string]string{}
	for _, r := range up.Requests() {
		for _, m := range r.Messages {
			if m.Role == "tool" {
				out[m.ToolCallID] = m.Text()
			}
		}
	}
	return out
}

func TestBuiltinRunsInsideTheRun(t *testing.T) {
	code := &echoCode{}
	e := newEnv(t, agent.Config{Builtins: []agent.Builtin{code}})
	run := e.run(t, `compute [[call code_interpreter {"code":"1+1"}]]`)
	evs := e.events(t, run.ID)
	if last := evs[len(evs)-1].Name; last != "thread.run.completed" {
		t.Fatalf("stream ended with %s, want thread.run.completed: %s", last, names(evs))
	}
	if strings.Contains(names(evs), "requires_action") {
		t.Fatalf("a server-side call went to the client: %s", names(evs))
	}
	// The offered tool, the streamed input and outputs, the step's record.
	reqs := e.up.Requests()
	if len(reqs) != 2 {
		t.Fatalf("upstream got %d requests, want 2", len(reqs))
	}
	offered := false
	for _, tool := range reqs[0].Tools {
		if fn, _ := tool["function"].(map[string]any); fn["name"] == "code_interpreter" {
			offered = true
		}
	}
	if !offered {
		t.Errorf("code_interpreter was not offered to the model: %v", reqs[0].Tools)
	}
	var input strings.Builder
	sawOutputs := false
	for _, ev := range evs {
		if ev.Name != "thread.run.step.delta" {
			continue
		}
		var d struct {
			Delta struct {
				StepDetails struct {
					ToolCalls []struct {
						Index           int    `json:"index"`
						Type            string `json:"type"`
						CodeInterpreter struct {
							Input   string            `json:"input"`
							Outputs []json.RawMessage `json:"outputs"`
						} `json:"code_interpreter"`
					} `json:"tool_calls"`
				} `json:"step_details"`
			} `json:"delta"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		for _, tc := range d.Delta.StepDetails.ToolCalls {
			if tc.Type != "code_interpreter" {
				t.Errorf("delta tool call type %q, want code_interpreter", tc.Type)
			}
			input.WriteString(tc.CodeInterpreter.Input)
			sawOutputs = sawOutputs || len(tc.CodeInterpreter.Outputs) > 0
		}
	}
	if got := input.String(); got != `{"code":"1+1"}` {
		t.Errorf("streamed input %q, want the arguments", got)
	}
	if !sawOutputs {
		t.Error("no step delta carried the outputs")
	}
	steps := toolSteps(t, e, run)
	if len(steps) != 1 || steps[0].Status != db.StepCompleted {
		t.Fatalf("tool steps %+v, want one completed", steps)
	}
	tc := steps[0].StepDetails.ToolCalls[0]
	if tc.Type != "code_interpreter" || tc.CodeInterpreter == nil || tc.CodeInterpreter.Input != "1+1" ||
		len(tc.CodeInterpreter.Outputs) != 1 || tc.CodeInterpreter.Outputs[0].Logs != "out:1+1" {
		t.Errorf("step records %+v", tc)
	}
	if got := toolMessages(e.up)[tc.ID]; got != "out:1+1" {
		t.Errorf("the model read %q for the call, want its output", got)
	}
	// The answer message carries the call's attachment.
	msgs, _, err := e.store.HistoryMessages(testCtx(), run.ThreadID)
	if err != nil {
		t.Fatal(err)
	}
	answer := msgs[len(msgs)-1]
	if len(answer.Content) != 2 || answer.Content[1].ImageFile == nil || answer.Content[1].ImageFile.FileID != "file-fig1+1" {
		t.Errorf("answer content %+v, want text then the image", answer.Content)
	}
	if code.runs.Load() != 1 {
		t.Errorf("the tool ran %d times, want 1", code.runs.Load())
	}
}

func TestMixedTurnWaitsForTheClientOnly(t *testing.T) {
	var weatherCalls atomic.Int32
	weather := runnerFunc(func(ctx context.Context, call agent.ToolCall) (agent.ToolResult, error) {
		weatherCalls.Add(1)
		return agent.ToolResult{Output: "sunny in " + call.Arguments}, nil
	})
	e := newEnv(t, agent.Config{Builtins: []agent.Builtin{&echoCode{}}, Functions: router{map[string]agent.Runner{"get_weather": weather}}})
	run := e.run(t, `[[call get_weather {"city":"Oslo"}]] [[call get_time {"tz":"UTC"}]] [[call code_interpreter {"code":"2"}]]`)
	evs := e.events(t, run.ID)
	if last := evs[len(evs)-1].Name; last != "thread.run.requires_action" {
		t.Fatalf("stream ended with %s: %s", last, names(evs))
	}
	r := e.waitStatus(t, run, db.RunRequiresAction)
	req := r.RequiredAction.SubmitToolOutputs.ToolCalls
	if len(req) != 1 || req[0].Function.Name != "get_time" {
		t.Fatalf("required calls %+v, want only get_time", req)
	}
	steps := toolSteps(t, e, run)
	if len(steps) != 1 || steps[0].Status != db.StepInProgress {
		t.Fatalf("tool steps %+v", steps)
	}
	for _, tc := range steps[0].StepDetails.ToolCalls {
		switch {
		case tc.Function != nil && tc.Function.Name == "get_weather":
			if tc.Function.Output == nil || *tc.Function.Output != `sunny in {"city":"Oslo"}` {
				t.Errorf("get_weather output %v, want the runner's", tc.Function.Output)
			}
		case tc.Function != nil && tc.Function.Name == "get_time":
			if tc.Function.Output != nil {
				t.Errorf("get_time has output %q before the client answered", *tc.Function.Output)
			}
		case tc.CodeInterpreter != nil:
			if len(tc.CodeInterpreter.Outputs) != 1 {
				t.Errorf("code_interpreter outputs %+v", tc.CodeInterpreter.Outputs)
			}
		}
	}
	if _, _, err := e.engine.SubmitToolOutputs(testCtx(), run.ThreadID, run.ID,
		[]agent.ToolOutput{{ToolCallID: req[0].ID, Output: "noon"}}); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, run, db.RunCompleted)
	got := toolMessages(e.up)
	if len(got) != 3 {
		t.Fatalf("the model read %d tool results, want 3: %v", len(got), got)
	}
	if got[req[0].ID] != "noon" {
		t.Errorf("client output %q", got[req[0].ID])
	}
	if weatherCalls.Load() != 1 {
		t.Errorf("get_weather ran %d times", weatherCalls.Load())
	}
}

func TestServerCallsRunInParallel(t *testing.T) {
	// Each call waits until both have started: only parallel calls finish.
	var wg sync.WaitGroup
	wg.Add(2)
	both := make(chan struct{})
	go func() { wg.Wait(); close(both) }()
	code := &echoCode{block: func(ctx context.Context, _ string) error {
		wg.Done()
		select {
		case <-both:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	e := newEnv(t, agent.Config{Builtins: []agent.Builtin{code}})
	run := e.run(t, `[[call code_interpreter {"code":"a"}]] [[call code_interpreter {"code":"b"}]]`)
	e.waitStatus(t, run, db.RunCompleted)
	if n := len(toolMessages(e.up)); n != 2 {
		t.Errorf("the model read %d results, want 2", n)
	}
}

func TestErrToClientHandsTheCallOver(t *testing.T) {
	down := runnerFunc(func(context.Context, agent.ToolCall) (agent.ToolResult, error) {
		return agent.ToolResult{}, agent.ErrToClient
	})
	e := newEnv(t, agent.Config{Functions: router{map[string]agent.Runner{"get_weather": down}}})
	run := e.run(t, `[[call get_weather {"city":"Oslo"}]]`)
	r := e.waitStatus(t, run, db.RunRequiresAction)
	if req := r.RequiredAction.SubmitToolOutputs.ToolCalls; len(req) != 1 || req[0].Function.Name != "get_weather" {
		t.Fatalf("required %+v", req)
	}
}

func TestRunnerErrorFailsTheRun(t *testing.T) {
	broken := runnerFunc(func(context.Context, agent.ToolCall) (agent.ToolResult, error) {
		return agent.ToolResult{}, errors.New("disk on fire")
	})
	e := newEnv(t, agent.Config{Functions: router{map[string]agent.Runner{"get_weather": broken}}})
	run := e.run(t, `[[call get_weather {}]]`)
	r := e.waitStatus(t, run, db.RunFailed)
	if r.LastError == nil || !strings.Contains(r.LastError.Message, "disk on fire") {
		t.Errorf("last_error %+v", r.LastError)
	}
}

func TestCancelStopsARunner(t *testing.T) {
	stopped := make(chan error, 1)
	code := &echoCode{started: make(chan string, 1), block: func(ctx context.Context, _ string) error {
		<-ctx.Done()
		stopped <- ctx.Err()
		return ctx.Err()
	}}
	e := newEnv(t, agent.Config{Builtins: []agent.Builtin{code}})
	run := e.run(t, `[[call code_interpreter {"code":"while True: pass"}]]`)
	select {
	case <-code.started:
	case <-time.After(waitFor):
		t.Fatal("the tool never started")
	}
	if _, err := e.engine.Cancel(testCtx(), run.ThreadID, run.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	case <-time.After(waitFor):
		t.Fatal("the runner's context was not cancelled")
	}
	e.waitStatus(t, run, db.RunCancelled)
	if st := toolSteps(t, e, run); len(st) != 1 || st[0].Status != db.StepCancelled {
		t.Errorf("tool step %+v, want cancelled", st)
	}
}

func TestRestartRunsOnlyUnfinishedCalls(t *testing.T) {
	var mu sync.Mutex
	ran := map[string]int{}
	release := make(chan struct{})
	code := &echoCode{block: func(ctx context.Context, c string) error {
		mu.Lock()
		ran[c]++
		mu.Unlock()
		if c == "slow" {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}}
	e := newEnv(t, agent.Config{Builtins: []agent.Builtin{code}})
	run := e.run(t, `[[call code_interpreter {"code":"fast"}]] [[call code_interpreter {"code":"slow"}]]`)
	// Wait until the fast call's result is recorded, then stop the server
	// while the slow one runs.
	deadline := time.Now().Add(waitFor)
	for {
		st := toolSteps(t, e, run)
		if len(st) == 1 && len(st[0].StepDetails.ToolCalls) == 2 && st[0].StepDetails.ToolCalls[0].CodeInterpreter != nil &&
			len(st[0].StepDetails.ToolCalls[0].CodeInterpreter.Outputs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fast call was never recorded: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.restart(t)
	close(release)
	e.waitStatus(t, run, db.RunCompleted)
	mu.Lock()
	defer mu.Unlock()
	if ran["fast"] != 1 || ran["slow"] != 2 {
		t.Errorf("runs per call %v, want fast once and slow twice (interrupted, then resumed)", ran)
	}
	if n := len(toolMessages(e.up)); n != 2 {
		t.Errorf("the model read %d results, want 2", n)
	}
	if got := len(e.up.Requests()); got != 2 {
		t.Errorf("the model was asked %d times, want 2 (the calls are not asked for again)", got)
	}
}

func TestAnnotatorAnnotatesTheAnswer(t *testing.T) {
	e := newEnv(t, agent.Config{Builtins: []agent.Builtin{&echoCode{}}})
	run := e.run(t, `see sandbox:x and sandbox:x`)
	e.waitStatus(t, run, db.RunCompleted)
	msgs, _, err := e.store.HistoryMessages(testCtx(), run.ThreadID)
	if err != nil {
		t.Fatal(err)
	}
	text := msgs[len(msgs)-1].Content[0].Text
	if len(text.Annotations) != 2 {
		t.Fatalf("annotations %+v, want 2", text.Annotations)
	}
	for _, a := range text.Annotations {
		if text.Value[a.StartIndex:a.EndIndex] != "sandbox:x" || a.Text != "sandbox:x" {
			t.Errorf("annotation %+v does not point at its text in %q", a, text.Value)
		}
	}
}

// testCtx is the context of a test's own calls: scoped to the Default
// project, as a request with a Default-project key is.
func testCtx() context.Context { return db.WithProject(context.Background(), db.DefaultProjectID) }
