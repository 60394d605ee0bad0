package agent

import (
	"context"
	"sync"
	"time"
)

// One housekeeper: the sweeps that must run once per deployment
// (Config.Sweeps: expiry of files, uploads and vector stores, event and
// inspector retention) run on the replica holding the "housekeeper"
// leader lease row, renewed every third of --run-lease. When its holder
// stops renewing, another replica takes the row once it has lapsed and
// starts sweeping at once. The engine's own sweep (run expiry, claims)
// stays on every replica: it is idempotent and fenced.

// housekeeperLease names the leader lease row.
const housekeeperLease = "housekeeper"

func (e *Engine) housekeep(ctx context.Context) {
	t := time.NewTicker(e.cfg.RunLease / 3)
	defer t.Stop()
	var stop func() // ends the sweeps while this replica leads
	defer func() {
		if stop != nil {
			stop()
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = e.store.ResignLeadership(rctx, housekeeperLease, e.cfg.Replica)
		}
		if e.cfg.Presence != "" {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = e.store.ResignLeadership(rctx, e.cfg.Presence, e.cfg.Replica)
		}
	}()
	for {
		if e.cfg.Presence != "" {
			if _, err := e.store.TakeLeadership(ctx, e.cfg.Presence, e.cfg.Replica, e.cfg.RunLease); err != nil && ctx.Err() == nil {
				e.log.Warn("renew this replica's presence", "error", err)
			}
		}
		lead, err := e.store.TakeLeadership(ctx, housekeeperLease, e.cfg.Replica, e.cfg.RunLease)
		if err != nil && ctx.Err() == nil {
			e.log.Warn("renew the housekeeper lease", "error", err)
		}
		switch {
		case lead && stop == nil:
			e.log.Info("this replica is the housekeeper", "replica", e.cfg.Replica)
			stop = e.startSweeps(ctx)
		case !lead && stop != nil:
			e.log.Info("this replica is no longer the housekeeper", "replica", e.cfg.Replica)
			stop()
			stop = nil
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// startSweeps runs the sweeps until the returned function is called.
func (e *Engine) startSweeps(ctx context.Context) func() {
	sctx, cancel := context.WithCancel(ctx)
	var running sync.WaitGroup
	for _, s := range e.cfg.Sweeps {
		running.Go(func() { s.loop(sctx, e.log) })
	}
	return func() { cancel(); running.Wait() }
}
