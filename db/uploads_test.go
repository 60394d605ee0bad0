package db

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

// TestUploadPartsBounded: an upload's parts hold at most its declared
// bytes (issue 21: an upload declared as 10 bytes took 8 parts of 4 MiB).
func TestUploadPartsBounded(t *testing.T) {
	ctx := WithProject(context.Background(), DefaultProjectID)
	s, _ := openClocked(t)
	u, err := s.CreateUpload(ctx, Upload{Filename: "ten.txt", Purpose: "assistants", Bytes: 10, MimeType: "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	var ue *UploadError
	if _, err := s.AddUploadPart(ctx, u.ID, bytes.NewReader(make([]byte, 4<<20)), 64<<20); !errors.As(err, &ue) {
		t.Fatalf("a 4 MiB part of a 10-byte upload: %v", err)
	}
	a, err := s.AddUploadPart(ctx, u.ID, strings.NewReader("012345"), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddUploadPart(ctx, u.ID, strings.NewReader("67890"), 64<<20); !errors.As(err, &ue) {
		t.Fatalf("a part past the declared bytes: %v", err)
	}
	b, err := s.AddUploadPart(ctx, u.ID, strings.NewReader("6789"), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddUploadPart(ctx, u.ID, strings.NewReader("x"), 64<<20); !errors.As(err, &ue) {
		t.Fatalf("a part of a full upload: %v", err)
	}
	entries, _ := os.ReadDir(s.uploadDir(u.ID))
	if len(entries) != 2 {
		t.Fatalf("%d part files on disk, want 2", len(entries))
	}
	// part_ids naming a part twice are refused; an upper-case md5 is the
	// same checksum.
	if _, err := s.CompleteUpload(ctx, u.ID, []string{a.ID, a.ID, b.ID}, ""); !errors.As(err, &ue) {
		t.Fatalf("duplicate part ids: %v", err)
	}
	sum := md5.Sum([]byte("0123456789"))
	done, err := s.CompleteUpload(ctx, u.ID, []string{a.ID, b.ID}, strings.ToUpper(hex.EncodeToString(sum[:])))
	if err != nil || done.Status != UploadCompleted {
		t.Fatalf("complete with an upper-case md5: %+v, %v", done, err)
	}
}

// gatedReader gives one byte, says so on started, then blocks until
// release is closed.
type gatedReader struct {
	started, release chan struct{}
	n                int
}

func (g *gatedReader) Read(p []byte) (int, error) {
	switch g.n {
	case 0:
		g.n++
		close(g.started)
		p[0] = 'x'
		return 1, nil
	case 1:
		g.n++
		<-g.release
		p[0] = 'y'
		return 1, nil
	}
	return 0, io.EOF
}

// TestCancelDuringPart: an upload cancelled while a part is being written
// ends consistent: the part fails, and neither its row nor its file stays
// (issue 21: both returned 200 and the part's row stayed).
func TestCancelDuringPart(t *testing.T) {
	ctx := WithProject(context.Background(), DefaultProjectID)
	s, _ := openClocked(t)
	u, err := s.CreateUpload(ctx, Upload{Filename: "x.txt", Purpose: "assistants", Bytes: 2, MimeType: "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedReader{started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := s.AddUploadPart(ctx, u.ID, g, 64<<20)
		done <- err
	}()
	<-g.started
	if c, err := s.CancelUpload(ctx, u.ID); err != nil || c.Status != UploadCancelled {
		t.Fatalf("cancel: %+v, %v", c, err)
	}
	close(g.release)
	var ue *UploadError
	if err := <-done; !errors.As(err, &ue) {
		t.Fatalf("the part racing the cancel: %v; want refused", err)
	}
	var rows int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM upload_parts WHERE upload_id = ?`, u.ID).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("part rows after the cancel: %d, %v", rows, err)
	}
	if _, err := os.Stat(s.uploadDir(u.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the upload's directory after the cancel: %v", err)
	}
}
