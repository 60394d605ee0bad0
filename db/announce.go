package db

import (
	"context"
	"sync"
	"sync/atomic"
)

// Announced writes.
//
// The engine may publish a write's events before the write has committed:
// a run's message opening, so that the model's first token does not wait
// for a commit. It announces the write first (Store.Announce), and until
// the write has committed or failed, this process's readers of the
// thread's messages and steps, and of the run's, wait for it: nothing a
// client reads after an event contradicts the event. Only events published
// in this process are early (the durable event log other replicas read is
// written by the commit itself), so only this process's readers wait.

// announcements are the writes announced and not yet settled, by thread
// and run id.
type announcements struct {
	n     atomic.Int64 // writes announced and not settled: readers' fast path
	mu    sync.Mutex
	until map[string]*announced
}

// announced is the pending writes of one thread or run.
type announced struct {
	count int
	done  chan struct{} // closed when count falls to 0
}

// Announce records a write to thread threadID and run runID whose events
// are about to be published before it commits; settle must be called once
// it has committed or failed.
func (s *Store) Announce(threadID, runID string) (settle func()) {
	a := &s.announced
	a.mu.Lock()
	if a.until == nil {
		a.until = map[string]*announced{}
	}
	keys := []string{threadID, runID}
	for _, k := range keys {
		p := a.until[k]
		if p == nil {
			p = &announced{done: make(chan struct{})}
			a.until[k] = p
		}
		p.count++
	}
	a.n.Add(1)
	a.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			for _, k := range keys {
				if p := a.until[k]; p != nil {
					if p.count--; p.count == 0 {
						close(p.done)
						delete(a.until, k)
					}
				}
			}
			a.n.Add(-1)
			a.mu.Unlock()
		})
	}
}

// settled waits until the writes announced to id (a thread or a run) have
// committed or failed, or ctx ends.
func (s *Store) settled(ctx context.Context, id string) error {
	a := &s.announced
	if a.n.Load() == 0 {
		return nil
	}
	a.mu.Lock()
	p := a.until[id]
	a.mu.Unlock()
	if p == nil {
		return nil
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
