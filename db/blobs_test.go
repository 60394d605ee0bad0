package db

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

// contentStored reports whether the store's blob store still holds file
// id's content.
func contentStored(t *testing.T, s *Store, id string) bool {
	t.Helper()
	switch b := s.blobs.(type) {
	case dirBlobs:
		_, err := os.Stat(b.path(id))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		return err == nil
	case dbBlobs:
		var n int
		if err := s.r.QueryRow(`SELECT count(*) FROM file_blobs WHERE file_id = $1`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	t.Fatalf("unknown blob store %T", s.blobs)
	return false
}

// TestBlobStores: content of several chunks, of exactly one chunk, and
// empty is read back whole and from any offset, and deleting the file
// deletes its content, in every blob store of both databases.
func TestBlobStores(t *testing.T) {
	eachStore(t, func(t *testing.T) {
		names := []string{BlobsDir}
		if strings.HasSuffix(t.Name(), "/postgres") {
			names = append(names, BlobsPostgres)
		}
		for _, name := range names {
			t.Run(name, func(t *testing.T) { testBlobStore(t, openTest(t, WithBlobStore(name))) })
		}
	})
}

func testBlobStore(t *testing.T, s *Store) {
	ctx := WithProject(context.Background(), DefaultProjectID)
	for _, size := range []int{2*blobChunk + 12345, blobChunk, 0, 10} {
		want := make([]byte, size)
		_, _ = rand.Read(want)
		sf, err := s.StageFile(bytes.NewReader(want), 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		f, err := s.CommitFile(ctx, File{Filename: "x.bin", Purpose: "assistants"}, sf, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, r, err := s.OpenFile(ctx, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: read %d bytes (%v), equal %v", size, len(got), err, bytes.Equal(got, want))
		}
		for _, off := range []int64{0, 1, blobChunk - 1, blobChunk, blobChunk + 7, int64(size) - 3} {
			if off < 0 || off > int64(size) {
				continue
			}
			if _, err := r.Seek(off, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, min(5000, size-int(off)))
			if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, want[off:off+int64(len(got))]) {
				t.Fatalf("%d bytes: at %d: %v, equal %v", size, off, err, bytes.Equal(got, want[off:off+int64(len(got))]))
			}
		}
		if end, err := r.Seek(0, io.SeekEnd); err != nil || end != int64(size) {
			t.Fatalf("seek to the end: %d, %v", end, err)
		}
		r.Close()
		if !contentStored(t, s, f.ID) && size > 0 {
			t.Fatalf("%d bytes: no content stored", size)
		}
		if err := s.DeleteFile(ctx, f.ID); err != nil {
			t.Fatal(err)
		}
		if contentStored(t, s, f.ID) {
			t.Fatalf("%d bytes: content left after delete", size)
		}
	}
}
