package agent

import (
	"context"
	"errors"

	"github.com/assistantd/assistantd/db"
)

// How runs end: settled when their work stops, failed, finished with
// their open step and message closed, in one transaction each.

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
	if err != nil && !errors.Is(err, db.ErrNotFound) && !errors.Is(err, db.ErrLeaseLost) {
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
	if run.ResponseID != "" {
		if err := tx.FinishResponse(ctx, run.ResponseID, status); err != nil {
			return err
		}
	}
	em.emit("thread.run."+status, run)
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
