package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ThreadAttachmentFiles lists the ids of files attached to the thread's
// messages for the tool type (e.g. "code_interpreter"), oldest message
// first: the code_interpreter tool places them in the thread's sandbox.
func (s *Store) ThreadAttachmentFiles(ctx context.Context, threadID, tool string) ([]string, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("thread attachments: %w", err)
	}
	raws, err := s.queryStrings(ctx, "thread attachments", `SELECT attachments FROM messages WHERE thread_id = $1
		AND project_id = $2 AND attachments <> '[]' ORDER BY seq`, threadID, project)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, raw := range raws {
		var atts []Attachment
		if err := decodeColumn("attachments", raw, &atts); err != nil {
			return nil, fmt.Errorf("thread attachments: %w", err)
		}
		for _, a := range atts {
			if slices.ContainsFunc(a.Tools, func(t AttachmentTool) bool { return t.Type == tool }) {
				out = append(out, a.FileID)
			}
		}
	}
	return out, nil
}

// SandboxFile is a file a thread's code left in /mnt/data: its path there
// (relative) and the stored file holding its contents.
type SandboxFile struct {
	Path   string
	FileID string
}

// SandboxFiles lists what the thread's code left in /mnt/data, by path.
func (s *Store) SandboxFiles(ctx context.Context, threadID string) ([]SandboxFile, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT path, file_id FROM sandbox_files WHERE thread_id = $1 ORDER BY path`, threadID)
	if err != nil {
		return nil, fmt.Errorf("sandbox files of %s: %w", threadID, err)
	}
	defer rows.Close()
	var out []SandboxFile
	for rows.Next() {
		var f SandboxFile
		if err := rows.Scan(&f.Path, &f.FileID); err != nil {
			return nil, fmt.Errorf("sandbox files of %s: %w", threadID, err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sandbox files of %s: %w", threadID, err)
	}
	return out, nil
}

// Fence is the claim a run's executor holds (see CheckLease): a write it
// makes outside the engine's commits checks it too.
type Fence struct {
	RunID, Replica string
	Attempt        int
}

// SaveSandboxFiles records what one call of the thread's code did to
// /mnt/data: the files it wrote (each now that stored file) and the paths
// it removed. A deleted thread is ErrNotFound. With fence set (the call
// ran in that claim's execution), nothing is saved unless the claim still
// holds the run: ErrLeaseLost.
func (s *Store) SaveSandboxFiles(ctx context.Context, threadID string, fence *Fence, written []SandboxFile, removed []string) error {
	if len(written) == 0 && len(removed) == 0 {
		return nil
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if fence != nil {
			if err := (&Tx{s: s, tx: tx}).CheckLease(ctx, fence.RunID, fence.Replica, fence.Attempt); err != nil {
				return err
			}
		}
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM threads WHERE id = $1`, threadID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		for _, p := range removed {
			if _, err := tx.ExecContext(ctx, `DELETE FROM sandbox_files WHERE thread_id = $1 AND path = $2`, threadID, p); err != nil {
				return err
			}
		}
		for _, f := range written {
			if _, err := tx.ExecContext(ctx, `INSERT INTO sandbox_files (thread_id, path, file_id) VALUES ($1, $2, $3)
				ON CONFLICT (thread_id, path) DO UPDATE SET file_id = excluded.file_id`, threadID, f.Path, f.FileID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrLeaseLost) {
		return fmt.Errorf("save sandbox files of %s: %w", threadID, err)
	}
	return err
}

// HomeKernel records that replica me's kernel runs the thread's code and
// stays alive until idle from now, and returns the replica whose kernel
// ran it before ("" for none): when that is another replica, a kernel of
// the thread here is stale (the thread's code ran elsewhere since). A
// deleted thread is ErrNotFound.
func (s *Store) HomeKernel(ctx context.Context, threadID, me string, idle time.Duration) (string, error) {
	var before string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		before = ""
		if err := s.lockThread(ctx, tx, threadID); err != nil {
			return err
		}
		err := tx.QueryRowContext(ctx, `SELECT replica FROM code_kernels WHERE thread_id = $1`, threadID).Scan(&before)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO code_kernels (thread_id, replica, expires_at) VALUES ($1, $2, `+s.dbMillis()+` + $3)
			ON CONFLICT (thread_id) DO UPDATE SET replica = excluded.replica, expires_at = excluded.expires_at`,
			threadID, me, idle.Milliseconds())
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return "", fmt.Errorf("kernel of %s: %w", threadID, err)
	}
	return before, err
}

// PreferKernel keeps a queued run for the replica other than me whose
// kernel of the run's thread is alive (its kernel's idle time has not run
// out and its presence lease holds), for window: until then only that
// replica claims it, so the code finds its variables; afterwards any
// replica does. It returns that replica, or "" when there is none. On
// SQLite, one process, there is never another.
func (s *Store) PreferKernel(ctx context.Context, runID, me string, window time.Duration) (string, error) {
	if !s.pg {
		return "", nil
	}
	var home string
	err := s.w.QueryRowContext(ctx, `UPDATE runs SET prefer_replica = k.replica, prefer_until = `+s.dbMillis()+` + $3
		FROM code_kernels k
		WHERE runs.id = $1 AND runs.status = 'queued' AND k.thread_id = runs.thread_id AND k.replica <> $2
			AND k.expires_at > `+s.dbMillis()+` AND EXISTS (SELECT 1 FROM leader_leases l
				WHERE l.name IN ('replica:`+BlobsPostgres+`:' || k.replica, 'replica:`+BlobsDir+`:' || k.replica)
				AND l.expires_at >= `+s.dbMillis()+`)
		RETURNING k.replica`, runID, me, window.Milliseconds()).Scan(&home)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("prefer kernel for run %s: %w", runID, err)
	}
	return home, nil
}
