package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/assistantd/assistantd/db"
)

// Runs are claimed by lease, so that several replicas on one PostgreSQL
// database share the queue and a replica can vanish at any moment:
//
//   - A claim moves a queued run, or an in_progress run whose lease
//     expired, to in_progress for this replica and counts an attempt. The
//     replica that took the request claims its run at once, in the
//     transaction that starts it (claim, db.Tx.ClaimRun); the sweeper
//     claims whatever else is due, up to the free workers (db.ClaimRuns,
//     FOR UPDATE SKIP LOCKED on PostgreSQL).
//   - The attempt is a fencing token: every write of the execution
//     (commit, with the claim in its context) first checks, under the
//     run's row lock, that the claim is still the run's latest. A replica
//     that lost its lease stops the run at once and writes nothing more.
//   - While a run executes, its lease is renewed every third of the lease
//     (--run-lease). The renewal also reads the run's status, so a cancel,
//     an expiry or a deleted thread committed through another replica
//     reaches the execution within one renewal even without a
//     notification.
//   - There is no start-up recovery: a run another process left
//     in_progress is resumed by whoever claims it after its lease expired
//     (on SQLite, where one process owns the database, at once), with the
//     interrupted step ended for readers and dropped, completed tool calls
//     kept (resume in claim).

// errLeaseLost stops an execution whose claim is no longer the run's
// latest: another replica has taken the run over.
var errLeaseLost = errors.New("run lease lost")

// NewReplicaID names a process in claims: host, pid and a random part,
// so a restarted process never mistakes an old claim for its own.
func NewReplicaID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

type fenceKey struct{}

type fence struct {
	runID   string
	replica string // the claim's holder: this engine
	attempt int
}

// withFence marks ctx as the execution of claim attempt of runID by this
// engine: commits for that run made with it are fenced, and so are other
// writes of its execution (a call's sandbox files).
func (e *Engine) withFence(ctx context.Context, runID string, attempt int) context.Context {
	return context.WithValue(ctx, fenceKey{}, fence{runID, e.cfg.Replica, attempt})
}

// fenceOf returns the claim ctx carries for runID, if any.
func fenceOf(ctx context.Context, runID string) (int, bool) {
	f, ok := ctx.Value(fenceKey{}).(fence)
	if !ok || f.runID != runID {
		return 0, false
	}
	return f.attempt, true
}

// leaseLost stops the local execution of runID: its claim was superseded.
func (e *Engine) leaseLost(runID string) {
	e.mu.Lock()
	cancel := e.inflight[runID]
	e.mu.Unlock()
	if cancel != nil {
		e.log.Warn("run lease lost: another replica has taken the run over", "run_id", runID, "replica", e.cfg.Replica)
		cancel(errLeaseLost)
	}
}

// heldElsewhere reports whether another replica holds a live lease on the
// run, so its work is that replica's to end.
func (e *Engine) heldElsewhere(ctx context.Context, runID string) bool {
	held, err := e.store.LeaseHeld(ctx, runID, e.cfg.Replica)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("read run lease", "run_id", runID, "error", err)
		}
		return true // when in doubt, leave it to the lease's expiry
	}
	return held
}

// claimDue claims runs that are due (queued, or their lease expired) up
// to the workers free here, and enqueues them.
func (e *Engine) claimDue(ctx context.Context) {
	e.mu.Lock()
	free := e.cfg.Workers - len(e.inflight) - len(e.pending)
	e.mu.Unlock()
	if free <= 0 || ctx.Err() != nil {
		return
	}
	claims, err := e.store.ClaimRuns(ctx, e.cfg.Replica, e.cfg.RunLease, min(free, 64), "")
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("claim runs", "error", err)
		}
		return
	}
	for _, c := range claims {
		e.enqueue(job{runID: c.RunID, attempt: c.Attempt, resume: c.Was == db.RunInProgress, project: c.ProjectID})
	}
}

// renewLeases renews the leases of the runs executing here every third
// of the lease, and stops an execution whose run was cancelled, expired
// or deleted through another replica, or whose lease was lost.
func (e *Engine) renewLeases(ctx context.Context) {
	t := time.NewTicker(e.cfg.RunLease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.renewAll(ctx)
	}
}

// renewAll renews the leases of every run executing here in one
// statement, and acts on their statuses; the few it did not renew (lost,
// or gone with their thread) are looked at one by one.
func (e *Engine) renewAll(ctx context.Context) {
	e.mu.Lock()
	held := make(map[string]int, len(e.leases))
	for id, a := range e.leases {
		held[id] = a
	}
	e.mu.Unlock()
	if len(held) == 0 {
		return
	}
	start := time.Now()
	renewed, err := e.store.RenewLeases(ctx, e.cfg.Replica, held, e.cfg.RunLease)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("renew run leases", "runs", len(held), "error", err)
		}
		return
	}
	if took := time.Since(start); took > e.cfg.RunLease/3 {
		e.log.Warn("run leases renewed late: the database is slow to answer", "runs", len(held), "took", took.Round(time.Millisecond))
	}
	rest := map[string]int{}
	for id, attempt := range held {
		if status, ok := renewed[id]; ok {
			e.act(id, attempt, status)
		} else {
			rest[id] = attempt
		}
	}
	if len(rest) == 0 || !e.renewing.CompareAndSwap(false, true) {
		return // a renewal of skipped runs is still waiting: the next round has them
	}
	// The runs skipped because a transaction holds their rows (their
	// commits under way) are renewed beside the next rounds, waiting for
	// those commits all at once; the few still missing then are lost or
	// gone, looked at one by one.
	e.wg.Go(func() {
		defer e.renewing.Store(false)
		start := time.Now()
		renewed, err := e.store.RenewLeasesWaiting(ctx, e.cfg.Replica, rest, e.cfg.RunLease)
		if took := time.Since(start); took > e.cfg.RunLease/3 {
			e.log.Warn("run leases renewed late: their commits held them", "runs", len(rest), "took", took.Round(time.Millisecond))
		}
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("renew run leases", "runs", len(rest), "error", err)
			}
			return
		}
		for id, attempt := range rest {
			if status, ok := renewed[id]; ok {
				e.act(id, attempt, status)
			} else {
				e.renew(ctx, id, attempt)
			}
		}
	})
}

// renew renews one run's lease and acts on the run's status.
func (e *Engine) renew(ctx context.Context, runID string, attempt int) {
	status, ok, err := e.store.RenewLease(ctx, runID, e.cfg.Replica, attempt, e.cfg.RunLease)
	switch {
	case errors.Is(err, db.ErrNotFound):
		e.stopHeld(runID, attempt, errThreadDeleted)
	case err != nil:
		if ctx.Err() == nil {
			e.log.Warn("renew run lease", "run_id", runID, "error", err)
		}
	case !ok:
		e.leaseLost(runID)
	default:
		e.act(runID, attempt, status)
	}
}

// act stops the execution of a run whose lease this replica holds when
// its status says it was cancelled or expired elsewhere.
func (e *Engine) act(runID string, attempt int, status string) {
	switch status {
	case db.RunCancelling:
		e.stopHeld(runID, attempt, errCancelled)
	case db.RunExpired:
		e.stopHeld(runID, attempt, errExpired)
	}
}

// stopHeld cancels this replica's execution of runID under claim
// attempt, if it is still that one, with cause.
func (e *Engine) stopHeld(runID string, attempt int, cause error) {
	e.mu.Lock()
	cancel := e.inflight[runID]
	current := e.leases[runID] == attempt
	e.mu.Unlock()
	if cancel != nil && current {
		cancel(cause)
	}
}

// hold records that this replica executes runID under claim attempt, for
// lease renewal; release forgets it.
func (e *Engine) hold(runID string, attempt int) {
	e.mu.Lock()
	e.leases[runID] = attempt
	e.mu.Unlock()
}

func (e *Engine) release(runID string) {
	e.mu.Lock()
	delete(e.leases, runID)
	e.mu.Unlock()
	if e.elog != nil {
		e.elog.forget(runID)
	}
}

// resumeInterrupted prepares a run whose previous execution was
// interrupted (its replica stopped or lost its lease): an interrupted
// model turn (its step and message, never completed) is ended for
// readers, then dropped, and is asked again; a tool step whose calls the
// model had finished is kept, and only its calls without a result run
// again.
func (e *Engine) resumeInterrupted(ctx context.Context, tx *db.Tx, em *emitter, runID string) error {
	steps, err := tx.RunSteps(ctx, runID)
	if err != nil {
		return err
	}
	now := e.store.Now()
	for _, st := range steps {
		if st.Status != db.StepInProgress || (st.Type == db.StepToolCalls && st.TurnUsage != nil) {
			continue
		}
		if mc := st.StepDetails.MessageCreation; mc != nil {
			m, err := tx.UpdateMessage(ctx, mc.MessageID, func(m *db.Message) error {
				m.Status, m.IncompleteAt = "incomplete", &now
				m.IncompleteDetails = &db.IncompleteDetails{Reason: "run_failed"}
				return nil
			})
			if err != nil && !errors.Is(err, db.ErrNotFound) {
				return err
			}
			if err == nil {
				em.emit("thread.message.incomplete", m)
			}
			if err := tx.DeleteMessage(ctx, mc.MessageID); err != nil {
				return err
			}
		}
		st.Status, st.FailedAt = db.StepFailed, &now
		st.LastError = &db.LastError{Code: "server_error", Message: "The step was interrupted and is taken again."}
		em.emit("thread.run.step.failed", st)
		if err := tx.DeleteStep(ctx, st.ID); err != nil {
			return err
		}
	}
	return nil
}

// takeStashed returns a claim of runID newer than attempt that enqueue
// could not queue because the run was pending or executing here (the
// sweeper claimed a run this replica had enqueued unclaimed, or re-claimed
// one whose lease it had let lapse).
func (e *Engine) takeStashed(runID string, attempt int) (job, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	j, ok := e.stashed[runID]
	if !ok {
		return j, false
	}
	delete(e.stashed, runID)
	return j, j.attempt > attempt
}

// releaseLease gives up this replica's claim of a run left unfinished as
// the engine stops, so that the next claim (another replica's, or this
// server's after a restart) resumes it at once.
func (e *Engine) releaseLease(runID string, attempt int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.store.ReleaseLease(ctx, runID, e.cfg.Replica, attempt); err != nil {
		e.log.Warn("release run lease", "run_id", runID, "error", err)
	}
}
