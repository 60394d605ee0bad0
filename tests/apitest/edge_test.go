package apitest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
)

// TestRawRequests covers what the SDK sends in ways raw HTTP must also
// accept: no body for POST /threads, no beta header, nulls that clear.
func TestRawRequests(t *testing.T) {
	t.Parallel()
	s := startServer(t)

	t.Run("create thread without a body", func(t *testing.T) {
		for _, body := range []string{"", "   "} {
			res := s.doJSON(t, "POST", "/v1/threads", body)
			if res.Status != http.StatusOK {
				t.Fatalf("body %q: %d %s", body, res.Status, res.Body)
			}
			got := decode(t, string(res.Body))
			if diff := cmp.Diff(withIDs(t, `{"object":"thread","tool_resources":{},"metadata":{}}`, got), got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		}
	})

	t.Run("no beta header", func(t *testing.T) {
		res := s.do(t, "POST", "/v1/assistants", strings.NewReader(`{"model":"m"}`), nil)
		if res.Status != http.StatusOK {
			t.Errorf("without OpenAI-Beta: %d %s", res.Status, res.Body)
		}
	})

	t.Run("nulls clear and empty modify keeps", func(t *testing.T) {
		res := s.doJSON(t, "POST", "/v1/assistants", `{"model":"m","name":"n","description":"d","instructions":"i",
			"temperature":1.5,"top_p":0.5,"metadata":{"a":"b"},"response_format":{"type":"json_object"},
			"tools":[{"type":"code_interpreter"}]}`)
		if res.Status != http.StatusOK {
			t.Fatalf("%d %s", res.Status, res.Body)
		}
		created := decode(t, string(res.Body)).(map[string]any)
		id := created["id"].(string)

		same := s.doJSON(t, "POST", "/v1/assistants/"+id, `{}`)
		if diff := cmp.Diff(any(created), decode(t, string(same.Body))); diff != "" {
			t.Errorf("empty modify (-want +got):\n%s", diff)
		}

		res = s.doJSON(t, "POST", "/v1/assistants/"+id, `{"name":null,"description":null,"instructions":null,
			"temperature":null,"top_p":null,"metadata":null,"response_format":null,"tools":null}`)
		if res.Status != http.StatusOK {
			t.Fatalf("%d %s", res.Status, res.Body)
		}
		want := withIDs(t, `{"object":"assistant","name":null,"description":null,"model":"m","instructions":null,
			"tools":[],"tool_resources":{},"metadata":{},"temperature":null,"top_p":null,"response_format":"auto"}`, created)
		if diff := cmp.Diff(want, decode(t, string(res.Body))); diff != "" {
			t.Errorf("null modify (-want +got):\n%s", diff)
		}
		res = s.doJSON(t, "POST", "/v1/assistants/"+id, `{"model":null}`)
		checkError(t, res, wantErr{http.StatusBadRequest, "invalid_request_error", "model", "invalid_value", ""})
	})

	t.Run("thread tool_resources", func(t *testing.T) {
		f := uploadFile(t, s, "code.py", "print(2)", openai.FilePurposeAssistants)
		th, err := s.Client.Beta.Threads.New(context.Background(), openai.BetaThreadNewParams{
			ToolResources: openai.BetaThreadNewParamsToolResources{
				CodeInterpreter: openai.BetaThreadNewParamsToolResourcesCodeInterpreter{FileIDs: []string{f.ID, f.ID}},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		got := decode(t, th.RawJSON())
		want := withIDs(t, `{"object":"thread","metadata":{},"tool_resources":{"code_interpreter":{"file_ids":["`+f.ID+`"]}}}`, got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("create; duplicate ids are kept once (-want +got):\n%s", diff)
		}
		mod, err := s.Client.Beta.Threads.Update(context.Background(), th.ID, openai.BetaThreadUpdateParams{
			ToolResources: openai.BetaThreadUpdateParamsToolResources{
				FileSearch: openai.BetaThreadUpdateParamsToolResourcesFileSearch{VectorStoreIDs: []string{"vs_abc"}},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		got = decode(t, mod.RawJSON())
		want = withIDs(t, `{"object":"thread","metadata":{},"tool_resources":{"file_search":{"vector_store_ids":["vs_abc"]}}}`, got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("modify replaces tool_resources (-want +got):\n%s", diff)
		}
	})

	t.Run("request ids are unique", func(t *testing.T) {
		seen := map[string]bool{}
		for range 20 {
			res := s.doJSON(t, "GET", "/v1/assistants?limit=1", "")
			id := res.Header.Get("X-Request-Id")
			if !strings.HasPrefix(id, "req_") || seen[id] {
				t.Errorf("x-request-id %q: want a fresh req_… id", id)
			}
			seen[id] = true
		}
	})
}

func TestUploadNames(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()
	tests := []struct {
		name string
		file io.Reader
		want string
	}{
		{"anonymous reader", strings.NewReader("anon"), "anonymous_file"},
		{"path in name", openai.File(strings.NewReader("x"), "../../etc/passwd", "text/plain"), "passwd"},
		{"unicode name", openai.File(strings.NewReader("x"), "résumé ✓.txt", "text/plain"), "résumé ✓.txt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := s.Client.Files.New(ctx, openai.FileNewParams{File: tc.file, Purpose: openai.FilePurposeUserData})
			if err != nil {
				t.Fatal(err)
			}
			if f.Filename != tc.want {
				t.Errorf("filename = %q, want %q", f.Filename, tc.want)
			}
		})
	}
	// Whatever the names, contents live only under <data>/files, named by id.
	err := filepath.WalkDir(s.Data, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(s.Data, path)
		if strings.HasPrefix(rel, "files"+string(filepath.Separator)) && !strings.HasPrefix(d.Name(), "file-") {
			t.Errorf("unexpected file %s", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("expires_after", func(t *testing.T) {
		f, err := s.Client.Files.New(ctx, openai.FileNewParams{File: openai.File(strings.NewReader("x"), "x.txt", "text/plain"),
			Purpose: openai.FilePurposeBatch, ExpiresAfter: openai.FileNewParamsExpiresAfter{Seconds: 3600}})
		if err != nil {
			t.Fatal(err)
		}
		if f.ExpiresAt != f.CreatedAt+3600 {
			t.Errorf("expires_at = %d, want created_at+3600 = %d", f.ExpiresAt, f.CreatedAt+3600)
		}
	})
}

// TestConcurrentWrites runs writers side by side: SQLite has one writer,
// and none of them may fail or be lost.
func TestConcurrentWrites(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()
	thread := newThread(t, s)
	asst, err := s.Client.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 10
	var (
		mu  sync.Mutex
		ids []string
		wg  sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m, err := s.Client.Beta.Threads.Messages.New(ctx, thread, textMessage(fmt.Sprintf("w%d-%d", w, i)))
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
				if _, err := s.Client.Beta.Assistants.Update(ctx, asst.ID, openai.BetaAssistantUpdateParams{
					Metadata: shared.Metadata{"w": fmt.Sprint(w)}}); err != nil {
					t.Errorf("worker %d: modify: %v", w, err)
					return
				}
				mu.Lock()
				ids = append(ids, m.ID)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var listed []string
	iter := s.Client.Beta.Threads.Messages.ListAutoPaging(ctx, thread, openai.BetaThreadMessageListParams{Order: "asc", Limit: openai.Int(100)})
	for iter.Next() {
		listed = append(listed, iter.Current().ID)
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	slices.Sort(listed)
	if diff := cmp.Diff(ids, listed); diff != "" {
		t.Errorf("listed messages (-created +listed):\n%s", diff)
	}
	if len(ids) != workers*each {
		t.Errorf("%d messages created, want %d", len(ids), workers*each)
	}
}
