package agent

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/assistantd/assistantd/db"
)

// Control across replicas (PostgreSQL): a replica that cannot run a new
// or re-queued run itself wakes the others on the queue channel, and a
// replica that changed a run another replica executes (cancel, thread
// deletion) tells that replica on the control channel. Both are only
// faster paths: the sweeper's claims and the lease renewal's status read
// catch whatever a lost notification missed.

// Control verbs, sent as "<verb>:<run id>".
const (
	controlCheck   = "check"   // the run's status changed: read it
	controlDeleted = "deleted" // the run's thread is being deleted: stop now
	controlForget  = "forget"  // "forget:<thread id>": drop what tools keep for a deleted thread
)

// listen handles the notifications of other replicas until ctx ends; it
// closes listening once it first listens.
func (e *Engine) listen(ctx context.Context, listening chan struct{}) {
	var once sync.Once
	channels := []string{db.ChannelQueue, db.ChannelControl}
	if e.elog != nil {
		channels = append(channels, db.ChannelEvents)
	}
	e.store.Listen(ctx, channels, func(channel, payload string) {
		switch channel {
		case db.ChannelEvents:
			e.elog.notified(ctx, payload)
		case db.ChannelQueue:
			if !e.cfg.APIOnly {
				e.enqueue(job{runID: payload})
			}
		case db.ChannelControl:
			verb, runID, _ := strings.Cut(payload, ":")
			if verb == controlForget {
				go e.forgetThread(runID) // a thread id; waits for a kernel running code to stop
				return
			}
			e.mu.Lock()
			attempt, held := e.leases[runID]
			cancel := e.inflight[runID]
			e.mu.Unlock()
			switch {
			case !held || cancel == nil:
			case verb == controlDeleted:
				cancel(errThreadDeleted)
			default:
				go e.renew(ctx, runID, attempt)
			}
		}
	}, func(lost error) {
		once.Do(func() { close(listening) })
		if lost == nil {
			return
		}
		// Notifications sent while reconnecting are lost: claim what is
		// due, and read the status of the runs executing here (a cancel
		// or a thread deletion) now rather than at the next renewal.
		e.log.Warn("listening to other replicas again; notifications sent meanwhile are read from the database", "lost", lost)
		if !e.cfg.APIOnly {
			e.claimDue(ctx)
			e.renewAll(ctx)
		}
	})
}

// notify sends a notification to the other replicas, in the background
// (a lost one costs a poll, never correctness).
func (e *Engine) notify(channel, payload string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.store.Notify(ctx, channel, payload); err != nil {
			e.log.Warn("notify replicas", "channel", channel, "error", err)
		}
	}()
}

// control tells the replica executing runID (if another) to act on it.
func (e *Engine) control(verb, runID string) {
	e.notify(db.ChannelControl, verb+":"+runID)
}
