package db

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// A file made with expires_after is deleted, content and all, once its
// time has come; files without an expiry and files not yet due stay.
func TestDeleteExpiredFiles(t *testing.T) { eachStore(t, testDeleteExpiredFiles) }

func testDeleteExpiredFiles(t *testing.T) {
	ctx := WithProject(context.Background(), DefaultProjectID)
	s, c := openClocked(t)
	commit := func(name string, after int64) File {
		t.Helper()
		sf, err := s.StageFile(strings.NewReader(name), 1<<10)
		if err != nil {
			t.Fatal(err)
		}
		f, err := s.CommitFile(ctx, File{Filename: name, Purpose: "assistants"}, sf, after)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	soon, later, never := commit("soon", 3600), commit("later", 7200), commit("never", 0)
	v, err := s.CreateVectorStore(ctx, VectorStore{}, []NewVectorStoreFile{{FileID: soon.ID, Chunking: AutoChunking()}})
	if err != nil {
		t.Fatal(err)
	}

	if n, err := s.DeleteExpiredFiles(ctx); err != nil || n != 0 {
		t.Fatalf("before any expiry: deleted %d, %v", n, err)
	}
	c.advance(3600 * time.Second)
	if n, err := s.DeleteExpiredFiles(ctx); err != nil || n != 1 {
		t.Fatalf("at the first expiry: deleted %d, %v; want 1", n, err)
	}
	if _, err := s.GetFile(ctx, soon.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("the expired file is still there: %v", err)
	}
	if contentStored(t, s, soon.ID) {
		t.Errorf("the expired file's content is still stored")
	}
	if page, err := s.ListVectorStoreFiles(ctx, v.ID, "", "", ListParams{Limit: 10, Order: "desc"}); err != nil || len(page.Data) != 0 {
		t.Errorf("the vector store still lists the expired file: %+v, %v", page.Data, err)
	}
	for _, f := range []File{later, never} {
		if _, err := s.GetFile(ctx, f.ID); err != nil {
			t.Errorf("%s was deleted early: %v", f.Filename, err)
		}
	}
	c.advance(1000 * time.Hour)
	if n, err := s.DeleteExpiredFiles(ctx); err != nil || n != 1 {
		t.Fatalf("later: deleted %d, %v; want 1", n, err)
	}
	if _, err := s.GetFile(ctx, never.ID); err != nil {
		t.Errorf("a file without expiry was deleted: %v", err)
	}
}

// A pending upload past its expiry becomes expired and its parts leave the
// disk; a completed upload and one still in time are left alone.
func TestExpireUploads(t *testing.T) { eachStore(t, testExpireUploads) }

func testExpireUploads(t *testing.T) {
	ctx := WithProject(context.Background(), DefaultProjectID)
	s, c := openClocked(t)
	newUpload := func(content string) (Upload, UploadPart) {
		t.Helper()
		u, err := s.CreateUpload(ctx, Upload{Filename: "a.txt", Bytes: int64(len(content)), Purpose: "assistants", MimeType: "text/plain"})
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.AddUploadPart(ctx, u.ID, strings.NewReader(content), 1<<10)
		if err != nil {
			t.Fatal(err)
		}
		return u, p
	}
	stale, _ := newUpload("stale")
	done, donePart := newUpload("done")
	if _, err := s.CompleteUpload(ctx, done.ID, []string{donePart.ID}, ""); err != nil {
		t.Fatal(err)
	}
	c.advance(uploadTTL * time.Second / 2)
	fresh, _ := newUpload("fresh")
	if _, err := os.Stat(s.uploadDir(stale.ID)); err != nil {
		t.Fatalf("the stale upload's parts are not on disk to begin with: %v", err)
	}

	c.advance(uploadTTL*time.Second/2 + time.Second)
	if n, err := s.ExpireUploads(ctx); err != nil || n != 1 {
		t.Fatalf("expired %d, %v; want 1", n, err)
	}
	if u, err := s.GetUpload(ctx, stale.ID); err != nil || u.Status != UploadExpired {
		t.Errorf("stale upload: %+v, %v", u, err)
	}
	if _, err := os.Stat(s.uploadDir(stale.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the expired upload's parts are still on disk: %v", err)
	}
	if u, _ := s.GetUpload(ctx, done.ID); u.Status != "completed" {
		t.Errorf("the completed upload became %s", u.Status)
	}
	if u, _ := s.GetUpload(ctx, fresh.ID); u.Status != UploadPending {
		t.Errorf("the fresh upload became %s", u.Status)
	}
	if _, err := os.Stat(s.uploadDir(fresh.ID)); err != nil {
		t.Errorf("the fresh upload lost its parts: %v", err)
	}
	if n, err := s.ExpireUploads(ctx); err != nil || n != 0 {
		t.Errorf("a second sweep expired %d, %v", n, err)
	}
}
