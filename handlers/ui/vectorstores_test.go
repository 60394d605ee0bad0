package ui_test

import (
	"context"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/assistantd/assistantd/agent/retrieval"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/ui"
)

// newVectorApp is newApp with vector stores: ingestion runs for real.
func newVectorApp(t *testing.T) *app {
	t.Helper()
	return newAppWith(t, func(cfg *ui.Config, store *db.Store) {
		rag := &retrieval.Service{Searcher: retrieval.NewSearcher(store, nil), Ingester: retrieval.NewIngester(store, nil, 1, cfg.Log)}
		ctx, cancel := context.WithCancel(testCtx())
		done := make(chan struct{})
		go func() { rag.Ingester.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		cfg.VectorStores, cfg.Retriever = store, rag
	}, nil)
}

// TestVectorStorePages: an editor creates a store, adds files (each with
// its status), searches it and deletes it; a viewer sees it and changes
// nothing; a bad name is shown in place with the input kept.
func TestVectorStorePages(t *testing.T) {
	a := newVectorApp(t)
	c := a.user(db.RoleEditor)
	long := strings.Repeat("n", 300)
	res := c.post("/vector_stores", url.Values{"csrf_token": {c.token()}, "name": {long}})
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("long name: status %d", res.StatusCode)
	}
	doc := parse(t, res)
	if v, _ := testid(doc, "vs-name").Attr("value"); v != long || testid(doc, "vs-error").Length() != 1 {
		t.Errorf("rejected form does not keep the input and say why")
	}
	res = c.post("/vector_stores", url.Values{"csrf_token": {c.token()}, "name": {"Manuals <b>"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: status %d", res.StatusCode)
	}
	storePath := res.Header.Get("Location")
	if !strings.HasPrefix(storePath, "/vector_stores/vs_") {
		t.Fatalf("redirect to %q", storePath)
	}

	var body strings.Builder
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("csrf_token", c.token())
	for name, content := range map[string]string{"pump.txt": "The pump needs a new gasket every spring.", "photo.png": "\x89PNG\r\n\x1a\n"} {
		w, _ := mw.CreateFormFile("files", name)
		_, _ = w.Write([]byte(content))
	}
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, c.base+storePath+"/files", strings.NewReader(body.String()))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	res = c.do(req)
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, storePath+"?added=file-") {
		t.Fatalf("add files: status %d, Location %q (want a redirect: post/redirect/get)", res.StatusCode, loc)
	}
	if doc := c.page(loc, http.StatusOK); testid(doc, "upload-ok").Length() != 2 {
		t.Errorf("the page after the upload lists %d files as added, want 2", testid(doc, "upload-ok").Length())
	}
	// Each file's ingestion ends: one completed, one failed with its reason.
	deadline := time.Now().Add(20 * time.Second)
	for {
		doc = c.page(storePath, http.StatusOK)
		statuses := texts(testid(doc, "vs-file-row").Find(`[data-testid="status"]`))
		if strings.Join(statuses, ",") == "failed,completed" || strings.Join(statuses, ",") == "completed,failed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("file statuses %v", statuses)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, bounded by the deadline
	}
	if errText := testid(doc, "vs-file-error").Text(); !strings.Contains(errText, "unsupported_file") {
		t.Errorf("failed file's error: %q", errText)
	}
	if h1 := doc.Find("h1").Text(); !strings.Contains(h1, "Manuals <b>") {
		t.Errorf("heading %q (the name must be shown as text)", h1)
	}
	doc = c.page(storePath+"?q=gasket", http.StatusOK)
	if hits := testid(doc, "vs-hit"); hits.Length() != 1 || !strings.Contains(hits.Text(), "pump.txt") ||
		!strings.Contains(testid(doc, "vs-hit-score").Text(), "score") {
		t.Errorf("search hits: %q", hits.Text())
	}

	viewer := a.user(db.RoleViewer)
	doc = viewer.page("/vector_stores", http.StatusOK)
	if testid(doc, "vs-row").Length() != 1 || testid(doc, "vs-create-form").Length() != 0 {
		t.Errorf("viewer's list: %d rows, create form %d", testid(doc, "vs-row").Length(), testid(doc, "vs-create-form").Length())
	}
	if res := viewer.post(storePath+"/delete", url.Values{"csrf_token": {viewer.token()}}); res.StatusCode != http.StatusForbidden {
		t.Errorf("viewer delete: status %d", res.StatusCode)
	}
	// "Use with an assistant": editors only, and it sets the assistant's store.
	asst, err := a.store.CreateAssistant(testCtx(), db.Assistant{Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if res := viewer.post(storePath+"/use", url.Values{"csrf_token": {viewer.token()}, "assistant_id": {asst.ID}}); res.StatusCode != http.StatusForbidden {
		t.Errorf("viewer use: status %d", res.StatusCode)
	}
	if res := c.post(storePath+"/use", url.Values{"csrf_token": {c.token()}, "assistant_id": {asst.ID}}); res.StatusCode != http.StatusSeeOther {
		t.Errorf("use: status %d", res.StatusCode)
	}
	if got, _ := a.store.GetAssistant(testCtx(), asst.ID); got.ToolResources == nil || got.ToolResources.FileSearch == nil ||
		len(got.ToolResources.FileSearch.VectorStoreIDs) != 1 || len(got.Tools) != 1 || got.Tools[0].Type != "file_search" {
		t.Errorf("after use: tools %+v resources %+v", got.Tools, got.ToolResources)
	}
	if res := c.post(storePath+"/delete", url.Values{}); res.StatusCode != http.StatusForbidden {
		t.Errorf("delete without CSRF: status %d", res.StatusCode)
	}
	if res := c.post(storePath+"/delete", url.Values{"csrf_token": {c.token()}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete: status %d", res.StatusCode)
	}
	if doc := c.page("/vector_stores", http.StatusOK); testid(doc, "vs-empty").Length() != 1 {
		t.Errorf("store still listed after delete")
	}
}
