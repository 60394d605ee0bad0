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
		_, run := threadRun(t, s, ctx)
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

// TestRenewLeases: one statement renews a replica's leases of several
// runs and reports their statuses; runs it no longer holds (another
// attempt, another replica) are left out and their leases untouched.
func TestRenewLeases(t *testing.T) {
	eachStore(t, func(t *testing.T) {
		ctx := WithProject(context.Background(), DefaultProjectID)
		s := openTest(t)
		held := map[string]int{}
		var runs []string
		for range 3 {
			_, run := threadRun(t, s, ctx)
			runs = append(runs, run.ID)
		}
		claims, err := s.ClaimRuns(ctx, "a", time.Second, 10, "")
		if err != nil || len(claims) != 3 {
			t.Fatalf("claims %+v, %v", claims, err)
		}
		for _, c := range claims {
			held[c.RunID] = c.Attempt
		}
		held[runs[2]] = 7 // a claim this replica no longer holds
		lease := func(id string) int64 {
			var at int64
			if err := s.r.QueryRowContext(ctx, `SELECT lease_expires_at FROM runs WHERE id = $1`, id).Scan(&at); err != nil {
				t.Fatal(err)
			}
			return at
		}
		before := lease(runs[2])
		got, err := s.RenewLeases(ctx, "a", held, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{runs[0]: RunInProgress, runs[1]: RunInProgress}
		if len(got) != len(want) || got[runs[0]] != want[runs[0]] || got[runs[1]] != want[runs[1]] {
			t.Fatalf("renewed %v, want %v", got, want)
		}
		if now := s.Now() * 1000; lease(runs[0]) < now+30*60*1000 || lease(runs[2]) != before {
			t.Fatalf("leases: renewed %d, not renewed %d (was %d), now %d", lease(runs[0]), lease(runs[2]), before, now)
		}
		if got, err := s.RenewLeases(ctx, "b", map[string]int{runs[0]: held[runs[0]]}, time.Hour); err != nil || len(got) != 0 {
			t.Fatalf("another replica renewed %v (%v)", got, err)
		}
	})
}

// TestRenewLeasesSkipsLockedRuns: a renewal of many leases does not wait
// for a run whose row a transaction holds (a commit of that run under
// way): it renews the others and leaves that one out, for RenewLease to
// renew once the commit is done. A renewal that comes late, after the
// lease ran out but before anyone claimed the run, still holds it.
func TestRenewLeasesSkipsLockedRuns(t *testing.T) {
	eachStore(t, func(t *testing.T) {
		s := openTest(t)
		if !s.pg {
			t.Skip("SQLite has one writer: nothing holds a run's row while a renewal runs")
		}
		ctx := WithProject(context.Background(), DefaultProjectID)
		var ids []string
		for range 2 {
			_, run := threadRun(t, s, ctx)
			ids = append(ids, run.ID)
		}
		claims, err := s.ClaimRuns(ctx, "me", time.Minute, 10, "")
		if err != nil || len(claims) != 2 {
			t.Fatalf("claims %+v, %v", claims, err)
		}
		held := map[string]int{}
		for _, c := range claims {
			held[c.RunID] = c.Attempt
		}
		locked, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
		go func() {
			done <- s.Batch(ctx, func(ctx context.Context, tx *Tx) error {
				if err := tx.CheckLease(ctx, ids[0], "me", held[ids[0]]); err != nil {
					return err
				}
				select {
				case <-locked:
				default:
					close(locked)
				}
				<-release
				return nil
			})
		}()
		<-locked
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		renewed, err := s.RenewLeases(rctx, "me", held, time.Minute)
		cancel()
		if err != nil {
			close(release)
			t.Fatalf("renewal waited for the locked run: %v", err)
		}
		if _, ok := renewed[ids[0]]; ok || renewed[ids[1]] != RunInProgress || len(renewed) != 1 {
			t.Errorf("renewed %v: want only %s", renewed, ids[1])
		}
		// The skipped one, waiting for the commit holding it.
		waited := make(chan map[string]string, 1)
		go func() {
			got, err := s.RenewLeasesWaiting(ctx, "me", map[string]int{ids[0]: held[ids[0]]}, time.Minute)
			if err != nil {
				t.Error(err)
			}
			waited <- got
		}()
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := <-waited; got[ids[0]] != RunInProgress || len(got) != 1 {
			t.Errorf("renewal of the run once its commit is done: %v", got)
		}
		// Late: the lease ran out, nobody claimed the run yet.
		if _, ok, err := s.RenewLease(ctx, ids[1], "me", held[ids[1]], time.Millisecond); err != nil || !ok {
			t.Fatalf("short renewal: %v %v", ok, err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			var expired bool
			if err := s.r.QueryRowContext(ctx, `SELECT lease_expires_at < `+s.dbMillis()+` FROM runs WHERE id = $1`, ids[1]).Scan(&expired); err != nil {
				t.Fatal(err)
			}
			if expired {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the lease did not run out")
			}
		}
		if renewed, err := s.RenewLeases(ctx, "me", map[string]int{ids[1]: held[ids[1]]}, time.Minute); err != nil || renewed[ids[1]] != RunInProgress {
			t.Errorf("late renewal: %v %v", renewed, err)
		}
		if got, err := s.ClaimRuns(ctx, "other", time.Minute, 10, ""); err != nil || len(got) != 0 {
			t.Errorf("another replica claimed %+v (%v) of runs whose leases were renewed", got, err)
		}
	})
}
