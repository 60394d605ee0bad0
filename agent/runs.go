package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
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
	extra = e.prepareMessages(r.ThreadID, extra)
	return e.create(ctx, r, &freshRun{msgs: extra, existing: true}, func(r db.Run) (*db.Thread, db.Run, error) {
		run, err := e.store.CreateRun(ctx, r, extra)
		return nil, run, err
	})
}

// CreateThreadAndRun stores a thread, its messages and a queued run on it,
// publishes thread.created, thread.run.created and thread.run.queued, and
// enqueues the run.
func (e *Engine) CreateThreadAndRun(ctx context.Context, t db.Thread, msgs []db.Message, r db.Run) (db.Thread, db.Run, error) {
	t.ID = db.NewID("thread_") // known before the thread is stored (see create)
	r.ThreadID = t.ID
	msgs = e.prepareMessages(t.ID, msgs)
	run, err := e.create(ctx, r, &freshRun{msgs: msgs}, func(r db.Run) (*db.Thread, db.Run, error) {
		var run db.Run
		var err error
		t, run, err = e.store.CreateThreadAndRun(ctx, t, msgs, r)
		return &t, run, err
	})
	return t, run, err
}

// prepareMessages gives the messages a run's creation stores their ids
// and thread first (db.Store.PrepareMessage), so that an execution started
// before they are stored knows them as they will be (see create).
func (e *Engine) prepareMessages(threadID string, msgs []db.Message) []db.Message {
	out := make([]db.Message, len(msgs))
	for i, m := range msgs {
		m.ThreadID = threadID
		out[i] = e.store.PrepareMessage(m)
	}
	return out
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
//
// A run whose creation is described by fresh (the messages it stores, with
// their ids prepared; a response's record and input) starts executing even
// before its creation commits: the model is asked while the creation
// commits, the commit's time hidden in the model's. Until the creation
// has committed the execution writes and publishes nothing (awaitCreated,
// and the run's lock, which create holds until its events are out); if
// the creation fails, the execution is cancelled and leaves no trace.
// Like any start with the creation, only while few writes wait for the
// writer (startNow).
func (e *Engine) create(ctx context.Context, r db.Run, fresh *freshRun, store func(db.Run) (*db.Thread, db.Run, error)) (db.Run, error) {
	var err error
	if err = e.admit(ctx, r); err != nil {
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
	if starting != nil && fresh != nil && fresh.existing {
		// A thread with an active run refuses the new one: the model is
		// not asked before the creation has committed (and failed).
		if active, err := e.store.ActiveRun(ctx, r.ThreadID); err != nil || active != "" {
			fresh = nil
		}
	}
	var early *creation
	if starting != nil && fresh != nil {
		early = &creation{done: make(chan struct{})}
		fresh.created = early
		j := job{runID: r.ID, attempt: 1, traceparent: traceparent, fresh: fresh}
		if j.project, err = db.ProjectFrom(ctx); err != nil {
			mu.Unlock()
			e.abandon(r.ID, starting)
			return r, err
		}
		go e.executeStarted(starting, j, e.startedRun(r, j.project), r.StartedBy.Traceparent)
		// The execution is the way to the first token; the creation's
		// commit has the model's whole answer time to finish. Let the
		// execution run first: its goroutine would otherwise wait behind
		// the committer's, which the creation wakes next (about 0.4 ms in
		// tests/loadgen, on 2 cores).
		runtime.Gosched()
	}
	thread, run, err := store(r)
	if err != nil {
		mu.Unlock()
		if early != nil {
			// Cancelled first: the execution sees the failure with its
			// context already done. It gives its slot back as it stops.
			starting.cancel(errNotCreated)
			early.end(err)
		} else if starting != nil {
			e.abandon(r.ID, starting)
		}
		return run, err
	}
	if early != nil {
		e.hold(run.ID, run.Attempts) // see executeClaimed
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
	if early != nil {
		early.prior = [2]int64{run.StartedBy.PriorCount, run.StartedBy.PriorSeq}
		early.end(nil)
		return created, nil
	}
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

// errNotCreated stops an execution started before its run's creation
// committed, when the creation failed: there is nothing to settle.
var errNotCreated = errors.New("run not created")

// creation is the outcome of a run's creation, for its execution started
// before it committed.
type creation struct {
	done  chan struct{}
	err   error    // once done
	prior [2]int64 // once done: the thread's messages before the creation's, their count and last seq
}

func (c *creation) end(err error) {
	c.err = err
	close(c.done)
}

// freshRun is what an execution started before its run's creation
// committed knows that the store may not show yet: the messages the
// creation stores, and its outcome.
type freshRun struct {
	msgs []db.Message
	// existing: the run is on a thread that exists already (which may
	// have an active run).
	existing bool
	// resp and input: the response the run serves and its input items,
	// for a response's run.
	resp    *db.ResponseRecord
	input   []json.RawMessage
	created *creation
	// read is what merge found of the thread's other messages: their count
	// and last seq. A message written between that read and the creation
	// makes the history read stale (creation.prior differs).
	read [2]int64
}

// startedRun is run r, about to be created started (r.StartedBy), as the
// store will have it: the execution started before the creation commits
// takes its turns on it.
func (e *Engine) startedRun(r db.Run, project string) *db.Run {
	run := r
	db.NormalizeRun(&run)
	now := e.store.Now()
	run.Object, run.Status, run.StartedAt, run.Attempts, run.ProjectID = "thread.run", db.RunInProgress, &now, 1, project
	run.StartedBy = nil
	return &run
}

// merge adds the fresh messages and run to the thread's history as read
// from the store (msgs with their seqs, runs), where the creation may or
// may not have committed yet: each once, after everything else.
func (f *freshRun) merge(msgs []db.Message, seqs []int64, runs []db.Run, run db.Run) ([]db.Message, []int64, []db.Run) {
	ids := make(map[string]bool, len(f.msgs))
	for _, m := range f.msgs {
		ids[m.ID] = true
	}
	var last int64
	outM, outS := make([]db.Message, 0, len(msgs)+len(f.msgs)), make([]int64, 0, len(msgs)+len(f.msgs))
	for i, m := range msgs {
		if !ids[m.ID] {
			outM, outS, last = append(outM, m), append(outS, seqs[i]), seqs[i]
		}
	}
	f.read = [2]int64{int64(len(outM)), last}
	for _, m := range f.msgs {
		last++
		outM, outS = append(outM, m), append(outS, last)
	}
	runs = slices.DeleteFunc(slices.Clone(runs), func(r db.Run) bool { return r.ID == run.ID })
	run.HistorySeq = last
	return outM, outS, append(runs, run)
}
