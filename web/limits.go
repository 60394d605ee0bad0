package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/assistantd/assistantd/handlers/respond"
)

// Limits bound what one connection may hold on to, so that clients that
// send or read slowly (on purpose or not) cannot pin connections, memory
// and goroutines for ever. README.md ("Security") documents the defaults.
type Limits struct {
	// ReadHeaderTimeout bounds the wait for a request's headers.
	ReadHeaderTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (431 beyond it).
	MaxHeaderBytes int
	// IdleTimeout closes a kept-alive connection with no request.
	IdleTimeout time.Duration
	// BodyGrace is how long any one read of a request body may wait for
	// data, and the head start before MinBodyRate applies.
	BodyGrace time.Duration
	// MinBodyRate is the slowest average rate, in bytes per second, at
	// which a body may arrive: after BodyGrace, a body must have sent
	// (elapsed - BodyGrace) × MinBodyRate bytes. A large upload at any
	// ordinary speed is unaffected; a body dripped byte by byte is cut off
	// (408) within BodyGrace.
	MinBodyRate int64
	// WriteStall is how long the client may take to accept one write of
	// the response. It is set afresh for every write, so streams (SSE)
	// and large downloads last as long as they keep moving; a client that
	// stops reading is dropped.
	WriteStall time.Duration
}

// DefaultLimits are the limits assistantd serves with.
func DefaultLimits() Limits {
	return Limits{
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		IdleTimeout:       120 * time.Second,
		BodyGrace:         10 * time.Second,
		MinBodyRate:       16 << 10,
		WriteStall:        60 * time.Second,
	}
}

// NewHTTPServer returns the http.Server for h with the limits applied:
// the server's own timeouts and header cap, and per-request body-rate and
// write-stall deadlines (a server-wide ReadTimeout or WriteTimeout would
// cut off large uploads and SSE streams).
func NewHTTPServer(h http.Handler, l Limits, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           withLimits(h, l),
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// ErrSlowBody is the error a request body read returns once the body has
// fallen below the minimum rate (or stalled for BodyGrace).
var ErrSlowBody = errors.New("the request body arrived too slowly")

type bodyKey struct{}

// withLimits applies the per-request deadlines of l around h.
func withLimits(h http.Handler, l Limits) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if l.WriteStall > 0 {
			// A deadline left from the previous request on this
			// connection must not cut this one short; each write sets its
			// own, and the server's final flush after h returns gets one.
			_ = rc.SetWriteDeadline(time.Time{})
			defer func() { _ = rc.SetWriteDeadline(time.Now().Add(l.WriteStall)) }()
			w = &stallWriter{ResponseWriter: w, rc: rc, stall: l.WriteStall}
			// A stream detached from net/http applies it itself.
			r = r.WithContext(respond.WithWriteStall(r.Context(), l.WriteStall))
		}
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 || l.BodyGrace <= 0 {
			h.ServeHTTP(w, r)
			return
		}
		b := &rateBody{body: r.Body, rc: rc, start: time.Now(), l: l}
		r.Body = b
		r = r.WithContext(context.WithValue(r.Context(), bodyKey{}, b))
		h.ServeHTTP(w, r)
		// net/http reads what is left of a body (up to 256 KiB) once the
		// handler returns, whether it keeps the connection or closes it
		// after an error (closing with unread data would reset it, and
		// the client could lose the response). That read gets BodyGrace,
		// so a declared-but-unsent body cannot hold the connection longer;
		// a body already cut off for slowness gets no more time.
		if unread, slow := b.state(); unread {
			deadline := time.Now().Add(l.BodyGrace)
			if slow {
				deadline = time.Now()
			}
			_ = rc.SetReadDeadline(deadline)
		}
	})
}

// rateBody enforces Limits.BodyGrace and MinBodyRate on a request body
// through the connection's read deadline.
type rateBody struct {
	body  io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	l     Limits

	mu       sync.Mutex
	n        int64
	eof      bool
	timedOut bool
}

func (b *rateBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	now := time.Now()
	deadline := now.Add(b.l.BodyGrace)
	if b.l.MinBodyRate > 0 {
		earned := time.Duration(float64(b.n) / float64(b.l.MinBodyRate) * float64(time.Second))
		if d := b.start.Add(b.l.BodyGrace + earned); d.Before(deadline) {
			deadline = d
		}
	}
	b.mu.Unlock()
	// A writer that cannot set deadlines (no net.Conn below, as in
	// httptest.ResponseRecorder) just reads without a limit.
	_ = b.rc.SetReadDeadline(deadline)
	n, err := b.body.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		b.eof = true
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.timedOut = true
		err = fmt.Errorf("%w (%d bytes in %s; at least %d bytes a second are needed)", ErrSlowBody, b.n,
			time.Since(b.start).Round(time.Millisecond), b.l.MinBodyRate)
	}
	return n, err
}

func (b *rateBody) Close() error { return b.body.Close() }

// unread reports whether the body was left (partly) unread, and whether
// it was cut off for being too slow.
func (b *rateBody) state() (unread, slow bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.eof, b.timedOut
}

// bodyState reports on the request's body as rateBody saw it.
func bodyState(r *http.Request) (unread, slow bool) {
	if b, ok := r.Context().Value(bodyKey{}).(*rateBody); ok {
		return b.state()
	}
	return false, false
}

// slowBodyError is the response to a body cut off by the rate limit.
func slowBodyError() *respond.Error {
	return &respond.Error{Status: http.StatusRequestTimeout, Type: "invalid_request_error",
		Message: "The request body arrived too slowly, so the server stopped waiting for it. Send it again."}
}

// stallWriter gives every write of the response Limits.WriteStall to
// complete.
type stallWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

func (w *stallWriter) arm() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.stall)) }

func (w *stallWriter) WriteHeader(code int) { w.arm(); w.ResponseWriter.WriteHeader(code) }

func (w *stallWriter) Write(p []byte) (int, error) { w.arm(); return w.ResponseWriter.Write(p) }

// Flush keeps SSE streams flushing through the wrapper.
func (w *stallWriter) Flush() { w.arm(); _ = w.rc.Flush() }

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *stallWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
