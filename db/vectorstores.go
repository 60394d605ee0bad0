package db

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Vector store and vector store file statuses.
const (
	VSInProgress = "in_progress"
	VSCompleted  = "completed"
	VSExpired    = "expired"
	VSCancelled  = "cancelled"
	VSFailed     = "failed"
)

// VectorStore is a vector store as the API shows it. FileCounts, Status and
// UsageBytes are computed from its files on every read.
type VectorStore struct {
	ID           string        `json:"id"`
	Object       string        `json:"object"`
	CreatedAt    int64         `json:"created_at"`
	Name         string        `json:"name"`
	UsageBytes   int64         `json:"usage_bytes"`
	FileCounts   FileCounts    `json:"file_counts"`
	Status       string        `json:"status"`
	ExpiresAfter *ExpiresAfter `json:"expires_after,omitempty"`
	ExpiresAt    *int64        `json:"expires_at"`
	LastActiveAt *int64        `json:"last_active_at"`
	Metadata     Metadata      `json:"metadata"`

	Description *string `json:"-"`
}

// FileCounts counts a vector store's (or a batch's) files by status.
type FileCounts struct {
	InProgress int64 `json:"in_progress"`
	Completed  int64 `json:"completed"`
	Failed     int64 `json:"failed"`
	Cancelled  int64 `json:"cancelled"`
	Total      int64 `json:"total"`
}

// ExpiresAfter is a vector store's expiration policy.
type ExpiresAfter struct {
	Anchor string `json:"anchor"`
	Days   int64  `json:"days"`
}

// ChunkingStrategy is how a file was cut into chunks. The store keeps only
// the resolved static form: "auto" is 800 tokens with 400 overlap.
type ChunkingStrategy struct {
	Type   string          `json:"type"`
	Static *StaticChunking `json:"static,omitempty"`
}

// StaticChunking is the static strategy's sizes, in tokens.
type StaticChunking struct {
	MaxChunkSizeTokens int `json:"max_chunk_size_tokens"`
	ChunkOverlapTokens int `json:"chunk_overlap_tokens"`
}

// AutoChunking is what chunking_strategy "auto" (or none) means.
func AutoChunking() ChunkingStrategy {
	return ChunkingStrategy{Type: "static", Static: &StaticChunking{MaxChunkSizeTokens: 800, ChunkOverlapTokens: 400}}
}

// Attributes are a vector store file's filterable key-value pairs: string,
// number or boolean values. They serialise as {} when empty.
type Attributes map[string]any

// MarshalJSON writes {} for a nil map.
func (a Attributes) MarshalJSON() ([]byte, error) {
	if a == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(map[string]any(a))
}

// FileError is a vector store file's last_error.
type FileError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// VectorStoreFile is a file in a vector store as the API shows it; its ID
// is the file's id.
type VectorStoreFile struct {
	ID               string           `json:"id"`
	Object           string           `json:"object"`
	UsageBytes       int64            `json:"usage_bytes"`
	CreatedAt        int64            `json:"created_at"`
	VectorStoreID    string           `json:"vector_store_id"`
	Status           string           `json:"status"`
	LastError        *FileError       `json:"last_error"`
	ChunkingStrategy ChunkingStrategy `json:"chunking_strategy"`
	Attributes       Attributes       `json:"attributes"`

	BatchID string `json:"-"`
}

// FileBatch is a vector store file batch as the API shows it.
type FileBatch struct {
	ID            string     `json:"id"`
	Object        string     `json:"object"`
	CreatedAt     int64      `json:"created_at"`
	VectorStoreID string     `json:"vector_store_id"`
	Status        string     `json:"status"`
	FileCounts    FileCounts `json:"file_counts"`
}

// countsColumn computes file counts and usage bytes of the files matching
// cond (a correlated condition) as one JSON array column.
func countsColumn(cond string) string {
	return `(SELECT '[' || count(*) FILTER (WHERE f.status = 'in_progress') || ',' || count(*) FILTER (WHERE f.status = 'completed')
		|| ',' || count(*) FILTER (WHERE f.status = 'failed') || ',' || count(*) FILTER (WHERE f.status = 'cancelled')
		|| ',' || count(*) || ',' || coalesce(sum(f.usage_bytes), 0) || ']' FROM vector_store_files f WHERE ` + cond + `)`
}

func decodeCounts(raw string) (FileCounts, int64, error) {
	var v [6]int64
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return FileCounts{}, 0, fmt.Errorf("decode file counts: %w", err)
	}
	return FileCounts{InProgress: v[0], Completed: v[1], Failed: v[2], Cancelled: v[3], Total: v[4]}, v[5], nil
}

var vectorStoreColumns = `id, created_at, name, description, metadata, expires_after, expires_at, last_active_at, expired, ` +
	countsColumn(`f.vector_store_id = vector_stores.id`)

func scanVectorStore(row rowScanner) (VectorStore, error) {
	var (
		v                 VectorStore
		desc, expAfter    sql.NullString
		expAt, lastActive sql.NullInt64
		meta, counts      string
		expired           bool
	)
	if err := row.Scan(&v.ID, &v.CreatedAt, &v.Name, &desc, &meta, &expAfter, &expAt, &lastActive, &expired, &counts); err != nil {
		return v, err
	}
	v.Object, v.Description, v.ExpiresAt, v.LastActiveAt = "vector_store", nullString(desc), nullInt(expAt), nullInt(lastActive)
	errs := []error{decodeColumn("metadata", meta, &v.Metadata)}
	if expAfter.Valid {
		v.ExpiresAfter = &ExpiresAfter{}
		errs = append(errs, decodeColumn("expires_after", expAfter.String, v.ExpiresAfter))
	}
	var err error
	v.FileCounts, v.UsageBytes, err = decodeCounts(counts)
	errs = append(errs, err)
	switch {
	case expired:
		v.Status = VSExpired
	case v.FileCounts.InProgress > 0:
		v.Status = VSInProgress
	default:
		v.Status = VSCompleted
	}
	return v, errors.Join(errs...)
}

// NewVectorStoreFile is one file to add to a vector store.
type NewVectorStoreFile struct {
	FileID     string
	Chunking   ChunkingStrategy
	Attributes Attributes
}

// CreateVectorStore inserts a store (active now) and its initial files,
// which start in progress.
func (s *Store) CreateVectorStore(ctx context.Context, v VectorStore, files []NewVectorStoreFile) (VectorStore, error) {
	v.ID, v.CreatedAt = NewID("vs_"), s.now().Unix()
	now := v.CreatedAt
	v.LastActiveAt = &now
	v.ExpiresAt = expiry(v.ExpiresAfter, now)
	project, err := ProjectFrom(ctx)
	if err != nil {
		return v, fmt.Errorf("create vector store: %w", err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		meta, err1 := jsonColumn(v.Metadata)
		expAfter, err2 := nullableJSON(v.ExpiresAfter)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO vector_stores (id, created_at, name, description, metadata, expires_after,
			expires_at, last_active_at, project_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, v.ID, v.CreatedAt, v.Name,
			v.Description, meta, expAfter, v.ExpiresAt, v.LastActiveAt, project); err != nil {
			return err
		}
		return s.addFiles(ctx, tx, v.ID, "", files)
	})
	if err != nil {
		return v, fmt.Errorf("create vector store: %w", err)
	}
	return s.GetVectorStore(ctx, v.ID)
}

// expiry is when a store with policy ea, last active at, expires.
func expiry(ea *ExpiresAfter, at int64) *int64 {
	if ea == nil {
		return nil
	}
	t := at + ea.Days*86400
	return &t
}

// addFiles adds (or re-adds, which restarts ingestion) files to a store,
// which the caller found (or made) in ctx's project: the entries are that
// project's.
func (s *Store) addFiles(ctx context.Context, tx *sql.Tx, storeID, batchID string, files []NewVectorStoreFile) error {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return err
	}
	now := s.now().Unix()
	var batch *string
	if batchID != "" {
		batch = &batchID
	}
	for _, f := range files {
		chunking, err1 := jsonColumn(f.Chunking)
		attrs, err2 := attrsColumn(f.Attributes)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM vector_store_chunks WHERE vector_store_id = $1 AND file_id = $2`,
			storeID, f.FileID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO vector_store_files (id, vector_store_id, batch_id, created_at, status,
			chunking_strategy, attributes, project_id) VALUES ($1, $2, $3, $4, 'in_progress', $5, $6, $7)
			ON CONFLICT (vector_store_id, id) DO UPDATE SET batch_id = excluded.batch_id, status = 'in_progress',
			last_error = NULL, usage_bytes = 0, chunking_strategy = excluded.chunking_strategy, attributes = excluded.attributes`,
			f.FileID, storeID, batch, now, chunking, attrs, project); err != nil {
			return err
		}
	}
	if len(files) > 0 {
		s.chunkGen.Add(1)
	}
	return s.touch(ctx, tx, storeID, now)
}

// touch marks a store of ctx's project active at now, moving its expiry.
func (s *Store) touch(ctx context.Context, tx *sql.Tx, storeID string, now int64) error {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE vector_stores SET last_active_at = $1,
		expires_at = CASE WHEN expires_after IS NULL THEN NULL
			ELSE $2 + `+s.jsonInt("expires_after", "days")+` * 86400 END
		WHERE id = $3 AND expired = 0 AND project_id = $4`, now, now, storeID, project)
	return err
}

// TouchVectorStores marks stores active now (searched, used by a run).
func (s *Store) TouchVectorStores(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if err := s.touch(ctx, tx, id, s.now().Unix()); err != nil {
				return err
			}
		}
		return nil
	})
}

// GetVectorStore returns the store with id, or ErrNotFound.
func (s *Store) GetVectorStore(ctx context.Context, id string) (VectorStore, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return VectorStore{}, fmt.Errorf("get vector store %s: %w", id, err)
	}
	v, err := scanVectorStore(s.r.QueryRowContext(ctx, `SELECT `+vectorStoreColumns+` FROM vector_stores WHERE id = $1
		AND project_id = $2`, id, project))
	if errors.Is(err, sql.ErrNoRows) {
		return v, ErrNotFound
	}
	if err != nil {
		return v, fmt.Errorf("get vector store %s: %w", id, err)
	}
	return v, nil
}

// UpdateVectorStore applies fn (name, expires_after, metadata) and writes
// the store back; a changed policy counts from now.
func (s *Store) UpdateVectorStore(ctx context.Context, id string, fn func(*VectorStore) error) (VectorStore, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return VectorStore{}, fmt.Errorf("update vector store %s: %w", id, err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		v, err := scanVectorStore(tx.QueryRowContext(ctx, `SELECT `+vectorStoreColumns+` FROM vector_stores WHERE id = $1
			AND project_id = $2`+s.forUpdate(), id, project))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if err := fn(&v); err != nil {
			return err
		}
		meta, err1 := jsonColumn(v.Metadata)
		expAfter, err2 := nullableJSON(v.ExpiresAfter)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE vector_stores SET name = $1, metadata = $2, expires_after = $3 WHERE id = $4`,
			v.Name, meta, expAfter, id); err != nil {
			return err
		}
		return s.touch(ctx, tx, id, s.now().Unix())
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return VectorStore{}, err
		}
		return VectorStore{}, fmt.Errorf("update vector store %s: %w", id, err)
	}
	return s.GetVectorStore(ctx, id)
}

// DeleteVectorStore removes a store with its files' entries and chunks.
func (s *Store) DeleteVectorStore(ctx context.Context, id string) error {
	defer s.chunkGen.Add(1)
	return s.deleteByID(ctx, "vector_stores", id)
}

// ListVectorStores returns one page of vector stores.
func (s *Store) ListVectorStores(ctx context.Context, p ListParams) (Page[VectorStore], error) {
	return listQuery(ctx, s.r, "vector_stores", vectorStoreColumns, "", nil, p, scanVectorStore)
}

// ExpireVectorStores marks every store whose expiry has passed as expired
// and returns how many it marked. Expired stores keep their files but are
// no longer searched. It sweeps every project.
func (s *Store) ExpireVectorStores(ctx context.Context) (int64, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE vector_stores SET expired = 1 WHERE expired = 0 AND expires_at IS NOT NULL
		AND expires_at <= $1`, s.now().Unix())
	if err != nil {
		return 0, fmt.Errorf("expire vector stores: %w", err)
	}
	return res.RowsAffected()
}

const vsFileColumns = `id, usage_bytes, created_at, vector_store_id, status, last_error, chunking_strategy, attributes, batch_id`

func scanVSFile(row rowScanner) (VectorStoreFile, error) {
	var (
		f                     VectorStoreFile
		lastErr, attrs, batch sql.NullString
		chunking              string
	)
	if err := row.Scan(&f.ID, &f.UsageBytes, &f.CreatedAt, &f.VectorStoreID, &f.Status, &lastErr, &chunking, &attrs, &batch); err != nil {
		return f, err
	}
	f.Object, f.BatchID = "vector_store.file", batch.String
	errs := []error{decodeColumn("chunking_strategy", chunking, &f.ChunkingStrategy)}
	if lastErr.Valid {
		f.LastError = &FileError{}
		errs = append(errs, decodeColumn("last_error", lastErr.String, f.LastError))
	}
	if attrs.Valid {
		errs = append(errs, decodeColumn("attributes", attrs.String, &f.Attributes))
	}
	return f, errors.Join(errs...)
}

// AddVectorStoreFiles adds files to an existing store (ErrNotFound if it
// is missing), in progress until ingested.
func (s *Store) AddVectorStoreFiles(ctx context.Context, storeID string, files []NewVectorStoreFile) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := storeExists(ctx, tx, storeID); err != nil {
			return err
		}
		return s.addFiles(ctx, tx, storeID, "", files)
	})
}

// storeExists checks that store id exists in ctx's project.
func storeExists(ctx context.Context, tx *sql.Tx, id string) error {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return err
	}
	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM vector_stores WHERE id = $1 AND project_id = $2`, id, project).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// GetVectorStoreFile returns file fileID of store storeID, or ErrNotFound.
func (s *Store) GetVectorStoreFile(ctx context.Context, storeID, fileID string) (VectorStoreFile, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return VectorStoreFile{}, fmt.Errorf("get vector store file %s: %w", fileID, err)
	}
	f, err := scanVSFile(s.r.QueryRowContext(ctx, `SELECT `+vsFileColumns+` FROM vector_store_files
		WHERE vector_store_id = $1 AND id = $2 AND project_id = $3`, storeID, fileID, project))
	if errors.Is(err, sql.ErrNoRows) {
		return f, ErrNotFound
	}
	if err != nil {
		return f, fmt.Errorf("get vector store file %s: %w", fileID, err)
	}
	return f, nil
}

// UpdateVectorStoreFileAttributes replaces a store file's attributes.
func (s *Store) UpdateVectorStoreFileAttributes(ctx context.Context, storeID, fileID string, attrs Attributes) (VectorStoreFile, error) {
	raw, err := attrsColumn(attrs)
	if err != nil {
		return VectorStoreFile{}, err
	}
	project, err := ProjectFrom(ctx)
	if err != nil {
		return VectorStoreFile{}, fmt.Errorf("update attributes of %s: %w", fileID, err)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE vector_store_files SET attributes = $1 WHERE vector_store_id = $2 AND id = $3
		AND project_id = $4`, raw, storeID, fileID, project)
	if err != nil {
		return VectorStoreFile{}, fmt.Errorf("update attributes of %s: %w", fileID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return VectorStoreFile{}, ErrNotFound
	}
	return s.GetVectorStoreFile(ctx, storeID, fileID)
}

// DeleteVectorStoreFile removes a file (and its chunks) from one store;
// the file itself is kept.
func (s *Store) DeleteVectorStoreFile(ctx context.Context, storeID, fileID string) error {
	defer s.chunkGen.Add(1)
	return s.deleteByID(ctx, "vector_store_files", fileID, "vector_store_id = $2", storeID)
}

// ListVectorStoreFiles returns one page of a store's files, optionally of
// one status and of one batch.
func (s *Store) ListVectorStoreFiles(ctx context.Context, storeID, batchID, status string, p ListParams) (Page[VectorStoreFile], error) {
	where, args := "vector_store_id = $1", []any{storeID}
	if batchID != "" {
		where, args = where+" AND batch_id = "+arg(len(args)+1), append(args, batchID)
	}
	if status != "" {
		where, args = where+" AND status = "+arg(len(args)+1), append(args, status)
	}
	return listQuery(ctx, s.r, "vector_store_files", vsFileColumns, where, args, p, scanVSFile)
}

var batchColumns = `id, created_at, vector_store_id, cancelled, ` + countsColumn(`f.batch_id = vector_store_file_batches.id`)

func scanBatch(row rowScanner) (FileBatch, error) {
	var (
		b         FileBatch
		cancelled bool
		counts    string
	)
	if err := row.Scan(&b.ID, &b.CreatedAt, &b.VectorStoreID, &cancelled, &counts); err != nil {
		return b, err
	}
	b.Object = "vector_store.files_batch"
	var err error
	b.FileCounts, _, err = decodeCounts(counts)
	switch c := b.FileCounts; {
	case cancelled:
		b.Status = VSCancelled
	case c.InProgress > 0:
		b.Status = VSInProgress
	case c.Total > 0 && c.Failed == c.Total:
		b.Status = VSFailed
	default:
		b.Status = VSCompleted
	}
	return b, err
}

// CreateFileBatch adds files to a store as one batch.
func (s *Store) CreateFileBatch(ctx context.Context, storeID string, files []NewVectorStoreFile) (FileBatch, error) {
	id := NewID("vsfb_")
	project, err := ProjectFrom(ctx)
	if err != nil {
		return FileBatch{}, fmt.Errorf("create file batch: %w", err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if err := storeExists(ctx, tx, storeID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO vector_store_file_batches (id, vector_store_id, created_at, project_id)
			VALUES ($1, $2, $3, $4)`, id, storeID, s.now().Unix(), project); err != nil {
			return err
		}
		return s.addFiles(ctx, tx, storeID, id, files)
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return FileBatch{}, err
		}
		return FileBatch{}, fmt.Errorf("create file batch: %w", err)
	}
	return s.GetFileBatch(ctx, storeID, id)
}

// GetFileBatch returns batch id of store storeID, or ErrNotFound.
func (s *Store) GetFileBatch(ctx context.Context, storeID, id string) (FileBatch, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return FileBatch{}, fmt.Errorf("get file batch %s: %w", id, err)
	}
	b, err := scanBatch(s.r.QueryRowContext(ctx, `SELECT `+batchColumns+` FROM vector_store_file_batches
		WHERE id = $1 AND vector_store_id = $2 AND project_id = $3`, id, storeID, project))
	if errors.Is(err, sql.ErrNoRows) {
		return b, ErrNotFound
	}
	if err != nil {
		return b, fmt.Errorf("get file batch %s: %w", id, err)
	}
	return b, nil
}

// CancelFileBatch cancels a batch: its files still in progress become
// cancelled at once (ingestion drops their work). A batch already done
// stays as it is.
func (s *Store) CancelFileBatch(ctx context.Context, storeID, id string) (FileBatch, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return FileBatch{}, fmt.Errorf("cancel file batch %s: %w", id, err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var pending int64
		err := tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM vector_store_files WHERE batch_id = b.id
			AND status = 'in_progress') FROM vector_store_file_batches b WHERE b.id = $1 AND b.vector_store_id = $2
			AND b.project_id = $3`+s.forUpdate(), id, storeID, project).Scan(&pending)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil || pending == 0 {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE vector_store_files SET status = 'cancelled' WHERE batch_id = $1
			AND status = 'in_progress'`, id); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE vector_store_file_batches SET cancelled = 1 WHERE id = $1`, id)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return FileBatch{}, err
		}
		return FileBatch{}, fmt.Errorf("cancel file batch %s: %w", id, err)
	}
	return s.GetFileBatch(ctx, storeID, id)
}

// PendingFile is a vector store file waiting for ingestion.
type PendingFile struct {
	VectorStoreID string
	FileID        string
	Chunking      ChunkingStrategy
	// ProjectID is the file's project: ingestion runs scoped to it.
	ProjectID string
}

// PendingVectorStoreFiles returns up to limit files in progress, oldest
// first, skipping those for which skip returns true (already being worked
// on). It looks across every project (ingestion is one queue).
func (s *Store) PendingVectorStoreFiles(ctx context.Context, limit int, skip func(PendingFile) bool) ([]PendingFile, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT vector_store_id, id, chunking_strategy, project_id FROM vector_store_files
		WHERE status = 'in_progress' ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("pending vector store files: %w", err)
	}
	defer rows.Close()
	var out []PendingFile
	for rows.Next() && len(out) < limit {
		var p PendingFile
		var chunking string
		if err := rows.Scan(&p.VectorStoreID, &p.FileID, &chunking, &p.ProjectID); err != nil {
			return nil, fmt.Errorf("pending vector store files: %w", err)
		}
		if err := decodeColumn("chunking_strategy", chunking, &p.Chunking); err != nil {
			return nil, err
		}
		if skip == nil || !skip(p) {
			out = append(out, p)
		}
	}
	return out, rows.Err()
}

// PendingInStores counts the files in progress in the given stores.
func (s *Store) PendingInStores(ctx context.Context, storeIDs []string) (int64, error) {
	if len(storeIDs) == 0 {
		return 0, nil
	}
	project, err := ProjectFrom(ctx)
	if err != nil {
		return 0, fmt.Errorf("pending in stores: %w", err)
	}
	var n int64
	err = s.r.QueryRowContext(ctx, `SELECT count(*) FROM vector_store_files WHERE status = 'in_progress' AND project_id = $1
		AND vector_store_id IN (`+placeholders(2, len(storeIDs))+`)`, append([]any{project}, anySlice(storeIDs)...)...).Scan(&n)
	return n, err
}

// IngestionBacklog counts the vector store files waiting for or in
// ingestion (status in_progress), in every store of every project (a
// metric).
func (s *Store) IngestionBacklog(ctx context.Context) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM vector_store_files WHERE status = 'in_progress'`).Scan(&n)
	return n, err
}

// NewChunk is one chunk of a file's text, with its embedding (nil without
// an embeddings model).
type NewChunk struct {
	Text      string
	Embedding []float32
}

// CompleteVectorStoreFile stores a file's chunks and marks it completed,
// in one transaction. It returns false (storing nothing) when the file is
// no longer in progress: cancelled, removed or re-added meanwhile.
func (s *Store) CompleteVectorStoreFile(ctx context.Context, storeID, fileID string, chunks []NewChunk) (bool, error) {
	var usage int64
	for _, c := range chunks {
		usage += int64(len(c.Text) + 4*len(c.Embedding))
	}
	done := false
	project, err := ProjectFrom(ctx)
	if err != nil {
		return false, fmt.Errorf("complete vector store file %s: %w", fileID, err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE vector_store_files SET status = 'completed', usage_bytes = $1, last_error = NULL
			WHERE vector_store_id = $2 AND id = $3 AND status = 'in_progress' AND project_id = $4`, usage, storeID, fileID, project)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM vector_store_chunks WHERE vector_store_id = $1 AND file_id = $2`,
			storeID, fileID); err != nil {
			return err
		}
		// One statement for all the chunks: FTS5 flushes its pending
		// index data at every statement's savepoint, so row-by-row inserts
		// would cost a segment write (and merges) per chunk.
		type row struct {
			T string `json:"t"`
			E string `json:"e,omitempty"` // hex of the little-endian float32s
		}
		rows := make([]row, len(chunks))
		for i, c := range chunks {
			rows[i].T = c.Text
			if s.pg {
				// PostgreSQL's text holds no NUL, which extracted text
				// has no use for anyway.
				rows[i].T = strings.ReplaceAll(c.Text, "\x00", "")
			}
			if c.Embedding != nil {
				rows[i].E = hex.EncodeToString(EncodeVector(c.Embedding))
			}
		}
		raw, err := json.Marshal(rows)
		if err != nil {
			return err
		}
		insert := `INSERT INTO vector_store_chunks (vector_store_id, file_id, idx, text, embedding)
			SELECT $1, $2, key, json_extract(value, '$.t'), unhex(json_extract(value, '$.e')) FROM json_each($3)`
		if s.pg {
			insert = `INSERT INTO vector_store_chunks (vector_store_id, file_id, idx, text, embedding)
			SELECT $1, $2, n - 1, c ->> 't', decode(c ->> 'e', 'hex') FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS e(c, n)`
		}
		if _, err := tx.ExecContext(ctx, insert, storeID, fileID, string(raw)); err != nil {
			return err
		}
		done = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("complete vector store file %s: %w", fileID, err)
	}
	if done {
		s.chunkGen.Add(1)
	}
	return done, nil
}

// FailVectorStoreFile marks a file in progress as failed with code
// (server_error, unsupported_file, invalid_file) and message.
func (s *Store) FailVectorStoreFile(ctx context.Context, storeID, fileID, code, message string) error {
	raw, err := jsonColumn(FileError{Code: code, Message: message})
	if err != nil {
		return err
	}
	project, err := ProjectFrom(ctx)
	if err != nil {
		return fmt.Errorf("fail vector store file %s: %w", fileID, err)
	}
	_, err = s.w.ExecContext(ctx, `UPDATE vector_store_files SET status = 'failed', last_error = $1
		WHERE vector_store_id = $2 AND id = $3 AND status = 'in_progress' AND project_id = $4`, raw, storeID, fileID, project)
	if err != nil {
		return fmt.Errorf("fail vector store file %s: %w", fileID, err)
	}
	return nil
}

// FileChunks returns the text of a store file's chunks, in order.
func (s *Store) FileChunks(ctx context.Context, storeID, fileID string) ([]string, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("file chunks: %w", err)
	}
	return s.queryStrings(ctx, "file chunks", `SELECT text FROM vector_store_chunks WHERE vector_store_id = $1 AND file_id = $2
		AND `+storeInProject("$3")+` ORDER BY idx`, storeID, fileID, project)
}

// storeInProject is the condition that a chunk's store belongs to the
// project in placeholder n (chunks carry no project_id).
func storeInProject(n string) string {
	return `vector_store_id IN (SELECT id FROM vector_stores WHERE project_id = ` + n + `)`
}

// projectStores keeps those of ids that are stores of ctx's project, so a
// search never reads another project's chunks whatever ids it is given.
func (s *Store) projectStores(ctx context.Context, ids []string) ([]string, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, err
	}
	return s.queryStrings(ctx, "project stores", `SELECT id FROM vector_stores WHERE project_id = $1
		AND id IN (`+placeholders(2, len(ids))+`)`, append([]any{project}, anySlice(ids)...)...)
}

// CountChunks counts the chunks of a file across every store (0 once the
// file is deleted), or of every file when fileID is "", in every project:
// a corpus figure for ranking and tests, which names no object.
func (s *Store) CountChunks(ctx context.Context, fileID string) (int64, error) {
	var n int64
	var err error
	if fileID == "" {
		err = s.r.QueryRowContext(ctx, `SELECT count(*) FROM vector_store_chunks`).Scan(&n)
	} else {
		err = s.r.QueryRowContext(ctx, `SELECT count(*) FROM vector_store_chunks WHERE file_id = $1`, fileID).Scan(&n)
	}
	return n, err
}

// SearchableFile is a completed file of a searchable (unexpired) store,
// with what search results show of it.
type SearchableFile struct {
	VectorStoreID string
	FileID        string
	Filename      string
	Attributes    Attributes
}

// SearchableFiles returns the completed files of the given stores that are
// not expired.
func (s *Store) SearchableFiles(ctx context.Context, storeIDs []string) ([]SearchableFile, error) {
	if len(storeIDs) == 0 {
		return nil, nil
	}
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("searchable files: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT vf.vector_store_id, vf.id, f.filename, vf.attributes
		FROM vector_store_files vf JOIN files f ON f.id = vf.id JOIN vector_stores v ON v.id = vf.vector_store_id
		WHERE vf.status = 'completed' AND v.expired = 0 AND v.project_id = $1
		AND vf.vector_store_id IN (`+placeholders(2, len(storeIDs))+`)`,
		append([]any{project}, anySlice(storeIDs)...)...)
	if err != nil {
		return nil, fmt.Errorf("searchable files: %w", err)
	}
	defer rows.Close()
	var out []SearchableFile
	for rows.Next() {
		var sf SearchableFile
		var attrs sql.NullString
		if err := rows.Scan(&sf.VectorStoreID, &sf.FileID, &sf.Filename, &attrs); err != nil {
			return nil, err
		}
		if attrs.Valid {
			if err := decodeColumn("attributes", attrs.String, &sf.Attributes); err != nil {
				return nil, err
			}
		}
		out = append(out, sf)
	}
	return out, rows.Err()
}

// ChunkHit is one chunk a search found. Rank is BM25's score (lower is
// better, as FTS5 reports it) for text search.
type ChunkHit struct {
	ID            int64
	VectorStoreID string
	FileID        string
	Text          string
	Rank          float64
}

// SearchChunks runs an FTS5 query over the chunks of the given stores
// (and, when fileIDs is not nil, of those files only) and returns the
// limit best by BM25.
//
// It first ranks the match across every store without reading the chunk
// rows (BM25 needs only the index), then reads the best few and keeps
// those of the wanted stores and files; only when too few of them belong
// there does it rank again joined with the chunks, filtering as it goes.
func (s *Store) SearchChunks(ctx context.Context, storeIDs, fileIDs []string, match string, limit int) ([]ChunkHit, error) {
	if len(storeIDs) == 0 || match == "" || (fileIDs != nil && len(fileIDs) == 0) {
		return nil, nil
	}
	storeIDs, err := s.projectStores(ctx, storeIDs)
	if err != nil || len(storeIDs) == 0 {
		return nil, err
	}
	if s.pg {
		return s.searchChunksPG(ctx, storeIDs, fileIDs, match, limit)
	}
	wanted := func(h ChunkHit) bool {
		return slices.Contains(storeIDs, h.VectorStoreID) && (fileIDs == nil || slices.Contains(fileIDs, h.FileID))
	}
	probe := 4 * limit
	rows, err := s.r.QueryContext(ctx, `SELECT rowid, bm25(vector_store_chunks_fts) FROM vector_store_chunks_fts
		WHERE vector_store_chunks_fts MATCH $1 ORDER BY bm25(vector_store_chunks_fts) LIMIT $2`, match, probe)
	if err != nil {
		return nil, fmt.Errorf("search chunks: %w", err)
	}
	var ids []int64
	ranks := map[int64]float64{}
	for rows.Next() {
		var id int64
		var rank float64
		if err := rows.Scan(&id, &rank); err != nil {
			rows.Close()
			return nil, err
		}
		ids, ranks[id] = append(ids, id), rank
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	byID, err := s.ChunksByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	var out []ChunkHit
	for _, id := range ids {
		if h, ok := byID[id]; ok && wanted(h) && len(out) < limit {
			h.Rank = ranks[id]
			out = append(out, h)
		}
	}
	if len(out) == limit || len(ids) < probe {
		return out, nil // enough, or every match was seen
	}
	return s.searchChunksJoined(ctx, storeIDs, fileIDs, match, limit)
}

// searchChunksJoined ranks only the chunks of the given stores and files.
func (s *Store) searchChunksJoined(ctx context.Context, storeIDs, fileIDs []string, match string, limit int) ([]ChunkHit, error) {
	args := append([]any{match}, anySlice(storeIDs)...)
	files := ""
	if fileIDs != nil {
		files = ` AND c.file_id IN (` + placeholders(2+len(storeIDs), len(fileIDs)) + `)`
		args = append(args, anySlice(fileIDs)...)
	}
	args = append(args, limit)
	// CROSS JOIN keeps the full-text match as the outer loop: otherwise
	// SQLite may walk the store's chunks and run the MATCH once per chunk.
	rows, err := s.r.QueryContext(ctx, `SELECT c.id, c.vector_store_id, c.file_id, c.text, bm25(vector_store_chunks_fts)
		FROM vector_store_chunks_fts CROSS JOIN vector_store_chunks c ON c.id = vector_store_chunks_fts.rowid
		WHERE vector_store_chunks_fts MATCH $1 AND c.vector_store_id IN (`+placeholders(2, len(storeIDs))+`)`+files+`
		ORDER BY bm25(vector_store_chunks_fts) LIMIT `+arg(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("search chunks: %w", err)
	}
	return scanChunkHits(rows)
}

// CountMatches counts the chunks (of every store of every project)
// matching an FTS5 query, stopping at limit: a cheap probe of how common a
// term is, which names no object.
func (s *Store) CountMatches(ctx context.Context, match string, limit int) (int, error) {
	var n int
	query, args := `SELECT count(*) FROM (SELECT 1 FROM vector_store_chunks_fts
		WHERE vector_store_chunks_fts MATCH $1 LIMIT $2)`, []any{match, limit}
	if s.pg {
		tsq, targs, err := pgTSQuery(match, 2)
		if err != nil {
			return 0, err
		}
		query, args = `SELECT count(*) FROM (SELECT 1 FROM vector_store_chunks WHERE search @@ `+tsq+` LIMIT $1) x`,
			append([]any{limit}, targs...)
	}
	err := s.r.QueryRowContext(ctx, query, args...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count matches: %w", err)
	}
	return n, nil
}

// ChunksByID returns chunks by their ids (text and where they belong), for
// search, whose ids come from a search already limited to ctx's project's
// stores; it keeps only chunks of that project's stores all the same.
func (s *Store) ChunksByID(ctx context.Context, ids []int64) (map[int64]ChunkHit, error) {
	out := make(map[int64]ChunkHit, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("chunks by id: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, vector_store_id, file_id, text FROM vector_store_chunks
		WHERE `+storeInProject(arg(len(ids)+1))+` AND id IN (`+placeholders(1, len(ids))+`)`, append(args, project)...)
	if err != nil {
		return nil, fmt.Errorf("chunks by id: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h ChunkHit
		if err := rows.Scan(&h.ID, &h.VectorStoreID, &h.FileID, &h.Text); err != nil {
			return nil, err
		}
		out[h.ID] = h
	}
	return out, rows.Err()
}

// ChunkVectors calls fn with every embedded chunk of a store: its id, file
// and vector (decoded into a fresh slice).
func (s *Store) ChunkVectors(ctx context.Context, storeID string, fn func(id int64, fileID string, vec []float32)) error {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return fmt.Errorf("chunk vectors: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, file_id, embedding FROM vector_store_chunks
		WHERE vector_store_id = $1 AND embedding IS NOT NULL AND `+storeInProject("$2"), storeID, project)
	if err != nil {
		return fmt.Errorf("chunk vectors: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var fileID string
		var raw []byte
		if err := rows.Scan(&id, &fileID, &raw); err != nil {
			return err
		}
		fn(id, fileID, DecodeVector(raw))
	}
	return rows.Err()
}

// ChunkGeneration changes whenever any store's chunks may have changed, so
// in-memory indexes know when to reload.
func (s *Store) ChunkGeneration() int64 { return s.chunkGen.Load() }

// attrsColumn stores attributes, NULL when there are none.
func attrsColumn(a Attributes) (*string, error) {
	if a == nil {
		return nil, nil
	}
	s, err := jsonColumn(a)
	return &s, err
}

// placeholders returns n comma-separated placeholders numbered from from:
// "$3, $4, $5".
func placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(arg(from + i))
	}
	return b.String()
}

// arg is the placeholder of the nth query argument, "$n" (both drivers
// bind numbered placeholders, reused and in any order).
func arg(n int) string { return "$" + strconv.Itoa(n) }

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// scanChunkHits reads the rows of a chunk search (id, store, file, text,
// rank) and closes them.
func scanChunkHits(rows *sql.Rows) ([]ChunkHit, error) {
	defer rows.Close()
	var out []ChunkHit
	for rows.Next() {
		var h ChunkHit
		if err := rows.Scan(&h.ID, &h.VectorStoreID, &h.FileID, &h.Text, &h.Rank); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}
