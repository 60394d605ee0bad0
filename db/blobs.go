package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// BlobStore keeps file contents, by file id.
type BlobStore interface {
	// Put stores the content of file id, inside tx (the transaction that
	// records the file) when the store keeps contents in the database.
	Put(ctx context.Context, tx *sql.Tx, id string, content io.Reader) error
	// Open returns a reader of file id's content, size bytes long.
	Open(ctx context.Context, id string, size int64) (io.ReadSeekCloser, error)
	// Delete removes file id's content; a missing content is no error.
	Delete(ctx context.Context, id string) error
}

// Blob store names, as --blob-store takes them.
const (
	BlobsDir      = "dir"      // files/<id> under the data directory
	BlobsPostgres = "postgres" // 1 MiB bytea chunks in the file_blobs table
)

// WithBlobStore selects where file contents live: BlobsDir (the default on
// SQLite) or BlobsPostgres (the default on PostgreSQL, so one database holds
// everything and replicas share it).
func WithBlobStore(name string) Option { return func(s *Store) { s.blobName = name } }

// BlobStoreName reports where file contents live.
func (s *Store) BlobStoreName() string { return s.blobName }

// openBlobs sets up the configured blob store.
func (s *Store) openBlobs() error {
	switch s.blobName {
	case "":
		s.blobName = BlobsDir
		if s.pg {
			s.blobName = BlobsPostgres
		}
		return s.openBlobs()
	case BlobsDir:
		s.blobs = dirBlobs{s.filesTo}
	case BlobsPostgres:
		if !s.pg {
			return errors.New("the postgres blob store needs a PostgreSQL database (--database-url)")
		}
		s.blobs = dbBlobs{s.r}
	default:
		return fmt.Errorf("unknown blob store %q: want %s or %s", s.blobName, BlobsDir, BlobsPostgres)
	}
	return nil
}

// dirBlobs keeps contents as files named by id in a directory.
type dirBlobs struct{ dir string }

func (d dirBlobs) path(id string) string { return filepath.Join(d.dir, filepath.Base(id)) }

func (d dirBlobs) Put(_ context.Context, _ *sql.Tx, id string, content io.Reader) error {
	if sf, ok := content.(*stagedReader); ok {
		// Staged in the same directory: a rename, no copy.
		if err := os.Rename(sf.path, d.path(id)); err != nil {
			return err
		}
		sf.path = ""
		return nil
	}
	f, err := os.CreateTemp(d.dir, stagedPrefix+"*")
	if err != nil {
		return err
	}
	_, err = io.Copy(f, content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), d.path(id))
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

func (d dirBlobs) Open(_ context.Context, id string, _ int64) (io.ReadSeekCloser, error) {
	return os.Open(d.path(id))
}

func (d dirBlobs) Delete(_ context.Context, id string) error {
	if err := os.Remove(d.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// blobChunk is the size of one file_blobs row.
const blobChunk = 1 << 20

// dbBlobs keeps contents in the database, in blobChunk-sized rows of
// file_blobs (removed with their file by ON DELETE CASCADE).
type dbBlobs struct{ db *sql.DB }

func (b dbBlobs) Put(ctx context.Context, tx *sql.Tx, id string, content io.Reader) error {
	buf := make([]byte, blobChunk)
	for n := 0; ; n++ {
		k, err := io.ReadFull(content, buf)
		if k > 0 || n == 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO file_blobs (file_id, n, data) VALUES ($1, $2, $3)`,
				id, n, buf[:k]); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (b dbBlobs) Open(ctx context.Context, id string, size int64) (io.ReadSeekCloser, error) {
	return &blobReader{ctx: ctx, db: b.db, id: id, size: size, chunk: -1}, nil
}

func (b dbBlobs) Delete(ctx context.Context, id string) error {
	_, err := b.db.ExecContext(ctx, `DELETE FROM file_blobs WHERE file_id = $1`, id)
	return err
}

// blobReader reads a file's chunks one at a time, as reads reach them.
type blobReader struct {
	ctx   context.Context
	db    *sql.DB
	id    string
	size  int64
	off   int64
	chunk int64  // the chunk in buf, -1 for none
	buf   []byte // its bytes
}

func (r *blobReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	n := r.off / blobChunk
	if n != r.chunk {
		r.buf = r.buf[:0]
		err := r.db.QueryRowContext(r.ctx, `SELECT data FROM file_blobs WHERE file_id = $1 AND n = $2`, r.id, n).Scan(&r.buf)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("file %s: content chunk %d is missing", r.id, n)
		}
		if err != nil {
			return 0, fmt.Errorf("file %s: %w", r.id, err)
		}
		r.chunk = n
	}
	k := copy(p, r.buf[min(int64(len(r.buf)), r.off-n*blobChunk):])
	if k == 0 {
		return 0, fmt.Errorf("file %s: content chunk %d is short", r.id, n)
	}
	r.off += int64(k)
	return k, nil
}

func (r *blobReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, errors.New("seek: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	r.off = offset
	return offset, nil
}

func (r *blobReader) Close() error { return nil }
