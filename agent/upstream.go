package agent

// The upstream half of a turn: one Chat Completions request, streamed or
// not, with retries on transient failures and a one-time fallback to a
// plain request for providers that reject stream=true. Errors are
// classified by their type (openai.Error's status, net.Error, syscall
// errnos), never by their text.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/respjson"
	"github.com/openai/openai-go/v3/packages/ssestream"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/internal/stack"
	"github.com/assistantd/assistantd/telemetry"
)

// request sends the turn's request, retrying what may pass on retry as
// long as nothing of the answer has reached the run's readers. It returns
// the last error (nil on success or when ctx ended).
func (t *turn) request(ctx context.Context, provider *Provider, params *openai.ChatCompletionNewParams) error {
	e := t.e
	stream := !provider.NoStream
	for attempt := 0; ; attempt++ {
		err := t.call(ctx, provider, params, stream)
		if err == nil || ctx.Err() != nil {
			return err
		}
		if stream && !t.emitted && streamingUnsupported(err) {
			stream = false // fall back to a plain request once
			continue
		}
		if t.emitted || attempt >= e.cfg.Retries || !retryable(err) {
			return err
		}
		wait := backoff(err, e.cfg.RetryBackoff, attempt)
		e.log.Warn("upstream request failed; retrying", "run_id", t.runID, "provider", provider.Name, "attempt", attempt+1, "wait", wait, "error", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// call sends one request and feeds the answer into the turn. Its frame
// stays small (the request by pointer, each chunk handled in onChunk):
// the goroutine waits here, reading the upstream, for most of a run.
func (t *turn) call(ctx context.Context, p *Provider, params *openai.ChatCompletionNewParams, stream bool) (err error) {
	var created *creation
	if t.fresh != nil {
		created = t.fresh.created
	}
	ctx = t.e.inspectRun(ctx, t.runID, created) // each attempt is its own recorded exchange
	ctx, span := t.e.startChat(ctx, p.Name, params.Model, stream)
	obs := &telemetry.Upstream{Provider: p.Name, Model: params.Model, Project: t.run.ProjectID}
	start, before := time.Now(), t.usage
	defer func() {
		obs.Duration = time.Since(start)
		obs.Outcome = outcome(ctx, err)
		var usage *db.Usage
		if t.usage != before {
			usage = t.usage
		}
		endChat(span, obs.Outcome, t.finish, usage, err)
		if t.usage != nil && t.usage != before { // this request's own usage
			obs.HasUsage, obs.InputTokens, obs.OutputTokens = true, t.usage.PromptTokens, t.usage.CompletionTokens
			t.e.recordUsage(t.run, params.Model, t.usage)
		}
		t.e.metrics.UpstreamRequest(*obs)
	}()
	if !stream {
		return t.callPlain(ctx, p, params)
	}
	var s *ssestream.Stream[chunk]
	stack.Run(func() { s = t.send(ctx, p, params) }) // encoding the request goes deep
	defer s.Close()
	if err := t.awaitCreated(ctx); err != nil {
		return err
	}
	// Each chunk is read and decoded here, not through stack.Run: a
	// goroutine per chunk cost a scheduling round per chunk (10,000
	// streams took 61 s instead of 49 s in tests/loadgen) and saved no
	// memory there, decoding our own chunk type being shallow.
	for t.broken == nil && s.Next() {
		t.onChunk(ctx, s, obs, start)
	}
	return s.Err()
}

// send sends the streaming request. The SDK sends it (retries, errors,
// the inspector's middleware all as for any request); its answer is read
// as chunks of our own type, which decode with a fraction of the SDK
// chunk's time and garbage, falling back to the SDK's type for what
// they do not expect; and read with a smaller line buffer (sseDecoder).
func (t *turn) send(ctx context.Context, p *Provider, params *openai.ChatCompletionNewParams) *ssestream.Stream[chunk] {
	withUsage := *params
	withUsage.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	var raw *http.Response
	sdk := p.Client.Chat.Completions.NewStreaming(ctx, withUsage, option.WithResponseInto(&raw))
	if err := sdk.Err(); err != nil {
		return ssestream.NewStream[chunk](nil, err)
	}
	if raw == nil || raw.Body == nil {
		_ = sdk.Close()
		return ssestream.NewStream[chunk](nil, errors.New("the upstream sent no answer"))
	}
	return ssestream.NewStream[chunk](newSSEDecoder(&drainOnClose{raw.Body}), nil)
}

// drainOnClose reads what is left of a streamed answer (the stream's end
// after data: [DONE]: a blank line, the chunked encoding's last chunk)
// before closing it. net/http reuses a connection only once its response
// body was read to the end; closed earlier, the connection is closed, and
// the next request to the provider waits for a new one (about a third of
// sequential runs dialled afresh).
type drainOnClose struct{ io.ReadCloser }

// maxDrain and drainFor bound what Close reads and waits for: an answer
// still streaming, or a server that keeps the response open after
// [DONE], is cut (closing the body ends the read), never waited out.
const (
	maxDrain = 4 << 10
	drainFor = 100 * time.Millisecond
)

func (d *drainOnClose) Close() error {
	cut := time.AfterFunc(drainFor, func() { _ = d.ReadCloser.Close() })
	_, _ = io.CopyN(io.Discard, d.ReadCloser, maxDrain)
	cut.Stop()
	return d.ReadCloser.Close()
}

// chunk is what a turn reads of a streamed Chat Completions chunk.
type chunk struct {
	Choices []chunkChoice `json:"choices"`
	Usage   *struct {
		PromptTokens            int64 `json:"prompt_tokens"`
		CompletionTokens        int64 `json:"completion_tokens"`
		TotalTokens             int64 `json:"total_tokens"`
		CompletionTokensDetails struct {
			ReasoningTokens int64 `json:"reasoning_tokens"`
		} `json:"completion_tokens_details"`
	} `json:"usage"`
}

type chunkChoice struct {
	Index int64 `json:"index"`
	Delta struct {
		Content string `json:"content"`
		Refusal string `json:"refusal"`
		// reasoning_content (vLLM, DeepSeek, …) or reasoning (some
		// newer servers); raw, since only a string counts.
		ReasoningContent json.RawMessage   `json:"reasoning_content"`
		Reasoning        json.RawMessage   `json:"reasoning"`
		ToolCalls        []json.RawMessage `json:"tool_calls"`
	} `json:"delta"`
	FinishReason string `json:"finish_reason"`
}

// UnmarshalJSON decodes a chunk, leniently: a chunk our type does not
// fit (a field of another JSON type than usual) is decoded as the SDK's
// chunk, which tolerates it, and taken from there.
func (c *chunk) UnmarshalJSON(b []byte) error {
	type plain chunk
	if err := json.Unmarshal(b, (*plain)(c)); err == nil {
		return nil
	}
	var sdk openai.ChatCompletionChunk
	if err := json.Unmarshal(b, &sdk); err != nil {
		return err
	}
	*c = chunk{}
	if sdk.JSON.Usage.Valid() {
		u := sdk.Usage
		c.Usage = &struct {
			PromptTokens            int64 `json:"prompt_tokens"`
			CompletionTokens        int64 `json:"completion_tokens"`
			TotalTokens             int64 `json:"total_tokens"`
			CompletionTokensDetails struct {
				ReasoningTokens int64 `json:"reasoning_tokens"`
			} `json:"completion_tokens_details"`
		}{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
		c.Usage.CompletionTokensDetails.ReasoningTokens = u.CompletionTokensDetails.ReasoningTokens
	}
	for _, ch := range sdk.Choices {
		var cc chunkChoice
		cc.Index, cc.FinishReason = ch.Index, ch.FinishReason
		cc.Delta.Content, cc.Delta.Refusal = ch.Delta.Content, ch.Delta.Refusal
		if r := reasoningText(ch.Delta.JSON.ExtraFields); r != "" {
			cc.Delta.ReasoningContent, _ = json.Marshal(r)
		}
		for _, tc := range ch.Delta.ToolCalls {
			cc.Delta.ToolCalls = append(cc.Delta.ToolCalls, json.RawMessage(tc.RawJSON()))
		}
		c.Choices = append(c.Choices, cc)
	}
	return nil
}

// reasoning is the choice's reasoning fragment, if a string.
func (ch *chunkChoice) reasoning() string {
	for _, raw := range []json.RawMessage{ch.Delta.ReasoningContent, ch.Delta.Reasoning} {
		var s string
		if len(raw) > 0 && json.Unmarshal(raw, &s) == nil && s != "" {
			return s
		}
	}
	return ""
}

// onChunk feeds one streamed chunk into the turn. The chunk is read
// through a pointer: the first text waits here for its message's commit,
// and a copy would sit in this frame meanwhile.
func (t *turn) onChunk(ctx context.Context, s *ssestream.Stream[chunk], obs *telemetry.Upstream, start time.Time) {
	c := current(s)
	if obs.FirstToken == 0 && len(c.Choices) > 0 && (c.Choices[0].Delta.Content != "" || len(c.Choices[0].Delta.ToolCalls) > 0) {
		obs.FirstToken = time.Since(start)
	}
	if c.Usage != nil && c.Usage.TotalTokens > 0 {
		t.usage = &db.Usage{PromptTokens: c.Usage.PromptTokens, CompletionTokens: c.Usage.CompletionTokens, TotalTokens: c.Usage.TotalTokens}
		t.reasoningTokens = c.Usage.CompletionTokensDetails.ReasoningTokens
	}
	for i := range c.Choices {
		ch := &c.Choices[i]
		if ch.Index != 0 {
			continue
		}
		t.onReasoning(ch.reasoning())
		if ch.Delta.Content != "" {
			t.onText(ctx, ch.Delta.Content)
		}
		if ch.Delta.Refusal != "" {
			t.onText(ctx, ch.Delta.Refusal)
		}
		for _, raw := range ch.Delta.ToolCalls {
			var tc openai.ChatCompletionChunkChoiceDeltaToolCall
			if err := json.Unmarshal(raw, &tc); err != nil {
				continue
			}
			t.onTool(ctx, tc)
		}
		if ch.FinishReason != "" {
			t.finish = ch.FinishReason
		}
	}
}

// current returns the stream's chunk on the heap. Not inlined: inlined,
// the copy Current returns would sit in onChunk's frame.
//
//go:noinline
func current(s *ssestream.Stream[chunk]) *chunk {
	c := s.Current()
	return &c
}

// callPlain sends a request without streaming and feeds its answer into
// the turn.
func (t *turn) callPlain(ctx context.Context, p *Provider, params *openai.ChatCompletionNewParams) error {
	resp, err := p.Client.Chat.Completions.New(ctx, *params)
	if err != nil {
		return err
	}
	if err := t.awaitCreated(ctx); err != nil {
		return err
	}
	if resp.JSON.Usage.Valid() {
		t.usage = &db.Usage{PromptTokens: resp.Usage.PromptTokens, CompletionTokens: resp.Usage.CompletionTokens, TotalTokens: resp.Usage.TotalTokens}
		t.reasoningTokens = resp.Usage.CompletionTokensDetails.ReasoningTokens
	}
	if len(resp.Choices) == 0 {
		return nil
	}
	ch := resp.Choices[0]
	t.onReasoning(reasoningText(ch.Message.JSON.ExtraFields))
	if ch.Message.Content != "" {
		t.onText(ctx, ch.Message.Content)
	}
	for i, tc := range ch.Message.ToolCalls {
		var d openai.ChatCompletionChunkChoiceDeltaToolCall
		raw, _ := json.Marshal(map[string]any{"index": i, "id": tc.ID, "type": "function",
			"function": map[string]string{"name": tc.Function.Name, "arguments": tc.Function.Arguments}})
		if err := json.Unmarshal(raw, &d); err != nil {
			return err
		}
		t.onTool(ctx, d)
	}
	t.finish = string(ch.FinishReason)
	return nil
}

// reasoningText is the reasoning in a message or delta's extra fields:
// reasoning_content (vLLM, DeepSeek, …) or reasoning (some newer servers).
func reasoningText(extra map[string]respjson.Field) string {
	for _, k := range []string{"reasoning_content", "reasoning"} {
		f, ok := extra[k]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal([]byte(f.Raw()), &s) == nil && s != "" {
			return s
		}
	}
	return ""
}

// outcome names how an upstream request ended, for the metrics.
func outcome(ctx context.Context, err error) string {
	var apiErr *openai.Error
	switch {
	case err == nil:
		return "ok"
	case ctx.Err() != nil:
		return "cancelled"
	case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusTooManyRequests:
		return "rate_limited"
	case errors.As(err, &apiErr) && apiErr.StatusCode >= 500:
		return "server_error"
	case errors.As(err, &apiErr):
		return "client_error"
	}
	return "transport_error"
}

// retryable reports whether an upstream error may pass on retry: rate
// limits, server errors, timeouts and dropped connections.
func retryable(err error) bool {
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		s := apiErr.StatusCode
		return s == http.StatusTooManyRequests || s == http.StatusRequestTimeout || s == http.StatusConflict || s >= 500
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// streamingUnsupported spots upstreams that reject stream=true: a 400 or
// 501 whose message names streaming (the provider's own words are all
// there is to go on).
func streamingUnsupported(err error) bool {
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		return false
	}
	return (apiErr.StatusCode == http.StatusBadRequest || apiErr.StatusCode == http.StatusNotImplemented) &&
		strings.Contains(strings.ToLower(apiErr.Message), "stream")
}

// backoff doubles base per attempt, or honours the upstream's Retry-After.
func backoff(err error, base time.Duration, attempt int) time.Duration {
	var apiErr *openai.Error
	if errors.As(err, &apiErr) && apiErr.Response != nil {
		if ms, err := strconv.ParseFloat(apiErr.Response.Header.Get("Retry-After-Ms"), 64); err == nil && ms >= 0 {
			return min(time.Duration(ms*float64(time.Millisecond)), time.Minute)
		}
		if s, err := strconv.ParseFloat(apiErr.Response.Header.Get("Retry-After"), 64); err == nil && s >= 0 {
			return min(time.Duration(s*float64(time.Second)), time.Minute)
		}
	}
	return base << attempt
}

// upstreamErr describes a failed upstream request as the run's last_error.
func upstreamErr(provider string, err error) *db.LastError {
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		code := "server_error"
		if apiErr.StatusCode == http.StatusTooManyRequests {
			code = "rate_limit_exceeded"
		}
		msg := apiErr.Message
		if msg == "" {
			msg = http.StatusText(apiErr.StatusCode)
		}
		return &db.LastError{Code: code, Message: fmt.Sprintf("The model provider '%s' answered HTTP %d: %s", provider, apiErr.StatusCode, msg)}
	}
	return &db.LastError{Code: "server_error", Message: fmt.Sprintf("The model provider '%s' could not be reached: %v", provider, err)}
}
