package retrieval

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/assistantd/assistantd/tests/upstream"
)

// clientFor is an openai-go client for a test server, configured like a
// provider's (no SDK retries).
func clientFor(url string) openai.Client {
	return openai.NewClient(option.WithBaseURL(url+"/v1/"), option.WithAPIKey("test"), option.WithMaxRetries(0))
}

func TestCleanRewrite(t *testing.T) {
	long := strings.Repeat("word ", 200)
	for _, tc := range []struct{ in, want string }{
		{"  Zanzibar accord 1890\n", "Zanzibar accord 1890"},
		{`"Zanzibar accord 1890"`, "Zanzibar accord 1890"},
		{"`octopus hearts`", "octopus hearts"},
		{"“octopus hearts”", "octopus hearts"},
		{`"three hearts" octopus`, `"three hearts" octopus`},           // a phrase, kept
		{`"three hearts" "blue blood"`, `"three hearts" "blue blood"`}, // two phrases, not one wrapped answer
		{"octopus\n\nhearts\tblue", "octopus hearts blue"},
		{"   ", ""},
		{long, strings.TrimSpace(long[:maxRewrittenRunes])},
	} {
		if got := cleanRewrite(tc.in); got != tc.want {
			t.Errorf("cleanRewrite(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if n := len([]rune(cleanRewrite(strings.Repeat("é", 1000)))); n != maxRewrittenRunes {
		t.Errorf("a long word is cut to %d runes, want %d", n, maxRewrittenRunes)
	}
}

// TestChatRewriter: the rewrite request as the scripted upstream receives
// it over HTTP, and its answer cleaned.
func TestChatRewriter(t *testing.T) {
	up := upstream.New()
	srv := httptest.NewServer(up)
	defer srv.Close()
	up.Answer("Which agreement did the islanders make?", "  'Zanzibar accord 1890'\n")
	r := NewChatRewriter(clientFor(srv.URL), "rewriter-model")
	got, err := r.Rewrite(testCtx(), "Which agreement did the islanders make?")
	if err != nil || got != "Zanzibar accord 1890" {
		t.Fatalf("Rewrite = %q, %v", got, err)
	}
	reqs := up.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	req := reqs[0]
	if req.Model != "rewriter-model" || req.Stream || len(req.Messages) != 2 || req.Messages[0].Role != "system" ||
		req.Messages[0].Text() != rewritePrompt || req.Messages[1].Text() != "Which agreement did the islanders make?" {
		t.Errorf("request: %+v", req)
	}
	// An empty answer is an error (the caller falls back).
	up.Answer("blank", "  ")
	if got, err := r.Rewrite(testCtx(), "blank"); err == nil {
		t.Errorf("empty answer: %q, nil error", got)
	}
	// So is an upstream error.
	if got, err := r.Rewrite(testCtx(), "x [[status 500]]"); err == nil {
		t.Errorf("500: %q, nil error", got)
	}
}

// TestRewritingTimeout: a model that does not answer costs the search the
// timeout, after which the request is cancelled and the query searched as
// given, with a warning.
func TestRewritingTimeout(t *testing.T) {
	cancelled := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server notices a closed connection only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-time.After(time.Minute): // never answer before the client gives up
		}
	}))
	defer srv.Close()
	var logs bytes.Buffer
	rw := &Rewriting{Rewriter: NewChatRewriter(clientFor(srv.URL), "slow"), Timeout: 100 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))}
	got := rw.RewriteQueries(testCtx(), []string{"octopus hearts"})
	if !slices.Equal(got, []string{"octopus hearts"}) {
		t.Fatalf("got %q", got)
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream request was not cancelled")
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "deadline exceeded") {
		t.Errorf("log: %s", logs.String())
	}
}

// syncWriter serialises a logger's writes.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// countingRewriter upper-cases queries, failing those containing "fail"
// or answering "" for "blank", and records how many calls ran at once.
type countingRewriter struct {
	active, most atomic.Int32
	calls        atomic.Int32
	release      chan struct{}
}

func (c *countingRewriter) Rewrite(ctx context.Context, q string) (string, error) {
	c.calls.Add(1)
	n := c.active.Add(1)
	defer c.active.Add(-1)
	for {
		m := c.most.Load()
		if n <= m || c.most.CompareAndSwap(m, n) {
			break
		}
	}
	<-c.release
	switch {
	case strings.Contains(q, "fail"):
		return "", fmt.Errorf("scripted failure")
	case q == "blank":
		return " ", nil
	}
	return strings.ToUpper(q), nil
}

// TestRewritingArray: of an array, the first maxRewrites queries are
// rewritten, at most rewriteParallel at once, each falling back on its
// own; the rest are searched as given.
func TestRewritingArray(t *testing.T) {
	var queries []string
	for i := range maxRewrites + 3 {
		queries = append(queries, fmt.Sprintf("q%d", i))
	}
	queries[1], queries[2] = "fail me", "blank"
	c := &countingRewriter{release: make(chan struct{})}
	var logs bytes.Buffer
	rw := &Rewriting{Rewriter: c, Log: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))}
	done := make(chan []string)
	go func() { done <- rw.RewriteQueries(testCtx(), queries) }()
	deadline := time.Now().Add(10 * time.Second)
	for c.active.Load() < rewriteParallel {
		if time.Now().After(deadline) {
			t.Fatalf("%d rewrites at once, want %d", c.active.Load(), rewriteParallel)
		}
		time.Sleep(time.Millisecond) // polling interval, bounded by the deadline
	}
	close(c.release)
	got := <-done
	want := slices.Clone(queries)
	for i := range maxRewrites {
		if i != 1 && i != 2 {
			want[i] = strings.ToUpper(want[i])
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if n := c.calls.Load(); n != maxRewrites {
		t.Errorf("%d rewrites, want %d", n, maxRewrites)
	}
	if m := c.most.Load(); m != rewriteParallel {
		t.Errorf("at most %d at once, want %d", m, rewriteParallel)
	}
	if !strings.Contains(logs.String(), "failed=2") {
		t.Errorf("log: %s", logs.String())
	}
}

// TestRewritingUnset: without a rewriter (or without a Rewriting at all,
// as a Service built without one) queries are returned as given; the
// missing model is logged once.
func TestRewritingUnset(t *testing.T) {
	var logs bytes.Buffer
	rw := &Rewriting{Log: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))}
	for range 3 {
		if got := rw.RewriteQueries(testCtx(), []string{"a", "b"}); !slices.Equal(got, []string{"a", "b"}) {
			t.Fatalf("got %q", got)
		}
	}
	if n := strings.Count(logs.String(), "level=INFO"); n != 1 || !strings.Contains(logs.String(), "--query-rewrite-model") {
		t.Errorf("logged %d times: %s", n, logs.String())
	}
	svc := &Service{}
	if got := svc.RewriteQueries(testCtx(), []string{"a"}); !slices.Equal(got, []string{"a"}) {
		t.Errorf("service without rewriting: %q", got)
	}
}

// BenchmarkRewrite measures what rewrite_query adds to a search: one
// rewrite through openai-go against the local scripted upstream (the
// round trip and the SDK's encoding, not a model's thinking time).
func BenchmarkRewrite(b *testing.B) {
	up := upstream.New()
	srv := httptest.NewServer(up)
	defer srv.Close()
	up.Answer("Which agreement did the islanders make?", "Zanzibar accord 1890")
	rw := &Rewriting{Rewriter: NewChatRewriter(clientFor(srv.URL), "rewriter-model")}
	q := []string{"Which agreement did the islanders make?"}
	for b.Loop() {
		if got := rw.RewriteQueries(testCtx(), q); got[0] != "Zanzibar accord 1890" {
			b.Fatalf("got %q", got)
		}
	}
}
