package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
)

// uploadText uploads a text file for the assistants purpose.
func uploadText(t testing.TB, s *server, name, text string) string {
	t.Helper()
	f, err := s.Client.Files.New(context.Background(), openai.FileNewParams{
		File: openai.File(strings.NewReader(text), name, "text/plain"), Purpose: openai.FilePurposeAssistants})
	if err != nil {
		t.Fatalf("upload %s: %v", name, err)
	}
	return f.ID
}

// waitStore polls a vector store until no file is in progress.
func waitStore(t testing.TB, s *server, id string) *openai.VectorStore {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		vs, err := s.Client.VectorStores.Get(context.Background(), id)
		if err != nil {
			t.Fatalf("get vector store: %v", err)
		}
		if vs.Status != openai.VectorStoreStatusInProgress {
			return vs
		}
		if time.Now().After(deadline) {
			t.Fatalf("vector store %s still in progress: %+v", id, vs.FileCounts)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, bounded by the deadline
	}
}

func TestVectorStores(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()
	alpha := uploadText(t, s, "alpha.txt", "The capybara is the largest living rodent. It lives in South America.")
	beta := uploadText(t, s, "beta.md", "# Ferns\n\nFerns reproduce with spores rather than seeds.")
	gamma := uploadText(t, s, "gamma.txt", "Octopuses have three hearts and blue blood.")

	vs, err := s.Client.VectorStores.New(ctx, openai.VectorStoreNewParams{
		Name:         openai.String("nature"),
		FileIDs:      []string{alpha, beta},
		ExpiresAfter: openai.VectorStoreNewParamsExpiresAfter{Days: 7},
		Metadata:     shared.Metadata{"team": "bio"},
		ChunkingStrategy: openai.FileChunkingStrategyParamUnion{OfStatic: &openai.StaticFileChunkingStrategyObjectParam{
			Static: openai.StaticFileChunkingStrategyParam{MaxChunkSizeTokens: 200, ChunkOverlapTokens: 50}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(vs.ID, "vs_") || vs.Name != "nature" || vs.Metadata["team"] != "bio" || vs.FileCounts.Total != 2 {
		t.Fatalf("created: %s", vs.RawJSON())
	}
	if vs.ExpiresAt != vs.LastActiveAt+7*86400 {
		t.Errorf("expires_at %d, last_active_at %d", vs.ExpiresAt, vs.LastActiveAt)
	}
	vs = waitStore(t, s, vs.ID)
	if vs.Status != "completed" || vs.FileCounts.Completed != 2 || vs.FileCounts.InProgress != 0 || vs.UsageBytes == 0 {
		t.Fatalf("after ingestion: %s", vs.RawJSON())
	}

	t.Run("files", func(t *testing.T) {
		f, err := s.Client.VectorStores.Files.Get(ctx, vs.ID, alpha)
		if err != nil {
			t.Fatal(err)
		}
		if f.Status != "completed" || f.ChunkingStrategy.Type != "static" || f.ChunkingStrategy.Static.MaxChunkSizeTokens != 200 ||
			f.VectorStoreID != vs.ID || f.UsageBytes == 0 {
			t.Errorf("file: %s", f.RawJSON())
		}
		added, err := s.Client.VectorStores.Files.New(ctx, vs.ID, openai.VectorStoreFileNewParams{FileID: gamma,
			Attributes: map[string]openai.VectorStoreFileNewParamsAttributeUnion{
				"kind": {OfString: openai.String("animal")}, "legs": {OfFloat: openai.Float(8)}}})
		if err != nil {
			t.Fatal(err)
		}
		if added.ID != gamma || added.ChunkingStrategy.Type != "static" || added.ChunkingStrategy.Static.MaxChunkSizeTokens != 800 {
			t.Errorf("added: %s", added.RawJSON())
		}
		waitStore(t, s, vs.ID)
		page, err := s.Client.VectorStores.Files.List(ctx, vs.ID, openai.VectorStoreFileListParams{
			Filter: openai.VectorStoreFileListParamsFilterCompleted, Order: openai.VectorStoreFileListParamsOrderAsc})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, f := range page.Data {
			ids = append(ids, f.ID)
		}
		if strings.Join(ids, ",") != strings.Join([]string{alpha, beta, gamma}, ",") {
			t.Errorf("completed files = %v", ids)
		}
		if page, _ := s.Client.VectorStores.Files.List(ctx, vs.ID, openai.VectorStoreFileListParams{
			Filter: openai.VectorStoreFileListParamsFilterFailed}); len(page.Data) != 0 {
			t.Errorf("failed files = %d", len(page.Data))
		}
		upd, err := s.Client.VectorStores.Files.Update(ctx, vs.ID, beta, openai.VectorStoreFileUpdateParams{
			Attributes: map[string]openai.VectorStoreFileUpdateParamsAttributeUnion{"kind": {OfString: openai.String("plant")}}})
		if err != nil {
			t.Fatal(err)
		}
		if upd.Attributes["kind"].OfString != "plant" {
			t.Errorf("updated attributes: %s", upd.RawJSON())
		}
		content, err := s.Client.VectorStores.Files.Content(ctx, vs.ID, beta)
		if err != nil {
			t.Fatal(err)
		}
		if len(content.Data) != 1 || !strings.Contains(content.Data[0].Text, "spores") {
			t.Errorf("content: %s", content.RawJSON())
		}
	})

	t.Run("search", func(t *testing.T) {
		page, err := s.Client.VectorStores.Search(ctx, vs.ID, openai.VectorStoreSearchParams{
			Query: openai.VectorStoreSearchParamsQueryUnion{OfString: openai.String("How many hearts does an octopus have?")}})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Data) == 0 || page.Data[0].FileID != gamma || page.Data[0].Filename != "gamma.txt" ||
			page.Data[0].Score <= 0 || page.Data[0].Score > 1 || !strings.Contains(page.Data[0].Content[0].Text, "three hearts") {
			t.Fatalf("search: %s", page.RawJSON())
		}
		// A filter on attributes: only files whose kind is "plant".
		raw := s.doJSON(t, "POST", "/v1/vector_stores/"+vs.ID+"/search",
			`{"query":["rodent","spores","hearts"],"filters":{"type":"eq","key":"kind","value":"plant"},"max_num_results":5}`)
		var res struct {
			SearchQuery []string `json:"search_query"`
			Data        []struct {
				FileID     string         `json:"file_id"`
				Attributes map[string]any `json:"attributes"`
			} `json:"data"`
		}
		json.Unmarshal(raw.Body, &res)
		if raw.Status != 200 || len(res.Data) != 1 || res.Data[0].FileID != beta || len(res.SearchQuery) != 3 {
			t.Errorf("filtered search: %d %s", raw.Status, raw.Body)
		}
		// Compound: animals with more than 4 legs, or plants.
		raw = s.doJSON(t, "POST", "/v1/vector_stores/"+vs.ID+"/search", `{"query":"hearts spores rodent",
			"filters":{"type":"or","filters":[{"type":"and","filters":[{"type":"eq","key":"kind","value":"animal"},
			{"type":"gt","key":"legs","value":4}]},{"type":"in","key":"kind","value":["plant"]}]}}`)
		json.Unmarshal(raw.Body, &res)
		got := map[string]bool{}
		for _, d := range res.Data {
			got[d.FileID] = true
		}
		if raw.Status != 200 || len(got) != 2 || !got[beta] || !got[gamma] {
			t.Errorf("compound search: %s", raw.Body)
		}
		// Half the query's words match: the best result scores below a
		// high threshold and above a low one.
		for _, tc := range []struct {
			threshold float64
			want      int
		}{{0.9, 0}, {0.3, 1}} {
			page, err = s.Client.VectorStores.Search(ctx, vs.ID, openai.VectorStoreSearchParams{
				Query:          openai.VectorStoreSearchParamsQueryUnion{OfString: openai.String("capybara spaceship")},
				RankingOptions: openai.VectorStoreSearchParamsRankingOptions{ScoreThreshold: openai.Float(tc.threshold)}})
			if err != nil || len(page.Data) != tc.want {
				t.Errorf("threshold %v: %v %s", tc.threshold, err, page.RawJSON())
			}
		}
		for _, bad := range []string{`{}`, `{"query":""}`, `{"query":"x","max_num_results":51}`,
			`{"query":"x","filters":{"type":"eq","value":"x"}}`, `{"query":"x","ranking_options":{"score_threshold":2}}`} {
			if r := s.doJSON(t, "POST", "/v1/vector_stores/"+vs.ID+"/search", bad); r.Status != 400 {
				t.Errorf("%s → %d %s", bad, r.Status, r.Body)
			}
		}
	})

	t.Run("modify and list", func(t *testing.T) {
		upd, err := s.Client.VectorStores.Update(ctx, vs.ID, openai.VectorStoreUpdateParams{Name: openai.String("renamed"),
			Metadata: shared.Metadata{"team": "zoo"}})
		if err != nil {
			t.Fatal(err)
		}
		if upd.Name != "renamed" || upd.Metadata["team"] != "zoo" || upd.FileCounts.Total != 3 {
			t.Errorf("updated: %s", upd.RawJSON())
		}
		other, err := s.Client.VectorStores.New(ctx, openai.VectorStoreNewParams{})
		if err != nil {
			t.Fatal(err)
		}
		list, err := s.Client.VectorStores.List(ctx, openai.VectorStoreListParams{Limit: openai.Int(1)})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Data) != 1 || list.Data[0].ID != other.ID || !list.HasMore {
			t.Errorf("list: %s", list.RawJSON())
		}
		del, err := s.Client.VectorStores.Delete(ctx, other.ID)
		if err != nil || !del.Deleted || del.ID != other.ID {
			t.Errorf("delete: %v %v", del, err)
		}
		if _, err := s.Client.VectorStores.Get(ctx, other.ID); apiError(t, err).StatusCode != 404 {
			t.Errorf("deleted store still found")
		}
	})

	t.Run("delete file everywhere", func(t *testing.T) {
		second, err := s.Client.VectorStores.New(ctx, openai.VectorStoreNewParams{FileIDs: []string{alpha}})
		if err != nil {
			t.Fatal(err)
		}
		waitStore(t, s, second.ID)
		if _, err := s.Client.Files.Delete(ctx, alpha); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{vs.ID, second.ID} {
			if _, err := s.Client.VectorStores.Files.Get(ctx, id, alpha); apiError(t, err).StatusCode != 404 {
				t.Errorf("store %s still has the deleted file", id)
			}
			page, err := s.Client.VectorStores.Search(ctx, id, openai.VectorStoreSearchParams{
				Query: openai.VectorStoreSearchParamsQueryUnion{OfString: openai.String("capybara rodent")}})
			if err != nil || len(page.Data) != 0 {
				t.Errorf("store %s still finds the deleted file: %v %s", id, err, page.RawJSON())
			}
		}
		got, _ := s.Client.VectorStores.Get(ctx, second.ID)
		if got.FileCounts.Total != 0 || got.UsageBytes != 0 {
			t.Errorf("counts after delete: %s", got.RawJSON())
		}
		// Removing a file from one store keeps the file itself.
		del, err := s.Client.VectorStores.Files.Delete(ctx, vs.ID, gamma)
		if err != nil || !del.Deleted {
			t.Fatalf("remove from store: %v", err)
		}
		if _, err := s.Client.Files.Get(ctx, gamma); err != nil {
			t.Errorf("file gone after removing it from a store: %v", err)
		}
	})
}

func TestFileBatches(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()
	vs, err := s.Client.VectorStores.New(ctx, openai.VectorStoreNewParams{Name: openai.String("batches")})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 5 {
		ids = append(ids, uploadText(t, s, fmt.Sprintf("doc%d.txt", i), fmt.Sprintf("Document %d mentions the number %d.", i, i*11)))
	}
	batch, err := s.Client.VectorStores.FileBatches.NewAndPoll(ctx, vs.ID, openai.VectorStoreFileBatchNewParams{FileIDs: ids[:3],
		Attributes: map[string]openai.VectorStoreFileBatchNewParamsAttributeUnion{"set": {OfString: openai.String("a")}}}, 50)
	if err != nil {
		t.Fatal(err)
	}
	if batch.Status != "completed" || batch.FileCounts.Completed != 3 || batch.FileCounts.Total != 3 || !strings.HasPrefix(batch.ID, "vsfb_") {
		t.Fatalf("batch: %s", batch.RawJSON())
	}
	files, err := s.Client.VectorStores.FileBatches.ListFiles(ctx, vs.ID, batch.ID, openai.VectorStoreFileBatchListFilesParams{})
	if err != nil || len(files.Data) != 3 || files.Data[0].Attributes["set"].OfString != "a" {
		t.Fatalf("batch files: %v %s", err, files.RawJSON())
	}
	// Per-file entries with their own attributes and chunking.
	raw := s.doJSON(t, "POST", "/v1/vector_stores/"+vs.ID+"/file_batches", fmt.Sprintf(`{"files":[
		{"file_id":%q,"attributes":{"n":3}},
		{"file_id":%q,"chunking_strategy":{"type":"static","static":{"max_chunk_size_tokens":100,"chunk_overlap_tokens":0}}}]}`, ids[3], ids[4]))
	var b2 openai.VectorStoreFileBatch
	if err := json.Unmarshal(raw.Body, &b2); raw.Status != 200 || err != nil {
		t.Fatalf("files batch: %d %s", raw.Status, raw.Body)
	}
	b2p, err := s.Client.VectorStores.FileBatches.PollStatus(ctx, vs.ID, b2.ID, 50)
	if err != nil || b2p.FileCounts.Completed != 2 {
		t.Fatalf("poll: %v %v", err, b2p)
	}
	f4, _ := s.Client.VectorStores.Files.Get(ctx, vs.ID, ids[4])
	if f4.ChunkingStrategy.Static.MaxChunkSizeTokens != 100 {
		t.Errorf("per-file chunking: %s", f4.RawJSON())
	}
	// Cancelling a finished batch leaves it completed.
	if c, err := s.Client.VectorStores.FileBatches.Cancel(ctx, vs.ID, batch.ID); err != nil || c.Status != "completed" {
		t.Errorf("cancel finished batch: %v %v", err, c)
	}
	for _, bad := range []string{`{}`, `{"file_ids":[]}`, fmt.Sprintf(`{"file_ids":[%q],"files":[{"file_id":%q}]}`, ids[0], ids[0]),
		`{"file_ids":["file-nope"]}`, fmt.Sprintf(`{"file_ids":[%q],"chunking_strategy":{"type":"static","static":{"max_chunk_size_tokens":100,"chunk_overlap_tokens":60}}}`, ids[0])} {
		if r := s.doJSON(t, "POST", "/v1/vector_stores/"+vs.ID+"/file_batches", bad); r.Status != 400 {
			t.Errorf("%s → %d %s", bad, r.Status, r.Body)
		}
	}
	if r := s.doJSON(t, "GET", "/v1/vector_stores/"+vs.ID+"/file_batches/vsfb_nope", ""); r.Status != 404 {
		t.Errorf("missing batch → %d", r.Status)
	}
}

// TestVectorStoreHelpers: the vector_stores helper on assistant and thread
// creation, and message attachments for file_search going into the
// thread's vector store.
func TestVectorStoreHelpers(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()
	doc := uploadText(t, s, "helper.txt", "The helper file mentions the okapi.")
	raw := s.doJSON(t, "POST", "/v1/assistants", fmt.Sprintf(`{"model":"gpt-4o","tools":[{"type":"file_search"}],
		"tool_resources":{"file_search":{"vector_stores":[{"file_ids":[%q],"metadata":{"k":"v"}}]}}}`, doc))
	var a openai.Assistant
	if err := json.Unmarshal(raw.Body, &a); raw.Status != 200 || err != nil {
		t.Fatalf("assistant with helper: %d %s", raw.Status, raw.Body)
	}
	ids := a.ToolResources.FileSearch.VectorStoreIDs
	if len(ids) != 1 {
		t.Fatalf("assistant tool_resources: %s", raw.Body)
	}
	vs := waitStore(t, s, ids[0])
	if vs.FileCounts.Completed != 1 || vs.Metadata["k"] != "v" {
		t.Errorf("helper store: %s", vs.RawJSON())
	}
	if r := s.doJSON(t, "POST", "/v1/assistants", fmt.Sprintf(`{"model":"m","tool_resources":{"file_search":{"vector_store_ids":[%q],
		"vector_stores":[{"file_ids":[]}]}}}`, ids[0])); r.Status != 400 {
		t.Errorf("ids and helper together → %d", r.Status)
	}

	raw = s.doJSON(t, "POST", "/v1/threads", fmt.Sprintf(`{"messages":[{"role":"user","content":"see file",
		"attachments":[{"file_id":%q,"tools":[{"type":"file_search"}]}]}]}`, doc))
	var th openai.Thread
	if err := json.Unmarshal(raw.Body, &th); raw.Status != 200 || err != nil {
		t.Fatalf("thread: %d %s", raw.Status, raw.Body)
	}
	if len(th.ToolResources.FileSearch.VectorStoreIDs) != 1 {
		t.Fatalf("thread got no vector store: %s", raw.Body)
	}
	tvs := th.ToolResources.FileSearch.VectorStoreIDs[0]
	if got := waitStore(t, s, tvs); got.FileCounts.Completed != 1 {
		t.Errorf("thread store: %s", got.RawJSON())
	}
	// A later attachment goes into the same store.
	other := uploadText(t, s, "other.txt", "The other file mentions the tapir.")
	if _, err := s.Client.Beta.Threads.Messages.New(ctx, th.ID, openai.BetaThreadMessageNewParams{
		Role:    openai.BetaThreadMessageNewParamsRoleUser,
		Content: openai.BetaThreadMessageNewParamsContentUnion{OfString: openai.String("and this")},
		Attachments: []openai.BetaThreadMessageNewParamsAttachment{{FileID: openai.String(other),
			Tools: []openai.BetaThreadMessageNewParamsAttachmentToolUnion{{OfFileSearch: &openai.BetaThreadMessageNewParamsAttachmentToolFileSearch{}}}}},
	}); err != nil {
		t.Fatal(err)
	}
	if got := waitStore(t, s, tvs); got.FileCounts.Completed != 2 {
		t.Errorf("thread store after second attachment: %s", got.RawJSON())
	}
	// A thread without a store gets one from its first message's attachment.
	bare, _ := s.Client.Beta.Threads.New(ctx, openai.BetaThreadNewParams{})
	if _, err := s.Client.Beta.Threads.Messages.New(ctx, bare.ID, openai.BetaThreadMessageNewParams{
		Role:    openai.BetaThreadMessageNewParamsRoleUser,
		Content: openai.BetaThreadMessageNewParamsContentUnion{OfString: openai.String("file")},
		Attachments: []openai.BetaThreadMessageNewParamsAttachment{{FileID: openai.String(other),
			Tools: []openai.BetaThreadMessageNewParamsAttachmentToolUnion{{OfFileSearch: &openai.BetaThreadMessageNewParamsAttachmentToolFileSearch{}}}}},
	}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Client.Beta.Threads.Get(ctx, bare.ID)
	if len(got.ToolResources.FileSearch.VectorStoreIDs) != 1 {
		t.Errorf("bare thread after attachment: %s", got.RawJSON())
	}
}

// TestUploads: a file sent in parts through the Uploads API, as the SDKs'
// chunked upload helpers do, arrives whole in /v1/files.
func TestUploads(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()
	content := bytes.Repeat([]byte("0123456789abcdef"), 40_000) // 640 KB
	up, err := s.Client.Uploads.New(ctx, openai.UploadNewParams{Filename: "big.txt", Purpose: openai.FilePurposeAssistants,
		Bytes: int64(len(content)), MimeType: "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	if up.Status != "pending" || !strings.HasPrefix(up.ID, "upload_") {
		t.Fatalf("upload: %s", up.RawJSON())
	}
	var parts []string
	for off := 0; off < len(content); off += 256_000 {
		end := min(off+256_000, len(content))
		p, err := s.Client.Uploads.Parts.New(ctx, up.ID, openai.UploadPartNewParams{Data: bytes.NewReader(content[off:end])})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, p.ID)
	}
	if _, err := s.Client.Uploads.Complete(ctx, up.ID, openai.UploadCompleteParams{PartIDs: parts[:1]}); apiError(t, err).StatusCode != 400 {
		t.Errorf("completing with missing parts succeeded")
	}
	done, err := s.Client.Uploads.Complete(ctx, up.ID, openai.UploadCompleteParams{PartIDs: parts})
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != "completed" || done.File.ID == "" || done.File.Bytes != int64(len(content)) {
		t.Fatalf("completed: %s", done.RawJSON())
	}
	res, err := s.Client.Files.Content(ctx, done.File.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var got bytes.Buffer
	got.ReadFrom(res.Body)
	if !bytes.Equal(got.Bytes(), content) {
		t.Errorf("content differs: %d bytes", got.Len())
	}
	if _, err := s.Client.Uploads.Parts.New(ctx, up.ID, openai.UploadPartNewParams{Data: strings.NewReader("x")}); apiError(t, err).StatusCode != 400 {
		t.Errorf("part added to a completed upload")
	}
	other, _ := s.Client.Uploads.New(ctx, openai.UploadNewParams{Filename: "x.txt", Purpose: openai.FilePurposeAssistants, Bytes: 1, MimeType: "text/plain"})
	c, err := s.Client.Uploads.Cancel(ctx, other.ID)
	if err != nil || c.Status != "cancelled" {
		t.Errorf("cancel: %v %v", err, c)
	}
	if r := s.doJSON(t, "POST", "/v1/uploads", `{"filename":"x","purpose":"nope","bytes":1,"mime_type":"text/plain"}`); r.Status != 400 {
		t.Errorf("bad purpose → %d", r.Status)
	}
	if r := s.do(t, "POST", "/v1/uploads/upload_missing/cancel", nil, http.Header{}); r.Status != 404 {
		t.Errorf("missing upload → %d", r.Status)
	}
}

// TestIngestionSurvivesRestart: a server killed (SIGKILL) while files are
// still being ingested finishes every one of them after it starts again,
// and each is searchable.
func TestIngestionSurvivesRestart(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()
	const n = 24
	var ids []string
	for i := range n {
		// About 400 KB each, so ingesting them all takes a while.
		var b strings.Builder
		for j := 0; b.Len() < 400_000; j++ {
			fmt.Fprintf(&b, "Paragraph %d of file %d talks about subject s%dx%d and nothing else. ", j, i, i, j%50)
		}
		fmt.Fprintf(&b, "The unique marker of this file is zq%dmarker.", i)
		ids = append(ids, uploadText(t, s, fmt.Sprintf("big%d.txt", i), b.String()))
	}
	vs, err := s.Client.VectorStores.New(ctx, openai.VectorStoreNewParams{FileIDs: ids})
	if err != nil {
		t.Fatal(err)
	}
	// Kill the server as soon as some files are done and others are not.
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := s.Client.VectorStores.Get(ctx, vs.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.FileCounts.InProgress == 0 {
			t.Fatalf("ingestion finished before the kill: %+v (make the files larger)", got.FileCounts)
		}
		if got.FileCounts.Completed > 0 || time.Now().After(deadline) {
			t.Logf("killing with %d of %d files in progress", got.FileCounts.InProgress, n)
			break
		}
		time.Sleep(20 * time.Millisecond) // polling interval, bounded by the deadline
	}
	s.kill(t)
	s.start(t)
	got := waitStore(t, s, vs.ID)
	if got.FileCounts.Completed != n || got.FileCounts.Failed != 0 || got.Status != "completed" {
		t.Fatalf("after restart: %s", got.RawJSON())
	}
	for i, id := range ids {
		page, err := s.Client.VectorStores.Search(ctx, vs.ID, openai.VectorStoreSearchParams{
			Query: openai.VectorStoreSearchParamsQueryUnion{OfString: openai.String(fmt.Sprintf("zq%dmarker", i))}, MaxNumResults: openai.Int(1)})
		if err != nil || len(page.Data) != 1 || page.Data[0].FileID != id {
			t.Errorf("file %d not searchable after restart: %v %s", i, err, page.RawJSON())
		}
	}
}
