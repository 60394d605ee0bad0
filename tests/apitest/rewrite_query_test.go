package apitest

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
)

// The rewrite tests' corpus: the question's own words find the decoy
// (islanders, sultan), and only the rewrite's words (Zanzibar, accord,
// 1890) find the needle.
const (
	rewriteQuestion = "Which agreement did the islanders make with the sultan?"
	rewriteAnswer   = "Zanzibar accord 1890"
	rewriteNeedle   = "The Zanzibar accord of 1890 settled the coastline."
	rewriteDecoy    = "The islanders traded with the sultan for fishing rights."
)

// rewriteStore uploads the needle and the decoy into a new vector store,
// ingested, and returns the store's and the two files' ids.
func rewriteStore(t testing.TB, s *server) (vs, needle, decoy string) {
	t.Helper()
	needle = uploadText(t, s, "needle.txt", rewriteNeedle)
	decoy = uploadText(t, s, "decoy.txt", rewriteDecoy)
	store, err := s.Client.VectorStores.New(context.Background(), openai.VectorStoreNewParams{FileIDs: []string{needle, decoy}})
	if err != nil {
		t.Fatal(err)
	}
	waitStore(t, s, store.ID)
	return store.ID, needle, decoy
}

// searchRewrite searches with openai-go, rewrite_query set as given (nil:
// not sent), and returns the result file ids and the search_query.
func searchRewrite(t testing.TB, s *server, vs string, rewrite *bool, queries ...string) (files, searchQuery []string) {
	t.Helper()
	p := openai.VectorStoreSearchParams{}
	if len(queries) == 1 {
		p.Query.OfString = openai.String(queries[0])
	} else {
		p.Query.OfStringArray = queries
	}
	if rewrite != nil {
		p.RewriteQuery = openai.Bool(*rewrite)
	}
	page, err := s.Client.VectorStores.Search(context.Background(), vs, p)
	if err != nil {
		t.Fatalf("search %q: %v", queries, err)
	}
	for _, d := range page.Data {
		files = append(files, d.FileID)
	}
	var raw struct {
		SearchQuery []string `json:"search_query"`
	}
	if err := json.Unmarshal([]byte(page.RawJSON()), &raw); err != nil {
		t.Fatalf("search_query of %s: %v", page.RawJSON(), err)
	}
	return files, raw.SearchQuery
}

func ptr[T any](v T) *T { return &v }

// TestSearchRewriteQuery: with --query-rewrite-model, a search asking for
// rewrite_query sends the question to that model (non-streaming, with the
// rewrite instructions), searches its answer and reports it as
// search_query; without rewrite_query no upstream call is made.
func TestSearchRewriteQuery(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t, "--query-rewrite-model", "fake-rewriter")
	vs, needle, decoy := rewriteStore(t, s)
	// The model quotes its answer, as models do; the quotes are dropped.
	up.Answer(rewriteQuestion, `"`+rewriteAnswer+`"`)

	for _, rewrite := range []*bool{nil, ptr(false)} {
		files, sq := searchRewrite(t, s, vs, rewrite, rewriteQuestion)
		if !slices.Equal(sq, []string{rewriteQuestion}) || len(files) == 0 || files[0] != decoy || slices.Contains(files, needle) {
			t.Errorf("rewrite_query %v: search_query %q, files %v (needle %s, decoy %s)", rewrite, sq, files, needle, decoy)
		}
	}
	if n := len(up.Requests()); n != 0 {
		t.Fatalf("searches without rewrite_query made %d upstream requests", n)
	}

	files, sq := searchRewrite(t, s, vs, ptr(true), rewriteQuestion)
	if !slices.Equal(sq, []string{rewriteAnswer}) {
		t.Errorf("search_query = %q, want [%q]", sq, rewriteAnswer)
	}
	if !slices.Equal(files, []string{needle}) {
		t.Errorf("files = %v, want only the needle %s (decoy %s)", files, needle, decoy)
	}
	reqs := up.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d upstream requests, want the one rewrite", len(reqs))
	}
	r := reqs[0]
	if r.Model != "fake-rewriter" || r.Stream || len(r.Messages) != 2 || r.Messages[0].Role != "system" ||
		!strings.Contains(r.Messages[0].Text(), "search query") || r.Messages[1].Role != "user" || r.Messages[1].Text() != rewriteQuestion {
		t.Errorf("rewrite request: %+v", r)
	}

	// An array: each query is rewritten (here the second has no scripted
	// answer, and the fake model's "You said: …" is what it gets).
	const other = "capybara"
	_, sq = searchRewrite(t, s, vs, ptr(true), rewriteQuestion, other)
	if !slices.Equal(sq, []string{rewriteAnswer, "You said: " + other}) {
		t.Errorf("array search_query = %q", sq)
	}
	if n := len(up.Requests()); n != 3 {
		t.Errorf("%d upstream requests after the array search, want 3", n)
	}
}

// TestSearchRewriteQueryUpstreamFails: a rewrite the upstream refuses (a
// 503, or a provider whose port is closed) does not fail the search: the
// query is searched as given, search_query says so, and a warning is
// logged.
func TestSearchRewriteQueryUpstreamFails(t *testing.T) {
	t.Parallel()
	t.Run("503", func(t *testing.T) {
		t.Parallel()
		s, up := startRunServer(t, "--query-rewrite-model", "fake-rewriter")
		vs, needle, decoy := rewriteStore(t, s)
		q := rewriteQuestion + " [[status 503]]"
		files, sq := searchRewrite(t, s, vs, ptr(true), q)
		if !slices.Equal(sq, []string{q}) || len(files) == 0 || files[0] != decoy || slices.Contains(files, needle) {
			t.Errorf("search_query %q, files %v (decoy %s)", sq, files, decoy)
		}
		if reqs := up.Requests(); len(reqs) != 1 || reqs[0].Model != "fake-rewriter" {
			t.Errorf("upstream requests: %+v", reqs)
		}
		waitLog(t, s, "rewrite_query failed")
	})
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := ln.Addr().String()
		ln.Close()
		file := filepath.Join(t.TempDir(), "providers.yaml")
		if err := os.WriteFile(file, []byte("providers:\n  - name: down\n    base_url: http://"+closed+"/v1\n    models: [down-rewriter]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		s, _ := startRunServer(t, "--providers", file, "--query-rewrite-model", "down-rewriter")
		vs, _, decoy := rewriteStore(t, s)
		files, sq := searchRewrite(t, s, vs, ptr(true), rewriteQuestion)
		if !slices.Equal(sq, []string{rewriteQuestion}) || len(files) == 0 || files[0] != decoy {
			t.Errorf("search_query %q, files %v (decoy %s)", sq, files, decoy)
		}
		waitLog(t, s, "rewrite_query failed")
	})
}

// TestSearchRewriteQueryUnset: without --query-rewrite-model, rewrite_query
// is accepted (clients send it expecting results) and the query searched as
// given, said once in the log, with no upstream call.
func TestSearchRewriteQueryUnset(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t)
	vs, _, decoy := rewriteStore(t, s)
	for range 2 {
		files, sq := searchRewrite(t, s, vs, ptr(true), rewriteQuestion)
		if !slices.Equal(sq, []string{rewriteQuestion}) || len(files) == 0 || files[0] != decoy {
			t.Errorf("search_query %q, files %v (decoy %s)", sq, files, decoy)
		}
	}
	if n := len(up.Requests()); n != 0 {
		t.Errorf("%d upstream requests", n)
	}
	const line = "no --query-rewrite-model is set"
	waitLog(t, s, line)
	if n := strings.Count(s.errBuf.String(), line); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, s.errBuf.String())
	}
}

// waitLog waits for the server's stderr to contain text (the log reaches
// the pipe after the response may have).
func waitLog(t testing.TB, s *server, text string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.errBuf.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the server log:\n%s", text, lastLines(s.errBuf.String(), 30))
		}
		time.Sleep(20 * time.Millisecond) // polling interval, bounded by the deadline
	}
}

// TestQueryRewriteModelUnserved: a rewrite model no provider serves stops
// the start with a message naming the flag, rather than failing every
// rewrite later.
func TestQueryRewriteModelUnserved(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, serverBin, "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--api-key", "sk-test-"+randomHex(16),
		"--upstream-models", "fake-model", "--query-rewrite-model", "unserved-model")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), `--query-rewrite-model "unserved-model": no provider serves it`) {
		t.Fatalf("err %v, output:\n%s", err, out)
	}
}
