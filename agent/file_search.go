package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/assistantd/assistantd/agent/retrieval"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/telemetry"
)

// fileSearchStore is what file_search reads: the assistant's and the
// thread's vector stores, and the run's steps (for citations).
type fileSearchStore interface {
	GetAssistant(ctx context.Context, id string) (db.Assistant, error)
	GetThread(ctx context.Context, id string) (db.Thread, error)
	ListSteps(ctx context.Context, threadID, runID string, p db.ListParams) (db.Page[db.RunStep], error)
}

// searcher runs searches; waiter waits for pending files.
type (
	searcher interface {
		Search(ctx context.Context, q retrieval.Query) ([]retrieval.Result, error)
	}
	waiter interface {
		WaitIdle(ctx context.Context, storeIDs []string) error
	}
)

// FileSearch is the file_search built-in tool. The model is offered a
// function file_search({"query"}); a call searches the run's vector stores
// (the assistant's, the thread's and the run's own), first waiting a
// bounded time for files still being ingested. The model reads each
// passage headed by a source marker 【i†filename】, and markers it copies
// into its answer become file_citation annotations.
type FileSearch struct {
	store   fileSearchStore
	search  searcher
	ingest  waiter
	maxWait time.Duration
	metrics *telemetry.Metrics // nil: none
}

func (f *FileSearch) enableMetrics(m *telemetry.Metrics) { f.metrics = m }

// NewFileSearch returns the file_search tool. maxWait bounds how long a
// call waits for its stores' files still in progress (then it searches
// what is ready).
func NewFileSearch(store fileSearchStore, search searcher, ingest waiter, maxWait time.Duration) *FileSearch {
	return &FileSearch{store: store, search: search, ingest: ingest, maxWait: maxWait}
}

// Type implements Builtin.
func (*FileSearch) Type() string { return "file_search" }

// Offer implements Builtin.
func (*FileSearch) Offer(db.Run, db.Tool) db.FunctionDef {
	return db.FunctionDef{
		Name: "file_search",
		Description: "Search the files the user has provided and return the most relevant passages. " +
			"Each passage starts with a source marker such as 【0†report.pdf】; when the answer uses a passage, " +
			"cite it by copying its marker exactly into the answer right after the statement it supports.",
		Parameters: json.RawMessage(`{"type":"object","properties":{"query":{"type":"string",` +
			`"description":"What to search for: a question or keywords."}},"required":["query"]}`),
	}
}

// Stream implements Builtin: a file_search call shows no arguments while
// it is written (it is announced as "file_search": {}).
func (*FileSearch) Stream() ArgStream { return fileSearchArgs{} }

type fileSearchArgs struct{}

func (fileSearchArgs) Start() any       { return map[string]any{} }
func (fileSearchArgs) Write(string) any { return nil }

// Default ranking of a file_search call, as OpenAI reported it.
const (
	defaultRanker     = "default_2024_08_21"
	defaultMaxResults = 20
)

// Run implements Runner.
func (f *FileSearch) Run(ctx context.Context, call ToolCall) (ToolResult, error) {
	maxResults, ranking := defaultMaxResults, db.FileSearchRanking{Ranker: defaultRanker}
	for _, t := range call.Run.Tools {
		if t.Type != "file_search" || t.FileSearch == nil {
			continue
		}
		if n := t.FileSearch.MaxNumResults; n != nil && *n > 0 {
			maxResults = *n
		}
		if ro := t.FileSearch.RankingOptions; ro != nil {
			if ro.Ranker != "" && ro.Ranker != "auto" {
				ranking.Ranker = ro.Ranker
			}
			if ro.ScoreThreshold != nil {
				ranking.ScoreThreshold = *ro.ScoreThreshold
			}
		}
	}
	result := func(output string, results []db.FileSearchResult) ToolResult {
		if results == nil {
			results = []db.FileSearchResult{}
		}
		r := ranking
		return ToolResult{Output: output, Details: db.ToolCall{FileSearch: &db.FileSearchCall{RankingOptions: &r, Results: results}}}
	}
	var args struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal([]byte(call.Arguments), &args); err != nil || strings.TrimSpace(args.Query) == "" {
		return result(`Error: file_search takes {"query": "..."} with a non-empty query.`, nil), nil
	}
	storeIDs, err := f.stores(ctx, call.Run)
	if err != nil {
		return ToolResult{}, err
	}
	if len(storeIDs) == 0 {
		return result("No files are attached to this conversation, so there is nothing to search.", nil), nil
	}
	wctx, cancel := context.WithTimeout(ctx, f.maxWait)
	err = f.ingest.WaitIdle(wctx, storeIDs)
	cancel()
	if err != nil && ctx.Err() != nil {
		return ToolResult{}, ctx.Err()
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return ToolResult{}, fmt.Errorf("wait for file ingestion: %w", err)
	}
	searched := time.Now()
	found, err := f.search.Search(ctx, retrieval.Query{StoreIDs: storeIDs, Queries: []string{args.Query},
		MaxResults: maxResults, ScoreThreshold: ranking.ScoreThreshold})
	f.metrics.Searched(err == nil, time.Since(searched))
	if err != nil {
		return ToolResult{}, fmt.Errorf("file search: %w", err)
	}
	if len(found) == 0 {
		return result("No passages in the files matched the query.", nil), nil
	}
	var out strings.Builder
	results := make([]db.FileSearchResult, len(found))
	for i, r := range found {
		fmt.Fprintf(&out, "%s\n%s\n\n", marker(i, r.Filename), r.Text)
		results[i] = db.FileSearchResult{FileID: r.FileID, FileName: r.Filename, Score: r.Score,
			Content: []db.FileSearchContent{{Type: "text", Text: r.Text}}}
	}
	return result(strings.TrimSpace(out.String()), results), nil
}

// marker is the source marker a passage is headed by. The name loses the
// characters that would end the marker early.
func marker(i int, name string) string {
	name = strings.NewReplacer("】", "", "【", "", "†", "").Replace(name)
	return "【" + strconv.Itoa(i) + "†" + name + "】"
}

// stores are the vector stores a run searches: the run's own
// tool_resources, the assistant's and the thread's, in that order.
func (f *FileSearch) stores(ctx context.Context, run db.Run) ([]string, error) {
	var ids []string
	add := func(tr *db.ToolResources) {
		if tr == nil || tr.FileSearch == nil {
			return
		}
		for _, id := range tr.FileSearch.VectorStoreIDs {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	add(run.ToolResources)
	a, err := f.store.GetAssistant(ctx, run.AssistantID)
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return nil, err
	}
	add(a.ToolResources)
	t, err := f.store.GetThread(ctx, run.ThreadID)
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return nil, err
	}
	add(t.ToolResources)
	return ids, nil
}

// markerRE matches source markers: 【i†name】, and OpenAI's 【m:i†name】.
var markerRE = regexp.MustCompile(`【(\d+)(?::(\d+))?†([^】]*)】`)

// Annotate implements Annotator: each source marker in the answer that
// names a passage this run retrieved becomes a file_citation annotation
// whose text is the marker and whose indices count characters (code
// points) of the answer.
func (f *FileSearch) Annotate(ctx context.Context, run db.Run, text string) ([]db.Annotation, error) {
	locs := markerRE.FindAllStringSubmatchIndex(text, -1)
	if len(locs) == 0 {
		return nil, nil
	}
	page, err := f.store.ListSteps(ctx, run.ThreadID, run.ID, db.ListParams{Limit: 1000, Order: "desc"})
	if err != nil {
		return nil, err
	}
	var calls [][]db.FileSearchResult // latest first
	for _, st := range page.Data {
		for i := len(st.StepDetails.ToolCalls) - 1; i >= 0; i-- {
			if fs := st.StepDetails.ToolCalls[i].FileSearch; fs != nil && len(fs.Results) > 0 {
				calls = append(calls, fs.Results)
			}
		}
	}
	var anns []db.Annotation
	for _, loc := range locs {
		idxStr := text[loc[2]:loc[3]]
		if loc[4] >= 0 {
			idxStr = text[loc[4]:loc[5]]
		}
		idx, _ := strconv.Atoi(idxStr)
		fileID := citedFile(calls, idx, text[loc[6]:loc[7]])
		if fileID == "" {
			continue
		}
		start := utf8.RuneCountInString(text[:loc[0]])
		anns = append(anns, db.Annotation{Type: "file_citation", Text: text[loc[0]:loc[1]], StartIndex: start,
			EndIndex: start + utf8.RuneCountInString(text[loc[0]:loc[1]]), FileCitation: &db.FileCitation{FileID: fileID}})
	}
	return anns, nil
}

// citedFile finds the file a marker names: the result at index idx with
// that name in the latest call that has one, else any result with that
// name, else the latest call's result at idx.
func citedFile(calls [][]db.FileSearchResult, idx int, name string) string {
	for _, rs := range calls {
		if idx < len(rs) && cleanName(rs[idx].FileName) == name {
			return rs[idx].FileID
		}
	}
	for _, rs := range calls {
		for _, r := range rs {
			if cleanName(r.FileName) == name {
				return r.FileID
			}
		}
	}
	if len(calls) > 0 && idx < len(calls[0]) {
		return calls[0][idx].FileID
	}
	return ""
}

func cleanName(name string) string {
	m := marker(0, name)
	return strings.TrimSuffix(strings.TrimPrefix(m, "【0†"), "】")
}
