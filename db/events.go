package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The durable run event log (run_events, migration 0018): what the
// engine streams, stored so that any replica can serve any run's stream.

// ChannelEvents carries "<run id>:<last seq>", one for each run (space
// separated), after every commit that appended events to runs' logs.
const ChannelEvents = "assistantd_events"

// RunEvent is one logged event of a run.
type RunEvent struct {
	Seq   int64
	Event string
	Data  []byte
}

// RunAppend is one run's part of an append to the event log.
//
// The replica executing a run reserves seqs ahead of what it wrote (the
// log's head, run_event_heads) and numbers its deltas within that
// reservation as they arrive, showing them to its own readers at once.
// Such events (Shown) are written only if the head is still the one the
// writer reserved up to (Head): if anyone else appended since (another
// replica's cancel, a new owner after a takeover), the log has moved past
// them and they are left out, never written out of order. Events are
// numbered here: from Next while the reservation holds, else after the
// head.
type RunAppend struct {
	RunID   string
	Head    int64      // the head the writer reserved up to (0: none)
	Shown   []RunEvent // numbered by the writer (Seq set), within its reservation
	Next    int64      // the seq the writer would give Events' first
	Events  []RunEvent // numbered here
	Reserve int64      // seqs to reserve beyond the last written
	Attempt int        // AppendRunLogs: the claim the writer holds (0: unfenced)
}

// RunAppended is how a RunAppend went.
type RunAppended struct {
	Kept   bool       // the reservation held: Shown was written
	Lost   bool       // AppendRunLogs: the claim no longer holds the run; nothing was written
	Gone   bool       // AppendRunLogs: the run no longer exists (its thread was deleted); nothing was written
	Ended  bool       // AppendRunLogs: the run ended under the claim; nothing was written
	Prev   int64      // the seq before Events' first in the log
	Events []RunEvent // Events, numbered
	Head   int64      // the head now (reserved up to)
}

// AppendRunLog appends one run's events inside the transaction, under
// the lock of the run's log head. On PostgreSQL the transaction also
// notifies ChannelEvents, delivered as it commits.
//
// The event log is the engine's own, across projects: its run ids come
// from the engine (which got them from scoped queries or its claims), never
// from a request, and readers reach it only through a run they found in
// their project.
func (t *Tx) AppendRunLog(ctx context.Context, a RunAppend) (RunAppended, error) {
	head, err := t.lockEventHead(ctx, a.RunID)
	if err != nil {
		return RunAppended{}, err
	}
	r, rows := numberAppend(a, head)
	if err := t.writeEvents(ctx, rows, []RunAppended{r}, []string{a.RunID}); err != nil {
		return RunAppended{}, err
	}
	return r, nil
}

// AppendRunEvents appends events to the run's log after whatever it holds
// (a writer without a reservation) and returns the seq of the first.
func (t *Tx) AppendRunEvents(ctx context.Context, runID string, events []RunEvent) (int64, error) {
	if len(events) == 0 {
		return 0, nil
	}
	r, err := t.AppendRunLog(ctx, RunAppend{RunID: runID, Events: events})
	if err != nil {
		return 0, err
	}
	return r.Prev + 1, nil
}

// AppendRunEvents appends events to the run's log in a transaction of
// their own.
func (s *Store) AppendRunEvents(ctx context.Context, runID string, events []RunEvent) (int64, error) {
	var first int64
	err := s.Batch(ctx, func(ctx context.Context, tx *Tx) error {
		var err error
		first, err = tx.AppendRunEvents(ctx, runID, events)
		return err
	})
	return first, err
}

// AppendRunLogs appends the events of many runs (an executor's buffered
// deltas, every flush) in one transaction: one insert, one head update
// and one notification for all of them. A run with Attempt set is written
// only if replica me's claim Attempt is still the run's (else Lost). It
// is the event log's flush, a background write.
func (s *Store) AppendRunLogs(ctx context.Context, me string, as []RunAppend) ([]RunAppended, error) {
	var out []RunAppended
	err := s.Batch(Background(ctx), func(ctx context.Context, tx *Tx) error {
		var err error
		out, err = tx.appendRunLogs(ctx, me, as)
		return err
	})
	return out, err
}

func (t *Tx) appendRunLogs(ctx context.Context, me string, as []RunAppend) ([]RunAppended, error) {
	out := make([]RunAppended, len(as))
	if len(as) == 0 {
		return out, nil
	}
	byID := make(map[string]int, len(as))
	ids := make([]string, 0, len(as))
	for i, a := range as {
		byID[a.RunID] = i
		ids = append(ids, a.RunID)
	}
	// The claims, read without a lock: a claim that moves on meanwhile
	// waits for these heads before its new owner appends, so whatever is
	// written here comes first in the log either way.
	claims := map[string]bool{} // still the writer's claim
	ended := map[string]bool{}
	exists := map[string]bool{}
	var fenced []any
	var in strings.Builder
	for _, a := range as {
		if a.Attempt != 0 {
			if len(fenced) > 0 {
				in.WriteString(", ")
			}
			fenced = append(fenced, a.RunID)
			fmt.Fprintf(&in, "$%d", len(fenced))
		}
	}
	if len(fenced) > 0 {
		rows, err := t.tx.QueryContext(ctx, `SELECT id, claimed_by, attempts, status FROM runs WHERE id IN (`+in.String()+`)`, fenced...)
		if err != nil {
			return nil, fmt.Errorf("append run events: %w", err)
		}
		for rows.Next() {
			var id, status string
			var by sql.NullString
			var attempts int
			if err := rows.Scan(&id, &by, &attempts, &status); err != nil {
				rows.Close()
				return nil, fmt.Errorf("append run events: %w", err)
			}
			exists[id] = true
			claims[id] = by.String == me && attempts == as[byID[id]].Attempt
			ended[id] = IsTerminal(status)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("append run events: %w", err)
		}
	}
	// Lock the heads in one order (run id), so that two writers never
	// wait on each other.
	slices.Sort(ids)
	args := make([]any, len(ids))
	var list strings.Builder
	for i, id := range ids {
		if i > 0 {
			list.WriteString(", ")
		}
		fmt.Fprintf(&list, "$%d", i+1)
		args[i] = id
	}
	heads := make(map[string]int64, len(ids))
	rows, err := t.tx.QueryContext(ctx, `SELECT run_id, reserved FROM run_event_heads WHERE run_id IN (`+list.String()+`) ORDER BY run_id`+t.s.forUpdate(), args...)
	if err != nil {
		return nil, fmt.Errorf("append run events: %w", err)
	}
	for rows.Next() {
		var id string
		var h int64
		if err := rows.Scan(&id, &h); err != nil {
			rows.Close()
			return nil, fmt.Errorf("append run events: %w", err)
		}
		heads[id] = h
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("append run events: %w", err)
	}
	var all []logRow
	var written []string
	var results []RunAppended
	for _, id := range ids {
		a := as[byID[id]]
		if a.Attempt != 0 && (!claims[id] || ended[id]) {
			out[byID[id]] = RunAppended{Lost: exists[id] && !claims[id], Gone: !exists[id], Ended: claims[id]}
			continue
		}
		head, ok := heads[id]
		if !ok {
			if head, err = t.lockEventHead(ctx, id); err != nil {
				return nil, err
			}
		}
		r, rows := numberAppend(a, head)
		out[byID[id]] = r
		all = append(all, rows...)
		written = append(written, id)
		results = append(results, r)
	}
	if err := t.writeEvents(ctx, all, results, written); err != nil {
		return nil, err
	}
	return out, nil
}

// lockEventHead locks the run's log head and returns it, making it (from
// the log) if the run has none yet.
func (t *Tx) lockEventHead(ctx context.Context, runID string) (int64, error) {
	var head int64
	err := t.tx.QueryRowContext(ctx, `SELECT reserved FROM run_event_heads WHERE run_id = $1`+t.s.forUpdate(), runID).Scan(&head)
	if err == nil {
		return head, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("append run events: %w", err)
	}
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO run_event_heads (run_id, reserved)
		SELECT $1, COALESCE(MAX(seq), 0) FROM run_events WHERE run_id = $1 ON CONFLICT (run_id) DO NOTHING`, runID); err != nil {
		return 0, fmt.Errorf("append run events: %w", err)
	}
	if err := t.tx.QueryRowContext(ctx, `SELECT reserved FROM run_event_heads WHERE run_id = $1`+t.s.forUpdate(), runID).Scan(&head); err != nil {
		return 0, fmt.Errorf("append run events: %w", err)
	}
	return head, nil
}

// logRow is one event to insert.
type logRow struct {
	run string
	ev  RunEvent
}

// numberAppend decides what of a is written given the log's head, and
// numbers it.
func numberAppend(a RunAppend, head int64) (RunAppended, []logRow) {
	r := RunAppended{Kept: a.Head != 0 && a.Head == head}
	var rows []logRow
	next := head + 1
	if r.Kept {
		for _, ev := range a.Shown {
			rows = append(rows, logRow{a.RunID, ev})
		}
		next = a.Next
	}
	r.Prev = next - 1
	r.Events = make([]RunEvent, len(a.Events))
	for i, ev := range a.Events {
		ev.Seq = next + int64(i)
		r.Events[i] = ev
		rows = append(rows, logRow{a.RunID, ev})
	}
	last := r.Prev + int64(len(a.Events))
	if n := len(rows); n > 0 {
		last = max(last, rows[n-1].ev.Seq)
	}
	r.Head = max(head, last+a.Reserve)
	return r, rows
}

// writeEvents inserts rows, sets the heads of the runs appended to and
// notifies ChannelEvents of each run's last seq.
func (t *Tx) writeEvents(ctx context.Context, rows []logRow, results []RunAppended, runs []string) error {
	now := t.s.now().Unix()
	const perInsert = 8000 // 4 parameters a row, under PostgreSQL's 65,535
	if t.s.pg && len(runs) == 1 && len(rows) > 0 && len(rows) <= perInsert {
		// One run's append (a commit's): insert, head and notification in
		// one statement, one round trip while the run's locks are held.
		var q strings.Builder
		args := make([]any, 0, 6+4*len(rows))
		r := results[0]
		last := r.Prev + int64(len(r.Events))
		if n := rows[len(rows)-1].ev.Seq; n > last {
			last = n
		}
		args = append(args, now, runs[0], r.Head, ChannelEvents, runs[0]+":"+strconv.FormatInt(last, 10))
		q.WriteString(`WITH i AS (INSERT INTO run_events (run_id, seq, event, data, created_at) VALUES `)
		for i, row := range rows {
			if i > 0 {
				q.WriteString(", ")
			}
			n := len(args)
			fmt.Fprintf(&q, "($2, $%d, $%d, $%d, $1)", n+1, n+2, n+3)
			args = append(args, row.ev.Seq, row.ev.Event, string(row.ev.Data))
		}
		q.WriteString(`), u AS (UPDATE run_event_heads SET reserved = $3 WHERE run_id = $2) SELECT pg_notify($4, $5)`)
		if _, err := t.tx.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("append run events: %w", err)
		}
		return nil
	}
	for chunk := range slices.Chunk(rows, perInsert) {
		var q strings.Builder
		q.WriteString(`INSERT INTO run_events (run_id, seq, event, data, created_at) VALUES `)
		args := make([]any, 0, 1+4*len(chunk))
		args = append(args, now)
		for i, row := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			n := len(args)
			fmt.Fprintf(&q, "($%d, $%d, $%d, $%d, $1)", n+1, n+2, n+3, n+4)
			args = append(args, row.run, row.ev.Seq, row.ev.Event, string(row.ev.Data))
		}
		if _, err := t.tx.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("append run events: %w", err)
		}
	}
	var q strings.Builder
	var args []any
	for i, id := range runs {
		if len(args) > 0 {
			q.WriteString(" UNION ALL ")
		}
		fmt.Fprintf(&q, "SELECT CAST($%d AS TEXT) AS id, CAST($%d AS BIGINT) AS h", len(args)+1, len(args)+2)
		args = append(args, id, results[i].Head)
		if len(args) >= 2000 || i == len(runs)-1 {
			if _, err := t.tx.ExecContext(ctx, `UPDATE run_event_heads SET reserved = v.h FROM (`+q.String()+`) AS v
				WHERE run_event_heads.run_id = v.id`, args...); err != nil {
				return fmt.Errorf("append run events: %w", err)
			}
			q.Reset()
			args = args[:0]
		}
	}
	if !t.s.pg {
		return nil
	}
	// One notification per 7,000 bytes of "<run id>:<last seq>", space
	// separated (PostgreSQL's payloads end at 8,000 bytes).
	var payload strings.Builder
	send := func() error {
		if payload.Len() == 0 {
			return nil
		}
		_, err := t.tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, ChannelEvents, payload.String())
		payload.Reset()
		if err != nil {
			return fmt.Errorf("notify run events: %w", err)
		}
		return nil
	}
	for i, id := range runs {
		r := results[i]
		last := r.Prev + int64(len(r.Events))
		if len(r.Events) == 0 && !r.Kept {
			continue // nothing written
		}
		if payload.Len() > 7000 {
			if err := send(); err != nil {
				return err
			}
		}
		if payload.Len() > 0 {
			payload.WriteByte(' ')
		}
		payload.WriteString(id + ":" + strconv.FormatInt(last, 10))
	}
	return send()
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
	ctx = Background(ctx) // a sweep
	res, err := s.exec(ctx, `DELETE FROM run_events WHERE created_at < $1`, s.now().Add(-retention).Unix())
	if err != nil {
		return 0, fmt.Errorf("prune run events: %w", err)
	}
	n, _ := res.RowsAffected()
	// The heads of logs now empty, once their runs are over or gone.
	if _, err := s.exec(ctx, `DELETE FROM run_event_heads WHERE NOT EXISTS (SELECT 1 FROM run_events e WHERE e.run_id = run_event_heads.run_id)
		AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = run_event_heads.run_id AND r.status IN ('queued', 'in_progress', 'requires_action', 'cancelling'))`); err != nil {
		return int(n), fmt.Errorf("prune run events: %w", err)
	}
	return int(n), nil
}
