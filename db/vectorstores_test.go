package db

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock for the store.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func openClocked(t *testing.T) (*Store, *clock) {
	t.Helper()
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	return openTest(t, WithClock(c.Now)), c
}

func addFile(t *testing.T, s *Store, name string) File {
	t.Helper()
	sf, err := s.StageFile(strings.NewReader("content of "+name), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.CommitFile(WithProject(context.Background(), DefaultProjectID), File{Filename: name, Purpose: "assistants"}, sf, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestVectorStoreExpiry: a store expires days after it was last active;
// activity moves the expiry; the sweeper marks it expired once and it
// leaves search.
func TestVectorStoreExpiry(t *testing.T) { eachStore(t, testVectorStoreExpiry) }

func testVectorStoreExpiry(t *testing.T) {
	ctx := WithProject(context.Background(), DefaultProjectID)
	s, c := openClocked(t)
	f := addFile(t, s, "a.txt")
	v, err := s.CreateVectorStore(ctx, VectorStore{ExpiresAfter: &ExpiresAfter{Anchor: "last_active_at", Days: 2}},
		[]NewVectorStoreFile{{FileID: f.ID, Chunking: AutoChunking()}})
	if err != nil {
		t.Fatal(err)
	}
	if *v.ExpiresAt != *v.LastActiveAt+2*86400 {
		t.Fatalf("expires_at %d, last_active_at %d", *v.ExpiresAt, *v.LastActiveAt)
	}
	if ok, err := s.CompleteVectorStoreFile(ctx, v.ID, f.ID, []NewChunk{{Text: "hello"}}); !ok || err != nil {
		t.Fatalf("complete: %v %v", ok, err)
	}
	c.advance(36 * time.Hour)
	if err := s.TouchVectorStores(ctx, []string{v.ID}); err != nil {
		t.Fatal(err)
	}
	c.advance(36 * time.Hour) // 72 h after creation, 36 h after the last activity
	if n, err := s.ExpireVectorStores(ctx); n != 0 || err != nil {
		t.Fatalf("expired %d (%v) within the window", n, err)
	}
	c.advance(13 * time.Hour)
	if n, err := s.ExpireVectorStores(ctx); n != 1 || err != nil {
		t.Fatalf("expired %d (%v), want 1", n, err)
	}
	if n, _ := s.ExpireVectorStores(ctx); n != 0 {
		t.Fatalf("expired again: %d", n)
	}
	got, _ := s.GetVectorStore(ctx, v.ID)
	if got.Status != VSExpired {
		t.Fatalf("status %s", got.Status)
	}
	if files, _ := s.SearchableFiles(ctx, []string{v.ID}); len(files) != 0 {
		t.Fatalf("an expired store is still searchable: %+v", files)
	}
}

// TestCancelBatch: cancelling a batch cancels its files still in progress
// (ingestion then stores nothing for them) and leaves completed ones.
func TestCancelBatch(t *testing.T) { eachStore(t, testCancelBatch) }

func testCancelBatch(t *testing.T) {
	ctx := WithProject(context.Background(), DefaultProjectID)
	s, _ := openClocked(t)
	v, _ := s.CreateVectorStore(ctx, VectorStore{}, nil)
	a, b := addFile(t, s, "a.txt"), addFile(t, s, "b.txt")
	batch, err := s.CreateFileBatch(ctx, v.ID, []NewVectorStoreFile{{FileID: a.ID, Chunking: AutoChunking()}, {FileID: b.ID, Chunking: AutoChunking()}})
	if err != nil {
		t.Fatal(err)
	}
	if batch.Status != VSInProgress || batch.FileCounts.InProgress != 2 {
		t.Fatalf("new batch %+v", batch)
	}
	if ok, _ := s.CompleteVectorStoreFile(ctx, v.ID, a.ID, []NewChunk{{Text: "a"}}); !ok {
		t.Fatal("complete a")
	}
	batch, err = s.CancelFileBatch(ctx, v.ID, batch.ID)
	if err != nil {
		t.Fatal(err)
	}
	if batch.Status != VSCancelled || batch.FileCounts != (FileCounts{Completed: 1, Cancelled: 1, Total: 2}) {
		t.Fatalf("cancelled batch %+v", batch)
	}
	if ok, _ := s.CompleteVectorStoreFile(ctx, v.ID, b.ID, []NewChunk{{Text: "b"}}); ok {
		t.Fatal("a cancelled file was completed")
	}
	if n, _ := s.CountChunks(ctx, b.ID); n != 0 {
		t.Fatalf("cancelled file has %d chunks", n)
	}
	got, _ := s.GetVectorStore(ctx, v.ID)
	if got.Status != VSCompleted || got.FileCounts.Cancelled != 1 {
		t.Fatalf("store after cancel %+v %s", got.FileCounts, got.Status)
	}
}

// TestSearchChunksOtherStores: a store's chunks are found even when many
// better-ranked matches belong to other stores.
func TestSearchChunksOtherStores(t *testing.T) { eachStore(t, testSearchChunksOtherStores) }

func testSearchChunksOtherStores(t *testing.T) {
	ctx := WithProject(context.Background(), DefaultProjectID)
	s, _ := openClocked(t)
	a, b := addFile(t, s, "a.txt"), addFile(t, s, "b.txt")
	big, _ := s.CreateVectorStore(ctx, VectorStore{}, []NewVectorStoreFile{{FileID: a.ID, Chunking: AutoChunking()}})
	small, _ := s.CreateVectorStore(ctx, VectorStore{}, []NewVectorStoreFile{{FileID: b.ID, Chunking: AutoChunking()}})
	var chunks []NewChunk
	for range 300 {
		chunks = append(chunks, NewChunk{Text: "alpha alpha alpha"})
	}
	if ok, err := s.CompleteVectorStoreFile(ctx, big.ID, a.ID, chunks); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ok, err := s.CompleteVectorStoreFile(ctx, small.ID, b.ID, []NewChunk{{Text: "a long text that mentions alpha only once among many other words"}}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	hits, err := s.SearchChunks(ctx, []string{small.ID}, nil, `"alpha"`, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 1 || hits[0].FileID != b.ID || hits[0].VectorStoreID != small.ID {
		t.Fatalf("hits = %+v", hits)
	}
	if hits, _ := s.SearchChunks(ctx, []string{big.ID}, []string{a.ID}, `"alpha"`, 5); len(hits) != 5 {
		t.Fatalf("big store: %d hits", len(hits))
	}
}
