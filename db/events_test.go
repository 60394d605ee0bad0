package db

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestRunEventReservations: the executor numbers its events within the
// head it reserved; they are written with those seqs while nobody else
// appended, and left out once someone did (the log has moved past them),
// so the log's seqs only grow in commit order and a seq once reserved is
// never given to another writer's event.
func TestRunEventReservations(t *testing.T) {
	eachStore(t, func(t *testing.T) {
		ctx := WithProject(context.Background(), DefaultProjectID)
		s := openTest(t)
		_, run := threadRun(t, s, ctx)
		ev := func(name string) RunEvent { return RunEvent{Event: name, Data: []byte(`{}`)} }
		seq := func(n int64, name string) RunEvent { e := ev(name); e.Seq = n; return e }
		appendLog := func(a RunAppend) RunAppended {
			t.Helper()
			a.RunID = run.ID
			var got RunAppended
			if err := s.Batch(ctx, func(ctx context.Context, tx *Tx) error {
				var err error
				got, err = tx.AppendRunLog(ctx, a)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return got
		}
		// Created through another replica: no reservation.
		if first, err := s.AppendRunEvents(ctx, run.ID, []RunEvent{ev("created"), ev("queued")}); err != nil || first != 1 {
			t.Fatalf("first append: %d, %v", first, err)
		}
		// The executor's first commit reserves 10 ahead.
		got := appendLog(RunAppend{Events: []RunEvent{ev("in_progress")}, Reserve: 10})
		if got.Kept || got.Prev != 2 || got.Events[0].Seq != 3 || got.Head != 13 {
			t.Fatalf("first commit: %+v", got)
		}
		// Deltas 4 and 5 shown from the reservation, then a commit.
		got = appendLog(RunAppend{Head: 13, Shown: []RunEvent{seq(4, "d4"), seq(5, "d5")}, Next: 6, Events: []RunEvent{ev("step")}, Reserve: 10})
		if !got.Kept || got.Prev != 5 || got.Events[0].Seq != 6 || got.Head != 16 {
			t.Fatalf("commit in the reservation: %+v", got)
		}
		// Another replica cancels: after the head, past the reservation.
		if first, err := s.AppendRunEvents(ctx, run.ID, []RunEvent{ev("cancelling")}); err != nil || first != 17 {
			t.Fatalf("foreign append: %d, %v", first, err)
		}
		// The executor's deltas 7 and 8, shown before it heard, are left
		// out; its next event comes after the cancel.
		got = appendLog(RunAppend{Head: 16, Shown: []RunEvent{seq(7, "d7"), seq(8, "d8")}, Next: 9, Events: []RunEvent{ev("cancelled")}})
		if got.Kept || got.Prev != 17 || got.Events[0].Seq != 18 || got.Head != 18 {
			t.Fatalf("commit after a foreign append: %+v", got)
		}
		logged, err := s.RunEvents(ctx, run.ID, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var have []string
		for _, e := range logged {
			have = append(have, fmt.Sprintf("%d:%s", e.Seq, e.Event))
		}
		want := []string{"1:created", "2:queued", "3:in_progress", "4:d4", "5:d5", "6:step", "17:cancelling", "18:cancelled"}
		if !slices.Equal(have, want) {
			t.Errorf("log %q, want %q", have, want)
		}
		if after, _ := s.RunEvents(ctx, run.ID, 5, 100); len(after) != 3 || after[0].Seq != 6 {
			t.Errorf("events after 5: %+v", after)
		}
	})
}

// TestRunEventBatch: one flush appends many runs' deltas, each fenced by
// the claim it was made under: a run claimed by someone else since gets
// nothing written.
func TestRunEventBatch(t *testing.T) {
	eachStore(t, func(t *testing.T) {
		ctx := WithProject(context.Background(), DefaultProjectID)
		s := openTest(t)
		var runs, threads []string
		for range 3 {
			th, _, err := s.CreateThread(ctx, Thread{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			threads = append(threads, th.ID)
			run, err := s.CreateRun(ctx, Run{ThreadID: th.ID, AssistantID: "asst_x", Model: "m"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			runs = append(runs, run.ID)
		}
		claims, err := s.ClaimRuns(ctx, "me", time.Minute, 10, "")
		if err != nil || len(claims) != 3 {
			t.Fatalf("claims %+v, %v", claims, err)
		}
		attempt := map[string]int{}
		for _, c := range claims {
			attempt[c.RunID] = c.Attempt
		}
		d := func(n int64) RunEvent { return RunEvent{Seq: n, Event: "delta", Data: []byte(`{}`)} }
		as := []RunAppend{
			{RunID: runs[0], Events: []RunEvent{{Event: "delta", Data: []byte(`{}`)}}, Attempt: attempt[runs[0]], Reserve: 5},
			{RunID: runs[1], Events: []RunEvent{{Event: "delta", Data: []byte(`{}`)}}, Attempt: attempt[runs[1]] + 1},
			{RunID: runs[2], Events: []RunEvent{{Event: "delta", Data: []byte(`{}`)}}},
		}
		got, err := s.AppendRunLogs(ctx, "me", as)
		if err != nil {
			t.Fatal(err)
		}
		if got[0].Lost || got[0].Events[0].Seq != 1 || got[0].Head != 6 || !got[1].Lost || got[2].Lost || got[2].Head != 1 {
			t.Fatalf("first flush: %+v", got)
		}
		// Within the reservation; and a claim elsewhere is no longer "me".
		got, err = s.AppendRunLogs(ctx, "other", []RunAppend{
			{RunID: runs[0], Head: 6, Shown: []RunEvent{d(2), d(3)}, Next: 4, Attempt: attempt[runs[0]]},
		})
		if err != nil || !got[0].Lost {
			t.Fatalf("flush of another replica's claim: %+v, %v", got, err)
		}
		got, err = s.AppendRunLogs(ctx, "me", []RunAppend{
			{RunID: runs[0], Head: 6, Shown: []RunEvent{d(2), d(3)}, Next: 4, Events: []RunEvent{{Event: "delta", Data: []byte(`{}`)}}, Attempt: attempt[runs[0]], Reserve: 5},
		})
		if err != nil || !got[0].Kept || got[0].Events[0].Seq != 4 || got[0].Head != 9 {
			t.Fatalf("flush in the reservation: %+v, %v", got, err)
		}
		for i, n := range []int{4, 0, 1} {
			evs, err := s.RunEvents(ctx, runs[i], 0, 100)
			if err != nil || len(evs) != n {
				t.Errorf("run %d: %d events (%v), want %d", i, len(evs), err, n)
			}
			for j, e := range evs {
				if e.Seq != int64(j+1) {
					t.Errorf("run %d: event %d has seq %d", i, j, e.Seq)
				}
			}
		}
		// A run deleted with its thread is gone, not taken over.
		if err := s.DeleteThread(ctx, threads[0]); err != nil {
			t.Fatal(err)
		}
		got, err = s.AppendRunLogs(ctx, "me", []RunAppend{
			{RunID: runs[0], Head: 9, Events: []RunEvent{{Event: "delta", Data: []byte(`{}`)}}, Attempt: attempt[runs[0]]},
		})
		if err != nil || !got[0].Gone || got[0].Lost || len(got[0].Events) != 0 {
			t.Fatalf("flush of a deleted run: %+v, %v", got, err)
		}
	})
}
