package db

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

// TestSandboxFiles: a thread's saved /mnt/data is what its calls wrote
// (a path saved again points at its latest file) minus what they
// removed; it goes with the thread.
func TestSandboxFiles(t *testing.T) {
	eachStore(t, func(t *testing.T) {
		ctx := WithProject(context.Background(), DefaultProjectID)
		s := openTest(t)
		th, _, err := s.CreateThread(ctx, Thread{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SaveSandboxFiles(ctx, th.ID, nil, []SandboxFile{{"a.txt", "file-1"}, {"sub/b.txt", "file-2"}}, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveSandboxFiles(ctx, th.ID, nil, []SandboxFile{{"a.txt", "file-3"}}, []string{"sub/b.txt", "never.txt"}); err != nil {
			t.Fatal(err)
		}
		got, err := s.SandboxFiles(ctx, th.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != (SandboxFile{"a.txt", "file-3"}) {
			t.Fatalf("saved files: %+v", got)
		}
		if err := s.DeleteThread(ctx, th.ID); err != nil {
			t.Fatal(err)
		}
		if got, err := s.SandboxFiles(ctx, th.ID); err != nil || len(got) != 0 {
			t.Fatalf("after deleting the thread: %+v, %v", got, err)
		}
		if err := s.SaveSandboxFiles(ctx, th.ID, nil, []SandboxFile{{"a.txt", "file-4"}}, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("saving for a deleted thread: %v, want ErrNotFound", err)
		}
	})
}

// TestPreferKernel: a queued run of a thread whose kernel lives on
// another replica is kept for that replica while its kernel is alive and
// its presence lease holds, and only for the window; claims by others
// skip it meanwhile. A kernel on the caller's own replica, a lapsed
// kernel or a dead replica keeps nothing.
func TestPreferKernel(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		ctx := WithProject(context.Background(), DefaultProjectID)
		s := openTest(t)
		newRun := func() (Thread, Run) {
			th, run := threadRun(t, s, ctx)
			return th, run
		}
		if _, err := s.TakeLeadership(ctx, PresenceName(BlobsPostgres, "home"), "home", time.Minute); err != nil {
			t.Fatal(err)
		}
		th, run := newRun()
		if before, err := s.HomeKernel(ctx, th.ID, "home", time.Minute); err != nil || before != "" {
			t.Fatalf("first kernel: before %q, %v", before, err)
		}
		if home, err := s.PreferKernel(ctx, run.ID, "home", time.Minute); err != nil || home != "" {
			t.Fatalf("the kernel's own replica was sent elsewhere: %q, %v", home, err)
		}
		if home, err := s.PreferKernel(ctx, run.ID, "other", time.Minute); err != nil || home != "home" {
			t.Fatalf("prefer: %q, %v; want home", home, err)
		}
		if claims, err := s.ClaimRuns(ctx, "other", time.Minute, 10, ""); err != nil || len(claims) != 0 {
			t.Fatalf("another replica claimed a kept run: %+v, %v", claims, err)
		}
		if claims, err := s.ClaimRuns(ctx, "home", time.Minute, 10, ""); err != nil || len(claims) != 1 {
			t.Fatalf("the kernel's replica claims: %+v, %v", claims, err)
		}
		if before, err := s.HomeKernel(ctx, th.ID, "other", time.Minute); err != nil || before != "home" {
			t.Fatalf("kernel moved: before %q, %v; want home", before, err)
		}

		// Past the window any replica claims it.
		th2, run2 := newRun()
		if _, err := s.HomeKernel(ctx, th2.ID, "home", time.Minute); err != nil {
			t.Fatal(err)
		}
		if home, err := s.PreferKernel(ctx, run2.ID, "other", time.Millisecond); err != nil || home != "home" {
			t.Fatalf("prefer: %q, %v", home, err)
		}
		// The window is 1 ms of the database's clock: poll until it has
		// passed there, with a deadline.
		for deadline := time.Now().Add(5 * time.Second); ; {
			claims, err := s.ClaimRuns(ctx, "other", time.Minute, 10, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(claims) == 1 {
				break
			}
			if len(claims) > 1 || time.Now().After(deadline) {
				t.Fatalf("after the window: %+v", claims)
			}
			runtime.Gosched()
		}

		// A dead replica's kernel, or one idle past its time, keeps nothing.
		th3, run3 := newRun()
		if _, err := s.HomeKernel(ctx, th3.ID, "gone", time.Minute); err != nil {
			t.Fatal(err)
		}
		if home, err := s.PreferKernel(ctx, run3.ID, "other", time.Minute); err != nil || home != "" {
			t.Fatalf("kept for a replica without a presence lease: %q, %v", home, err)
		}
		if _, err := s.HomeKernel(ctx, th3.ID, "home", -time.Second); err != nil {
			t.Fatal(err)
		}
		if home, err := s.PreferKernel(ctx, run3.ID, "other", time.Minute); err != nil || home != "" {
			t.Fatalf("kept for a lapsed kernel: %q, %v", home, err)
		}
	})
	t.Run("sqlite", func(t *testing.T) {
		s := openTest(t)
		if home, err := s.PreferKernel(context.Background(), "run_x", "me", time.Minute); err != nil || home != "" {
			t.Fatalf("SQLite kept a run: %q, %v", home, err)
		}
	})
}

// TestSandboxFilesFenced: a call of a run's execution saves the thread's
// files only while its claim still holds the run; a replica whose claim
// was taken over (a later attempt) saves nothing.
func TestSandboxFilesFenced(t *testing.T) {
	eachStore(t, func(t *testing.T) {
		ctx := WithProject(context.Background(), DefaultProjectID)
		s := openTest(t)
		th, run := threadRun(t, s, ctx)
		claims, err := s.ClaimRuns(ctx, "me", time.Minute, 1, "")
		if err != nil || len(claims) != 1 {
			t.Fatalf("claims %+v, %v", claims, err)
		}
		stale := &Fence{RunID: run.ID, Replica: "me", Attempt: claims[0].Attempt + 1}
		if err := s.SaveSandboxFiles(ctx, th.ID, stale, []SandboxFile{{"late.txt", "file-late"}}, nil); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("save under a stale claim: %v, want ErrLeaseLost", err)
		}
		other := &Fence{RunID: run.ID, Replica: "other", Attempt: claims[0].Attempt}
		if err := s.SaveSandboxFiles(ctx, th.ID, other, []SandboxFile{{"late.txt", "file-late"}}, nil); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("save under another replica's name: %v, want ErrLeaseLost", err)
		}
		held := &Fence{RunID: run.ID, Replica: "me", Attempt: claims[0].Attempt}
		if err := s.SaveSandboxFiles(ctx, th.ID, held, []SandboxFile{{"a.txt", "file-1"}}, nil); err != nil {
			t.Fatal(err)
		}
		got, err := s.SandboxFiles(ctx, th.ID)
		if err != nil || len(got) != 1 || got[0] != (SandboxFile{"a.txt", "file-1"}) {
			t.Fatalf("saved files: %+v, %v", got, err)
		}
	})
}
