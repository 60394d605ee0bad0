package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ErrTooLarge is returned by SaveFile when the content exceeds the limit.
var ErrTooLarge = errors.New("file too large")

// File is an uploaded file as the API shows it. Its bytes live in the
// store's BlobStore: under the data directory in files/<id>, or in the
// database's file_blobs.
type File struct {
	ID            string  `json:"id"`
	Object        string  `json:"object"`
	Bytes         int64   `json:"bytes"`
	CreatedAt     int64   `json:"created_at"`
	ExpiresAt     *int64  `json:"expires_at,omitempty"`
	Filename      string  `json:"filename"`
	Purpose       string  `json:"purpose"`
	Status        string  `json:"status"`
	StatusDetails *string `json:"status_details,omitempty"`

	ContentType string `json:"-"`
	SHA256      string `json:"-"`
}

const fileColumns = `id, created_at, bytes, filename, purpose, status, status_details, expires_at, content_type, sha256`

func scanFile(row rowScanner) (File, error) {
	var f File
	var details sql.NullString
	var expires sql.NullInt64
	err := row.Scan(&f.ID, &f.CreatedAt, &f.Bytes, &f.Filename, &f.Purpose, &f.Status, &details, &expires, &f.ContentType, &f.SHA256)
	f.Object, f.StatusDetails, f.ExpiresAt = "file", nullString(details), nullInt(expires)
	return f, err
}

// StagedFile is uploaded content written to the data directory but not yet
// recorded: it becomes visible only through CommitFile, and Discard removes
// it. This lets a handler validate every form field of an upload, in
// whatever order they arrive, before anything is stored.
type StagedFile struct {
	path   string
	Bytes  int64
	SHA256 string
}

// Discard removes staged content that was not committed. It is safe to call
// after CommitFile.
func (sf *StagedFile) Discard() {
	if sf != nil && sf.path != "" {
		os.Remove(sf.path)
	}
}

// stagedPrefix starts the name of content being staged by StageFile.
const stagedPrefix = ".upload-"

// removeStaged deletes staged content in dir that a process stopped
// mid-upload (a crash, SIGKILL) left behind: it was never committed and
// nothing else would remove it. One server owns a data directory, so at
// start-up no upload is in flight.
func removeStaged(dir string) error {
	matches, err := filepath.Glob(filepath.Join(dir, stagedPrefix+"*"))
	if err != nil {
		return err
	}
	for _, m := range matches {
		if err := os.Remove(m); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove staged upload: %w", err)
		}
	}
	return nil
}

// StageFile streams content into the data directory, reading at most limit
// bytes: longer content is removed and ErrTooLarge returned.
func (s *Store) StageFile(content io.Reader, limit int64) (*StagedFile, error) {
	tmp, err := os.CreateTemp(s.filesTo, stagedPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("stage file: %w", err)
	}
	sf := &StagedFile{path: tmp.Name()}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(content, limit+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > limit {
		err = ErrTooLarge
	}
	if err != nil {
		sf.Discard()
		return nil, fmt.Errorf("stage file: %w", err)
	}
	sf.Bytes, sf.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	return sf, nil
}

// CommitFile records f with the staged content. expiresAfter, if positive,
// sets expires_at that many seconds after creation.
func (s *Store) CommitFile(ctx context.Context, f File, sf *StagedFile, expiresAfter int64) (File, error) {
	f.ID, f.Object, f.CreatedAt, f.Status = NewID("file-"), "file", s.now().Unix(), "processed"
	f.Bytes, f.SHA256 = sf.Bytes, sf.SHA256
	project, err := ProjectFrom(ctx)
	if err != nil {
		sf.Discard()
		return f, fmt.Errorf("commit file: %w", err)
	}
	if expiresAfter > 0 {
		at := f.CreatedAt + expiresAfter
		f.ExpiresAt = &at
	}
	content, err := os.Open(sf.path)
	if err != nil {
		return f, fmt.Errorf("commit file: %w", err)
	}
	staged := &stagedReader{File: content, path: sf.path}
	defer func() {
		staged.Close()
		sf.path = staged.path // "" once the blob store took the file itself
		sf.Discard()
	}()
	insert := func(q interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	}) error {
		_, err := q.ExecContext(ctx, `INSERT INTO files (id, created_at, bytes, filename, purpose, status, expires_at,
			content_type, sha256, project_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			f.ID, f.CreatedAt, f.Bytes, f.Filename, f.Purpose, f.Status, f.ExpiresAt, f.ContentType, f.SHA256, project)
		return err
	}
	if s.blobName == BlobsDir {
		// The content first: a record never names missing content.
		if err := s.blobs.Put(ctx, nil, f.ID, staged); err != nil {
			return f, fmt.Errorf("commit file: %w", err)
		}
		if err := insert(s.w); err != nil {
			_ = s.blobs.Delete(ctx, f.ID)
			return f, fmt.Errorf("commit file: %w", err)
		}
		return f, nil
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := staged.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if err := insert(tx); err != nil {
			return err
		}
		return s.blobs.Put(ctx, tx, f.ID, staged)
	})
	if err != nil {
		return f, fmt.Errorf("commit file: %w", err)
	}
	return f, nil
}

// stagedReader is staged content being committed; the directory blob store
// moves the file at path instead of copying it, and clears path.
type stagedReader struct {
	*os.File
	path string
}

// GetFile returns the file record with id, or ErrNotFound.
func (s *Store) GetFile(ctx context.Context, id string) (File, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return File{}, fmt.Errorf("get file %s: %w", id, err)
	}
	f, err := scanFile(s.r.QueryRowContext(ctx, `SELECT `+fileColumns+` FROM files WHERE id = $1 AND project_id = $2`, id, project))
	if errors.Is(err, sql.ErrNoRows) {
		return f, ErrNotFound
	}
	if err != nil {
		return f, fmt.Errorf("get file %s: %w", id, err)
	}
	return f, nil
}

// MissingFiles returns those of ids that name no stored file of ctx's
// project, in order.
func (s *Store) MissingFiles(ctx context.Context, ids []string) ([]string, error) {
	var missing []string
	for _, id := range ids {
		if _, err := s.GetFile(ctx, id); errors.Is(err, ErrNotFound) {
			missing = append(missing, id)
		} else if err != nil {
			return nil, err
		}
	}
	return missing, nil
}

// OpenFile returns the record and an open reader of the file's content.
// The caller closes the reader.
func (s *Store) OpenFile(ctx context.Context, id string) (File, io.ReadSeekCloser, error) {
	f, err := s.GetFile(ctx, id)
	if err != nil {
		return f, nil, err
	}
	r, err := s.blobs.Open(ctx, id, f.Bytes)
	if err != nil {
		return f, nil, fmt.Errorf("open file %s: %w", id, err)
	}
	return f, r, nil
}

// DeleteFile removes the record, then its content.
func (s *Store) DeleteFile(ctx context.Context, id string) error {
	// Its vector store entries and chunks go with it (ON DELETE CASCADE).
	defer s.chunkGen.Add(1)
	if err := s.deleteByID(ctx, "files", id); err != nil {
		return err
	}
	if err := s.blobs.Delete(ctx, id); err != nil {
		return fmt.Errorf("delete file %s content: %w", id, err)
	}
	return nil
}

// ListFiles returns one page of files, optionally of one purpose.
func (s *Store) ListFiles(ctx context.Context, purpose string, p ListParams) (Page[File], error) {
	where, args := "", []any(nil)
	if purpose != "" {
		where, args = "purpose = $1", []any{purpose}
	}
	return listQuery(ctx, s.r, "files", fileColumns, where, args, p, scanFile)
}

// DeleteExpiredFiles deletes every file whose expires_at has passed, with
// its content and its vector store entries, and returns how many it
// deleted. Uploads' expires_after makes such files; OpenAI deleted them.
// It sweeps every project, deleting each file in its own.
func (s *Store) DeleteExpiredFiles(ctx context.Context) (int, error) {
	found, err := s.queryPairs(ctx, "find expired files",
		`SELECT id, project_id FROM files WHERE expires_at IS NOT NULL AND expires_at <= $1`, s.now().Unix())
	if err != nil {
		return 0, err
	}
	n := 0
	for _, f := range found {
		switch err := s.DeleteFile(WithProject(ctx, f[1]), f[0]); {
		case errors.Is(err, ErrNotFound): // deleted meanwhile
		case err != nil:
			return n, err
		default:
			n++
		}
	}
	return n, nil
}

// SweepExpired enforces expiries (an agent.Sweep's Run): vector stores
// past theirs are marked expired (no longer searched), files past theirs
// (an upload's expires_after) are deleted with their content, and pending
// uploads past theirs expire, their parts deleted. It returns how many
// objects it expired, and goes on past a failure to report them all.
func (s *Store) SweepExpired(ctx context.Context) (int, error) {
	ctx = Background(ctx)
	stores, err1 := s.ExpireVectorStores(ctx)
	files, err2 := s.DeleteExpiredFiles(ctx)
	uploads, err3 := s.ExpireUploads(ctx)
	return int(stores) + files + uploads, errors.Join(err1, err2, err3)
}
