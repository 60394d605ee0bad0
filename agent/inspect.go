package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/openai/openai-go/v3/option"

	"github.com/assistantd/assistantd/db"
)

// The upstream inspector records, for every model call of a run, the exact
// request sent upstream and the response received, so people can see what
// the model was really given and what it really said (retries included,
// each a separate exchange with its status or error). It sits in the
// provider clients as an openai-go middleware and acts only on requests
// whose context carries a run (inspectContext); keys never reach the store.

// ExchangeStore is where the inspector keeps exchanges.
type ExchangeStore interface {
	StartExchange(ctx context.Context, x db.Exchange) (int64, error)
	FinishExchange(ctx context.Context, x db.Exchange) error
	DeleteExchangesBefore(ctx context.Context, cutoff int64) (int64, error)
}

// Inspector records upstream exchanges and sweeps old ones.
type Inspector struct {
	store     ExchangeStore
	retention time.Duration
	log       *slog.Logger
	// MaxBody bounds each stored body; the rest is cut with a note.
	MaxBody int
}

// DefaultInspectRetention is how long exchanges are kept by default: long
// enough to look into last week's odd answer, short enough that prompts
// (which may hold personal data) do not pile up.
const DefaultInspectRetention = 7 * 24 * time.Hour

// NewInspector returns an inspector keeping exchanges for retention; a
// retention of 0 records nothing.
func NewInspector(store ExchangeStore, retention time.Duration, log *slog.Logger) *Inspector {
	if log == nil {
		log = slog.Default()
	}
	return &Inspector{store: store, retention: retention, log: log, MaxBody: 1 << 20}
}

// EnableInspector makes the engine record its runs' upstream exchanges.
// Call it before Start.
func (e *Engine) EnableInspector(ins *Inspector) { e.inspector = ins }

type inspectKey struct{}

// inspection is what a request's context carries to the middleware.
type inspection struct {
	ins   *Inspector
	hub   *Hub
	runID string
}

// inspectContext returns ctx marked so that upstream requests made with it
// are recorded as exchanges of the run (and announced on the run's event
// log as assistantd.upstream events, which only the web app reads).
func (e *Engine) inspectContext(ctx context.Context, runID string) context.Context {
	ins := e.inspector
	if ins == nil || ins.retention <= 0 {
		return ctx
	}
	return context.WithValue(ctx, inspectKey{}, &inspection{ins: ins, hub: e.hub, runID: runID})
}

// UpstreamEvent is the data of an assistantd.upstream event: an exchange
// started or ended.
type UpstreamEvent struct {
	ExchangeID int64  `json:"exchange_id"`
	RunID      string `json:"run_id"`
	State      string `json:"state"` // "in_flight" or "done"
	Status     int    `json:"status,omitempty"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms,omitempty"`
}

// UpstreamEventName names the hub events of upstream exchanges.
const UpstreamEventName = "assistantd.upstream"

// inspectMiddleware is installed on every provider client.
func inspectMiddleware(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
	in, _ := req.Context().Value(inspectKey{}).(*inspection)
	if in == nil {
		return next(req)
	}
	return in.round(req, next)
}

// redactedHeaders are never stored.
var redactedHeaders = map[string]bool{"authorization": true, "proxy-authorization": true, "api-key": true,
	"x-api-key": true, "cookie": true, "set-cookie": true, "x-goog-api-key": true}

const redacted = "[redacted]"

func flatHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if redactedHeaders[strings.ToLower(k)] {
			out[k] = redacted
			continue
		}
		out[k] = strings.Join(h[k], ", ")
	}
	return out
}

// redactURL hides key-like query parameters (some providers take the key
// in the URL).
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	q := c.Query()
	changed := false
	for k := range q {
		switch strings.ToLower(k) {
		case "key", "api_key", "api-key", "apikey", "access_token", "token":
			q.Set(k, redacted)
			changed = true
		}
	}
	if changed {
		c.RawQuery = q.Encode()
	}
	return c.String()
}

func (in *inspection) publish(ev UpstreamEvent) {
	if b, err := json.Marshal(ev); err == nil {
		in.hub.Publish(in.runID, UpstreamEventName, b)
	}
}

func (in *inspection) round(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
	ins := in.ins
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	start := time.Now()
	x := db.Exchange{RunID: in.runID, StartedAt: start.UnixMilli(), Method: req.Method, URL: redactURL(req.URL),
		RequestHeaders: flatHeaders(req.Header), RequestBody: ins.cut(string(body))}
	// Recording must not fail the call, nor outlive it much.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(req.Context()), 5*time.Second)
	id, err := ins.store.StartExchange(sctx, x)
	cancel()
	if err != nil {
		ins.log.Warn("record upstream exchange", "run_id", in.runID, "error", err)
		return next(req)
	}
	x.ID = id
	in.publish(UpstreamEvent{ExchangeID: id, RunID: in.runID, State: "in_flight"})

	resp, err := next(req)
	if err != nil {
		x.Error = err.Error()
		in.finish(req.Context(), x, start)
		return resp, err
	}
	x.Status = resp.StatusCode
	x.ResponseHeaders = flatHeaders(resp.Header)
	x.Streamed = strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	resp.Body = &recordingBody{rc: resp.Body, in: in, x: x, start: start, ctx: req.Context(), max: ins.MaxBody}
	return resp, nil
}

// finish stores the exchange's outcome and announces it.
func (in *inspection) finish(ctx context.Context, x db.Exchange, start time.Time) {
	d := time.Since(start).Milliseconds()
	x.DurationMS = &d
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := in.ins.store.FinishExchange(sctx, x); err != nil {
		in.ins.log.Warn("record upstream exchange", "run_id", in.runID, "error", err)
	}
	in.publish(UpstreamEvent{ExchangeID: x.ID, RunID: in.runID, State: "done", Status: x.Status, Error: x.Error, DurationMS: d})
}

func (ins *Inspector) cut(s string) string {
	if ins.MaxBody > 0 && len(s) > ins.MaxBody {
		return s[:ins.MaxBody] + "\n… [cut: " + itoa64(int64(len(s)-ins.MaxBody)) + " more bytes]"
	}
	return s
}

func itoa64(n int64) string { b, _ := json.Marshal(n); return string(b) }

// recordingBody copies what the SDK reads of a response and records the
// exchange once the body is finished with (read to the end, failed, or
// closed early, as a cancelled run does).
type recordingBody struct {
	rc    io.ReadCloser
	in    *inspection
	x     db.Exchange
	start time.Time
	ctx   context.Context
	max   int
	buf   bytes.Buffer
	total int64
	once  sync.Once
	rerr  error
}

func (b *recordingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.total += int64(n)
	if room := 4*b.max - b.buf.Len(); room > 0 { // streams are assembled, so keep more of them
		b.buf.Write(p[:min(n, room)])
	}
	if err != nil {
		if err != io.EOF {
			b.rerr = err
		}
		b.done()
	}
	return n, err
}

func (b *recordingBody) Close() error {
	err := b.rc.Close()
	b.done()
	return err
}

func (b *recordingBody) done() {
	b.once.Do(func() {
		x := b.x
		raw := b.buf.Bytes()
		if x.Streamed {
			assembled, chunks := assembleStream(raw)
			x.Chunks = chunks
			x.ResponseBody = b.in.ins.cut(assembled)
		} else {
			x.ResponseBody = b.in.ins.cut(string(raw))
		}
		if b.rerr != nil {
			x.Error = "reading the response: " + b.rerr.Error()
		} else if b.ctx.Err() != nil {
			x.Error = "the run stopped reading the response (" + context.Cause(b.ctx).Error() + ")"
		}
		b.in.finish(b.ctx, x, b.start)
	})
}

// assembleStream turns a Chat Completions SSE stream into the one
// chat.completion object its chunks add up to (content and tool call
// arguments concatenated, the finish reason, usage), and counts the
// chunks. A stream that is not chunk JSON is returned as it came.
func assembleStream(raw []byte) (string, int) {
	type toolCall struct {
		Index    int    `json:"index"`
		ID       string `json:"id,omitempty"`
		Type     string `json:"type,omitempty"`
		Function struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"function"`
	}
	type choice struct {
		Index   int `json:"index"`
		Message struct {
			Role      string     `json:"role"`
			Content   string     `json:"content"`
			Refusal   string     `json:"refusal,omitempty"`
			ToolCalls []toolCall `json:"tool_calls,omitempty"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	}
	var out struct {
		ID      string          `json:"id"`
		Object  string          `json:"object"`
		Created int64           `json:"created"`
		Model   string          `json:"model"`
		Choices []choice        `json:"choices"`
		Usage   json.RawMessage `json:"usage,omitempty"`
	}
	out.Object = "chat.completion"
	chunks := 0
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data:")
		if !ok {
			continue
		}
		data = strings.TrimSpace(data)
		if data == "[DONE]" || data == "" {
			continue
		}
		var c struct {
			ID      string `json:"id"`
			Created int64  `json:"created"`
			Model   string `json:"model"`
			Choices []struct {
				Index int `json:"index"`
				Delta struct {
					Role      string     `json:"role"`
					Content   string     `json:"content"`
					Refusal   string     `json:"refusal"`
					ToolCalls []toolCall `json:"tool_calls"`
				} `json:"delta"`
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
			Usage json.RawMessage `json:"usage"`
		}
		if json.Unmarshal([]byte(data), &c) != nil {
			return string(raw), chunks
		}
		chunks++
		out.ID, out.Created, out.Model = c.ID, c.Created, c.Model
		if len(c.Usage) > 0 && string(c.Usage) != "null" {
			out.Usage = c.Usage
		}
		for _, ch := range c.Choices {
			if ch.Index < 0 || ch.Index > 16 {
				continue
			}
			for len(out.Choices) <= ch.Index {
				out.Choices = append(out.Choices, choice{})
			}
			m := &out.Choices[ch.Index]
			m.Index = ch.Index
			if ch.Delta.Role != "" {
				m.Message.Role = ch.Delta.Role
			}
			m.Message.Content += ch.Delta.Content
			m.Message.Refusal += ch.Delta.Refusal
			for _, tc := range ch.Delta.ToolCalls {
				i := -1
				for k, have := range m.Message.ToolCalls {
					if have.Index == tc.Index {
						i = k
					}
				}
				if i < 0 || (tc.ID != "" && m.Message.ToolCalls[i].ID != "" && tc.ID != m.Message.ToolCalls[i].ID) {
					m.Message.ToolCalls = append(m.Message.ToolCalls, toolCall{Index: tc.Index, ID: tc.ID, Type: tc.Type})
					i = len(m.Message.ToolCalls) - 1
				}
				have := &m.Message.ToolCalls[i]
				if tc.ID != "" {
					have.ID = tc.ID
				}
				if tc.Type != "" {
					have.Type = tc.Type
				}
				have.Function.Name += tc.Function.Name
				have.Function.Arguments += tc.Function.Arguments
			}
			if ch.FinishReason != "" {
				m.FinishReason = ch.FinishReason
			}
		}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return string(raw), chunks
	}
	return string(b), chunks
}

// Sweep deletes exchanges older than the retention (agent.Sweep's Run).
func (ins *Inspector) Sweep(ctx context.Context) (int, error) {
	if ins.retention <= 0 {
		return 0, nil
	}
	n, err := ins.store.DeleteExchangesBefore(ctx, time.Now().Add(-ins.retention).UnixMilli())
	return int(n), err
}
