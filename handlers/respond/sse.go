package respond

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v5"
)

// Heartbeat is how often an idle stream sends an SSE comment, which every
// SDK and EventSource ignores, so proxies do not cut a stream waiting on a
// slow model.
const Heartbeat = 15 * time.Second

// SSE writes one Server-Sent Events response. Every write is flushed at
// once: a token must reach the client when it is made. A write error means
// the client went away; callers then stop (what they stream goes on).
type SSE struct {
	w     http.ResponseWriter
	flush func()
}

// StartSSE sends the event-stream headers and the status, and flushes them
// so the client sees the stream open before the first event.
func StartSSE(c *echo.Context) *SSE {
	w := c.Response()
	flusher, ok := w.(http.Flusher)
	if !ok {
		if rw, err := echo.UnwrapResponse(w); err == nil {
			flusher, ok = rw.ResponseWriter.(http.Flusher)
		}
	}
	s := &SSE{w: w, flush: func() {}}
	if ok {
		s.flush = flusher.Flush
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Connection", "keep-alive")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s.flush()
	return s
}

// Event writes one event: its name (none when empty), id (none when
// empty) and data, in one write.
func (s *SSE) Event(name, id string, data []byte) error {
	return s.write(appendEvent(make([]byte, 0, len(data)+len(name)+len(id)+24), name, id, data))
}

// Raw writes text as is: a field such as "retry: 1000\n\n".
func (s *SSE) Raw(text string) error { return s.write([]byte(text)) }

// KeepAlive writes the heartbeat comment.
func (s *SSE) KeepAlive() error { return s.write([]byte(keepAlive)) }

func (s *SSE) write(b []byte) error {
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("sse: %w", err)
	}
	s.flush()
	return nil
}

// Streams ends a surface's open streams when the server shuts down: the
// runs behind them go on (or resume after a restart), and clients poll or
// reconnect.
type Streams struct {
	closing context.Context // done once Close is called
	close   context.CancelFunc
	beat    time.Duration // the heartbeat of streams served with Stream
	log     *slog.Logger  // for a detached stream's panic, which no handler sees

	// inlineMax streams at once are written by their handler (see
	// Stream); inline counts them.
	inlineMax int64
	inline    atomic.Int64
}

// InlineStreams is how many streams of a surface the server keeps on
// their connections' own goroutines (KeepInline) before it detaches them.
const InlineStreams = 256

// KeepInline lets up to n streams at once be written by their handlers,
// on connections kept alive for the client's next request; streams beyond
// them are detached (see Stream). Call it before serving.
func (s *Streams) KeepInline(n int) { s.inlineMax = int64(n) }

// takeInline reserves a place for a stream written by its handler; false
// when all are taken.
func (s *Streams) takeInline() bool {
	if s.inline.Add(1) <= s.inlineMax {
		return true
	}
	s.inline.Add(-1)
	return false
}

// NewStreams returns a Streams still open; log (nil: slog's default)
// reports what goes wrong in a stream its handler no longer watches.
func NewStreams(log *slog.Logger) *Streams {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Streams{closing: ctx, close: cancel, beat: Heartbeat, log: log}
}

// Close ends every stream begun with Context; it may be called more than
// once.
func (s *Streams) Close() { s.close() }

// Context returns ctx cancelled also when Close is called. It costs no
// goroutine per stream (context.AfterFunc runs only at Close).
func (s *Streams) Context(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.closing, cancel)
	return ctx, func() { stop(); cancel() }
}
