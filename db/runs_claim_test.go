package db

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// TestCreateRunClaimed: a run created with a Claim is claimed in the
// transaction that creates it: the create answers the queued run, the
// store holds it in_progress for the claiming replica (attempt 1, started,
// its trace kept), and no other claim takes it while the lease holds.
func TestCreateRunClaimed(t *testing.T) {
	eachStore(t, func(t *testing.T) {
		ctx := WithProject(context.Background(), DefaultProjectID)
		s := openTest(t)
		const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		check := func(t *testing.T, run Run, c *RunClaim) {
			t.Helper()
			if run.Status != RunQueued || run.StartedAt != nil {
				t.Errorf("the create answered status %s, started_at %v; want the queued run", run.Status, run.StartedAt)
			}
			if c.Attempt != 1 || c.StartedAt == 0 {
				t.Fatalf("claim: attempt %d, started at %d; want attempt 1 and a start", c.Attempt, c.StartedAt)
			}
			stored, err := s.GetRun(ctx, run.ThreadID, run.ID)
			if err != nil {
				t.Fatal(err)
			}
			if stored.Status != RunInProgress || stored.Attempts != 1 || stored.StartedAt == nil || *stored.StartedAt != c.StartedAt {
				t.Errorf("stored: status %s, attempts %d, started_at %v; want in_progress, 1, %d", stored.Status, stored.Attempts, stored.StartedAt, c.StartedAt)
			}
			err = s.Batch(ctx, func(ctx context.Context, tx *Tx) error {
				if err := tx.CheckLease(ctx, run.ID, "me", 1); err != nil {
					return err
				}
				got, err := tx.RunTrace(ctx, run.ID)
				if err == nil && got != tp {
					t.Errorf("run trace %q, want %q", got, tp)
				}
				return err
			})
			if err != nil {
				t.Errorf("the claim's fence: %v", err)
			}
			// On SQLite one process owns the database, so another
			// replica's claim finds every lease but its own expired.
			others := []string{"me"}
			if s.pg {
				others = append(others, "other")
			}
			for _, other := range others {
				if claims, err := s.ClaimRuns(ctx, other, time.Minute, 10, ""); err != nil || len(claims) != 0 {
					t.Errorf("claimed again by %s while the lease holds: %+v, %v", other, claims, err)
				}
			}
		}

		th, _, err := s.CreateThread(ctx, Thread{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := &RunClaim{Replica: "me", Lease: time.Minute, Traceparent: tp}
		run, err := s.CreateRun(ctx, Run{ThreadID: th.ID, AssistantID: "asst_x", Model: "m", Claim: c}, nil)
		if err != nil {
			t.Fatal(err)
		}
		check(t, run, c)

		c = &RunClaim{Replica: "me", Lease: time.Minute, Traceparent: tp}
		_, run, err = s.CreateThreadAndRun(ctx, Thread{}, nil, Run{AssistantID: "asst_x", Model: "m", Claim: c})
		if err != nil {
			t.Fatal(err)
		}
		check(t, run, c)

		if !s.pg {
			return
		}
		// A thread whose code_interpreter kernel lives on another live
		// replica: its new run stays queued for that replica.
		if _, err := s.TakeLeadership(ctx, PresenceName(BlobsPostgres, "home"), "home", time.Minute); err != nil {
			t.Fatal(err)
		}
		th, _, err = s.CreateThread(ctx, Thread{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.HomeKernel(ctx, th.ID, "home", time.Minute); err != nil {
			t.Fatal(err)
		}
		c = &RunClaim{Replica: "me", Lease: time.Minute}
		run, err = s.CreateRun(ctx, Run{ThreadID: th.ID, AssistantID: "asst_x", Model: "m", Claim: c}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Attempt != 0 {
			t.Errorf("a run kept for its thread's kernel was claimed: attempt %d", c.Attempt)
		}
		if stored, err := s.GetRun(ctx, th.ID, run.ID); err != nil || stored.Status != RunQueued {
			t.Errorf("stored: %s, %v; want queued", stored.Status, err)
		}
	})
}

// BenchmarkCreateAndClaimRun measures the store's side of starting a run:
// creating it and claiming it, as two transactions (the claim as the
// engine made it before runs were claimed as created: claim, read, set
// started_at) or as one (a Claim on the create), by 1 and 32 concurrent
// clients, each on threads of its own:
//
//	go test ./db/ -run '^$' -bench CreateAndClaimRun -benchtime 2000x
func BenchmarkCreateAndClaimRun(b *testing.B) {
	for _, way := range []string{"separate", "together"} {
		for _, clients := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s/clients=%d", way, clients), func(b *testing.B) {
				s := openTest(b)
				ctx := WithProject(context.Background(), DefaultProjectID)
				b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						th, _, err := s.CreateThread(ctx, Thread{}, nil)
						if err != nil {
							b.Error(err)
							return
						}
						r := Run{ThreadID: th.ID, AssistantID: "asst_x", Model: "m"}
						if way == "together" {
							r.Claim = &RunClaim{Replica: "me", Lease: time.Minute}
						}
						run, err := s.CreateRun(ctx, r, nil)
						if err != nil {
							b.Error(err)
							return
						}
						if way == "together" {
							continue
						}
						err = s.Batch(ctx, func(ctx context.Context, tx *Tx) error {
							if _, ok, err := tx.ClaimRun(ctx, run.ID, "me", time.Minute); err != nil || !ok {
								return fmt.Errorf("claim: %v %v", ok, err)
							}
							if _, err := tx.GetRun(ctx, run.ID); err != nil {
								return err
							}
							_, err := tx.UpdateRun(ctx, run.ID, func(r *Run) error {
								now := s.Now()
								r.StartedAt = &now
								return nil
							})
							return err
						})
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
