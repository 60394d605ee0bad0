package main

import (
	"context"
	"fmt"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
)

// joinReplicas checks, on PostgreSQL, that this process may join the
// replicas already running on the database, and announces it to those
// that start later. Every replica keeps a presence lease row
// (db.PresenceName, renewed with the housekeeper lease, so it lapses
// within --run-lease of a replica's death) naming the blob store it keeps
// file contents in. With other replicas alive, file contents must be in
// the shared store: a replica with --blob-store dir (its own disk) refuses
// to start beside others, and any replica refuses to start beside one.
// It runs under the start-up lock, so replicas starting at once are
// checked one after another.
func joinReplicas(ctx context.Context, store *db.Store, cfg *config) error {
	if !store.Postgres() {
		return nil
	}
	if cfg.Engine.Replica == "" {
		cfg.Engine.Replica = agent.NewReplicaID()
	}
	others, err := store.LiveReplicas(ctx, cfg.Engine.Replica)
	if err != nil {
		return err
	}
	blobs := store.BlobStoreName()
	dirs := 0
	for _, b := range others {
		if b == db.BlobsDir {
			dirs++
		}
	}
	switch {
	case blobs == db.BlobsDir && len(others) > 0:
		return fmt.Errorf("--blob-store dir keeps file contents on this machine's disk, which the %d other replica(s) running on this database cannot read: use --blob-store postgres (the default with --database-url), or stop the others", len(others))
	case dirs > 0:
		return fmt.Errorf("another replica running on this database keeps file contents on its own disk (--blob-store dir), which this replica could not read: restart that replica with --blob-store postgres before starting more")
	}
	cfg.Engine.Presence = db.PresenceName(blobs, cfg.Engine.Replica)
	if _, err := store.TakeLeadership(ctx, cfg.Engine.Presence, cfg.Engine.Replica, cfg.Engine.RunLease); err != nil {
		return err
	}
	return nil
}
