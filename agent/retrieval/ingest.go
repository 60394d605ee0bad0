package retrieval

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/assistantd/assistantd/db"
)

// Ingester turns vector store files in progress into chunks, in the
// background. Its queue is the store itself (files whose status is
// in_progress), so work survives restarts: whatever a stopped server left
// in progress is picked up on the next start. A file's chunks and its
// completed status are written in one transaction.
//
// No file can stall it: each runs under Limits (a deadline, bounds on its
// text), a file deleted, removed from its store or cancelled stops being
// worked on within watchEvery, and a file that was being ingested when
// the server died MaxAttempts times fails instead of being resumed again.
type Ingester struct {
	store   *db.Store
	embed   Embedder // nil: BM25 only
	log     *slog.Logger
	workers int

	// Limits bound each file; set before Run.
	Limits Limits
	// MaxAttempts bounds the attempts at a file that never end (the
	// server crashed or was killed during them); set before Run.
	MaxAttempts int

	wake chan struct{}

	// observe, when set, is told each file's outcome and ingestion time.
	observe atomic.Pointer[func(outcome string, d time.Duration)]

	mu      sync.Mutex
	active  map[fileKey]bool // files being worked on
	changed chan struct{}    // closed and replaced whenever a file leaves in_progress
}

// NewIngester returns an ingester with workers parallel workers; embed may
// be nil.
func NewIngester(store *db.Store, embed Embedder, workers int, log *slog.Logger) *Ingester {
	if workers < 1 {
		workers = 1
	}
	return &Ingester{store: store, embed: embed, log: log, workers: workers, wake: make(chan struct{}, 1),
		Limits: DefaultLimits(), MaxAttempts: 3, active: map[fileKey]bool{}, changed: make(chan struct{})}
}

// fileKey names a vector store file. (A PendingFile is no map key: its
// chunking strategy holds a pointer, different in every listing, so the
// same file listed twice would count as two and be taken by two workers.)
type fileKey struct{ store, file string }

func keyOf(p db.PendingFile) fileKey { return fileKey{p.VectorStoreID, p.FileID} }

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

// Observe has fn told, from now on, each file's outcome ("completed" or
// "failed") and how long its ingestion took.
func (in *Ingester) Observe(fn func(outcome string, d time.Duration)) { in.observe.Store(&fn) }

// Active counts the files being ingested now.
func (in *Ingester) Active() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.active)
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
		start := time.Now()
		outcome := in.process(ctx, *p)
		if obs := in.observe.Load(); obs != nil && outcome != "" {
			(*obs)(outcome, time.Since(start))
		}
		in.release(*p)
	}
}

// claim picks the oldest pending file no worker has, and whether more wait.
func (in *Ingester) claim(ctx context.Context) (*db.PendingFile, bool, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	ps, err := in.store.PendingVectorStoreFiles(ctx, 2, func(p db.PendingFile) bool { return in.active[keyOf(p)] })
	if err != nil || len(ps) == 0 {
		return nil, false, err
	}
	in.active[keyOf(ps[0])] = true
	return &ps[0], len(ps) > 1, nil
}

func (in *Ingester) release(p db.PendingFile) {
	in.mu.Lock()
	delete(in.active, keyOf(p))
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

// watchEvery is how often a file being ingested is looked up, so that
// deleting it, removing it from its store or cancelling its batch stops
// its worker. Looking it up in the store (rather than being told by the
// handler that deleted it) also sees deletions made by another replica.
const watchEvery = 250 * time.Millisecond

// errGone cancels a file's ingestion when it is no longer in progress.
var errGone = errors.New("the file is no longer in progress")

// process ingests one file; failures are recorded on the file. It
// returns the outcome: "completed", "failed", or "" when the file was
// left (deleted, cancelled, or the server is stopping).
func (in *Ingester) process(ctx context.Context, p db.PendingFile) string {
	// Ingestion is one queue across projects; each file is ingested in its
	// own project (its content, its store, its chunks).
	ctx = db.WithProject(ctx, p.ProjectID)
	log := in.log.With("vector_store", p.VectorStoreID, "file", p.FileID)
	fail := func(code, msg string) {
		if err := in.store.FailVectorStoreFile(context.WithoutCancel(ctx), p.VectorStoreID, p.FileID, code, msg); err != nil {
			log.Error("ingestion: record failure", "err", err)
		}
	}
	attempts, err := in.store.BeginIngestion(ctx, p.VectorStoreID, p.FileID)
	if err != nil {
		if _, gerr := in.store.GetVectorStoreFile(ctx, p.VectorStoreID, p.FileID); errors.Is(gerr, db.ErrNotFound) {
			return "" // deleted since it was listed
		}
		log.Error("ingestion: count attempt", "err", err)
	}
	defer func() {
		if err := in.store.EndIngestion(context.WithoutCancel(ctx), p.VectorStoreID, p.FileID); err != nil {
			log.Error("ingestion: end attempt", "err", err)
		}
	}()
	if max(1, in.MaxAttempts) < attempts {
		log.Warn("ingestion: giving up on a file whose attempts never ended", "attempts", attempts-1)
		fail(CodeServer, fmt.Sprintf("The file's processing was interrupted %d times (the server stopped while working on it); it was not tried again.", attempts-1))
		return "failed"
	}
	lim := in.Limits.withDefaults()
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	fctx, cancelT := context.WithTimeoutCause(fctx, lim.Timeout, errTimeout)
	defer cancelT()
	go in.watch(fctx, p, cancel)
	chunks, err := in.Prepare(fctx, p)
	var fe *FileError
	switch {
	case ctx.Err() != nil:
		// Shutting down: the file stays in progress and resumes on the
		// next start, and this attempt does not count against it.
		return ""
	case errors.Is(err, db.ErrNotFound), errors.Is(context.Cause(fctx), errGone):
		log.Info("ingestion stopped: the file was deleted, removed or cancelled")
		return ""
	case errors.Is(context.Cause(fctx), errTimeout):
		log.Warn("ingestion timed out", "timeout", lim.Timeout)
		fail(CodeServer, fmt.Sprintf("The file could not be processed within %s; it was stopped.", lim.Timeout))
		return "failed"
	case errors.As(err, &fe):
		fail(fe.Code, fe.Msg)
		return "failed"
	case err != nil:
		log.Error("ingestion failed", "err", err)
		fail(CodeServer, "The file could not be processed.")
		return "failed"
	}
	stored, err := in.store.CompleteVectorStoreFile(ctx, p.VectorStoreID, p.FileID, chunks)
	switch {
	case err != nil && ctx.Err() == nil:
		log.Error("ingestion: store chunks", "err", err)
		fail(CodeServer, "The file's chunks could not be stored.")
		return "failed"
	case err != nil || !stored:
		return ""
	}
	return "completed"
}

// errTimeout is the cause of a file's context ending at its deadline.
var errTimeout = errors.New("ingestion timed out")

// watch cancels a file's ingestion, until ctx ends, once the file is no
// longer in progress in its store.
func (in *Ingester) watch(ctx context.Context, p db.PendingFile, cancel context.CancelCauseFunc) {
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		vf, err := in.store.GetVectorStoreFile(ctx, p.VectorStoreID, p.FileID)
		if errors.Is(err, db.ErrNotFound) || (err == nil && vf.Status != "in_progress") {
			cancel(errGone)
			return
		}
	}
}

// Prepare reads, extracts, chunks and (with an embedder) embeds one file,
// within the ingester's limits (but for its deadline, which is ctx's).
func (in *Ingester) Prepare(ctx context.Context, p db.PendingFile) ([]db.NewChunk, error) {
	lim := in.Limits.withDefaults()
	f, r, err := in.store.OpenFile(ctx, p.FileID)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	length, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("size of file %s: %w", p.FileID, err)
	}
	text, err := Extract(ctx, f.Filename, readerAt(r), length, lim)
	if err != nil {
		return nil, err
	}
	r.Close()
	size, overlap := 800, 400
	if s := p.Chunking.Static; s != nil {
		size, overlap = s.MaxChunkSizeTokens, s.ChunkOverlapTokens
	}
	texts, err := chunk(ctx, text, size, overlap, lim.MaxTokens)
	if err != nil {
		return nil, err
	}
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

// readerAt gives random access to a file's content: its own ReadAt (a file
// in the data directory), or reads after seeks, one at a time (a blob in
// the database).
func readerAt(r io.ReadSeeker) io.ReaderAt {
	if ra, ok := r.(io.ReaderAt); ok {
		return ra
	}
	return &seekingReaderAt{r: r}
}

type seekingReaderAt struct {
	mu sync.Mutex
	r  io.ReadSeeker
}

func (s *seekingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.r.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := io.ReadFull(s.r, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF // as ReaderAt says: fewer bytes, at the end
	}
	return n, err
}
