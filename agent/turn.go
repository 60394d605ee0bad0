package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/openai/openai-go/v3"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/internal/stack"
)

// execute runs a run until it waits for the client or ends: it claims the
// run, then takes turns (ask the model; run the server-side tool calls it
// made, and ask again) until the model answers, the run needs the
// client's tool outputs, or ctx ends.
func (e *Engine) execute(parent context.Context, j job) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	e.mu.Lock()
	delete(e.pending, j.runID)
	if e.inflight[j.runID] != nil {
		e.mu.Unlock()
		return
	}
	e.inflight[j.runID] = cancel
	e.mu.Unlock()
	defer e.leave(&j)

	if j.attempt == 0 {
		if stashed, ok := e.takeStashed(j.runID, 0); ok {
			j = stashed
		}
	}
	// The run executes scoped to its project: every query it makes (its
	// thread, files, vector stores, containers …) sees that project only.
	if j.project == "" { // woken by another replica's notification
		p, err := e.store.RunProject(ctx, j.runID)
		if err != nil {
			if !errors.Is(err, db.ErrNotFound) {
				e.log.Error("find run's project", "run_id", j.runID, "error", err)
			}
			return
		}
		j.project = p
	}
	ctx = db.WithProject(ctx, j.project)
	run, traceparent, ok := e.claim(ctx, &j)
	if !ok {
		e.mu.Lock()
		if e.leases[j.runID] == j.attempt {
			delete(e.leases, j.runID) // renewed while the job waited (enqueue)
		}
		e.mu.Unlock()
		if j.attempt != 0 && parent.Err() == nil {
			// Claimed, then cancelled before it started: settle it.
			e.settle(e.withFence(context.WithoutCancel(ctx), j.runID, j.attempt), j.runID, db.RunCancelling, nil)
		}
		return
	}
	e.executeClaimed(parent, ctx, &j, run, traceparent)
}

// executeClaimed executes a run this replica has claimed under j.attempt,
// in ctx (parent's, cancelled to stop the run).
func (e *Engine) executeClaimed(parent, ctx context.Context, j *job, run *db.Run, traceparent string) {
	if j.fresh == nil {
		// A run not created yet is held by create once it is: renewing
		// a lease the store does not have would take it for lost.
		e.hold(j.runID, j.attempt)
	}
	defer e.release(j.runID)
	ctx = e.withFence(ctx, j.runID, j.attempt)

	e.runTurns(ctx, j, run, traceparent)

	e.mu.Lock()
	delete(e.inflight, j.runID)
	e.mu.Unlock()
	if cause := context.Cause(ctx); errors.Is(cause, errNotCreated) {
		return
	} else if parent.Err() != nil {
		e.releaseLease(j.runID, j.attempt)
	} else if !errors.Is(cause, errLeaseLost) {
		// A cancel that arrived as this turn ended found it still in
		// flight and left settling to it: settle now (idempotent).
		e.settle(context.WithoutCancel(ctx), j.runID, db.RunCancelling, nil)
	}
}

// leave ends this replica's execution of j's run, and takes up a newer
// claim of it made meanwhile (takeStashed).
func (e *Engine) leave(j *job) {
	e.mu.Lock()
	delete(e.inflight, j.runID)
	e.mu.Unlock()
	if next, ok := e.takeStashed(j.runID, j.attempt); ok {
		e.enqueue(next)
	}
}

// A run created on a replica with a worker free is started at once: it is
// created claimed by this replica (db.StartedBy), and executed without
// waiting in the queue or committing a claim of its own. That takes one
// commit and two hand-offs off the time to its first token.

// startingRun is an execution slot reserved for a run being created.
type startingRun struct {
	parent, ctx context.Context
	cancel      context.CancelCauseFunc
}

// startNow reserves an execution slot for run r, about to be created, and
// registers it as executing here, so a cancel arriving as soon as the run
// exists stops it. It returns nil when r is to be queued instead: on an
// API-only replica, before Start or once stopping, with every worker busy,
// while many writes wait for the writer (earlyBelow),
// or on PostgreSQL for a run with code_interpreter (its thread's kernel
// may be alive on another replica, see enqueueQueued).
func (e *Engine) startNow(r db.Run) *startingRun {
	p := e.runCtx.Load()
	if p == nil || (*p).Err() != nil || e.store.WritesWaiting() >= earlyBelow {
		// Under a burst runs queue: started with their creations, 10,000
		// runs created at once took peak RSS from ≈820 to ≈1,110 MiB in
		// tests/loadgen (more of them stream at once).
		return nil
	}
	if e.cfg.Postgres && slices.ContainsFunc(r.Tools, func(t db.Tool) bool { return t.Type == "code_interpreter" }) {
		return nil
	}
	select {
	case e.slots <- struct{}{}:
	default:
		return nil
	}
	ctx, cancel := context.WithCancelCause(*p)
	e.mu.Lock()
	e.inflight[r.ID] = cancel
	e.mu.Unlock()
	e.wg.Add(1)
	return &startingRun{parent: *p, ctx: ctx, cancel: cancel}
}

// abandon gives back the slot of a run whose creation failed.
func (e *Engine) abandon(runID string, s *startingRun) {
	e.mu.Lock()
	delete(e.inflight, runID)
	e.mu.Unlock()
	s.cancel(nil)
	<-e.slots
	e.wg.Done()
}

// executeStarted executes a run created started (startNow): its claim and
// thread.run.in_progress were committed and published with its creation.
func (e *Engine) executeStarted(s *startingRun, j job, run *db.Run, traceparent string) {
	defer e.wg.Done()
	defer func() { <-e.slots }()
	defer s.cancel(nil)
	defer e.leave(&j)
	e.executeClaimed(s.parent, db.WithProject(s.ctx, j.project), &j, run, traceparent)
}

// runTurns takes the claimed run's turns.
func (e *Engine) runTurns(ctx context.Context, j *job, run *db.Run, traceparent string) {
	ctx, span := e.startExecution(ctx, run, traceparent, j.resume)
	defer span.End()
	wctx := context.WithoutCancel(ctx) // store writes finish even when the run is cancelled
	for {
		t := &turn{e: e, runID: j.runID, run: *run, fresh: j.fresh}
		j.fresh = nil // the first turn knows once the creation committed
		again, lastErr, incomplete := t.take(ctx)
		switch cause := context.Cause(ctx); {
		case errors.Is(cause, errNotCreated):
			// The run's creation failed: there is no run.
		case errors.Is(cause, errCancelled):
			e.settle(wctx, t.runID, db.RunCancelling, t.open())
		case errors.Is(cause, errExpired):
			e.settle(wctx, t.runID, db.RunExpired, t.open())
		case errors.Is(cause, errThreadDeleted):
			t.streamError(db.ErrNotFound)
		case errors.Is(cause, errLeaseLost):
			// Another replica has taken the run over: it is theirs.
		case ctx.Err() != nil:
			// The server is stopping: leave the run in_progress; whoever
			// claims it once its lease has expired resumes it.
		case lastErr != nil:
			t.fail(wctx, lastErr)
		case incomplete != "":
			t.endIncomplete(wctx, incomplete)
		case again:
			continue
		}
		return
	}
}

// claim starts the execution of a run: a job not claimed yet (the
// replica that took the request runs it first) is claimed here, in the
// same transaction, when it is still claimable; a claimed one (the
// sweeper's) is checked against its claim. It records the start and
// announces it, or, resuming an interrupted execution, ends the
// interrupted step for readers first. A run interrupted too many times is
// failed instead.
//
// The run comes back on the heap: the goroutine executing it keeps this
// frame's caller on its stack for the run's whole life.
func (e *Engine) claim(ctx context.Context, j *job) (*db.Run, string, bool) {
	run := new(db.Run)
	var traceparent string
	cctx := context.WithoutCancel(ctx)
	if j.attempt != 0 {
		cctx = e.withFence(cctx, j.runID, j.attempt)
	}
	tooMany, unstored := false, ""
	err := e.commit(cctx, j.runID, func(ctx context.Context, tx *db.Tx, em *emitter) error {
		if j.attempt == 0 {
			c, ok, err := tx.ClaimRun(ctx, j.runID, e.cfg.Replica, e.cfg.RunLease)
			if err != nil {
				return err
			}
			if !ok {
				return errNotRunnable // not due, or another replica was first
			}
			j.attempt, j.resume = c.Attempt, c.Was == db.RunInProgress
		}
		r, err := tx.GetRun(ctx, j.runID)
		if err != nil {
			return err
		}
		if r.Status != db.RunInProgress {
			return errNotRunnable // cancelled since the claim
		}
		if j.resume && j.attempt > maxRecoveries {
			tooMany = true
			return nil
		}
		if j.resume && r.ResponseID != "" {
			// A store: false response's request died with its process:
			// nobody can read the answer, so it is not asked again, and
			// what was kept of it is deleted (below, once this claim has
			// committed; the unstored-responses sweep is the fallback).
			if rec, err := e.store.GetResponse(ctx, r.ResponseID); err == nil && !rec.Store {
				unstored = r.ResponseID
				return nil
			}
		}
		if j.resume {
			if err := e.resumeInterrupted(ctx, tx, em, j.runID); err != nil {
				return err
			}
		}
		*run, err = tx.UpdateRun(ctx, j.runID, func(r *db.Run) error {
			if r.StartedAt == nil {
				now := e.store.Now()
				r.StartedAt = &now
			}
			return nil
		})
		if err != nil {
			return err
		}
		if traceparent, err = e.runTrace(ctx, tx, *j); err != nil {
			return err
		}
		em.emit("thread.run.in_progress", run)
		return nil
	})
	if err != nil && !errors.Is(err, errNotRunnable) && !errors.Is(err, db.ErrNotFound) && !errors.Is(err, db.ErrLeaseLost) {
		e.log.Error("claim run", "run_id", j.runID, "error", err)
	}
	if err == nil && tooMany {
		e.log.Warn("failing run interrupted too often", "run_id", j.runID, "attempt", j.attempt)
		if err := e.fail(e.withFence(cctx, j.runID, j.attempt), j.runID, nil, &db.LastError{Code: "server_error",
			Message: fmt.Sprintf("The run was interrupted by server restarts %d times and was stopped.", j.attempt-1)}); err != nil {
			e.log.Error("fail run", "run_id", j.runID, "error", err)
		}
		return run, "", false
	}
	if err == nil && unstored != "" {
		e.log.Info("deleting an interrupted store: false response instead of resuming it", "run_id", j.runID, "response_id", unstored)
		if err := e.store.DeleteResponse(cctx, unstored); err != nil && !errors.Is(err, db.ErrNotFound) {
			e.log.Error("delete unstored response", "response_id", unstored, "error", err)
			if err := e.fail(e.withFence(cctx, j.runID, j.attempt), j.runID, nil, &db.LastError{Code: "server_error",
				Message: "The response was interrupted by a server restart; store: false responses are not resumed."}); err != nil {
				e.log.Error("fail run", "run_id", j.runID, "error", err)
			}
		}
		return run, "", false
	}
	if err == nil && j.resume {
		e.log.Info("resuming interrupted run", "run_id", j.runID, "attempt", j.attempt)
	}
	return run, traceparent, err == nil
}

// turn is the state of one turn while it runs: one model request and the
// tool calls it made.
type turn struct {
	e     *Engine
	runID string
	run   db.Run

	// fresh: the run's creation may not have committed yet (see create).
	fresh *freshRun

	msgStepID, msgID string
	msgDone          bool
	opening          *opening // the message's opening, committing (openEarly)
	text             strings.Builder
	textSent         bool

	toolStepID string
	asm        assembler
	// builtinCalls counts the run's built-in tool calls so far, against
	// its response's max_tool_calls.
	builtinCalls int64

	// The model's reasoning (reasoning_content) before its answer: the
	// step the turn makes keeps it; a response shows it as an item.
	reasoning       strings.Builder
	reasoningID     string
	reasoningDone   bool
	reasoningTokens int64 // as the upstream reported them

	broken         error  // a store write failed: the turn stops
	emitted        bool   // something reached the hub: no retry from here
	finish         string // the upstream's finish_reason
	usage          *db.Usage
	promptEstimate int64
}

var errNotRunnable = errors.New("run is not runnable")

// open describes the work in flight, for settling a stopped run.
func (t *turn) open() *openWork {
	t.awaitOpen(true)
	o := &openWork{messageID: t.msgID, text: t.text.String()}
	if t.toolStepID != "" {
		o.stepID = t.toolStepID
	} else if !t.msgDone {
		o.stepID = t.msgStepID
	}
	o.usage = &db.Usage{PromptTokens: t.promptEstimate, CompletionTokens: CountTokens(o.text)}
	o.usage.TotalTokens = o.usage.PromptTokens + o.usage.CompletionTokens
	return o
}

// take performs the turn. It reports again when the turn ran the model's
// tool calls itself and the model is to be asked again; otherwise a
// last_error to fail the run with, or an incomplete reason
// ("max_prompt_tokens", "max_completion_tokens"), or none of these when it
// has already moved the run on (or ctx ended).
func (t *turn) take(ctx context.Context) (again bool, lastErr *db.LastError, incomplete string) {
	var steps []db.RunStep
	var err error
	stack.Run(func() { steps, err = t.e.store.ThreadSteps(ctx, t.run.ThreadID) }) // see model
	if err != nil {
		lastErr, incomplete = internalErr(ctx, err)
		return false, lastErr, incomplete
	}
	var used db.Usage
	n := 0
	for _, st := range steps {
		if st.RunID != t.runID {
			continue
		}
		n++
		if st.TurnUsage != nil {
			used = used.Add(*st.TurnUsage)
		}
		for _, tc := range st.StepDetails.ToolCalls {
			if tc.Type != "function" {
				t.builtinCalls++
			}
		}
		if st.Type == db.StepToolCalls && st.Status == db.StepInProgress && st.TurnUsage != nil {
			// The model has made its calls but they have not all run: a
			// restart interrupted the tools. Run the rest; nothing that
			// finished runs again.
			t.toolStepID = st.ID
			return t.dispatch(ctx, st)
		}
	}
	lastErr, incomplete = t.model(ctx, steps, n, used)
	if lastErr != nil || incomplete != "" || t.toolStepID == "" || ctx.Err() != nil || t.broken != nil {
		return false, lastErr, incomplete
	}
	return t.tools(ctx)
}

// model asks the model and streams its answer into the run. A text answer
// completes the run (incomplete at a token cap); tool calls are left
// announced for take to run.
//
// The goroutine executing a run waits on the upstream and the store for
// most of its life, and thousands wait at once: the request is built in
// prepare, on a goroutine of its own (stack.Run: reading the store and
// counting tokens go deep), and kept on the heap, so neither that depth
// nor a large frame stays beneath the wait.
func (t *turn) model(ctx context.Context, steps []db.RunStep, n int, used db.Usage) (*db.LastError, string) {
	var provider *Provider
	var params *openai.ChatCompletionNewParams
	var lastErr *db.LastError
	var incomplete string
	stack.Run(func() { provider, params, lastErr, incomplete = t.prepare(ctx, steps, n, used) })
	if params == nil {
		if err := t.awaitCreated(ctx); errors.Is(err, errStaleHistory) {
			return t.model(ctx, steps, n, used) // on the history as created
		} else if err != nil {
			return nil, "" // there is no run to end
		}
		return lastErr, incomplete
	}
	err := t.request(ctx, provider, params)
	if cerr := t.awaitCreated(ctx); errors.Is(cerr, errStaleHistory) || errors.Is(err, errStaleHistory) {
		return t.model(ctx, steps, n, used) // nothing of the answer was handled
	} else if cerr != nil {
		return nil, ""
	}
	t.awaitOpen(true)
	if ctx.Err() != nil {
		return nil, ""
	}
	if t.broken != nil {
		return &db.LastError{Code: "server_error", Message: "The run could not be recorded: " + t.broken.Error()}, ""
	}
	if err != nil {
		return upstreamErr(provider.Name, err), ""
	}
	if t.toolStepID != "" {
		return nil, "" // take runs the calls
	}
	return t.complete(ctx)
}

// prepare builds the turn's request: the run's history, truncated to its
// budget and the model's window. With no request to send (nil params) it
// returns why: a last_error to fail the run with, or an incomplete reason.
func (t *turn) prepare(ctx context.Context, steps []db.RunStep, n int, used db.Usage) (*Provider, *openai.ChatCompletionNewParams, *db.LastError, string) {
	e := t.e
	if n >= e.cfg.MaxSteps {
		return nil, nil, &db.LastError{Code: "server_error", Message: fmt.Sprintf("The run reached its limit of %d steps.", e.cfg.MaxSteps)}, ""
	}
	fail := func(err error) (*Provider, *openai.ChatCompletionNewParams, *db.LastError, string) {
		lastErr, incomplete := internalErr(ctx, err)
		return nil, nil, lastErr, incomplete
	}
	provider, ok, err := e.provider(ctx, t.run)
	if err != nil {
		return fail(err)
	}
	if !ok {
		return nil, nil, &db.LastError{Code: "invalid_prompt", Message: fmt.Sprintf(
			"No upstream provider serves model '%s'. Configure one with --upstream-models or a providers file.", t.run.Model)}, ""
	}
	msgs, seqs, err := e.store.HistoryMessages(ctx, t.run.ThreadID)
	if err != nil {
		return fail(err)
	}
	runs, err := e.store.ThreadRuns(ctx, t.run.ThreadID)
	if err != nil {
		return fail(err)
	}
	if t.fresh != nil {
		msgs, seqs, runs = t.fresh.merge(msgs, seqs, runs, t.run)
	}
	items, err := buildHistory(ctx, storeFiles{e.store}, msgs, seqs, runs, steps)
	if err != nil {
		return fail(err)
	}
	prefix, err := e.responsePrefix(ctx, t.run, t.fresh) // a response's context
	if err != nil {
		return fail(err)
	}
	items = append(prefix, items...)
	offered := e.offer(t.run)
	if t.builtinsSpent() {
		// max_tool_calls reached: built-in tools are no longer offered.
		offered = e.offer(functionsOnly(t.run))
	}
	fixed := CountTokens(t.run.Instructions) + perMessageTokens
	for _, fd := range offered {
		fixed += CountTokens(fd.Name) + CountTokens(fd.Description) + CountTokens(string(fd.Parameters))
	}
	var budget int64
	if mp := t.run.MaxPromptTokens; mp != nil {
		if budget = *mp - used.PromptTokens; budget <= 0 {
			return nil, nil, nil, "max_prompt_tokens"
		}
	}
	items, fits := truncate(items, t.run.TruncationStrategy, fixed, budget)
	if !fits {
		return nil, nil, nil, "max_prompt_tokens"
	}
	if window := provider.ContextTokens; window > 0 && (t.run.TruncationStrategy == nil || t.run.TruncationStrategy.Type == "auto") {
		reserve := int64(1024) // room for the answer
		if mc := t.run.MaxCompletionTokens; mc != nil {
			reserve = min(*mc-used.CompletionTokens, window/2)
		}
		if items, fits = truncate(items, nil, fixed, window-reserve); !fits {
			return nil, nil, &db.LastError{Code: "invalid_prompt", Message: fmt.Sprintf(
				"The latest message alone does not fit the model's context window of %d tokens.", window)}, ""
		}
	}
	t.promptEstimate = fixed
	for _, it := range items {
		t.promptEstimate += it.tokens
	}
	params := new(openai.ChatCompletionNewParams)
	*params = requestParams(t.run, items, offered)
	if mc := t.run.MaxCompletionTokens; mc != nil {
		left := *mc - used.CompletionTokens
		if left <= 0 {
			return nil, nil, nil, "max_completion_tokens"
		}
		params.MaxCompletionTokens = openai.Int(left)
	}
	return provider, params, nil, ""
}

// storeFiles adapts the store's OpenFile to fileReader.
type storeFiles struct{ s Store }

func (f storeFiles) OpenFile(ctx context.Context, id string) (db.File, io.ReadCloser, error) {
	file, r, err := f.s.OpenFile(ctx, id)
	if err != nil {
		return file, nil, err
	}
	return file, r, nil
}

func internalErr(ctx context.Context, err error) (*db.LastError, string) {
	if ctx.Err() != nil {
		return nil, ""
	}
	return &db.LastError{Code: "server_error", Message: "Internal error while preparing the run: " + err.Error()}, ""
}

type messageDelta struct {
	ID     string `json:"id"`
	Object string `json:"object"`
	Delta  struct {
		Content []textDelta `json:"content"`
	} `json:"delta"`
}

type textDelta struct {
	Index int    `json:"index"`
	Type  string `json:"type"`
	Text  struct {
		Value       string          `json:"value"`
		Annotations []db.Annotation `json:"annotations,omitzero"`
	} `json:"text"`
}

// onText streams a text fragment, opening the message (and its step) on
// the first one.
func (t *turn) onText(ctx context.Context, frag string) {
	t.awaitOpen(false)
	if t.broken != nil || t.toolStepID != "" || t.msgDone {
		// Text after tool calls in one answer: rare, and a second message
		// would interleave with the tool step; the calls carry the turn.
		return
	}
	if t.msgStepID == "" && !t.openMessage(ctx) {
		return
	}
	t.text.WriteString(frag)
	d := messageDelta{ID: t.msgID, Object: "thread.message.delta"}
	td := textDelta{Index: 0, Type: "text"}
	td.Text.Value = frag
	if !t.textSent {
		td.Text.Annotations = []db.Annotation{} // once, so clients start from an empty list
	}
	d.Delta.Content = []textDelta{td}
	t.publish("thread.message.delta", d)
	t.textSent = true
}

func (t *turn) publish(name string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal %s: %v", name, err))
	}
	t.e.liveEvent(t.runID, name, b)
	t.emitted = true
}

// onReasoning streams a fragment of the model's reasoning. Reasoning ends
// when the answer (text or tool calls) begins; what comes after is kept
// out of it.
func (t *turn) onReasoning(frag string) {
	if t.broken != nil || t.reasoningDone || frag == "" {
		return
	}
	if t.reasoningID == "" {
		t.reasoningID = db.NewID("rs_")
	}
	t.reasoning.WriteString(frag)
	t.publish(EventReasoningDelta, ReasoningEvent{ID: t.reasoningID, RunID: t.runID, Delta: frag})
}

// endReasoning closes the turn's reasoning as its answer's step is made,
// and returns what that step keeps of it (nil: none).
func (t *turn) endReasoning() *db.Reasoning {
	if t.reasoningDone || t.reasoningID == "" {
		t.reasoningDone = true
		return nil
	}
	t.reasoningDone = true
	t.publish(EventReasoningDone, ReasoningEvent{ID: t.reasoningID, RunID: t.runID, Text: t.reasoning.String()})
	return &db.Reasoning{ID: t.reasoningID, Text: t.reasoning.String()}
}

// withReasoningTokens records the reasoning tokens the upstream reported
// for the turn on its step.
func (t *turn) withReasoningTokens(st *db.RunStep) {
	if t.reasoningTokens > 0 {
		if st.Reasoning == nil {
			st.Reasoning = &db.Reasoning{}
		}
		st.Reasoning.Tokens = t.reasoningTokens
	}
}

// openMessage creates the message_creation step and its in-progress
// message.
func (t *turn) openMessage(ctx context.Context) bool {
	reasoning := t.endReasoning()
	if t.e.elog == nil && t.e.store.WritesWaiting() < earlyBelow {
		t.openEarly(ctx, reasoning)
		return true
	}
	err := t.e.commit(context.WithoutCancel(ctx), t.runID, func(ctx context.Context, tx *db.Tx, em *emitter) error {
		m, err := tx.CreateMessage(ctx, db.Message{ThreadID: t.run.ThreadID, Status: "in_progress", Role: "assistant",
			AssistantID: &t.run.AssistantID, RunID: &t.run.ID})
		if err != nil {
			return err
		}
		st, err := tx.CreateStep(ctx, db.RunStep{RunID: t.runID, ThreadID: t.run.ThreadID, AssistantID: t.run.AssistantID,
			Type: db.StepMessageCreation, StepDetails: db.StepDetails{Type: db.StepMessageCreation,
				MessageCreation: &db.MessageCreation{MessageID: m.ID}}, Reasoning: reasoning})
		if err != nil {
			return err
		}
		em.emit("thread.run.step.created", st)
		em.emit("thread.run.step.in_progress", st)
		em.emit("thread.message.created", m)
		em.emit("thread.message.in_progress", m)
		t.msgStepID, t.msgID = st.ID, m.ID
		return nil
	})
	if err != nil {
		t.broken = err
		return false
	}
	t.emitted = true
	return true
}

// earlyBelow: a message is opened early (openEarly), and a run executed
// before its creation commits (see create), only while fewer writes than
// this wait for the writer, so that the commit follows promptly. Under a
// burst (1,000 runs opening their messages at once in tests/loadgen)
// early opens let every stream run while the writer works through the
// commits, and the two fought for the CPU: the added delay between deltas
// rose from ≈0 to ≈100 ms p99. Opened in turn, as before, the streams
// start as their commits come.
const earlyBelow = 8

// openEarly opens the message as openMessage does, but publishes its
// events at once and commits behind them, so the first token does not
// wait for a commit. The write is announced to the store first (readers
// in this process wait for it, see db.Store.Announce), and the run's lock
// is held until it has committed: the run's next commits, and their
// events, come after it. A failed open breaks the turn (awaitOpen).
//
// Only with events published here, not through the durable event log,
// which other replicas read and the commit itself writes.
func (t *turn) openEarly(ctx context.Context, reasoning *db.Reasoning) {
	e := t.e
	m := e.store.PrepareMessage(db.Message{ThreadID: t.run.ThreadID, Status: "in_progress", Role: "assistant",
		AssistantID: &t.run.AssistantID, RunID: &t.run.ID})
	st := e.store.PrepareStep(db.RunStep{RunID: t.runID, ThreadID: t.run.ThreadID, AssistantID: t.run.AssistantID,
		Type: db.StepMessageCreation, StepDetails: db.StepDetails{Type: db.StepMessageCreation,
			MessageCreation: &db.MessageCreation{MessageID: m.ID}}, Reasoning: reasoning})
	settle := e.store.Announce(t.run.ThreadID, t.runID)
	mu := e.lockRun(t.runID)
	mu.Lock()
	var em emitter
	em.emit("thread.run.step.created", st)
	em.emit("thread.run.step.in_progress", st)
	em.emit("thread.message.created", m)
	em.emit("thread.message.in_progress", m)
	e.publish(ctx, t.runID, em.events)
	t.msgStepID, t.msgID, t.emitted = st.ID, m.ID, true
	o := &opening{done: make(chan struct{})}
	t.opening = o
	wctx := context.WithoutCancel(ctx)
	go func() {
		defer close(o.done)
		defer mu.Unlock()
		defer settle()
		o.err = e.commitLocked(wctx, t.runID, func(ctx context.Context, tx *db.Tx, _ *emitter) error {
			return tx.CreatePrepared(ctx, m, st)
		})
	}()
}

// errStaleHistory: a turn begun before its run's creation committed read
// a history that changed before the creation (a message was written in
// between): its request is dropped, unanswered, and prepared again.
var errStaleHistory = errors.New("the thread's history changed before the run was created")

// awaitCreated waits until the run's creation has committed, when the turn
// began before it did (t.fresh): nothing of the answer is handled before.
// It fails when the creation did, or ctx ended, or the history the turn
// read was stale.
func (t *turn) awaitCreated(ctx context.Context) error {
	f := t.fresh
	if f == nil {
		return nil
	}
	select {
	case <-f.created.done:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	if f.created.err != nil {
		return errNotCreated
	}
	t.fresh = nil
	if f.read != f.created.prior {
		return errStaleHistory
	}
	return nil
}

// opening is a message opened by openEarly, committing.
type opening struct {
	done chan struct{}
	err  error // once done
}

// awaitOpen waits for the message openEarly opened to be committed; if
// the commit failed, the turn is broken. With wait false it only looks.
func (t *turn) awaitOpen(wait bool) {
	o := t.opening
	if o == nil {
		return
	}
	if !wait {
		select {
		case <-o.done:
		default:
			return
		}
	}
	<-o.done
	t.opening = nil
	if o.err != nil {
		t.msgStepID, t.msgID = "", "" // never stored: nothing to settle
		if t.broken == nil {
			t.broken = o.err
		}
	}
}

// closeMessage completes (or marks incomplete) the open message and
// completes its step with usage. The message gets the text written so far
// with anns, and the attachments (images) of the tool calls made since
// the run's previous message.
func (t *turn) closeMessage(ctx context.Context, tx *db.Tx, em *emitter, reason string, usage db.Usage, anns []db.Annotation) error {
	now := t.e.store.Now()
	text := t.text.String()
	attached, err := t.attachments(ctx, tx)
	if err != nil {
		return err
	}
	if anns == nil {
		anns = []db.Annotation{}
	}
	var content []db.ContentPart
	if text != "" {
		content = append(content, db.ContentPart{Type: "text", Text: &db.Text{Value: text, Annotations: anns}})
	}
	content = append(content, attached...)
	m, err := tx.UpdateMessage(ctx, t.msgID, func(m *db.Message) error {
		if len(content) > 0 {
			m.Content = content
		}
		if reason == "" {
			m.Status, m.CompletedAt = "completed", &now
		} else {
			m.Status, m.IncompleteAt, m.IncompleteDetails = "incomplete", &now, &db.IncompleteDetails{Reason: reason}
		}
		return nil
	})
	if err != nil {
		return err
	}
	st, err := tx.UpdateStep(ctx, t.msgStepID, func(st *db.RunStep) error {
		st.Status, st.CompletedAt, st.TurnUsage = db.StepCompleted, &now, &usage
		t.withReasoningTokens(st)
		return nil
	})
	if err != nil {
		return err
	}
	if d, ok := closingDelta(t.msgID, text != "", anns, attached); ok {
		em.emit("thread.message.delta", d)
	}
	em.emit("thread.message."+m.Status, m)
	em.emit("thread.run.step.completed", st)
	t.msgDone = true
	return nil
}

// attachments collects the content parts the run's tool calls added since
// its previous message (steps are in order; a message step other than the
// open one starts the collection afresh).
func (t *turn) attachments(ctx context.Context, tx *db.Tx) ([]db.ContentPart, error) {
	steps, err := tx.RunSteps(ctx, t.runID)
	if err != nil {
		return nil, err
	}
	var parts []db.ContentPart
	for _, st := range steps {
		switch {
		case st.Type == db.StepMessageCreation && st.ID != t.msgStepID:
			parts = parts[:0]
		case st.Type == db.StepToolCalls:
			for _, tc := range st.StepDetails.ToolCalls {
				parts = append(parts, st.ToolIO[tc.ID].Attachments...)
			}
		}
	}
	return parts, nil
}

// closingDelta is the message delta that streams what a message gains as
// it closes: its text's annotations and the attached images, each with
// its index, as the SDKs' delta merging needs.
func closingDelta(msgID string, hasText bool, anns []db.Annotation, attached []db.ContentPart) (map[string]any, bool) {
	var content []any
	first := 0
	if hasText {
		first = 1
		if len(anns) > 0 {
			list := make([]any, len(anns))
			for i, a := range anns {
				m := asJSONValue(a).(map[string]any)
				m["index"] = i
				list[i] = m
			}
			content = append(content, map[string]any{"index": 0, "type": "text", "text": map[string]any{"annotations": list}})
		}
	}
	for i, p := range attached {
		m := asJSONValue(p).(map[string]any)
		m["index"] = first + i
		content = append(content, m)
	}
	if len(content) == 0 {
		return nil, false
	}
	return map[string]any{"id": msgID, "object": "thread.message.delta", "delta": map[string]any{"content": content}}, true
}

// annotate asks the run's built-in tools that annotate answers for the
// annotations of the text written so far.
func (t *turn) annotate(ctx context.Context) []db.Annotation {
	text := t.text.String()
	if text == "" {
		return nil
	}
	var anns []db.Annotation
	for _, tool := range t.run.Tools {
		a, ok := t.e.builtins[tool.Type].(Annotator)
		if !ok {
			continue
		}
		more, err := a.Annotate(ctx, t.run, text)
		if err != nil {
			t.e.log.Warn("annotate answer", "run_id", t.runID, "tool", tool.Type, "error", err)
			continue
		}
		anns = append(anns, more...)
	}
	slices.SortStableFunc(anns, func(a, b db.Annotation) int { return a.StartIndex - b.StartIndex })
	return anns
}

type stepDelta struct {
	ID     string `json:"id"`
	Object string `json:"object"`
	Delta  struct {
		StepDetails struct {
			Type      string `json:"type"`
			ToolCalls []any  `json:"tool_calls"`
		} `json:"step_details"`
	} `json:"delta"`
}

type toolCallDelta struct {
	Index    int    `json:"index"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type"`
	Function struct {
		Name      string  `json:"name,omitempty"`
		Arguments string  `json:"arguments"`
		Output    *string `json:"output"`
	} `json:"function"`
}

// MarshalJSON leaves "output" out of continuation fragments: the first
// fragment of a call carries "output": null, later ones only arguments.
func (d toolCallDelta) MarshalJSON() ([]byte, error) {
	fn := map[string]any{"arguments": d.Function.Arguments}
	if d.ID != "" {
		fn["name"] = d.Function.Name
		fn["output"] = nil
	}
	m := map[string]any{"index": d.Index, "type": d.Type, "function": fn}
	if d.ID != "" {
		m["id"] = d.ID
	}
	return json.Marshal(m)
}

// onTool folds a tool call fragment in, opening the tool_calls step on
// the first one (after closing any open message: one step at a time).
func (t *turn) onTool(ctx context.Context, tc openai.ChatCompletionChunkChoiceDeltaToolCall) {
	if t.broken != nil {
		return
	}
	if t.toolStepID == "" {
		var anns []db.Annotation
		if t.msgStepID != "" && !t.msgDone {
			anns = t.annotate(ctx)
		}
		reasoning := t.endReasoning()
		err := t.e.commit(context.WithoutCancel(ctx), t.runID, func(ctx context.Context, tx *db.Tx, em *emitter) error {
			if t.msgStepID != "" && !t.msgDone {
				if err := t.closeMessage(ctx, tx, em, "", db.Usage{}, anns); err != nil {
					return err
				}
			}
			st, err := tx.CreateStep(ctx, db.RunStep{RunID: t.runID, ThreadID: t.run.ThreadID, AssistantID: t.run.AssistantID,
				Type: db.StepToolCalls, StepDetails: db.StepDetails{Type: db.StepToolCalls}, Reasoning: reasoning})
			if err != nil {
				return err
			}
			em.emit("thread.run.step.created", st)
			em.emit("thread.run.step.in_progress", st)
			t.toolStepID = st.ID
			return nil
		})
		if err != nil {
			t.broken = err
			return
		}
		t.emitted = true
	}
	call, frag := t.asm.add(tc)
	switch {
	case call.ignored:
	case !call.announced && call.name != "":
		t.announceCall(call)
	case call.announced && frag != "" && call.stream != nil:
		if part := call.stream.Write(frag); part != nil {
			t.publishStepDelta(builtinDelta(t.asm.position(call), "", call.builtin.Type(), part))
		}
	case call.announced && frag != "":
		d := toolCallDelta{Index: t.asm.position(call), Type: "function"}
		d.Function.Arguments = frag
		t.publishStepDelta(d)
	}
}

// announceCall sends a call's first fragment. A function call's carries
// its id, type, name, the arguments so far and a null output; a built-in
// tool's carries its id and type and what its ArgStream makes of the
// arguments so far.
func (t *turn) announceCall(call *toolCall) {
	if b := t.e.builtin(t.run, call.name); b != nil && t.builtinsSpent() {
		// OpenAI: "Any further attempts to call a tool by the model
		// will be ignored."
		call.ignored = true
		return
	}
	i := t.asm.position(call)
	if b := t.e.builtin(t.run, call.name); b != nil {
		t.builtinCalls++
		call.builtin, call.stream = b, b.Stream()
		t.publishStepDelta(builtinDelta(i, call.ID, b.Type(), call.stream.Start()))
		if args := call.args.String(); args != "" {
			if part := call.stream.Write(args); part != nil {
				t.publishStepDelta(builtinDelta(i, "", b.Type(), part))
			}
		}
		call.announced = true
		return
	}
	d := toolCallDelta{Index: i, ID: call.ID, Type: "function"}
	d.Function.Name, d.Function.Arguments = call.name, call.args.String()
	t.publishStepDelta(d)
	call.announced = true
}

// functionsOnly is run with its function tools only.
func functionsOnly(run db.Run) db.Run {
	var tools []db.Tool
	for _, tool := range run.Tools {
		if tool.Type == "function" {
			tools = append(tools, tool)
		}
	}
	run.Tools = tools
	return run
}

// builtinsSpent reports whether the run has made as many built-in tool
// calls as its response's max_tool_calls allows.
func (t *turn) builtinsSpent() bool {
	return t.run.MaxToolCalls != nil && t.builtinCalls >= *t.run.MaxToolCalls
}

// builtinDelta is a step delta's tool call entry for a built-in tool:
// {"index", "id"?, "type": typ, typ: part}.
func builtinDelta(index int, id, typ string, part any) map[string]any {
	d := map[string]any{"index": index, "type": typ, typ: part}
	if id != "" {
		d["id"] = id
	}
	return d
}

func (t *turn) publishStepDelta(d any) {
	t.publish("thread.run.step.delta", newStepDelta(t.toolStepID, d))
}

func newStepDelta(stepID string, d any) stepDelta {
	sd := stepDelta{ID: stepID, Object: "thread.run.step.delta"}
	sd.Delta.StepDetails.Type = db.StepToolCalls
	sd.Delta.StepDetails.ToolCalls = []any{d}
	return sd
}

// turnUsage is the upstream's usage, or an estimate when it sent none.
func (t *turn) turnUsage() db.Usage {
	if t.usage != nil {
		return *t.usage
	}
	completion := CountTokens(t.text.String())
	for _, c := range t.asm.calls {
		completion += CountTokens(c.name) + CountTokens(c.args.String())
	}
	return db.Usage{PromptTokens: t.promptEstimate, CompletionTokens: completion, TotalTokens: t.promptEstimate + completion}
}

// complete ends the turn after the model answered with text: the run
// completes (incomplete on a token cap).
func (t *turn) complete(ctx context.Context) (*db.LastError, string) {
	usage := t.turnUsage()
	wctx := context.WithoutCancel(ctx)
	if t.msgStepID == "" && !t.openMessage(ctx) {
		return &db.LastError{Code: "server_error", Message: "Could not record the model's answer."}, ""
	}
	reason, runIncomplete := "", ""
	switch t.finish {
	case "length":
		reason, runIncomplete = "max_tokens", "max_completion_tokens"
	case "content_filter":
		reason = "content_filter"
	}
	anns := t.annotate(wctx)
	err := t.e.commit(wctx, t.runID, func(ctx context.Context, tx *db.Tx, em *emitter) error {
		if err := t.closeMessage(ctx, tx, em, reason, usage, anns); err != nil {
			return err
		}
		now := t.e.store.Now()
		if runIncomplete != "" {
			return t.e.finish(ctx, tx, em, t.runID, db.RunIncomplete, nil, &db.IncompleteDetails{Reason: runIncomplete}, now)
		}
		return t.e.finish(ctx, tx, em, t.runID, db.RunCompleted, nil, nil, now)
	})
	if err != nil {
		t.streamError(err)
	}
	return nil, ""
}

// endIncomplete ends the run incomplete before the model was called (a
// token budget already spent).
func (t *turn) endIncomplete(ctx context.Context, reason string) {
	err := t.e.commit(ctx, t.runID, func(ctx context.Context, tx *db.Tx, em *emitter) error {
		return t.e.finish(ctx, tx, em, t.runID, db.RunIncomplete, nil, &db.IncompleteDetails{Reason: reason}, t.e.store.Now())
	})
	if err != nil {
		t.streamError(err)
	}
}

// fail ends the run failed, keeping any text already streamed in its
// message (incomplete) and failing the open step with the same error.
func (t *turn) fail(ctx context.Context, lastErr *db.LastError) {
	if err := t.e.fail(ctx, t.runID, t.open(), lastErr); err != nil {
		t.streamError(err)
	}
}

// streamError tells the run's stream readers that the run could not be
// recorded (its thread was deleted, or the store failed), as the wrapped
// error event all three SDKs raise, and logs it.
func (t *turn) streamError(err error) {
	if errors.Is(err, db.ErrIllegalTransition) || errors.Is(err, db.ErrLeaseLost) {
		return // settled elsewhere (cancelled or expired meanwhile), or taken over
	}
	t.e.log.Error("run could not be recorded", "run_id", t.runID, "error", err)
	msg := "The run could not be recorded."
	if errors.Is(err, db.ErrNotFound) {
		msg = "The run no longer exists: its thread was deleted."
	}
	if t.e.elog != nil {
		b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": "server_error", "param": nil, "code": "server_error"}})
		t.e.elog.final(t.runID, "error", b)
		return
	}
	t.publish("error", map[string]any{"error": map[string]any{"message": msg, "type": "server_error", "param": nil, "code": "server_error"}})
}
