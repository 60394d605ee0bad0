package db

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestRunLeases: a queued run is claimed once however many claimers try
// at once; the claim's attempt fences writes; a live lease is renewed and
// not claimed by another, a lapsed one is (on SQLite, any lease but the
// caller's counts as lapsed: one process owns the database).
func TestRunLeases(t *testing.T) {
	eachStore(t, func(t *testing.T) {
		ctx := WithProject(context.Background(), DefaultProjectID)
		s := openTest(t)
		th, _, err := s.CreateThread(ctx, Thread{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		run, err := s.CreateRun(ctx, Run{ThreadID: th.ID, AssistantID: "asst_x", Model: "m"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var claims []Claim
		var wg sync.WaitGroup
		claimers := []string{"a", "b", "c", "d"} // replicas
		if !s.pg {
			claimers = []string{"a", "a", "a", "a"} // one process's workers
		}
		for _, me := range claimers {
			wg.Go(func() {
				got, err := s.ClaimRuns(ctx, me, time.Minute, 10, "")
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				claims = append(claims, got...)
				mu.Unlock()
			})
		}
		wg.Wait()
		if len(claims) != 1 || claims[0].RunID != run.ID || claims[0].Was != RunQueued || claims[0].Attempt != 1 {
			t.Fatalf("claims: %+v", claims)
		}
		holder := ""
		for _, me := range []string{"a", "b", "c", "d"} {
			if _, held, _ := s.RenewLease(ctx, run.ID, me, 1, time.Minute); held {
				holder = me
			}
		}
		if holder == "" {
			t.Fatal("no claimer holds the lease")
		}
		fence := func(me string, attempt int) error {
			return s.Batch(ctx, func(ctx context.Context, tx *Tx) error { return tx.CheckLease(ctx, run.ID, me, attempt) })
		}
		if err := fence(holder, 1); err != nil {
			t.Errorf("the holder's write: %v", err)
		}
		if err := fence("other", 1); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("another replica's write: %v, want ErrLeaseLost", err)
		}
		other := "z"
		if got, _ := s.ClaimRuns(ctx, other, time.Minute, 10, ""); s.pg && len(got) != 0 {
			t.Fatalf("a live lease claimed again on PostgreSQL: %+v", got)
		} else if !s.pg && len(got) != 1 {
			t.Fatalf("SQLite: another process's lease not taken: %+v", got)
		}
		if s.pg {
			// The lease lapses: another replica takes the run over.
			if _, err := s.w.ExecContext(ctx, `UPDATE runs SET lease_expires_at = 0 WHERE id = $1`, run.ID); err != nil {
				t.Fatal(err)
			}
			got, err := s.ClaimRuns(ctx, other, time.Minute, 10, "")
			if err != nil || len(got) != 1 || got[0].Was != RunInProgress || got[0].Attempt != 2 {
				t.Fatalf("claim after the lease lapsed: %+v %v", got, err)
			}
		}
		if err := fence(holder, 1); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("the old holder's write after the takeover: %v, want ErrLeaseLost", err)
		}
		if _, held, err := s.RenewLease(ctx, run.ID, holder, 1, time.Minute); held || err != nil {
			t.Errorf("the old holder renewed: %v %v", held, err)
		}
		if err := fence(other, 2); err != nil {
			t.Errorf("the new holder's write: %v", err)
		}
	})
}

// TestLeaderLease: one holder at a time; it keeps the lease by renewing
// it; another takes it once it lapses (on SQLite at once) or is resigned.
func TestLeaderLease(t *testing.T) {
	eachStore(t, func(t *testing.T) {
		ctx := WithProject(context.Background(), DefaultProjectID)
		s := openTest(t)
		take := func(me string) bool {
			ok, err := s.TakeLeadership(ctx, "housekeeper", me, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !take("a") || !take("a") {
			t.Fatal("a could not take and keep the lease")
		}
		if s.pg && take("b") {
			t.Fatal("b took a live lease")
		}
		if err := s.ResignLeadership(ctx, "housekeeper", "a"); err != nil {
			t.Fatal(err)
		}
		if !take("b") {
			t.Fatal("b could not take a resigned lease")
		}
		if s.pg && take("a") {
			t.Fatal("a took b's live lease")
		}
	})
}
