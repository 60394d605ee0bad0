package apitest

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
)

// storedFiles lists the file contents under <data>/files, including any
// staging leftovers, and on PostgreSQL the files whose contents are in the
// database (the default blob store there).
func storedFiles(t testing.TB, s *server) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.Data, "files"))
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, e := range entries {
		out = append(out, e.Name())
	}
	if s.DatabaseURL != "" {
		pg, err := sql.Open("pgx", s.DatabaseURL)
		if err != nil {
			t.Fatal(err)
		}
		defer pg.Close()
		rows, err := pg.Query(`SELECT DISTINCT file_id FROM file_blobs`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			out = append(out, id)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(out)
	return out
}

func TestFiles(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()

	binary := make([]byte, 70_000)
	_, _ = rand.Read(binary)
	uploads := []struct {
		name, ctype string
		content     []byte
		purpose     openai.FilePurpose
	}{
		{"notes.txt", "text/plain", []byte("hello\nworld\n"), openai.FilePurposeAssistants},
		{"blob.bin", "application/octet-stream", binary, openai.FilePurposeAssistants},
		{"cat.png", "image/png", []byte("\x89PNG\r\n\x1a\n...."), openai.FilePurposeVision},
		{"data.jsonl", "application/jsonl", []byte(`{"a":1}` + "\n"), openai.FilePurposeUserData},
		{"eval.jsonl", "application/jsonl", []byte(`{"item":1}` + "\n"), openai.FilePurposeEvals},
	}
	var files []*openai.FileObject
	for _, u := range uploads {
		f, err := s.Client.Files.New(ctx, openai.FileNewParams{File: openai.File(bytes.NewReader(u.content), u.name, u.ctype), Purpose: u.purpose})
		if err != nil {
			t.Fatalf("upload %s: %v", u.name, err)
		}
		got := decode(t, f.RawJSON())
		want := withIDs(t, `{"object":"file","status":"processed"}`, got).(map[string]any)
		want["bytes"], want["filename"], want["purpose"] = float64(len(u.content)), u.name, string(u.purpose)
		if diff := cmp.Diff(any(want), got); diff != "" {
			t.Errorf("upload %s (-want +got):\n%s", u.name, diff)
		}
		if !strings.HasPrefix(f.ID, "file-") {
			t.Errorf("id = %q, want file-…", f.ID)
		}
		files = append(files, f)
	}
	ids := func(fs []*openai.FileObject) []string {
		out := []string{}
		for _, f := range fs {
			out = append(out, f.ID)
		}
		return out
	}

	t.Run("retrieve", func(t *testing.T) {
		for _, f := range files {
			got, err := s.Client.Files.Get(ctx, f.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(decode(t, f.RawJSON()), decode(t, got.RawJSON())); diff != "" {
				t.Errorf("%s (-want +got):\n%s", f.Filename, diff)
			}
		}
	})

	t.Run("content", func(t *testing.T) {
		for i, f := range files {
			res, err := s.Client.Files.Content(ctx, f.ID)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(body, uploads[i].content) {
				t.Errorf("%s: downloaded %d bytes that differ from the %d uploaded", f.Filename, len(body), len(uploads[i].content))
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, uploads[i].ctype) {
				t.Errorf("%s: Content-Type %q, want %q", f.Filename, ct, uploads[i].ctype)
			}
		}
	})

	t.Run("list", func(t *testing.T) {
		tests := []struct {
			name   string
			params openai.FileListParams
			want   []string
			more   bool
		}{
			{"all newest first", openai.FileListParams{}, ids(reversed(files)), false},
			{"asc", openai.FileListParams{Order: "asc"}, ids(files), false},
			{"purpose assistants", openai.FileListParams{Purpose: openai.String("assistants"), Order: "asc"}, ids(files[:2]), false},
			{"purpose vision", openai.FileListParams{Purpose: openai.String("vision")}, ids(files[2:3]), false},
			{"purpose with none", openai.FileListParams{Purpose: openai.String("batch")}, []string{}, false},
			{"limit", openai.FileListParams{Order: "asc", Limit: openai.Int(2)}, ids(files[:2]), true},
			{"after", openai.FileListParams{Order: "asc", Limit: openai.Int(2), After: openai.String(files[1].ID)}, ids(files[2:4]), true},
			{"after to end", openai.FileListParams{Order: "asc", Limit: openai.Int(3), After: openai.String(files[1].ID)}, ids(files[2:]), false},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				page, err := s.Client.Files.List(ctx, tc.params)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, f := range page.Data {
					got = append(got, f.ID)
				}
				if got == nil {
					got = []string{}
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
				if page.HasMore != tc.more {
					t.Errorf("has_more = %v, want %v", page.HasMore, tc.more)
				}
			})
		}
		var all []string
		iter := s.Client.Files.ListAutoPaging(ctx, openai.FileListParams{Order: "asc", Limit: openai.Int(2)})
		for iter.Next() {
			all = append(all, iter.Current().ID)
		}
		if err := iter.Err(); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(ids(files), all); diff != "" {
			t.Errorf("auto paging (-want +got):\n%s", diff)
		}
	})

	t.Run("delete", func(t *testing.T) {
		f := uploadFile(t, s, "gone.txt", "bye", openai.FilePurposeAssistants)
		if !slices.Contains(storedFiles(t, s), f.ID) {
			t.Fatalf("content of %s not stored: %v", f.ID, storedFiles(t, s))
		}
		del, err := s.Client.Files.Delete(ctx, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(decode(t, `{"id":"`+f.ID+`","object":"file","deleted":true}`), decode(t, del.RawJSON())); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if slices.Contains(storedFiles(t, s), f.ID) {
			t.Errorf("content of %s still stored after delete", f.ID)
		}
		notFound := apiErr{http.StatusNotFound, "invalid_request_error", "id", "", "No such File object: " + f.ID}
		for name, call := range map[string]func() error{
			"retrieve": func() error { _, err := s.Client.Files.Get(ctx, f.ID); return err },
			"content":  func() error { _, err := s.Client.Files.Content(ctx, f.ID); return err },
			"delete":   func() error { _, err := s.Client.Files.Delete(ctx, f.ID); return err },
		} {
			if diff := cmp.Diff(notFound, toAPIErr(apiError(t, call()))); diff != "" {
				t.Errorf("%s after delete (-want +got):\n%s", name, diff)
			}
		}
		page, err := s.Client.Files.List(ctx, openai.FileListParams{})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range page.Data {
			if g.ID == f.ID {
				t.Errorf("deleted file %s still listed", f.ID)
			}
		}
	})

	t.Run("only committed files are stored", func(t *testing.T) {
		page, err := s.Client.Files.List(ctx, openai.FileListParams{})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{}
		for _, f := range page.Data {
			want = append(want, f.ID)
		}
		slices.Sort(want)
		if diff := cmp.Diff(want, storedFiles(t, s)); diff != "" {
			t.Errorf("%s/files (-want +got):\n%s", s.Data, diff)
		}
	})
}
