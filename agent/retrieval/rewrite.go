package retrieval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/openai/openai-go/v3"
)

// QueryRewriter turns a user's natural-language question into a query
// better suited to search: the search API's rewrite_query. It is an
// interface so that handlers never talk to providers, and tests can
// substitute a rewriter.
type QueryRewriter interface {
	Rewrite(ctx context.Context, query string) (string, error)
}

// rewritePrompt is the system prompt of a rewrite. Names, numbers and
// quoted phrases are what BM25 matches best, so the model must keep them.
const rewritePrompt = "Rewrite the user's question into a concise search query for a document search engine. " +
	"Keep names, numbers and quoted phrases exactly as written; drop filler words. " +
	"Answer with the search query only, on one line, without explanation."

// Bounds of a rewrite.
const (
	// DefaultRewriteTimeout bounds the rewriting of one search's queries:
	// a slow model costs the search at most this, then the queries are
	// searched as given.
	DefaultRewriteTimeout = 5 * time.Second
	// maxRewrittenRunes caps a rewritten query, so that a model that
	// rambles does not turn a search into a scan of its essay.
	maxRewrittenRunes = 400
	// maxRewrites is how many queries of an array are rewritten (the rest
	// are searched as given), and rewriteParallel how many at once: a
	// client's array must not fan out into unbounded upstream calls.
	maxRewrites     = 10
	rewriteParallel = 4
)

// ChatRewriter rewrites queries with a chat model through an
// OpenAI-compatible Chat Completions endpoint (non-streaming).
type ChatRewriter struct {
	client openai.Client
	model  string
}

// NewChatRewriter rewrites with model through client (the client of the
// provider that serves model).
func NewChatRewriter(client openai.Client, model string) *ChatRewriter {
	return &ChatRewriter{client: client, model: model}
}

// Model is the model that rewrites.
func (r *ChatRewriter) Model() string { return r.model }

// Rewrite implements QueryRewriter. It returns the model's answer cleaned
// by cleanRewrite, or an error when the call failed or the answer was
// empty.
func (r *ChatRewriter) Rewrite(ctx context.Context, query string) (string, error) {
	res, err := r.client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: r.model,
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage(rewritePrompt),
			openai.UserMessage(query),
		},
	})
	if err != nil {
		return "", fmt.Errorf("rewrite query (%s): %w", r.model, err)
	}
	if len(res.Choices) == 0 {
		return "", fmt.Errorf("rewrite query (%s): no choices in the answer", r.model)
	}
	out := cleanRewrite(res.Choices[0].Message.Content)
	if out == "" {
		return "", fmt.Errorf("rewrite query (%s): empty answer", r.model)
	}
	return out, nil
}

// cleanRewrite makes a model's answer a query: white space (newlines
// included) collapsed, one pair of quotes or backticks wrapping the whole
// answer removed (models often quote their answer; quotes inside are kept,
// they may be a phrase), and at most maxRewrittenRunes runes, cut at a word
// boundary when there is one.
func cleanRewrite(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	for _, q := range []string{`"`, "`", "'", "“"} {
		closing := q
		if q == "“" {
			closing = "”"
		}
		if len(s) >= len(q)+len(closing) && strings.HasPrefix(s, q) && strings.HasSuffix(s, closing) {
			inner := s[len(q) : len(s)-len(closing)]
			if !strings.Contains(inner, q) && !strings.Contains(inner, closing) {
				s = strings.TrimSpace(inner)
			}
			break
		}
	}
	if utf8.RuneCountInString(s) > maxRewrittenRunes {
		r := []rune(s)[:maxRewrittenRunes]
		cut := string(r)
		if i := strings.LastIndexByte(cut, ' '); i > 0 {
			cut = cut[:i]
		}
		s = cut
	}
	return s
}

// Rewriting is rewrite_query as the search API uses it: it never fails a
// search. Without a rewriter the queries are searched as given (said once
// in the log); a failed or empty rewrite falls back to the query as given
// (with a warning).
type Rewriting struct {
	Rewriter QueryRewriter // nil: no --query-rewrite-model
	Timeout  time.Duration // bounds one search's rewrites; 0 means DefaultRewriteTimeout
	Log      *slog.Logger

	unset sync.Once
}

// RewriteQueries returns the queries to search for queries, in order: each
// of the first maxRewrites rewritten (concurrently, within one timeout),
// the rest as given. Each query that could not be rewritten stays as
// given.
func (rw *Rewriting) RewriteQueries(ctx context.Context, queries []string) []string {
	out := append([]string(nil), queries...)
	if rw == nil || rw.Rewriter == nil {
		if rw != nil && rw.Log != nil {
			rw.unset.Do(func() {
				rw.Log.Info("a search asked for rewrite_query, but no --query-rewrite-model is set: queries are searched as given")
			})
		}
		return out
	}
	timeout := rw.Timeout
	if timeout <= 0 {
		timeout = DefaultRewriteTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	n := min(len(queries), maxRewrites)
	errs := make([]error, n)
	sem := make(chan struct{}, rewriteParallel)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			q, err := rw.Rewriter.Rewrite(ctx, queries[i])
			switch {
			case err != nil:
				errs[i] = err
			case strings.TrimSpace(q) == "":
				errs[i] = errors.New("rewrite query: empty answer")
			default:
				out[i] = q
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil && rw.Log != nil {
		failed := 0
		for _, e := range errs {
			if e != nil {
				failed++
			}
		}
		rw.Log.Warn("rewrite_query failed; searching the query as given", "failed", failed, "queries", n, "err", err)
	}
	return out
}
