package db

import (
	"context"
	"errors"
	"testing"
)

// TestUpdateRun: UpdateRun stores what its function changed, whichever
// of its statements it takes (the lifecycle columns alone, with the
// status, or every column), including a change made through a pointer
// the run already held; an unchanged run is left alone; an illegal status
// change is refused by either statement that writes the status.
func TestUpdateRun(t *testing.T) { eachStore(t, testUpdateRun) }

func testUpdateRun(t *testing.T) {
	ctx := WithProject(context.Background(), DefaultProjectID)
	s := openTest(t)
	th, _, err := s.CreateThread(ctx, Thread{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	run, err := s.CreateRun(ctx, Run{ThreadID: th.ID, AssistantID: "asst_x", Model: "m", Instructions: "be brief"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	update := func(fn func(r *Run) error) (Run, error) {
		var out Run
		err := s.Batch(ctx, func(ctx context.Context, tx *Tx) error {
			var err error
			out, err = tx.UpdateRun(ctx, run.ID, fn)
			return err
		})
		return out, err
	}
	stored := func() Run {
		t.Helper()
		r, err := s.GetRun(ctx, th.ID, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	type want struct {
		status, instructions string
		started, expires     *int64
		attempts             int
		meta                 string
	}
	check := func(step string, got Run, w want) {
		t.Helper()
		for _, r := range []Run{got, stored()} {
			if r.Status != w.status || r.Instructions != w.instructions || !sameInt(r.StartedAt, w.started) ||
				!sameInt(r.ExpiresAt, w.expires) || r.Attempts != w.attempts || r.Metadata["k"] != w.meta {
				t.Errorf("%s: run %s %q started %v expires %v attempts %d metadata %v; want %+v", step, r.Status, r.Instructions,
					deref(r.StartedAt), deref(r.ExpiresAt), r.Attempts, r.Metadata, w)
			}
		}
	}
	ten, twenty, thirty := int64(10), int64(20), int64(30)
	w := want{status: RunQueued, instructions: "be brief", expires: run.ExpiresAt}

	// The lifecycle alone: no status change.
	got, err := update(func(r *Run) error { r.StartedAt, r.Attempts = &ten, 1; return nil })
	if err != nil {
		t.Fatal(err)
	}
	w.started, w.attempts = &ten, 1
	check("lifecycle", got, w)

	// A change through a pointer the run read already holds.
	got, err = update(func(r *Run) error { *r.StartedAt = twenty; return nil })
	if err != nil {
		t.Fatal(err)
	}
	w.started = &twenty
	check("through a pointer", got, w)

	// The status with lifecycle columns.
	got, err = update(func(r *Run) error {
		r.Status, r.ExpiresAt, r.Metadata = RunInProgress, &thirty, Metadata{"k": "v"}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	w.status, w.expires, w.meta = RunInProgress, &thirty, "v"
	check("status", got, w)

	// Nothing.
	got, err = update(func(r *Run) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	check("nothing", got, w)

	// Another column: every column is written.
	got, err = update(func(r *Run) error { r.Instructions, r.Attempts = "be thorough", 2; return nil })
	if err != nil {
		t.Fatal(err)
	}
	w.instructions, w.attempts = "be thorough", 2
	check("instructions", got, w)

	// Illegal transitions, by the status statement and by the full one.
	if _, err := update(func(r *Run) error { r.Status = RunQueued; return nil }); !errors.Is(err, ErrIllegalTransition) {
		t.Errorf("in_progress to queued: %v, want ErrIllegalTransition", err)
	}
	if _, err := update(func(r *Run) error { r.Status, r.Instructions = RunQueued, "again"; return nil }); !errors.Is(err, ErrIllegalTransition) {
		t.Errorf("in_progress to queued with new instructions: %v, want ErrIllegalTransition", err)
	}
	check("after the refused updates", stored(), w)
}

func sameInt(a, b *int64) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// BenchmarkUpdateRun measures a run's lifecycle updates on SQLite and
// (with ASSISTANTD_TEST_POSTGRES) PostgreSQL: a start time alone, as a
// claim writes it, and a status change with its timestamp, as a turn's
// end writes one:
//
//	go test ./db/ -run '^$' -bench UpdateRun
func BenchmarkUpdateRun(b *testing.B) {
	for _, store := range []string{"sqlite", "postgres"} {
		b.Run(store+"/started", func(b *testing.B) {
			benchUpdateRun(b, func(r *Run, i int) { n := int64(i); r.StartedAt = &n })
		})
		b.Run(store+"/status", func(b *testing.B) {
			next := map[string]string{RunQueued: RunInProgress, RunInProgress: RunRequiresAction, RunRequiresAction: RunQueued}
			benchUpdateRun(b, func(r *Run, i int) { n := int64(i); r.Status, r.CompletedAt = next[r.Status], &n })
		})
	}
}

func benchUpdateRun(b *testing.B, change func(r *Run, i int)) {
	ctx := WithProject(context.Background(), DefaultProjectID)
	s := openTest(b)
	th, _, err := s.CreateThread(ctx, Thread{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	run, err := s.CreateRun(ctx, Run{ThreadID: th.ID, AssistantID: "asst_x", Model: "m", Instructions: "be brief"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		err := s.Batch(ctx, func(ctx context.Context, tx *Tx) error {
			_, err := tx.UpdateRun(ctx, run.ID, func(r *Run) error { change(r, i+1); return nil })
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
