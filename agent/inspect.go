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
	"sync/atomic"
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
//
// Recording never waits on the store: a run's request hands its exchange
// to an in-memory queue and goes on; one writer goroutine drains the queue
// in batches (everything queued since its last pass) and writes them, so
// a thousand streams cost the store's single writer one client, not a
// thousand. The queue is bounded in bytes and in entries; an exchange that
// does not fit is dropped and counted (Dropped) rather than made to wait.
type Inspector struct {
	store     ExchangeStore
	retention time.Duration
	log       *slog.Logger
	// MaxBody bounds each stored body; the rest is cut with a note.
	MaxBody int
	// MaxQueueBytes and MaxQueue bound what waits for the writer: bodies'
	// bytes and entries. Set them before the first exchange.
	MaxQueueBytes int64
	MaxQueue      int

	mu       sync.Mutex
	queue    []*inspectOp
	queued   int64         // bytes held by queue
	slots    int           // entries queued, and kept for the finishes of queued starts
	enqueued int64         // ops ever queued
	written  int64         // ops the writer has finished with
	progress chan struct{} // closed and replaced after each batch
	wake     chan struct{} // buffered(1): the queue has work
	stop     chan struct{} // closed by Close
	stopped  chan struct{} // closed when the writer has exited
	closed   bool
	dropped  atomic.Int64
}

// inspectOp is one write waiting in the inspector's queue: an exchange's
// start, or its end.
type inspectOp struct {
	rec    *exchangeRecord
	finish bool
	x      db.Exchange // the finished exchange (finish only)
	raw    []byte      // a streamed response's bytes, assembled by the writer
	size   int64
}

// exchangeRecord ties an exchange's start and end: the writer learns the
// id when it writes the start and uses it for the end, which is always
// queued after it.
type exchangeRecord struct {
	in *inspection
	id int64 // set by the writer; 0 if the start could not be written
}

// DefaultInspectRetention is how long exchanges are kept by default: long
// enough to look into last week's odd answer, short enough that prompts
// (which may hold personal data) do not pile up.
const DefaultInspectRetention = 7 * 24 * time.Hour

// NewInspector returns an inspector keeping exchanges for retention; a
// retention of 0 records nothing. Its writer runs until Close.
func NewInspector(store ExchangeStore, retention time.Duration, log *slog.Logger) *Inspector {
	if log == nil {
		log = slog.Default()
	}
	ins := &Inspector{store: store, retention: retention, log: log, MaxBody: 1 << 20,
		MaxQueueBytes: 64 << 20, MaxQueue: 1 << 16,
		progress: make(chan struct{}), wake: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	if retention > 0 {
		go ins.write()
	} else {
		close(ins.stopped)
	}
	return ins
}

// Dropped returns how many exchanges (or responses of exchanges) were not
// recorded because the writer had fallen behind.
func (ins *Inspector) Dropped() int64 { return ins.dropped.Load() }

// Queued returns the entries (with those kept for the finishes of queued
// starts) and body bytes waiting for the writer.
func (ins *Inspector) Queued() (entries int, bytes int64) {
	ins.mu.Lock()
	defer ins.mu.Unlock()
	return ins.slots, ins.queued
}

// enqueue hands op to the writer unless the queue is full. A start takes
// two of MaxQueue's entries, its own and one kept for its finish, so a
// finish whose start was queued is always taken (without its response
// body if that does not fit in MaxQueueBytes): no exchange is left
// looking in flight, and the bounds hold.
func (ins *Inspector) enqueue(op *inspectOp) bool {
	ins.mu.Lock()
	if op.finish {
		if ins.queued+op.size > ins.MaxQueueBytes {
			op.raw, op.x.ResponseBody, op.size = nil, "[not recorded: the inspector's writer had fallen behind]", 0
			ins.dropped.Add(1)
		}
	} else if ins.closed || ins.slots+2 > ins.MaxQueue || ins.queued+op.size > ins.MaxQueueBytes {
		ins.mu.Unlock()
		ins.dropped.Add(1)
		return false
	} else {
		ins.slots += 2
	}
	ins.queue = append(ins.queue, op)
	ins.queued += op.size
	ins.enqueued++
	ins.mu.Unlock()
	select {
	case ins.wake <- struct{}{}:
	default:
	}
	return true
}

// write is the writer goroutine: it takes everything queued and writes it,
// until Close; then it writes what is left and exits.
func (ins *Inspector) write() {
	defer close(ins.stopped)
	for {
		select {
		case <-ins.wake:
		case <-ins.stop:
			ins.writeQueued()
			return
		}
		ins.writeQueued()
	}
}

func (ins *Inspector) writeQueued() {
	for {
		ins.mu.Lock()
		batch := ins.queue
		ins.queue = nil
		ins.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		for _, op := range batch {
			ins.writeOp(op)
		}
		ins.mu.Lock()
		for _, op := range batch {
			ins.queued -= op.size
			ins.slots--
		}
		ins.written += int64(len(batch))
		close(ins.progress)
		ins.progress = make(chan struct{})
		ins.mu.Unlock()
	}
}

// writeOp stores one start or end and announces it on the run's log.
func (ins *Inspector) writeOp(op *inspectOp) {
	rec := op.rec
	in := rec.in
	// Recording must not hang the writer on one stuck write.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if !op.finish {
		if c := in.created; c != nil {
			<-c.done // a commit under way: the writer waits that long
			if c.err != nil {
				return // no run: nothing to record (its finish finds no id)
			}
		}
		id, err := ins.store.StartExchange(ctx, op.x)
		if err != nil {
			ins.log.Warn("record upstream exchange", "run_id", in.runID, "error", err)
			return
		}
		rec.id = id
		in.publish(UpstreamEvent{ExchangeID: id, RunID: in.runID, State: "in_flight"})
		return
	}
	if rec.id == 0 {
		return // the start failed to write; it was logged
	}
	x := op.x
	x.ID = rec.id
	if op.raw != nil {
		if x.Streamed {
			assembled, chunks := assembleStream(op.raw)
			x.Chunks = chunks
			x.ResponseBody = ins.cut(assembled)
		} else {
			x.ResponseBody = ins.cut(string(op.raw))
		}
	}
	if err := ins.store.FinishExchange(ctx, x); err != nil {
		ins.log.Warn("record upstream exchange", "run_id", in.runID, "error", err)
	}
	in.publish(UpstreamEvent{ExchangeID: x.ID, RunID: in.runID, State: "done", Status: x.Status, Error: x.Error, DurationMS: *x.DurationMS})
}

// Flush waits until everything queued before the call has been written
// (or dropped), or ctx ends.
func (ins *Inspector) Flush(ctx context.Context) error {
	ins.mu.Lock()
	target := ins.enqueued
	for ins.written < target {
		progress := ins.progress
		ins.mu.Unlock()
		select {
		case <-progress:
		case <-ins.stopped:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
		ins.mu.Lock()
	}
	ins.mu.Unlock()
	return nil
}

// Close stops taking exchanges, writes what is queued and stops the
// writer. Call it after the engine has stopped.
func (ins *Inspector) Close() {
	ins.mu.Lock()
	if !ins.closed {
		ins.closed = true
		close(ins.stop)
	}
	ins.mu.Unlock()
	<-ins.stopped
}

// EnableInspector makes the engine record its runs' upstream exchanges.
// Call it before Start.
func (e *Engine) EnableInspector(ins *Inspector) { e.inspector = ins }

type inspectKey struct{}

// inspection is what a request's context carries to the middleware.
type inspection struct {
	ins   *Inspector
	hub   eventSink
	runID string
	// created, when set, is the creation of a run whose execution began
	// before it committed: its exchanges are written once it has (they
	// refer to the run), and not at all if it failed.
	created *creation
}

// inspectContext returns ctx marked so that upstream requests made with it
// are recorded as exchanges of the run (and announced on the run's event
// log as assistantd.upstream events, which only the web app reads).
func (e *Engine) inspectContext(ctx context.Context, runID string) context.Context {
	return e.inspectRun(ctx, runID, nil)
}

// inspectRun is inspectContext for a run whose creation may not have
// committed yet (created, when not nil).
func (e *Engine) inspectRun(ctx context.Context, runID string, created *creation) context.Context {
	ins := e.inspector
	if ins == nil || ins.retention <= 0 {
		return ctx
	}
	return context.WithValue(ctx, inspectKey{}, &inspection{ins: ins, hub: e.sink(), runID: runID, created: created})
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

// publish announces an exchange on the run's event log, if the run still
// has one: the writer may come after the run has ended and its log is gone,
// and must not make a new one.
func (in *inspection) publish(ev UpstreamEvent) {
	if b, err := json.Marshal(ev); err == nil {
		in.hub.Append(in.runID, UpstreamEventName, b)
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
	rec := &exchangeRecord{in: in}
	if !ins.enqueue(&inspectOp{rec: rec, x: x, size: int64(len(x.RequestBody))}) {
		return next(req) // dropped and counted: the writer is behind
	}

	resp, err := next(req)
	if err != nil {
		x.Error = err.Error()
		in.finish(rec, x, nil, start)
		return resp, err
	}
	x.RequestHeaders, x.RequestBody = nil, "" // written with the start
	x.Status = resp.StatusCode
	x.ResponseHeaders = flatHeaders(resp.Header)
	x.Streamed = strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	resp.Body = &recordingBody{rc: resp.Body, in: in, rec: rec, x: x, start: start, ctx: req.Context(), max: ins.MaxBody}
	return resp, nil
}

// finish hands the exchange's outcome to the writer; raw is the response
// as read, which the writer assembles (not the run's goroutine).
func (in *inspection) finish(rec *exchangeRecord, x db.Exchange, raw []byte, start time.Time) {
	d := time.Since(start).Milliseconds()
	x.DurationMS = &d
	if raw == nil {
		raw = []byte{}
	}
	in.ins.enqueue(&inspectOp{rec: rec, finish: true, x: x, raw: raw, size: int64(len(raw))})
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
	rec   *exchangeRecord
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
		if b.rerr != nil {
			x.Error = "reading the response: " + b.rerr.Error()
		} else if b.ctx.Err() != nil {
			x.Error = "the run stopped reading the response (" + context.Cause(b.ctx).Error() + ")"
		}
		b.in.finish(b.rec, x, b.buf.Bytes(), b.start)
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
