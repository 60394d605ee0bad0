package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The durable run event log (run_events, migration 0018): what the
// engine streams, stored so that any replica can serve any run's stream.

// ChannelEvents carries "<run id>:<last seq>" after every commit that
// appended events to a run's log.
const ChannelEvents = "assistantd_events"

// RunEvent is one logged event of a run.
type RunEvent struct {
	Seq   int64
	Event string
	Data  []byte
}

// AppendRunEvents appends events to the run's log inside the transaction
// and returns the seq of the first. Seqs are taken under the run's thread
// lock, so writers on any replica append in one order; a run already gone
// (its thread deleted) still takes its last events. On PostgreSQL the
// transaction also notifies ChannelEvents, delivered as it commits.
//
// The event log is the engine's own, across projects: its run ids come
// from the engine (which got them from scoped queries or its claims), never
// from a request, and readers reach it only through a run they found in
// their project. So it locks the thread without a project.
func (t *Tx) AppendRunEvents(ctx context.Context, runID string, events []RunEvent) (int64, error) {
	if len(events) == 0 {
		return 0, nil
	}
	if err := t.lockRunThreadAnyProject(ctx, runID); err != nil && !errors.Is(err, ErrNotFound) {
		return 0, err
	}
	var last int64
	if err := t.tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM run_events WHERE run_id = $1`, runID).Scan(&last); err != nil {
		return 0, fmt.Errorf("append run events: %w", err)
	}
	first := last + 1
	now := t.s.now().Unix()
	var q strings.Builder
	q.WriteString(`INSERT INTO run_events (run_id, seq, event, data, created_at) VALUES `)
	args := make([]any, 0, 2+3*len(events))
	args = append(args, runID, now)
	for i, ev := range events {
		if i > 0 {
			q.WriteString(", ")
		}
		n := len(args)
		fmt.Fprintf(&q, "($1, $%d, $%d, $%d, $2)", n+1, n+2, n+3)
		args = append(args, first+int64(i), ev.Event, string(ev.Data))
	}
	if _, err := t.tx.ExecContext(ctx, q.String(), args...); err != nil {
		return 0, fmt.Errorf("append run events: %w", err)
	}
	if t.s.pg {
		last = first + int64(len(events)) - 1
		if _, err := t.tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, ChannelEvents, runID+":"+strconv.FormatInt(last, 10)); err != nil {
			return 0, fmt.Errorf("notify run events: %w", err)
		}
	}
	return first, nil
}

// AppendRunEvents appends events to the run's log in a transaction of
// their own (text deltas, flushed in batches).
func (s *Store) AppendRunEvents(ctx context.Context, runID string, events []RunEvent) (int64, error) {
	var first int64
	err := s.Batch(ctx, func(ctx context.Context, tx *Tx) error {
		var err error
		first, err = tx.AppendRunEvents(ctx, runID, events)
		return err
	})
	return first, err
}

// LastRunEvent returns the seq of the run's latest logged event (0 if
// none), read inside the transaction.
func (t *Tx) LastRunEvent(ctx context.Context, runID string) (int64, error) {
	var last int64
	err := t.tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM run_events WHERE run_id = $1`, runID).Scan(&last)
	return last, err
}

// RunEvents returns up to limit of the run's logged events after seq
// after, in order.
func (s *Store) RunEvents(ctx context.Context, runID string, after int64, limit int) ([]RunEvent, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT seq, event, data FROM run_events WHERE run_id = $1 AND seq > $2
		ORDER BY seq LIMIT $3`, runID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("run events: %w", err)
	}
	defer rows.Close()
	var out []RunEvent
	for rows.Next() {
		var ev RunEvent
		var data string
		if err := rows.Scan(&ev.Seq, &ev.Event, &data); err != nil {
			return nil, fmt.Errorf("run events: %w", err)
		}
		ev.Data = []byte(data)
		out = append(out, ev)
	}
	return out, rows.Err()
}

// lockRunThreadAnyProject locks the thread of run runID, whatever its
// project (for the engine's event log only; see AppendRunEvents).
func (t *Tx) lockRunThreadAnyProject(ctx context.Context, runID string) error {
	var threadID string
	err := t.tx.QueryRowContext(ctx, `SELECT thread_id FROM runs WHERE id = $1`, runID).Scan(&threadID)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil || t.locked[threadID] {
		return err
	}
	var one int
	err = t.tx.QueryRowContext(ctx, `SELECT 1 FROM threads WHERE id = $1`+t.s.forUpdate(), threadID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	// Not recorded in t.locked: a scoped lock of the same thread later in
	// the transaction still checks its project.
	return err
}

// ThreadLoggedRuns returns the ids of the thread's runs created since
// (unix seconds) that have logged events, oldest first: the runs a
// follower of the thread on any replica may stream. Engine-internal, across
// projects (the follower found the thread in its project).
func (s *Store) ThreadLoggedRuns(ctx context.Context, threadID string, since int64) ([]string, error) {
	return s.queryStrings(ctx, "thread logged runs", `SELECT r.id FROM runs r WHERE r.thread_id = $1 AND r.created_at >= $2
		AND EXISTS (SELECT 1 FROM run_events e WHERE e.run_id = r.id) ORDER BY r.seq`, threadID, since)
}

// PruneRunEvents deletes logged events older than retention and returns
// how many it deleted.
func (s *Store) PruneRunEvents(ctx context.Context, retention time.Duration) (int, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM run_events WHERE created_at < $1`, s.now().Add(-retention).Unix())
	if err != nil {
		return 0, fmt.Errorf("prune run events: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
