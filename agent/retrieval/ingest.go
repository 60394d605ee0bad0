package retrieval

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/assistantd/assistantd/db"
)

// Ingester turns vector store files in progress into chunks, in the
// background. Its queue is the store itself (files whose status is
// in_progress), so work survives restarts: whatever a stopped server left
// in progress is picked up on the next start. A file's chunks and its
// completed status are written in one transaction.
type Ingester struct {
	store   *db.Store
	embed   Embedder // nil: BM25 only
	log     *slog.Logger
	workers int

	wake chan struct{}

	mu      sync.Mutex
	active  map[db.PendingFile]bool
	changed chan struct{} // closed and replaced whenever a file leaves in_progress
}

// NewIngester returns an ingester with workers parallel workers; embed may
// be nil.
func NewIngester(store *db.Store, embed Embedder, workers int, log *slog.Logger) *Ingester {
	if workers < 1 {
		workers = 1
	}
	return &Ingester{store: store, embed: embed, log: log, workers: workers, wake: make(chan struct{}, 1),
		active: map[db.PendingFile]bool{}, changed: make(chan struct{})}
}

// idlePoll is how often idle workers look for work nobody announced (a
// safety net: every write that adds files calls Wake).
const idlePoll = 30 * time.Second

// Run works until ctx ends, then returns once every worker has stopped.
func (in *Ingester) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range in.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in.work(ctx)
		}()
	}
	wg.Wait()
}

// Wake tells the workers that files were added.
func (in *Ingester) Wake() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

func (in *Ingester) work(ctx context.Context) {
	timer := time.NewTimer(idlePoll)
	defer timer.Stop()
	for ctx.Err() == nil {
		p, more, err := in.claim(ctx)
		if err != nil && ctx.Err() == nil {
			in.log.Error("ingestion: list pending files", "err", err)
		}
		if p == nil {
			timer.Reset(idlePoll)
			select {
			case <-ctx.Done():
			case <-in.wake:
			case <-timer.C:
			}
			continue
		}
		if more {
			in.Wake() // another worker can take the next one
		}
		in.process(ctx, *p)
		in.release(*p)
	}
}

// claim picks the oldest pending file no worker has, and whether more wait.
func (in *Ingester) claim(ctx context.Context) (*db.PendingFile, bool, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	ps, err := in.store.PendingVectorStoreFiles(ctx, 2, func(p db.PendingFile) bool { return in.active[p] })
	if err != nil || len(ps) == 0 {
		return nil, false, err
	}
	in.active[ps[0]] = true
	return &ps[0], len(ps) > 1, nil
}

func (in *Ingester) release(p db.PendingFile) {
	in.mu.Lock()
	delete(in.active, p)
	close(in.changed)
	in.changed = make(chan struct{})
	in.mu.Unlock()
}

// WaitIdle waits until none of the given stores has a file in progress, or
// ctx ends.
func (in *Ingester) WaitIdle(ctx context.Context, storeIDs []string) error {
	for {
		in.mu.Lock()
		changed := in.changed
		in.mu.Unlock()
		n, err := in.store.PendingInStores(ctx, storeIDs)
		if err != nil || n == 0 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// maxIngestBytes bounds the content read into memory for one file.
const maxIngestBytes = 512 << 20

// process ingests one file; failures are recorded on the file.
func (in *Ingester) process(ctx context.Context, p db.PendingFile) {
	fail := func(code, msg string) {
		if err := in.store.FailVectorStoreFile(context.WithoutCancel(ctx), p.VectorStoreID, p.FileID, code, msg); err != nil {
			in.log.Error("ingestion: record failure", "file", p.FileID, "err", err)
		}
	}
	chunks, err := in.Prepare(ctx, p)
	var fe *FileError
	switch {
	case ctx.Err() != nil:
		return // shutting down: the file stays in progress and resumes on the next start
	case errors.Is(err, db.ErrNotFound):
		return // the file was deleted; its entries went with it
	case errors.As(err, &fe):
		fail(fe.Code, fe.Msg)
		return
	case err != nil:
		in.log.Error("ingestion failed", "vector_store", p.VectorStoreID, "file", p.FileID, "err", err)
		fail(CodeServer, "The file could not be processed.")
		return
	}
	if _, err := in.store.CompleteVectorStoreFile(ctx, p.VectorStoreID, p.FileID, chunks); err != nil && ctx.Err() == nil {
		in.log.Error("ingestion: store chunks", "file", p.FileID, "err", err)
		fail(CodeServer, "The file's chunks could not be stored.")
	}
}

// Prepare reads, extracts, chunks and (with an embedder) embeds one file.
func (in *Ingester) Prepare(ctx context.Context, p db.PendingFile) ([]db.NewChunk, error) {
	f, r, err := in.store.OpenFile(ctx, p.FileID)
	if err != nil {
		return nil, err
	}
	content, err := io.ReadAll(io.LimitReader(r, maxIngestBytes+1))
	r.Close()
	if err != nil {
		return nil, fmt.Errorf("read file %s: %w", p.FileID, err)
	}
	if len(content) > maxIngestBytes {
		return nil, &FileError{CodeInvalid, "The file is too large to be searched."}
	}
	text, err := Extract(f.Filename, content)
	if err != nil {
		return nil, err
	}
	size, overlap := 800, 400
	if s := p.Chunking.Static; s != nil {
		size, overlap = s.MaxChunkSizeTokens, s.ChunkOverlapTokens
	}
	texts := Chunk(text, size, overlap)
	if len(texts) == 0 {
		return nil, &FileError{CodeInvalid, fmt.Sprintf("File %s contains no text.", f.Filename)}
	}
	chunks := make([]db.NewChunk, len(texts))
	for i, t := range texts {
		chunks[i].Text = t
	}
	if in.embed != nil {
		for start := 0; start < len(texts); start += embedBatch {
			end := min(start+embedBatch, len(texts))
			vecs, err := in.embed.Embed(ctx, texts[start:end])
			if err != nil {
				return nil, fmt.Errorf("embed chunks: %w", err)
			}
			for i, v := range vecs {
				chunks[start+i].Embedding = v
			}
		}
	}
	return chunks, nil
}

// embedBatch is how many chunks go to the embeddings endpoint at once.
const embedBatch = 64
