// Package agent is assistantd's run engine: the durable queue and worker
// pool, the run lifecycle, prompt building, the upstream model client, and
// the event hub that feeds streams.
//
// The database is the queue: a run is work to do while it is queued (or
// in_progress when a restart interrupted it). The in-memory channel only
// wakes workers; a periodic scan and start-up recovery pick up anything it
// missed, so a run is never left stuck.
//
// Every state change is written to the store and then published to the hub
// under a per-run lock, so the events a stream reads are in the order the
// store saw the changes.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/assistantd/assistantd/db"
)

// Store is what the engine needs from the store.
type Store interface {
	Batch(ctx context.Context, fn func(ctx context.Context, tx *db.Tx) error) error
	Now() int64
	CreateRun(ctx context.Context, r db.Run, extra []db.Message) (db.Run, error)
	CreateThreadAndRun(ctx context.Context, t db.Thread, msgs []db.Message, r db.Run) (db.Thread, db.Run, error)
	GetRun(ctx context.Context, threadID, id string) (db.Run, error)
	RunsWithStatus(ctx context.Context, statuses ...string) ([]db.Run, error)
	ExpiredRuns(ctx context.Context, now int64) ([]db.Run, error)
	ThreadRuns(ctx context.Context, threadID string) ([]db.Run, error)
	ThreadSteps(ctx context.Context, threadID string) ([]db.RunStep, error)
	HistoryMessages(ctx context.Context, threadID string) ([]db.Message, []int64, error)
	OpenFile(ctx context.Context, id string) (db.File, io.ReadSeekCloser, error)
}

// Config tunes the engine.
type Config struct {
	// Workers bounds how many runs execute at once.
	Workers int
	// RunTimeout is how long a run may stay non-terminal (expires_at).
	RunTimeout time.Duration
	// MaxSteps caps the steps of one run (tool rounds included).
	MaxSteps int
	// Retries is how many times a failed upstream request is retried
	// (429, 5xx, timeouts); RetryBackoff is the first wait, doubled each time.
	Retries      int
	RetryBackoff time.Duration
	// SweepInterval is how often expiry and the queue are checked.
	SweepInterval time.Duration
	// Builtins are the tool types the server runs itself
	// (code_interpreter, file_search), by their Type. A built-in tool type
	// none of them serves is not offered to the model.
	Builtins []Builtin
	// Functions picks a runner for a function call (a webhook); nil, or a
	// call it does not serve, leaves the call to the client.
	Functions FunctionRouter
	// Sweeps is the server's other housekeeping (expired files, old
	// inspector records …), run beside the engine's own sweep for as long
	// as the engine runs.
	Sweeps []Sweep
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 256
	}
	if c.RunTimeout <= 0 {
		c.RunTimeout = 10 * time.Minute
	}
	if c.MaxSteps <= 0 {
		c.MaxSteps = 50
	}
	if c.Retries < 0 {
		c.Retries = 0
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 500 * time.Millisecond
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = time.Second
	}
}

// Causes of a run's execution context being cancelled.
var (
	errCancelled     = errors.New("run cancelled")
	errExpired       = errors.New("run expired")
	errThreadDeleted = errors.New("thread deleted")
)

// maxRecoveries is how many times a run interrupted by restarts is resumed
// before it is failed instead.
const maxRecoveries = 3

type job struct {
	runID  string
	resume bool // an in_progress run interrupted by a restart
}

// Engine executes runs.
type Engine struct {
	store     Store
	providers *Providers
	hub       *Hub
	log       *slog.Logger
	cfg       Config

	builtins  map[string]Builtin
	inspector *Inspector // records upstream exchanges, when enabled

	queue chan job
	locks [256]sync.Mutex

	mu       sync.Mutex
	inflight map[string]context.CancelCauseFunc
	pending  map[string]bool // queued in the channel, not yet started
	wg       sync.WaitGroup
}

// New returns an engine; Start runs it.
func New(store Store, providers *Providers, hub *Hub, log *slog.Logger, cfg Config) *Engine {
	cfg.defaults()
	builtins := map[string]Builtin{}
	for _, b := range cfg.Builtins {
		builtins[b.Type()] = b
	}
	return &Engine{
		store: store, providers: providers, hub: hub, log: log, cfg: cfg, builtins: builtins,
		queue:    make(chan job, 4096),
		inflight: map[string]context.CancelCauseFunc{},
		pending:  map[string]bool{},
	}
}

// Models lists the models the configured upstreams serve, as /v1/models
// and the web app's model pickers show them.
func (e *Engine) Models(ctx context.Context) []Model { return e.providers.Models(ctx) }

// Start recovers runs a previous process left unfinished, then executes
// runs until ctx is done. Wait blocks until every execution has stopped.
func (e *Engine) Start(ctx context.Context) error {
	go tokenizer() // load the embedded tokenizer before the first run needs it
	if err := e.recover(ctx); err != nil {
		return fmt.Errorf("recover runs: %w", err)
	}
	e.wg.Add(2)
	go func() { defer e.wg.Done(); e.runWorkers(ctx) }()
	go func() { defer e.wg.Done(); e.sweep(ctx) }()
	for _, s := range e.cfg.Sweeps {
		e.wg.Go(func() { s.loop(ctx, e.log) })
	}
	return nil
}

// Wait blocks until the engine's goroutines have stopped after ctx ended.
// Runs interrupted by the stop stay in_progress and resume on next start.
func (e *Engine) Wait() { e.wg.Wait() }

// runWorkers hands queued runs to at most Workers executions at once.
func (e *Engine) runWorkers(ctx context.Context) {
	sem := make(chan struct{}, e.cfg.Workers)
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-e.queue:
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer func() { <-sem }()
				e.execute(ctx, j)
			}()
		}
	}
}

// enqueue wakes a worker for the run. If the channel is full the run stays
// queued in the database and the sweeper enqueues it later.
func (e *Engine) enqueue(j job) {
	e.mu.Lock()
	if e.pending[j.runID] || e.inflight[j.runID] != nil {
		e.mu.Unlock()
		return
	}
	e.pending[j.runID] = true
	e.mu.Unlock()
	select {
	case e.queue <- j:
	default:
		e.mu.Lock()
		delete(e.pending, j.runID)
		e.mu.Unlock()
	}
}

func (e *Engine) lockRun(runID string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = io.WriteString(h, runID)
	return &e.locks[h.Sum32()%uint32(len(e.locks))]
}

// emitter collects the events of one commit.
type emitter struct {
	events []pendingEvent
}

type pendingEvent struct {
	name string
	data json.RawMessage
}

// emit records an event carrying v as it is now.
func (em *emitter) emit(name string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal %s event: %v", name, err)) // our own types: cannot fail
	}
	em.events = append(em.events, pendingEvent{name, b})
}

// commit runs fn in one write transaction under the run's lock and, if it
// commits, publishes the events fn emitted, in order.
func (e *Engine) commit(ctx context.Context, runID string, fn func(ctx context.Context, tx *db.Tx, em *emitter) error) error {
	mu := e.lockRun(runID)
	mu.Lock()
	defer mu.Unlock()
	var em emitter
	err := e.store.Batch(ctx, func(ctx context.Context, tx *db.Tx) error {
		em.events = em.events[:0]
		return fn(ctx, tx, &em)
	})
	if err != nil {
		return err
	}
	e.publish(ctx, runID, em.events)
	return nil
}

// publish hands committed events to the hub, in order. At debug level it
// logs every run transition (--log-level debug).
func (e *Engine) publish(ctx context.Context, runID string, events []pendingEvent) {
	debug := e.log.Enabled(ctx, slog.LevelDebug)
	for _, ev := range events {
		if debug && strings.HasPrefix(ev.name, "thread.run.") && !strings.HasPrefix(ev.name, "thread.run.step.") {
			e.log.Debug("run "+strings.TrimPrefix(ev.name, "thread.run."), "run_id", runID)
		}
		e.hub.Publish(runID, ev.name, ev.data)
	}
}

// RequestError is a client mistake the engine detects (a run in the wrong
// state, missing tool outputs); the API answers it with 400.
type RequestError struct {
	Param   string
	Code    string
	Message string
}

func (e *RequestError) Error() string { return e.Message }

// expiry is the expires_at of a run created now.
func (e *Engine) expiry() *int64 {
	at := e.store.Now() + int64(e.cfg.RunTimeout/time.Second)
	return &at
}

// CreateRun stores a queued run (with its additional messages), publishes
// thread.run.created and thread.run.queued, and enqueues it.
func (e *Engine) CreateRun(ctx context.Context, r db.Run, extra []db.Message) (db.Run, error) {
	return e.create(r, func(r db.Run) (*db.Thread, db.Run, error) {
		run, err := e.store.CreateRun(ctx, r, extra)
		return nil, run, err
	})
}

// CreateThreadAndRun stores a thread, its messages and a queued run on it,
// publishes thread.created, thread.run.created and thread.run.queued, and
// enqueues the run.
func (e *Engine) CreateThreadAndRun(ctx context.Context, t db.Thread, msgs []db.Message, r db.Run) (db.Thread, db.Run, error) {
	run, err := e.create(r, func(r db.Run) (*db.Thread, db.Run, error) {
		var run db.Run
		var err error
		t, run, err = e.store.CreateThreadAndRun(ctx, t, msgs, r)
		return &t, run, err
	})
	return t, run, err
}

// create stores a new run through store and announces it. The run's id is
// chosen first and its lock held from before the insert until its first
// events are published: the sweeper may find the queued run in the store
// at once, but no worker can claim it (and publish thread.run.in_progress)
// before thread.run.created is out.
func (e *Engine) create(r db.Run, store func(db.Run) (*db.Thread, db.Run, error)) (db.Run, error) {
	r.ID = db.NewID("run_")
	r.ExpiresAt = e.expiry()
	mu := e.lockRun(r.ID)
	mu.Lock()
	thread, run, err := store(r)
	if err != nil {
		mu.Unlock()
		return run, err
	}
	var em emitter
	if thread != nil {
		em.emit("thread.created", thread)
	}
	em.emit("thread.run.created", run)
	em.emit("thread.run.queued", run)
	e.publish(context.Background(), run.ID, em.events)
	mu.Unlock()
	e.enqueue(job{runID: run.ID})
	return run, nil
}

// ToolOutput is one submitted function result.
type ToolOutput struct {
	ToolCallID string
	Output     string
}

// SubmitToolOutputs completes the waiting tool_calls step with the outputs
// and re-queues the run. Every pending call must be answered exactly once.
// It returns the hub position before its own events, so a stream can start
// right there (with thread.run.step.completed).
func (e *Engine) SubmitToolOutputs(ctx context.Context, threadID, runID string, outputs []ToolOutput) (db.Run, int64, error) {
	var run db.Run
	var from int64
	err := e.commit(ctx, runID, func(ctx context.Context, tx *db.Tx, em *emitter) error {
		from = e.hub.Position(runID)
		var err error
		run, err = tx.GetRun(ctx, runID)
		if err != nil {
			return err
		}
		if run.ThreadID != threadID {
			return db.ErrNotFound
		}
		if run.Status != db.RunRequiresAction || run.RequiredAction == nil {
			return &RequestError{Param: "run_id", Code: "invalid_state",
				Message: fmt.Sprintf("Runs in status \"%s\" do not accept tool outputs.", run.Status)}
		}
		if run.ExpiresAt != nil && *run.ExpiresAt <= e.store.Now() {
			return &RequestError{Param: "run_id", Code: "invalid_state", Message: "The run has expired and no longer accepts tool outputs."}
		}
		byID := map[string]string{}
		for i, o := range outputs {
			if _, dup := byID[o.ToolCallID]; dup {
				return &RequestError{Param: fmt.Sprintf("tool_outputs[%d].tool_call_id", i), Code: "invalid_value",
					Message: fmt.Sprintf("Duplicate tool output for tool_call_id '%s'.", o.ToolCallID)}
			}
			byID[o.ToolCallID] = o.Output
		}
		var want, got []string
		for _, tc := range run.RequiredAction.SubmitToolOutputs.ToolCalls {
			want = append(want, tc.ID)
		}
		for _, o := range outputs {
			got = append(got, o.ToolCallID)
		}
		missing := slices.ContainsFunc(want, func(id string) bool { _, ok := byID[id]; return !ok })
		extra := slices.ContainsFunc(got, func(id string) bool { return !slices.Contains(want, id) })
		if missing || extra {
			return &RequestError{Param: "tool_outputs", Code: "invalid_value",
				Message: fmt.Sprintf("Expected tool outputs for call_ids %s, got %s. Submit an output for every pending tool call, in one request.",
					quoteList(want), quoteList(got))}
		}
		steps, err := tx.RunSteps(ctx, runID)
		if err != nil {
			return err
		}
		now := e.store.Now()
		for _, st := range steps {
			if st.Status != db.StepInProgress || st.Type != db.StepToolCalls {
				continue
			}
			st, err = tx.UpdateStep(ctx, st.ID, func(st *db.RunStep) error {
				for i := range st.StepDetails.ToolCalls {
					tc := &st.StepDetails.ToolCalls[i]
					if out, ok := byID[tc.ID]; ok && tc.Function != nil {
						tc.Function.Output = &out
					}
				}
				st.Status, st.CompletedAt = db.StepCompleted, &now
				return nil
			})
			if err != nil {
				return err
			}
			em.emit("thread.run.step.completed", st)
		}
		run, err = tx.UpdateRun(ctx, runID, func(r *db.Run) error {
			r.Status, r.RequiredAction = db.RunQueued, nil
			return nil
		})
		if err != nil {
			return err
		}
		em.emit("thread.run.queued", run)
		return nil
	})
	if err != nil {
		return run, 0, err
	}
	e.enqueue(job{runID: runID})
	return run, from, nil
}

func quoteList(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = "'" + id + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// Cancel asks a run to stop: it moves to cancelling at once and to
// cancelled when its work has stopped (an open message keeps the text
// written so far, marked incomplete).
func (e *Engine) Cancel(ctx context.Context, threadID, runID string) (db.Run, error) {
	var run db.Run
	err := e.commit(ctx, runID, func(ctx context.Context, tx *db.Tx, em *emitter) error {
		var err error
		run, err = tx.GetRun(ctx, runID)
		if err != nil {
			return err
		}
		if run.ThreadID != threadID {
			return db.ErrNotFound
		}
		if run.Status == db.RunCancelling {
			return nil // already on its way
		}
		if db.IsTerminal(run.Status) {
			return &RequestError{Param: "run_id", Code: "invalid_state",
				Message: fmt.Sprintf("Cannot cancel run with status '%s'.", run.Status)}
		}
		run, err = tx.UpdateRun(ctx, runID, func(r *db.Run) error {
			r.Status, r.RequiredAction = db.RunCancelling, nil
			return nil
		})
		if err != nil {
			return err
		}
		em.emit("thread.run.cancelling", run)
		return nil
	})
	if err != nil {
		return run, err
	}
	e.mu.Lock()
	cancel := e.inflight[runID]
	e.mu.Unlock()
	if cancel != nil {
		cancel(errCancelled) // the worker settles the run as it stops
	} else {
		e.settle(context.WithoutCancel(ctx), runID, db.RunCancelling, nil)
	}
	return run, nil
}

// StopThread stops the runs of a thread about to be deleted: their
// upstream requests end at once and their stream readers are told, instead
// of the model answering into a thread that no longer exists.
func (e *Engine) StopThread(ctx context.Context, threadID string) error {
	runs, err := e.store.ThreadRuns(ctx, threadID)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range runs {
		if cancel := e.inflight[r.ID]; cancel != nil && !db.IsTerminal(r.Status) {
			cancel(errThreadDeleted)
		}
	}
	// What built-in tools keep for the thread (a kernel and its files)
	// no one can reach once it is gone.
	for _, b := range e.builtins {
		if f, ok := b.(ThreadForgetter); ok {
			if err := f.Forget(threadID); err != nil {
				e.log.Warn("forget a deleted thread's tool state", "tool", b.Type(), "thread_id", threadID, "err", err)
			}
		}
	}
	return nil
}

// openWork is what an execution has open when it stops early: the step
// and message in flight and the text written so far.
type openWork struct {
	stepID, messageID string
	text              string
	usage             *db.Usage
}

// settle ends a run whose work has stopped: from status `from` (the run's
// current status, re-checked in the transaction) to the matching terminal
// status, with its open steps and message ended accordingly. It is
// idempotent: a run no longer in `from` is left alone.
func (e *Engine) settle(ctx context.Context, runID, from string, open *openWork) {
	// Most calls find nothing to do: check with a read before taking the
	// single write connection.
	if r, err := e.store.GetRun(ctx, "", runID); err == nil && !needsSettling(r.Status, from) {
		return
	}
	err := e.commit(ctx, runID, func(ctx context.Context, tx *db.Tx, em *emitter) error {
		run, err := tx.GetRun(ctx, runID)
		if err != nil {
			return err
		}
		if !needsSettling(run.Status, from) {
			return nil
		}
		to, stepStatus, reason := terminalFor(from)
		now := e.store.Now()
		if err := e.closeOpen(ctx, tx, em, runID, open, stepStatus, reason, nil, now); err != nil {
			return err
		}
		return e.finish(ctx, tx, em, runID, to, nil, nil, now)
	})
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		e.log.Error("settle run", "run_id", runID, "error", err)
	}
}

// needsSettling reports whether a run in status should be settled from
// `from`: expiry settles any unfinished run; cancelling only a run that is
// still cancelling.
func needsSettling(status, from string) bool {
	if db.IsTerminal(status) {
		return false
	}
	return from == db.RunExpired || status == from
}

// terminalFor maps the status a run is settled from to its terminal status,
// the status its open steps get and the reason its open message gets.
func terminalFor(from string) (run, step, reason string) {
	switch from {
	case db.RunExpired:
		return db.RunExpired, db.StepExpired, "run_expired"
	case db.RunFailed:
		return db.RunFailed, db.StepFailed, "run_failed"
	default:
		return db.RunCancelled, db.StepCancelled, "run_cancelled"
	}
}

// closeOpen ends the run's in-progress steps (status stepStatus) and their
// messages (incomplete with reason), keeping any text already written.
func (e *Engine) closeOpen(ctx context.Context, tx *db.Tx, em *emitter, runID string, open *openWork, stepStatus, reason string, lastErr *db.LastError, now int64) error {
	steps, err := tx.RunSteps(ctx, runID)
	if err != nil {
		return err
	}
	for _, st := range steps {
		if st.Status != db.StepInProgress {
			continue
		}
		if mc := st.StepDetails.MessageCreation; mc != nil {
			m, err := tx.UpdateMessage(ctx, mc.MessageID, func(m *db.Message) error {
				if open != nil && open.messageID == m.ID && open.text != "" {
					m.Content = []db.ContentPart{{Type: "text", Text: &db.Text{Value: open.text, Annotations: []db.Annotation{}}}}
				}
				m.Status, m.IncompleteAt = "incomplete", &now
				m.IncompleteDetails = &db.IncompleteDetails{Reason: reason}
				return nil
			})
			if err == nil {
				em.emit("thread.message.incomplete", m)
			} else if !errors.Is(err, db.ErrNotFound) {
				return err
			}
		}
		st, err = tx.UpdateStep(ctx, st.ID, func(st *db.RunStep) error {
			st.Status = stepStatus
			switch stepStatus {
			case db.StepCancelled:
				st.CancelledAt = &now
			case db.StepExpired:
				st.ExpiredAt = &now
			case db.StepFailed:
				st.FailedAt, st.LastError = &now, lastErr
			}
			if open != nil && open.stepID == st.ID && open.usage != nil {
				st.TurnUsage = open.usage
			}
			if st.TurnUsage == nil {
				st.TurnUsage = &db.Usage{}
			}
			return nil
		})
		if err != nil {
			return err
		}
		em.emit("thread.run.step."+stepStatus, st)
	}
	return nil
}

// finish moves the run to a terminal status with its usage (the sum of its
// steps) and emits the matching event.
func (e *Engine) finish(ctx context.Context, tx *db.Tx, em *emitter, runID, status string, lastErr *db.LastError, incomplete *db.IncompleteDetails, now int64) error {
	steps, err := tx.RunSteps(ctx, runID)
	if err != nil {
		return err
	}
	var usage db.Usage
	for _, st := range steps {
		if st.TurnUsage != nil {
			usage = usage.Add(*st.TurnUsage)
		}
	}
	run, err := tx.UpdateRun(ctx, runID, func(r *db.Run) error {
		r.Status, r.RequiredAction, r.ExpiresAt, r.Usage = status, nil, nil, &usage
		switch status {
		case db.RunCompleted, db.RunIncomplete:
			r.CompletedAt = &now
		case db.RunCancelled:
			r.CancelledAt = &now
		case db.RunFailed:
			r.FailedAt = &now
		}
		r.LastError, r.IncompleteDetails = lastErr, incomplete
		return nil
	})
	if err != nil {
		return err
	}
	em.emit("thread.run."+status, run)
	return nil
}

// recover handles what a previous process left: cancelling runs are
// settled, queued runs enqueued, in_progress runs resumed from their last
// completed step or failed after too many interruptions. An interrupted
// model turn (its step and message, never persisted beyond their start) is
// dropped and asked again; a tool step whose calls the model had finished
// is kept, and only its calls without a result run again.
// requires_action runs keep waiting.
func (e *Engine) recover(ctx context.Context) error {
	runs, err := e.store.RunsWithStatus(ctx, db.RunQueued, db.RunInProgress, db.RunCancelling)
	if err != nil {
		return err
	}
	for _, r := range runs {
		switch r.Status {
		case db.RunCancelling:
			e.settle(ctx, r.ID, db.RunCancelling, nil)
		case db.RunQueued:
			e.enqueue(job{runID: r.ID})
		case db.RunInProgress:
			if r.Attempts >= maxRecoveries {
				e.failIdle(ctx, r.ID, &db.LastError{Code: "server_error",
					Message: fmt.Sprintf("The run was interrupted by server restarts %d times and was stopped.", r.Attempts)})
				continue
			}
			err := e.store.Batch(ctx, func(ctx context.Context, tx *db.Tx) error {
				steps, err := tx.RunSteps(ctx, r.ID)
				if err != nil {
					return err
				}
				for _, st := range steps {
					if st.Status != db.StepInProgress || (st.Type == db.StepToolCalls && st.TurnUsage != nil) {
						continue
					}
					if mc := st.StepDetails.MessageCreation; mc != nil {
						if err := tx.DeleteMessage(ctx, mc.MessageID); err != nil {
							return err
						}
					}
					if err := tx.DeleteStep(ctx, st.ID); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			e.log.Info("resuming run interrupted by a restart", "run_id", r.ID, "attempt", r.Attempts+1)
			e.enqueue(job{runID: r.ID, resume: true})
		}
	}
	return nil
}

// failIdle fails a run no worker is executing.
func (e *Engine) failIdle(ctx context.Context, runID string, lastErr *db.LastError) {
	if err := e.fail(ctx, runID, nil, lastErr); err != nil {
		e.log.Error("fail run", "run_id", runID, "error", err)
	}
}

// fail ends a non-terminal run failed with lastErr: its open step fails
// with the same error and its open message turns incomplete, keeping the
// text in open (if any).
func (e *Engine) fail(ctx context.Context, runID string, open *openWork, lastErr *db.LastError) error {
	return e.commit(ctx, runID, func(ctx context.Context, tx *db.Tx, em *emitter) error {
		run, err := tx.GetRun(ctx, runID)
		if err != nil || db.IsTerminal(run.Status) {
			return err
		}
		now := e.store.Now()
		if err := e.closeOpen(ctx, tx, em, runID, open, db.StepFailed, "run_failed", lastErr, now); err != nil {
			return err
		}
		return e.finish(ctx, tx, em, runID, db.RunFailed, lastErr, nil, now)
	})
}

// sweep expires overdue runs, settles cancelling runs nobody is working on,
// and enqueues queued runs the channel missed.
func (e *Engine) sweep(ctx context.Context) {
	t := time.NewTicker(e.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		expired, err := e.store.ExpiredRuns(ctx, e.store.Now())
		if err != nil && ctx.Err() == nil {
			e.log.Error("find expired runs", "error", err)
		}
		for _, r := range expired {
			e.mu.Lock()
			cancel := e.inflight[r.ID]
			e.mu.Unlock()
			if cancel != nil {
				cancel(errExpired)
			} else {
				e.settle(ctx, r.ID, db.RunExpired, nil)
			}
		}
		active, err := e.store.RunsWithStatus(ctx, db.RunQueued, db.RunCancelling)
		if err != nil && ctx.Err() == nil {
			e.log.Error("scan runs", "error", err)
		}
		for _, r := range active {
			e.mu.Lock()
			busy := e.inflight[r.ID] != nil || e.pending[r.ID]
			e.mu.Unlock()
			if busy {
				continue
			}
			if r.Status == db.RunQueued {
				e.enqueue(job{runID: r.ID})
			} else {
				e.settle(ctx, r.ID, db.RunCancelling, nil)
			}
		}
	}
}
