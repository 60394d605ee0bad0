package respond

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v5"
)

// A Feed gives a stream its events as they become ready, without a
// goroutine of the stream's own waiting for them: the stream asks Fill for
// what is ready, and when nothing is, asks Notify to be woken when more
// may be. Fill, Notify and Stop are called by one goroutine at a time.
type Feed interface {
	// Fill writes the events ready now to b and reports whether the stream
	// is complete (its last events are in b). It may wait briefly (a store
	// read) but never for events to come.
	Fill(b *Batch) (done bool)
	// Notify arranges one call of wake when Fill may have more to write:
	// at once if it has now. wake does not block.
	Notify(wake func())
	// Stop withdraws a wake Notify arranged: the stream is over.
	Stop()
}

// Batch is the text of the events one write sends: every event is written
// whole, and what is ready at once goes out in one write.
type Batch struct {
	buf []byte
}

// Event adds one event: its name (none when empty), id (none when empty)
// and data.
func (b *Batch) Event(name, id string, data []byte) { b.buf = appendEvent(b.buf, name, id, data) }

// Raw adds text as is: a field such as "retry: 1000\n\n".
func (b *Batch) Raw(text string) { b.buf = append(b.buf, text...) }

// KeepAlive adds the heartbeat comment.
func (b *Batch) KeepAlive() { b.buf = append(b.buf, keepAlive...) }

const keepAlive = ": keep-alive\n\n"

func appendEvent(buf []byte, name, id string, data []byte) []byte {
	if name != "" {
		buf = append(append(append(buf, "event: "...), name...), '\n')
	}
	if id != "" {
		buf = append(append(append(buf, "id: "...), id...), '\n')
	}
	return append(append(append(buf, "data: "...), data...), "\n\n"...)
}

// chunkRoom is the room a batch keeps before its text for the chunk size
// line of chunked transfer encoding (at most 8 hex digits and CRLF).
const chunkRoom = 10

var batches = sync.Pool{New: func() any { return &Batch{buf: make([]byte, chunkRoom, 1024)} }}

func getBatch() *Batch {
	b := batches.Get().(*Batch)
	b.buf = b.buf[:chunkRoom]
	return b
}

func putBatch(b *Batch) {
	if cap(b.buf) <= 64<<10 {
		batches.Put(b)
	}
}

type writeStallKey struct{}

// WithWriteStall records in ctx how long a client may take to accept one
// write of a response; a detached stream applies it to its writes, as the
// server's own writer does.
func WithWriteStall(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, writeStallKey{}, d)
}

const detachedKey = "respond.detached"

// Stream serves an event-stream response from feed until the feed is
// complete, the client goes away, or streams close (the server shuts
// down); what the feed reads goes on either way.
//
// While few streams are open (up to KeepInline's count), the handler's
// goroutine writes the stream and the connection stays open for the
// client's next request: a client streaming run after run does not dial
// again for each (which cost about 0.3 ms of every run's first token in
// tests/loadgen).
//
// Beyond them, over HTTP/1.x the connection is detached from net/http
// once the headers are out (hijacked): the handler returns, and with it net/http's
// goroutine for the connection and its read and write buffers; each batch
// of events is then written, chunked, by a short-lived goroutine the
// feed's wake starts, so an open stream holds no goroutine while it waits.
// The response says Connection: close, and the connection is closed after
// the last chunk. A client that goes away is noticed when a write fails
// (the next event or heartbeat). Middleware that acts when the request
// ends (logs, metrics, spans) finds the stream with DetachedOf and
// finishes with OnEnd. Where the connection cannot be detached (HTTP/2, a
// recorder in tests) the handler's goroutine writes the stream as before.
func Stream(c *echo.Context, streams *Streams, feed Feed) error {
	if streams.takeInline() {
		defer streams.inline.Add(-1)
	} else if d := detach(c, streams, feed); d != nil {
		c.Set(detachedKey, d)
		d.wake()
		return nil
	}
	ctx, cancel := streams.Context(c.Request().Context())
	defer cancel()
	streamInline(ctx, StartSSE(c), feed, streams.beat)
	return nil
}

// streamInline writes the stream from the handler's goroutine.
func streamInline(ctx context.Context, sse *SSE, feed Feed, beat time.Duration) {
	defer feed.Stop()
	ready := make(chan struct{}, 1)
	wake := func() {
		select {
		case ready <- struct{}{}:
		default:
		}
	}
	idle := time.NewTimer(beat)
	defer idle.Stop()
	for {
		b := getBatch()
		done := feed.Fill(b)
		var err error
		if len(b.buf) > chunkRoom {
			err = sse.write(b.buf[chunkRoom:])
			idle.Reset(beat)
		}
		putBatch(b)
		if err != nil || done {
			return
		}
		feed.Notify(wake)
		select {
		case <-ready:
		case <-idle.C:
			if sse.KeepAlive() != nil {
				return
			}
			idle.Reset(beat)
		case <-ctx.Done():
			return
		}
	}
}

// Detached is a stream whose connection was taken from net/http: see
// Stream.
type Detached struct {
	conn        net.Conn
	feed        Feed
	chunked     bool
	stall       time.Duration
	interval    time.Duration
	heartbeat   *time.Timer
	stopClosing func() bool
	log         *slog.Logger

	mu      sync.Mutex
	running bool // a goroutine is writing the stream
	again   bool // woken while running: look again before stopping
	beat    bool // the heartbeat is due
	closing bool // the server is shutting down
	ended   bool
	ends    []func()
}

// DetachedOf returns the stream the request's handler detached, or nil.
func DetachedOf(c *echo.Context) *Detached {
	d, _ := c.Get(detachedKey).(*Detached)
	return d
}

// OnEnd arranges for f to be called once the stream has ended (at once if
// it has). f runs on the stream's goroutine, after the handler returned:
// it must not use the request's echo.Context, which is reused by then.
func (d *Detached) OnEnd(f func()) {
	d.mu.Lock()
	if !d.ended {
		d.ends = append(d.ends, f)
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	f()
}

// detach sends the event-stream headers and takes the connection from
// net/http, or returns nil (nothing sent) where it cannot.
func detach(c *echo.Context, streams *Streams, feed Feed) *Detached {
	req := c.Request()
	if req.ProtoMajor != 1 || !canHijack(c.Response()) {
		return nil
	}
	// What is left of the body is read now (net/http would after the
	// handler): closing a connection with unread data resets it, and the
	// client could lose the stream's end.
	if req.Body != nil && req.Body != http.NoBody {
		if n, _ := io.CopyN(io.Discard, req.Body, 64<<10+1); n > 64<<10 {
			return nil
		}
	}
	stall, _ := req.Context().Value(writeStallKey{}).(time.Duration)
	w := c.Response()
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Connection", "close") // the connection ends with the stream
	hdr.Set("X-Accel-Buffering", "no")
	chunked := req.ProtoAtLeast(1, 1)
	w.WriteHeader(http.StatusOK)
	// Hijack flushes the headers (net/http frames the body chunked for
	// HTTP/1.1, which the chunks below continue) and hands over the
	// connection; its buffers are dropped.
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// The headers are out (or the connection broken): nothing can be
		// streamed on it.
		return &Detached{ended: true, feed: feed, conn: nopConn{}}
	}
	d := &Detached{conn: conn, feed: feed, chunked: chunked, stall: stall, interval: streams.beat, log: streams.log}
	d.heartbeat = time.AfterFunc(d.interval, d.beatDue)
	d.stopClosing = context.AfterFunc(streams.closing, d.close)
	return d
}

// canHijack reports whether the writer below w can hand over its
// connection (HTTP/1.x from net/http can; HTTP/2 and recorders cannot).
func canHijack(w http.ResponseWriter) bool {
	for {
		switch t := w.(type) {
		case *echo.Response:
			w = t.ResponseWriter
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			_, ok := w.(http.Hijacker)
			return ok
		}
	}
}

// wake starts a goroutine writing what is ready, unless one is at it.
func (d *Detached) wake() {
	d.mu.Lock()
	switch {
	case d.ended:
	case d.running:
		d.again = true
	default:
		d.running = true
		d.mu.Unlock()
		go d.pump()
		return
	}
	d.mu.Unlock()
}

func (d *Detached) beatDue() {
	d.mu.Lock()
	d.beat = true
	d.mu.Unlock()
	d.wake()
}

// close ends the stream at shutdown; a write under way fails at once.
func (d *Detached) close() {
	d.mu.Lock()
	d.closing = true
	d.mu.Unlock()
	_ = d.conn.Close()
	d.wake()
}

// pump writes batches until nothing is ready, then leaves the waiting to
// the feed's Notify and returns.
func (d *Detached) pump() {
	defer func() {
		// No handler (nor its recover middleware) is beneath this
		// goroutine: a panic in the feed ends the stream, not the server.
		if r := recover(); r != nil {
			d.log.Error("stream panicked", "panic", r, "stack", string(debug.Stack()))
			d.end()
		}
	}()
	for {
		d.mu.Lock()
		d.again = false
		beat, closing := d.beat, d.closing
		d.beat = false
		d.mu.Unlock()
		if closing {
			d.end()
			return
		}
		b := getBatch()
		done := d.feed.Fill(b)
		if len(b.buf) == chunkRoom && beat {
			b.KeepAlive()
		}
		var err error
		if len(b.buf) > chunkRoom || done {
			err = d.write(b, done)
			d.heartbeat.Reset(d.interval)
		}
		putBatch(b)
		if err != nil || done {
			d.end()
			return
		}
		d.feed.Notify(d.wake)
		d.mu.Lock()
		if d.again || d.beat || d.closing {
			d.mu.Unlock()
			continue
		}
		d.running = false
		d.mu.Unlock()
		return
	}
}

// write sends the batch in one write: as a chunk (and the last chunk when
// done) over HTTP/1.1.
func (d *Detached) write(b *Batch, done bool) error {
	start := chunkRoom
	if d.chunked {
		if n := len(b.buf) - chunkRoom; n > 0 {
			var digits [8]byte
			size := strconv.AppendInt(digits[:0], int64(n), 16)
			start = chunkRoom - len(size) - 2
			copy(b.buf[start:], size)
			b.buf[chunkRoom-2], b.buf[chunkRoom-1] = '\r', '\n'
			b.buf = append(b.buf, '\r', '\n')
		}
		if done {
			b.buf = append(b.buf, "0\r\n\r\n"...)
		}
	}
	out := b.buf[start:]
	if len(out) == 0 {
		return nil
	}
	if d.stall > 0 {
		_ = d.conn.SetWriteDeadline(time.Now().Add(d.stall))
	}
	if _, err := d.conn.Write(out); err != nil {
		return errors.Join(errWrite, err)
	}
	return nil
}

var errWrite = errors.New("sse: write")

// end closes the connection and runs what waited for the stream's end.
func (d *Detached) end() {
	d.feed.Stop()
	d.heartbeat.Stop()
	d.stopClosing()
	_ = d.conn.Close()
	d.mu.Lock()
	d.ended = true
	ends := d.ends
	d.ends = nil
	d.mu.Unlock()
	for _, f := range ends {
		f()
	}
}

// nopConn stands for a connection that could not be taken over.
type nopConn struct{ net.Conn }

func (nopConn) Close() error { return nil }
