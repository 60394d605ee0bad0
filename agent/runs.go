package agent

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/telemetry"
)

// The engine's operations on runs, as the API and the web app call them:
// create, answer, cancel, and stop a thread's runs.

// RequestError is a client mistake the engine detects (a run in the wrong
// state, missing tool outputs); the API answers it with 400.
type RequestError struct {
	Param   string
	Code    string
	Message string
}

func (e *RequestError) Error() string { return e.Message }

// times are the created_at and expires_at of a run created now, from one
// clock reading.
func (e *Engine) times() (created int64, expires *int64) {
	now := e.store.Now()
	at := now + int64(e.cfg.RunTimeout/time.Second)
	return now, &at
}

// CreateRun stores a queued run (with its additional messages), publishes
// thread.run.created and thread.run.queued, and enqueues it.
func (e *Engine) CreateRun(ctx context.Context, r db.Run, extra []db.Message) (db.Run, error) {
	return e.create(ctx, r, func(r db.Run) (*db.Thread, db.Run, error) {
		run, err := e.store.CreateRun(ctx, r, extra)
		return nil, run, err
	})
}

// CreateThreadAndRun stores a thread, its messages and a queued run on it,
// publishes thread.created, thread.run.created and thread.run.queued, and
// enqueues the run.
func (e *Engine) CreateThreadAndRun(ctx context.Context, t db.Thread, msgs []db.Message, r db.Run) (db.Thread, db.Run, error) {
	run, err := e.create(ctx, r, func(r db.Run) (*db.Thread, db.Run, error) {
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
//
// With a worker free here the run is created started (startNow): claimed
// and in_progress in the same transaction, thread.run.in_progress is
// published with the first events, and its execution begins at once. The
// run comes back as it was created, queued.
func (e *Engine) create(ctx context.Context, r db.Run, store func(db.Run) (*db.Thread, db.Run, error)) (db.Run, error) {
	if err := e.admit(ctx, r); err != nil {
		return r, err
	}
	r.ID = db.NewID("run_")
	r.CreatedAt, r.ExpiresAt = e.times()
	traceparent := telemetry.Traceparent(ctx)
	starting := e.startNow(r)
	if starting != nil {
		r.StartedBy = &db.StartedBy{Replica: e.cfg.Replica, Lease: e.cfg.RunLease}
		if e.tracing {
			r.StartedBy.Traceparent = traceparent
		}
	}
	mu := e.lockRun(r.ID)
	mu.Lock()
	thread, run, err := store(r)
	if err != nil {
		mu.Unlock()
		if starting != nil {
			e.abandon(r.ID, starting)
		}
		return run, err
	}
	created := run
	created.StartedBy = nil
	if starting != nil {
		created.Status, created.StartedAt = db.RunQueued, nil
	}
	var em emitter
	if thread != nil {
		em.emit("thread.created", thread)
	}
	em.emit("thread.run.created", created)
	em.emit("thread.run.queued", created)
	if starting != nil {
		em.emit("thread.run.in_progress", run)
	}
	e.publish(ctx, run.ID, em.events)
	mu.Unlock()
	if starting != nil {
		run.StartedBy = nil
		j := job{runID: run.ID, attempt: run.Attempts, traceparent: traceparent, project: run.ProjectID}
		go e.executeStarted(starting, j, &run, r.StartedBy.Traceparent)
		return created, nil
	}
	e.enqueueQueued(ctx, job{runID: run.ID, traceparent: traceparent, project: run.ProjectID})
	return created, nil
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
		if e.elog != nil {
			if from, err = tx.LastRunEvent(ctx, runID); err != nil {
				return err
			}
		}
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
	e.enqueueQueued(ctx, job{runID: runID})
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
	} else if !e.heldElsewhere(ctx, runID) {
		e.settle(context.WithoutCancel(ctx), runID, db.RunCancelling, nil)
	} else {
		e.control(controlCheck, runID) // the replica executing it stops and settles it
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
		} else if r.Status == db.RunInProgress || r.Status == db.RunCancelling {
			e.control(controlDeleted, r.ID) // executing on another replica
		}
	}
	// What built-in tools keep for the thread (a kernel and its files)
	// no one can reach once it is gone, here or on any other replica.
	e.ForgetEverywhere(threadID)
	return nil
}

// ForgetEverywhere drops what built-in tools keep for key (a deleted
// thread, or an expired container: its kernel and files) on this replica
// and tells the other replicas to drop theirs.
func (e *Engine) ForgetEverywhere(key string) {
	e.forgetThread(key)
	if e.cfg.Postgres {
		e.control(controlForget, key)
	}
}

// forgetThread drops what built-in tools keep on this replica for a
// deleted thread (or an expired container).
func (e *Engine) forgetThread(threadID string) {
	for _, b := range e.builtins {
		if f, ok := b.(ThreadForgetter); ok {
			if err := f.Forget(threadID); err != nil {
				e.log.Warn("forget a deleted thread's tool state", "tool", b.Type(), "thread_id", threadID, "err", err)
			}
		}
	}
}
