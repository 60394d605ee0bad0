package apitest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"
)

// readToolStream reads a run's stream through openai-go's decoder and
// keeps what built-in tool tests check: the final run, the completed
// steps and messages, and the file_search deltas.
func readToolStream(t testing.TB, stream *ssestream.Stream[openai.AssistantStreamEventUnion]) sdkStream {
	t.Helper()
	defer stream.Close()
	var out sdkStream
	for stream.Next() {
		ev := stream.Current()
		out.names = append(out.names, ev.Event)
		switch v := ev.AsAny().(type) {
		case openai.AssistantStreamEventThreadRunCompleted:
			out.run = v.Data
		case openai.AssistantStreamEventThreadRunFailed:
			out.run = v.Data
		case openai.AssistantStreamEventThreadRunStepCompleted:
			out.steps = append(out.steps, v.Data)
		case openai.AssistantStreamEventThreadRunStepDelta:
			for _, tc := range v.Data.Delta.StepDetails.ToolCalls {
				if tc.Type == "file_search" && strings.Contains(tc.RawJSON(), "blue blood") {
					t.Errorf("streamed delta shows content: %s", tc.RawJSON())
				}
			}
		case openai.AssistantStreamEventThreadMessageCompleted:
			out.messages = append(out.messages, v.Data)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	return out
}

// TestFileSearchRun: the file_search tool inside a streamed run. The
// scripted model calls file_search, reads the passages (with their source
// markers) and answers with them; the step records the call with its
// ranking options and results (content only when include[] asks), and the
// markers in the answer become file_citation annotations whose indices
// point at the markers.
func TestFileSearchRun(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t)
	ctx := streamContext(t)
	doc := uploadText(t, s, "octopus.txt", "Octopuses have three hearts and blue blood.")
	raw := s.doJSON(t, "POST", "/v1/assistants", `{"model":"fake-model","tools":[{"type":"file_search",
		"file_search":{"max_num_results":5,"ranking_options":{"ranker":"auto","score_threshold":0.1}}}],
		"tool_resources":{"file_search":{"vector_stores":[{"file_ids":["`+doc+`"]}]}}}`)
	var asst openai.Assistant
	if err := json.Unmarshal(raw.Body, &asst); err != nil || raw.Status != 200 {
		t.Fatalf("assistant: %d %s", raw.Status, raw.Body)
	}
	// The run does not wait for the client to poll the store: it waits for
	// the file's ingestion itself.
	thread := threadWith(t, s, `How many hearts? [[call file_search {"query":"octopus hearts"}]]`)
	runs := s.Client.Beta.Threads.Runs
	got := readToolStream(t, runs.NewStreaming(ctx, thread, openai.BetaThreadRunNewParams{AssistantID: asst.ID}))
	if got.run.Status != openai.RunStatusCompleted {
		t.Fatalf("run %s: %s", got.run.Status, got.run.LastError.Message)
	}
	// The model was offered file_search as a function, and read a passage
	// headed by its marker.
	reqs := up.Requests()
	if len(reqs) < 2 {
		t.Fatalf("%d upstream requests", len(reqs))
	}
	offered := false
	for _, tool := range reqs[0].Tools {
		if fn, _ := tool["function"].(map[string]any); fn["name"] == "file_search" {
			offered = true
		}
	}
	if !offered {
		t.Errorf("file_search not offered: %v", reqs[0].Tools)
	}
	last := reqs[len(reqs)-1].Messages
	toolMsg := last[len(last)-1]
	if toolMsg.Role != "tool" || !strings.Contains(toolMsg.Text(), "【0†octopus.txt】") || !strings.Contains(toolMsg.Text(), "three hearts") {
		t.Errorf("tool message to the model: %s %q", toolMsg.Role, toolMsg.Text())
	}

	steps := runSteps(t, s, thread, got.run.ID)
	var call *openai.FileSearchToolCall
	for _, st := range steps {
		for _, tc := range st.StepDetails.ToolCalls {
			if tc.Type == "file_search" {
				fs := tc.AsFileSearch()
				call = &fs
			}
		}
	}
	if call == nil {
		t.Fatalf("no file_search call in the steps")
	}
	fs := call.FileSearch
	if fs.RankingOptions.Ranker != "default_2024_08_21" || fs.RankingOptions.ScoreThreshold != 0.1 ||
		len(fs.Results) != 1 || fs.Results[0].FileID != doc || fs.Results[0].FileName != "octopus.txt" ||
		fs.Results[0].Score <= 0 || fs.Results[0].Score > 1 || len(fs.Results[0].Content) != 0 {
		t.Errorf("file_search call without include[]: %s", call.RawJSON())
	}
	// include[] brings the content.
	withContent := s.doJSON(t, "GET", "/v1/threads/"+thread+"/runs/"+got.run.ID+
		"/steps?include[]=step_details.tool_calls[*].file_search.results[*].content", "")
	if !strings.Contains(string(withContent.Body), "three hearts") {
		t.Errorf("steps with include[]: %s", withContent.Body)
	}
	// The streamed steps carried no content either.
	for _, st := range got.steps {
		if strings.Contains(st.RawJSON(), "blue blood") {
			t.Errorf("streamed step shows content: %s", st.RawJSON())
		}
	}

	// The answer ("Tool results: <output>") quotes the marker: it is
	// annotated with the file.
	if len(got.messages) != 1 {
		t.Fatalf("messages: %d", len(got.messages))
	}
	text := got.messages[0].Content[0].Text
	if len(text.Annotations) == 0 {
		t.Fatalf("no annotations on %q", text.Value)
	}
	runes := []rune(text.Value)
	for _, a := range text.Annotations {
		if a.Type != "file_citation" || a.FileCitation.FileID != doc || a.Text != "【0†octopus.txt】" ||
			string(runes[a.StartIndex:a.EndIndex]) != a.Text {
			t.Errorf("annotation %s on %q", a.RawJSON(), text.Value)
		}
	}
	stored := lastAssistantText(t, s, thread)
	if stored != text.Value {
		t.Errorf("stored %q, streamed %q", stored, text.Value)
	}
}

// TestHybridSearchFlag: with --embeddings-model, ingestion embeds chunks
// through the provider's /v1/embeddings and search finds a file by a
// synonym that BM25 alone cannot match.
func TestHybridSearchFlag(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t, "--embeddings-model", "fake-embed")
	ctx := streamContext(t)
	car := uploadText(t, s, "car.txt", "My car needs new tyres before winter.")
	uploadText(t, s, "bread.txt", "Bake the bread for forty minutes.")
	vs, err := s.Client.VectorStores.New(ctx, openai.VectorStoreNewParams{FileIDs: []string{car}})
	if err != nil {
		t.Fatal(err)
	}
	waitStore(t, s, vs.ID)
	if up.Embedded() == 0 {
		t.Fatal("no chunk was embedded")
	}
	page, err := s.Client.VectorStores.Search(ctx, vs.ID, openai.VectorStoreSearchParams{
		Query: openai.VectorStoreSearchParamsQueryUnion{OfString: openai.String("automobile")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) == 0 || page.Data[0].FileID != car || page.Data[0].Score <= 0 || page.Data[0].Score > 1 {
		t.Fatalf("hybrid search for a synonym: %s", page.RawJSON())
	}
}
