package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/assistantd/assistantd/db"
)

// expirySweep is how often expired objects are swept.
const expirySweep = time.Minute

// sweepExpired enforces expiries every interval until ctx ends: vector
// stores past theirs are marked expired (no longer searched), files past
// theirs (an upload's expires_after) are deleted with their content, and
// pending uploads past theirs expire, their parts deleted from disk.
func sweepExpired(ctx context.Context, store *db.Store, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := store.ExpireVectorStores(ctx); err != nil && ctx.Err() == nil {
			log.Error("expire vector stores", "err", err)
		} else if n > 0 {
			log.Info("vector stores expired", "count", n)
		}
		if n, err := store.DeleteExpiredFiles(ctx); err != nil && ctx.Err() == nil {
			log.Error("delete expired files", "err", err)
		} else if n > 0 {
			log.Info("expired files deleted", "count", n)
		}
		if n, err := store.ExpireUploads(ctx); err != nil && ctx.Err() == nil {
			log.Error("expire uploads", "err", err)
		} else if n > 0 {
			log.Info("uploads expired", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
