package apitest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"

	"github.com/assistantd/assistantd/tests/upstream"
)

// runDeadline bounds every wait for a run to reach a status;
// streamDeadline every stream, so a stream that never ends fails the test
// instead of hanging it.
const (
	runDeadline    = 20 * time.Second
	streamDeadline = 30 * time.Second
)

// streamContext is a context for one test's SDK streams.
func streamContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), streamDeadline)
	t.Cleanup(cancel)
	return ctx
}

// startRunServer starts the scripted upstream and an assistantd pointed at
// it, plus extraArgs (later flags win over earlier ones).
func startRunServer(t testing.TB, extraArgs ...string) (*server, *upstream.Server) {
	t.Helper()
	up := upstream.New()
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close) // registered first: runs after the server has stopped
	s := startServer(t, append([]string{"--upstream-url", srv.URL + "/v1"}, extraArgs...)...)
	return s, up
}

// weatherTool and timeTool are the functions the tests offer.
var (
	weatherTool = openai.AssistantToolParamOfFunction(shared.FunctionDefinitionParam{
		Name:        "get_weather",
		Description: openai.String("Weather for a city"),
		Parameters: shared.FunctionParameters{"type": "object",
			"properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []string{"city"}},
	})
	timeTool = openai.AssistantToolParamOfFunction(shared.FunctionDefinitionParam{
		Name:       "get_time",
		Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"tz": map[string]any{"type": "string"}}},
	})
)

// newAssistant creates an assistant on model fake-model with both
// functions, or with params when given.
func newAssistant(t testing.TB, s *server, params ...openai.BetaAssistantNewParams) string {
	t.Helper()
	p := openai.BetaAssistantNewParams{Model: "fake-model", Instructions: openai.String("Be brief."),
		Tools: []openai.AssistantToolUnionParam{weatherTool, timeTool}}
	if len(params) > 0 {
		p = params[0]
	}
	a, err := s.Client.Beta.Assistants.New(context.Background(), p)
	if err != nil {
		t.Fatalf("create assistant: %v", err)
	}
	return a.ID
}

// threadWith creates a thread holding one user message per text.
func threadWith(t testing.TB, s *server, texts ...string) string {
	t.Helper()
	var msgs []openai.BetaThreadNewParamsMessage
	for _, text := range texts {
		msgs = append(msgs, openai.BetaThreadNewParamsMessage{Role: "user",
			Content: openai.BetaThreadNewParamsMessageContentUnion{OfString: openai.String(text)}})
	}
	th, err := s.Client.Beta.Threads.New(context.Background(), openai.BetaThreadNewParams{Messages: msgs})
	if err != nil {
		t.Fatalf("create thread: %v", err)
	}
	return th.ID
}

// addMessage adds a user message to a thread.
func addMessage(t testing.TB, s *server, threadID, text string) {
	t.Helper()
	if _, err := s.Client.Beta.Threads.Messages.New(context.Background(), threadID, textMessage(text)); err != nil {
		t.Fatalf("add message: %v", err)
	}
}

// startRun creates a run of assistantID on threadID.
func startRun(t testing.TB, s *server, threadID, assistantID string) *openai.Run {
	t.Helper()
	run, err := s.Client.Beta.Threads.Runs.New(context.Background(), threadID, openai.BetaThreadRunNewParams{AssistantID: assistantID})
	if err != nil {
		t.Fatalf("create run: %v", err)
	}
	return run
}

var terminalStatuses = []openai.RunStatus{openai.RunStatusCompleted, openai.RunStatusFailed, openai.RunStatusCancelled,
	openai.RunStatusIncomplete, openai.RunStatusExpired}

// waitRun polls the run until its status is one of want (the terminal
// statuses if none given) and returns it. It fails the test at the
// deadline, or if the run reaches another terminal status.
func waitRun(t testing.TB, s *server, threadID, runID string, want ...openai.RunStatus) *openai.Run {
	t.Helper()
	if len(want) == 0 {
		want = terminalStatuses
	}
	deadline := time.Now().Add(runDeadline)
	for {
		run, err := s.Client.Beta.Threads.Runs.Get(context.Background(), threadID, runID)
		if err != nil {
			t.Fatalf("get run %s: %v", runID, err)
		}
		if slices.Contains(want, run.Status) {
			return run
		}
		if slices.Contains(terminalStatuses, run.Status) {
			t.Fatalf("run %s ended %s (last_error %+v), want %v", runID, run.Status, run.LastError, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s still %s after %v, want %v", runID, run.Status, runDeadline, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runMessages lists the thread's messages, oldest first.
func runMessages(t testing.TB, s *server, threadID string) []openai.Message {
	t.Helper()
	page, err := s.Client.Beta.Threads.Messages.List(context.Background(), threadID,
		openai.BetaThreadMessageListParams{Order: openai.BetaThreadMessageListParamsOrderAsc, Limit: openai.Int(100)})
	if err != nil {
		t.Fatalf("list messages: %v", err)
	}
	return page.Data
}

// lastAssistantText is the text of the thread's newest message, which must
// be the assistant's.
func lastAssistantText(t testing.TB, s *server, threadID string) string {
	t.Helper()
	msgs := runMessages(t, s, threadID)
	if len(msgs) == 0 || msgs[len(msgs)-1].Role != "assistant" {
		t.Fatalf("newest message is not the assistant's: %+v", msgs)
	}
	return messageText(msgs[len(msgs)-1])
}

func messageText(m openai.Message) string {
	var parts []string
	for _, c := range m.Content {
		if c.Type == "text" {
			parts = append(parts, c.Text.Value)
		}
	}
	return strings.Join(parts, "")
}

// runSteps lists a run's steps, oldest first.
func runSteps(t testing.TB, s *server, threadID, runID string) []openai.RunStep {
	t.Helper()
	page, err := s.Client.Beta.Threads.Runs.Steps.List(context.Background(), threadID, runID,
		openai.BetaThreadRunStepListParams{Order: openai.BetaThreadRunStepListParamsOrderAsc})
	if err != nil {
		t.Fatalf("list steps: %v", err)
	}
	return page.Data
}

// requestsWith returns the upstream requests whose last user message
// contains marker.
func requestsWith(up *upstream.Server, marker string) []upstream.Request {
	var out []upstream.Request
	for _, r := range up.Requests() {
		for i := len(r.Messages) - 1; i >= 0; i-- {
			if r.Messages[i].Role == "user" {
				if strings.Contains(r.Messages[i].Text(), marker) {
					out = append(out, r)
				}
				break
			}
		}
	}
	return out
}

// chatTurn summarises a chat message of an upstream request as
// "role: text", with tool calls as "name(args)#id" and tool results as
// "tool[id]: output".
func chatTurn(m upstream.Message) string {
	switch {
	case m.Role == "tool":
		return fmt.Sprintf("tool[%s]: %s", m.ToolCallID, m.Text())
	case len(m.ToolCalls) > 0:
		var calls []string
		for _, c := range m.ToolCalls {
			calls = append(calls, fmt.Sprintf("%s(%s)#%s", c.Function.Name, c.Function.Arguments, c.ID))
		}
		return m.Role + ": " + strings.Join(calls, " ")
	}
	return m.Role + ": " + m.Text()
}

func chatTurns(r upstream.Request) []string {
	var out []string
	for _, m := range r.Messages {
		out = append(out, chatTurn(m))
	}
	return out
}

// sseEvent is one Server-Sent Events frame.
type sseEvent struct {
	Name string
	Data string
}

// sseStream reads an assistantd event stream with raw net/http, checking
// the framing (every frame an event: line and one data: line) and every
// event's data against its OpenAPI schema.
type sseStream struct {
	t      testing.TB
	res    *http.Response
	br     *bufio.Reader
	done   bool
	cancel context.CancelFunc
}

// openStream POSTs body (which should ask for stream: true) to path and
// returns the stream, which must be 200 text/event-stream.
func (s *server) openStream(t testing.TB, path, body string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), streamDeadline)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("OpenAI-Beta", "assistants=v2")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("POST %s: %v", path, err)
	}
	if ct := res.Header.Get("Content-Type"); res.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/event-stream") {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		cancel()
		t.Fatalf("POST %s: %d %s, want 200 text/event-stream: %s", path, res.StatusCode, ct, b)
	}
	if res.Header.Get("X-Request-Id") == "" {
		t.Errorf("POST %s: stream without x-request-id", path)
	}
	st := &sseStream{t: t, res: res, br: bufio.NewReader(res.Body), cancel: cancel}
	t.Cleanup(st.close)
	return st
}

func (st *sseStream) close() {
	st.cancel()
	st.res.Body.Close()
}

// next returns the next frame; false at the end of the stream, which must
// come right after the done frame.
func (st *sseStream) next() (sseEvent, bool) {
	st.t.Helper()
	var ev sseEvent
	var sawData bool
	for {
		line, err := st.br.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && line == "" && ev.Name == "" && !sawData {
				if !st.done {
					st.t.Errorf("stream ended without event: done")
				}
				return ev, false
			}
			st.t.Fatalf("read stream: %v (partial line %q)", err, line)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.Name == "" && !sawData {
				continue
			}
			if ev.Name == "" || !sawData {
				st.t.Fatalf("frame without event or data line: %+v", ev)
			}
			if st.done {
				st.t.Errorf("event %s after done", ev.Name)
			}
			st.check(ev)
			return ev, true
		case strings.HasPrefix(line, ":"):
			// comment (keep-alive)
		case strings.HasPrefix(line, "event: "):
			if ev.Name != "" {
				st.t.Fatalf("two event lines in one frame: %q, %q", ev.Name, line)
			}
			ev.Name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if sawData {
				st.t.Fatalf("multi-line data in event %s", ev.Name)
			}
			ev.Data, sawData = strings.TrimPrefix(line, "data: "), true
		default:
			st.t.Fatalf("unexpected stream line %q", line)
		}
	}
}

// all reads the rest of the stream.
func (st *sseStream) all() []sseEvent {
	st.t.Helper()
	var out []sseEvent
	for {
		ev, ok := st.next()
		if !ok {
			return out
		}
		out = append(out, ev)
	}
}

// until reads frames up to and including the first named name.
func (st *sseStream) until(name string) []sseEvent {
	st.t.Helper()
	var out []sseEvent
	for {
		ev, ok := st.next()
		if !ok {
			st.t.Fatalf("stream ended before %s; got %v", name, eventNames(out))
		}
		out = append(out, ev)
		if ev.Name == name {
			return out
		}
	}
}

// eventSchema names the component schema of an event's data ("" for done).
func eventSchema(name string) (string, bool) {
	switch {
	case name == "done":
		return "", true
	case name == "thread.created":
		return "ThreadObject", true
	case name == "thread.run.step.delta":
		return "RunStepDeltaObject", true
	case name == "thread.message.delta":
		return "MessageDeltaObject", true
	case strings.HasPrefix(name, "thread.run.step."):
		return "RunStepObject", true
	case strings.HasPrefix(name, "thread.run."):
		return "RunObject", true
	case strings.HasPrefix(name, "thread.message."):
		return "MessageObject", true
	}
	return "", false
}

// check validates one frame: done carries [DONE]; every other event is one
// JSON object matching its schema, whose object/status agree with the
// event name, and which never has a top-level "error" key (§9).
func (st *sseStream) check(ev sseEvent) {
	st.t.Helper()
	if ev.Name == "done" {
		if ev.Data != "[DONE]" {
			st.t.Errorf("done frame data %q, want [DONE]", ev.Data)
		}
		st.done = true
		return
	}
	if ev.Name == "error" {
		// Wrapped as spec §7.6 recommends, so every SDK raises it.
		if err := validateJSON("ErrorResponse", []byte(ev.Data)); err != nil {
			st.t.Errorf("error event: %v\ndata: %s", err, ev.Data)
		}
		return
	}
	schema, ok := eventSchema(ev.Name)
	if !ok {
		st.t.Errorf("unknown event %q: %s", ev.Name, ev.Data)
		return
	}
	if err := validateJSON(schema, []byte(ev.Data)); err != nil {
		st.t.Errorf("event %s: %v\ndata: %s", ev.Name, err, ev.Data)
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(ev.Data), &obj); err != nil {
		st.t.Errorf("event %s: data is not a JSON object: %v", ev.Name, err)
		return
	}
	if _, bad := obj["error"]; bad {
		st.t.Errorf("event %s has a top-level error key: %s", ev.Name, ev.Data)
	}
	object, _ := obj["object"].(string)
	base, suffix := ev.Name, ""
	if i := strings.LastIndexByte(ev.Name, '.'); i >= 0 {
		base, suffix = ev.Name[:i], ev.Name[i+1:]
	}
	switch {
	case ev.Name == "thread.created":
		if object != "thread" {
			st.t.Errorf("event %s carries object %q", ev.Name, object)
		}
	case suffix == "delta":
		if object != base+".delta" {
			st.t.Errorf("event %s carries object %q", ev.Name, object)
		}
		if d, _ := obj["delta"].(map[string]any); d != nil && d["id"] != nil {
			st.t.Errorf("event %s has an id inside delta: %s", ev.Name, ev.Data)
		}
	default:
		if object != base {
			st.t.Errorf("event %s carries object %q", ev.Name, object)
		}
		status, _ := obj["status"].(string)
		if suffix != "created" && status != suffix {
			st.t.Errorf("event %s carries status %q", ev.Name, status)
		}
	}
}

// eventNames lists the events' names, each run of repeated deltas folded
// into one "NAME+" entry.
func eventNames(evs []sseEvent) []string {
	var out []string
	for _, ev := range evs {
		name := ev.Name
		if strings.HasSuffix(name, ".delta") {
			name += "+"
			if len(out) > 0 && out[len(out)-1] == name {
				continue
			}
		}
		out = append(out, name)
	}
	return out
}

// deltaText concatenates the text of the message deltas among evs.
func deltaText(t testing.TB, evs []sseEvent) string {
	t.Helper()
	var b strings.Builder
	for _, ev := range evs {
		if ev.Name != "thread.message.delta" {
			continue
		}
		var d openai.MessageDeltaEvent
		if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
			t.Fatalf("decode delta: %v", err)
		}
		for _, c := range d.Delta.Content {
			b.WriteString(c.Text.Value)
		}
	}
	return b.String()
}

// eventData decodes the data of the first event named name into v.
func eventData(t testing.TB, evs []sseEvent, name string, v any) {
	t.Helper()
	for _, ev := range evs {
		if ev.Name == name {
			if err := json.Unmarshal([]byte(ev.Data), v); err != nil {
				t.Fatalf("decode %s: %v", name, err)
			}
			return
		}
	}
	t.Fatalf("no %s event among %v", name, eventNames(evs))
}

// normalizer rewrites server-assigned ids and timestamps in stream data to
// stable placeholders (run_1, msg_2, 0), numbering each prefix's ids in
// order of appearance, for golden transcripts.
type normalizer struct {
	ids map[string]string
	n   map[string]int
}

var (
	idPattern = regexp.MustCompile(`\b(asst|thread|run|step|msg|call)_[A-Za-z0-9]{16,}\b`)
	tsPattern = regexp.MustCompile(`"(created_at|expires_at|started_at|completed_at|cancelled_at|failed_at|expired_at|incomplete_at)":\d+`)
)

func (n *normalizer) normalize(s string) string {
	if n.ids == nil {
		n.ids, n.n = map[string]string{}, map[string]int{}
	}
	s = idPattern.ReplaceAllStringFunc(s, func(id string) string {
		if p, ok := n.ids[id]; ok {
			return p
		}
		prefix := id[:strings.IndexByte(id, '_')]
		n.n[prefix]++
		p := prefix + "_" + strconv.Itoa(n.n[prefix])
		n.ids[id] = p
		return p
	})
	return tsPattern.ReplaceAllString(s, `"$1":0`)
}

// transcript renders events as SSE text with normalized data.
func (n *normalizer) transcript(evs []sseEvent) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "event: %s\ndata: %s\n\n", ev.Name, n.normalize(ev.Data))
	}
	return b.String()
}
