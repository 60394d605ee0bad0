package db

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The writer never checkpoints (a commit never waits for the copy into
// the database file); the checkpointer does, in the background: what is
// written reaches the database file without any commit doing it.
func TestCheckpointsOffTheWriter(t *testing.T) {
	s := openTest(t)
	ctx := WithProject(context.Background(), DefaultProjectID)
	var auto int
	if err := s.w.QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&auto); err != nil {
		t.Fatal(err)
	}
	if auto != 0 {
		t.Fatalf("the writer checkpoints every %d pages, want never (0)", auto)
	}
	path := filepath.Join(s.dir, "assistantd.db")
	before := fileSize(t, path)
	th, _, err := s.CreateThread(ctx, Thread{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// About 3 MiB of messages, in the WAL once committed.
	text := strings.Repeat("the quick brown fox jumps over the lazy dog ", 1500)
	for range 48 {
		if _, err := s.CreateMessage(ctx, Message{ThreadID: th.ID, Role: "user", Status: "completed",
			Content: []ContentPart{{Type: "text", Text: &Text{Value: text}}}}); err != nil {
			t.Fatal(err)
		}
	}
	want := before + 2<<20
	for deadline := time.Now().Add(10 * time.Second); fileSize(t, path) < want; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the database file is %d bytes 10 s after the writes, want at least %d: nothing checkpointed them", fileSize(t, path), want)
		}
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
