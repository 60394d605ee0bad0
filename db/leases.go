package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Runs are claimed by lease (see migration 0017): a claim moves a run to
// in_progress for one replica until lease_expires_at, counting an attempt;
// the executor renews the lease while it works and checks, in every write
// transaction, that the run's latest claim is still its own (fencing).
// Lease times are the database's clock, in milliseconds, so replicas
// whose clocks differ still agree on who holds a run.

// ErrLeaseLost is returned by CheckLease when the run's latest claim is no
// longer the caller's (another replica took it over after the lease
// expired), or the run has ended.
var ErrLeaseLost = errors.New("run lease lost")

// dbMillis is an SQL expression for the database's clock in milliseconds.
func (s *Store) dbMillis() string {
	if s.pg {
		return `(extract(epoch from clock_timestamp()) * 1000)::bigint`
	}
	return `CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)`
}

// Claim is a run a replica claimed: Was is its status before the claim
// (queued, or in_progress when a lease expired and the run is resumed),
// Attempt the claim's fencing token.
type Claim struct {
	RunID   string
	Was     string
	Attempt int
	// ProjectID is the run's project: the engine executes it scoped to it.
	ProjectID string
}

// claimable is the condition of a run a replica may claim: queued, or
// in_progress with its lease expired. On SQLite one process owns the
// database, so every lease but the caller's ($1) counts as expired: runs
// a previous process left in_progress are resumed at once.
func (s *Store) claimable() string {
	expired := `lease_expires_at IS NULL OR lease_expires_at < ` + s.dbMillis()
	if !s.pg {
		expired += ` OR claimed_by IS NULL OR claimed_by <> $1`
	}
	// A queued run kept for the replica whose kernel has its thread's
	// variables (PreferKernel) waits for it until prefer_until.
	kept := `prefer_until IS NULL OR prefer_until < ` + s.dbMillis() + ` OR prefer_replica = $1`
	return `((status = 'queued' AND (` + kept + `)) OR (status = 'in_progress' AND (` + expired + `)))`
}

// ClaimRuns claims up to limit claimable runs for replica me, oldest
// first, in every project (each Claim names its run's), for lease; with id set, only that run. On PostgreSQL the rows
// are picked with FOR UPDATE SKIP LOCKED, so replicas claiming at once
// take different runs without waiting on each other; the conditional
// update is what makes a claim exclusive.
func (s *Store) ClaimRuns(ctx context.Context, me string, lease time.Duration, limit int, id string) ([]Claim, error) {
	if limit <= 0 {
		return nil, nil
	}
	byID := ``
	args := []any{me, lease.Milliseconds(), limit}
	if id != "" {
		byID = ` AND id = $4`
		args = append(args, id)
	}
	var out []Claim
	if s.pg {
		err := s.tx(ctx, func(tx *sql.Tx) error {
			out = out[:0]
			rows, err := tx.QueryContext(ctx, `WITH c AS (SELECT id, status AS was FROM runs WHERE `+s.claimable()+byID+`
				ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED)
				UPDATE runs r SET status = 'in_progress', claimed_by = $1, lease_expires_at = `+s.dbMillis()+` + $2,
					attempts = r.attempts + 1
				FROM c WHERE r.id = c.id RETURNING r.id, c.was, r.attempts, r.project_id`, args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var c Claim
				if err := rows.Scan(&c.RunID, &c.Was, &c.Attempt, &c.ProjectID); err != nil {
					return err
				}
				out = append(out, c)
			}
			return rows.Err()
		})
		if err != nil {
			return nil, fmt.Errorf("claim runs: %w", err)
		}
		return out, nil
	}
	// SQLite: the same in two steps (its RETURNING cannot see a CTE), in
	// one write transaction, which excludes every other writer; a read
	// first, so that an idle queue takes no write lock.
	var due int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM runs WHERE `+s.claimable()+byID+`
		AND $2 = $2 LIMIT $3)`, args...).Scan(&due); err != nil {
		return nil, fmt.Errorf("claim runs: %w", err)
	}
	if due == 0 {
		return nil, nil
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, `SELECT id, status, project_id FROM runs WHERE `+s.claimable()+byID+`
			AND $2 = $2 ORDER BY seq LIMIT $3`, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var c Claim
			if err := rows.Scan(&c.RunID, &c.Was, &c.ProjectID); err != nil {
				rows.Close()
				return err
			}
			out = append(out, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range out {
			err := tx.QueryRowContext(ctx, `UPDATE runs SET status = 'in_progress', claimed_by = $1,
				lease_expires_at = `+s.dbMillis()+` + $2, attempts = attempts + 1 WHERE id = $3 RETURNING attempts`,
				me, lease.Milliseconds(), out[i].RunID).Scan(&out[i].Attempt)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim runs: %w", err)
	}
	return out, nil
}

// leaseDB is where leases are renewed: connections of their own on
// PostgreSQL, the writer on SQLite.
func (s *Store) leaseDB() *sql.DB {
	if s.leases != nil {
		return s.leases
	}
	return s.w
}

// RenewLease extends replica me's lease of run id (claim attempt) by
// lease and returns the run's status, which tells the executor of a
// cancel or expiry it may not have heard of. held is false when the
// run's latest claim is no longer this one; ErrNotFound means the run is
// gone (its thread was deleted).
func (s *Store) RenewLease(ctx context.Context, id, me string, attempt int, lease time.Duration) (status string, held bool, err error) {
	err = s.leaseDB().QueryRowContext(ctx, `UPDATE runs SET lease_expires_at = `+s.dbMillis()+` + $4
		WHERE id = $1 AND claimed_by = $2 AND attempts = $3 RETURNING status`, id, me, attempt, lease.Milliseconds()).Scan(&status)
	if err == nil {
		return status, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", false, fmt.Errorf("renew lease of run %s: %w", id, err)
	}
	err = s.leaseDB().QueryRowContext(ctx, `SELECT status FROM runs WHERE id = $1`, id).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, ErrNotFound
	}
	if err != nil {
		return "", false, fmt.Errorf("renew lease of run %s: %w", id, err)
	}
	return status, false, nil
}

// RenewLeases extends replica me's leases of the runs in held (run id →
// claim attempt) by lease, in one statement per 200 runs, and returns the
// status of each run whose lease it renewed. A run missing from the
// result is no longer held by that claim, or gone: RenewLease tells which.
// On PostgreSQL the statement skips the runs whose rows a transaction
// holds locked (a commit of the run under way), rather than wait for each
// of them in turn: the others are renewed at once, and
// RenewLeasesWaiting then renews the skipped ones.
func (s *Store) RenewLeases(ctx context.Context, me string, held map[string]int, lease time.Duration) (map[string]string, error) {
	return s.renewLeases(ctx, me, held, lease, true)
}

// RenewLeasesWaiting is RenewLeases that waits for the rows a transaction
// holds (all at once, rather than one by one): for the runs RenewLeases
// skipped.
func (s *Store) RenewLeasesWaiting(ctx context.Context, me string, held map[string]int, lease time.Duration) (map[string]string, error) {
	return s.renewLeases(ctx, me, held, lease, false)
}

func (s *Store) renewLeases(ctx context.Context, me string, held map[string]int, lease time.Duration, skipLocked bool) (map[string]string, error) {
	out := make(map[string]string, len(held))
	ids := make([]string, 0, len(held))
	for id := range held {
		ids = append(ids, id)
	}
	for len(ids) > 0 {
		n := min(len(ids), 200)
		args := []any{me, lease.Milliseconds()}
		var which strings.Builder
		for i, id := range ids[:n] {
			if i > 0 {
				which.WriteString(" OR ")
			}
			fmt.Fprintf(&which, "(id = $%d AND attempts = $%d)", len(args)+1, len(args)+2)
			args = append(args, id, held[id])
		}
		ids = ids[n:]
		q := `UPDATE runs SET lease_expires_at = ` + s.dbMillis() + ` + $2
			WHERE claimed_by = $1 AND (` + which.String() + `) RETURNING id, status`
		if s.pg && skipLocked {
			q = `UPDATE runs r SET lease_expires_at = ` + s.dbMillis() + ` + $2
				FROM (SELECT id FROM runs WHERE claimed_by = $1 AND (` + which.String() + `) FOR NO KEY UPDATE SKIP LOCKED) c
				WHERE r.id = c.id RETURNING r.id, r.status`
		}
		rows, err := s.leaseDB().QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("renew run leases: %w", err)
		}
		for rows.Next() {
			var id, status string
			if err := rows.Scan(&id, &status); err != nil {
				rows.Close()
				return nil, fmt.Errorf("renew run leases: %w", err)
			}
			out[id] = status
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("renew run leases: %w", err)
		}
	}
	return out, nil
}

// LeaseHeld reports whether another replica than me holds a live lease
// on run id while it is in progress or cancelling: that replica, not the
// caller, ends the run's work. On SQLite no other process holds one.
func (s *Store) LeaseHeld(ctx context.Context, id, me string) (bool, error) {
	if !s.pg {
		return false, nil
	}
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM runs WHERE id = $1 AND status IN ('in_progress', 'cancelling')
		AND claimed_by IS NOT NULL AND claimed_by <> $2 AND lease_expires_at >= `+s.dbMillis(), id, me).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("lease of run %s: %w", id, err)
	}
	return n > 0, nil
}

// CheckLease is the fence of an executor's write: it locks the run (after
// its thread) for the rest of the transaction and returns ErrLeaseLost
// unless replica me's claim attempt is still the run's latest and the run
// has not ended. ErrNotFound means the run is gone. Like the event log it
// guards (the durable log's delta flushes call it without a project), it is
// the engine's own and locks the thread whatever its project: the run id is
// the engine's claim, never a request's.
func (t *Tx) CheckLease(ctx context.Context, id, me string, attempt int) error {
	if err := t.lockRunThreadAnyProject(ctx, id); err != nil {
		return err
	}
	var (
		claimedBy sql.NullString
		attempts  int
		status    string
	)
	err := t.tx.QueryRowContext(ctx, `SELECT claimed_by, attempts, status FROM runs WHERE id = $1`+t.s.forUpdate(), id).
		Scan(&claimedBy, &attempts, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	if claimedBy.String != me || attempts != attempt || IsTerminal(status) {
		return ErrLeaseLost
	}
	return nil
}

// ReleaseLease ends replica me's lease of run id (claim attempt) at once,
// as the replica stops with the run unfinished: the next claim anywhere
// resumes it without waiting for the lease to run out.
func (s *Store) ReleaseLease(ctx context.Context, id, me string, attempt int) error {
	_, err := s.w.ExecContext(ctx, `UPDATE runs SET lease_expires_at = 0 WHERE id = $1 AND claimed_by = $2 AND attempts = $3`,
		id, me, attempt)
	if err != nil {
		return fmt.Errorf("release lease of run %s: %w", id, err)
	}
	return nil
}

// TakeLeadership takes or extends replica me's lease on the leader row
// name for lease, and reports whether me holds it: a row held by another
// replica is taken only once its lease has lapsed.
func (s *Store) TakeLeadership(ctx context.Context, name, me string, lease time.Duration) (bool, error) {
	lapsed := `leader_leases.expires_at < ` + s.dbMillis()
	if !s.pg {
		lapsed = `1 = 1` // one process owns an SQLite database: a lease left by a previous one has lapsed
	}
	var holder string
	err := s.w.QueryRowContext(ctx, `INSERT INTO leader_leases (name, holder, expires_at) VALUES ($1, $2, `+s.dbMillis()+` + $3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leader_leases.holder = excluded.holder OR `+lapsed+`
		RETURNING holder`, name, me, lease.Milliseconds()).Scan(&holder)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("leader lease %s: %w", name, err)
	}
	return holder == me, nil
}

// ResignLeadership ends replica me's lease on the leader row name at
// once, as it stops, so another replica takes over without waiting.
func (s *Store) ResignLeadership(ctx context.Context, name, me string) error {
	_, err := s.w.ExecContext(ctx, `UPDATE leader_leases SET expires_at = 0 WHERE name = $1 AND holder = $2`, name, me)
	return err
}

// Presence rows: every replica keeps a lease row "replica:<blobs>:<id>"
// of its own in leader_leases, renewed with the housekeeper lease, so a
// starting replica can tell whether others are alive and which blob store
// they keep file contents in.

// PresenceName is the presence row of replica me keeping file contents
// in blobs (BlobsDir or BlobsPostgres).
func PresenceName(blobs, me string) string { return "replica:" + blobs + ":" + me }

// LiveReplicas returns the blob stores of the other replicas whose
// presence lease has not lapsed (one entry per replica).
func (s *Store) LiveReplicas(ctx context.Context, me string) ([]string, error) {
	if !s.pg {
		return nil, nil
	}
	rows, err := s.queryStrings(ctx, "live replicas", `SELECT name FROM leader_leases WHERE name LIKE 'replica:%'
		AND holder <> $1 AND expires_at >= `+s.dbMillis(), me)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rows))
	for _, name := range rows {
		blobs, _, _ := strings.Cut(strings.TrimPrefix(name, "replica:"), ":")
		out = append(out, blobs)
	}
	return out, nil
}

// StartedBy creates a run claimed by the replica that will execute it at
// once, in the transaction that creates it: in_progress, started, with its
// first lease and attempt, as ClaimRun would leave it a moment later, but
// without a commit of its own between the request and the model's.
type StartedBy struct {
	Replica string
	Lease   time.Duration
	// Traceparent, when set, is kept as the run's trace (SetRunTrace).
	Traceparent string

	// PriorCount and PriorSeq are set by the creation: the number of the
	// thread's messages before the creation's own, and the last one's
	// seq. An execution that read the history before the creation
	// committed compares them with what it read.
	PriorCount, PriorSeq int64
}

// startRun claims the run r being created for r.StartedBy (see StartedBy),
// and sets r as the claim left it.
func (s *Store) startRun(ctx context.Context, tx *sql.Tx, r *Run) error {
	c := r.StartedBy
	now := s.now().Unix()
	if _, err := tx.ExecContext(ctx, `UPDATE runs SET status = 'in_progress', started_at = $1, claimed_by = $2,
		lease_expires_at = `+s.dbMillis()+` + $3, attempts = 1 WHERE id = $4`, now, c.Replica, c.Lease.Milliseconds(), r.ID); err != nil {
		return fmt.Errorf("start run %s: %w", r.ID, err)
	}
	if c.Traceparent != "" {
		if err := (&Tx{s: s, tx: tx}).SetRunTrace(ctx, r.ID, c.Traceparent); err != nil {
			return err
		}
	}
	r.Status, r.StartedAt, r.Attempts = RunInProgress, &now, 1
	return nil
}

// ClaimRun claims run id for replica me inside the transaction, as
// ClaimRuns does for one run, when it is claimable; ok is false when it is
// not (not due, or another replica was first). The run's thread and row
// are locked first.
func (t *Tx) ClaimRun(ctx context.Context, id, me string, lease time.Duration) (c Claim, ok bool, err error) {
	r, err := t.GetRun(ctx, id)
	if err != nil {
		return c, false, err
	}
	err = t.tx.QueryRowContext(ctx, `UPDATE runs SET status = 'in_progress', claimed_by = $1,
		lease_expires_at = `+t.s.dbMillis()+` + $2, attempts = attempts + 1 WHERE id = $3 AND `+t.s.claimable()+`
		RETURNING attempts`, me, lease.Milliseconds(), id).Scan(&c.Attempt)
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("claim run %s: %w", id, err)
	}
	c.RunID, c.Was, c.ProjectID = id, r.Status, r.ProjectID
	return c, true, nil
}
