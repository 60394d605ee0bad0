package agent

import (
	"log/slog"
	"testing"
	"time"
)

// TestStashedClaimIsRenewed: a claim that arrives while a job of the same
// run already waits here is stashed behind it, and its lease is renewed
// from then on (it is among the leases renewAll renews): under load the
// job ahead can wait in the queue longer than the lease, and a claim not
// renewed meanwhile would be taken over by another replica.
func TestStashedClaimIsRenewed(t *testing.T) {
	e := New(nil, nil, NewHub(time.Minute), slog.New(slog.DiscardHandler), Config{})
	e.enqueue(job{runID: "run_x"}) // woken here, not yet claimed
	if _, held := e.leases["run_x"]; held {
		t.Fatal("an unclaimed job holds a lease")
	}
	e.enqueue(job{runID: "run_x", attempt: 3}) // the sweeper's claim
	if e.stashed["run_x"].attempt != 3 {
		t.Fatalf("stashed: %+v", e.stashed)
	}
	if a := e.leases["run_x"]; a != 3 {
		t.Errorf("the stashed claim's lease is not renewed (leases %v)", e.leases)
	}
	if got, ok := e.takeStashed("run_x", 0); !ok || got.attempt != 3 {
		t.Errorf("the worker taking the first job gets %+v, %v", got, ok)
	}
}
