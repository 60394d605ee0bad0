package db

import (
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"time"
)

// SQLite copies the write-ahead log back into the database file in
// checkpoints. Left to itself it checkpoints inside the commit that makes
// the log pass 1,000 pages, on the writer's connection: that commit, and
// every write queued behind the single writer, waits for the copy and its
// fsync of the database file (tests/loadgen: the first delta's p99 over
// the upstream's 11.8 ms with them, 8.3 ms without). The writer's
// connections here never checkpoint (wal_autocheckpoint 0); a connection
// of the checkpointer's own does, off the write path, a PASSIVE checkpoint
// (it waits for neither readers nor the writer) every checkpointEvery
// while there are writes to copy. A checkpoint with nothing new to copy
// writes and syncs nothing.
const checkpointEvery = 200 * time.Millisecond

// checkpointer runs the checkpoints of a SQLite store.
type checkpointer struct {
	db   *sql.DB
	stop context.CancelFunc
	done sync.WaitGroup
}

func startCheckpointer(db *sql.DB) *checkpointer {
	ctx, stop := context.WithCancel(context.Background())
	c := &checkpointer{db: db, stop: stop}
	c.done.Add(1)
	go c.loop(ctx)
	return c
}

func (c *checkpointer) loop(ctx context.Context) {
	defer c.done.Done()
	tick := time.NewTicker(checkpointEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := c.db.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`); err != nil && ctx.Err() == nil {
			slog.Debug("sqlite checkpoint", "error", err)
		}
	}
}

// close stops the checkpoints; closing the store's last connection
// checkpoints what is left.
func (c *checkpointer) close() error {
	c.stop()
	c.done.Wait()
	return c.db.Close()
}
