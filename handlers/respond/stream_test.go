package respond

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v5"
)

// testFeed is a Feed over a list that the test appends to, as a run's
// hub log is appended to by the run.
type testFeed struct {
	mu      sync.Mutex
	events  []string // event names; "end" completes the stream
	next    int
	wake    func()
	stopped chan struct{}
}

func newTestFeed() *testFeed { return &testFeed{stopped: make(chan struct{})} }

func (f *testFeed) publish(name string) {
	f.mu.Lock()
	f.events = append(f.events, name)
	wake := f.wake
	f.wake = nil
	f.mu.Unlock()
	if wake != nil {
		wake()
	}
}

func (f *testFeed) Fill(b *Batch) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ; f.next < len(f.events); f.next++ {
		name := f.events[f.next]
		if name == "end" {
			b.Event("done", "", []byte("[DONE]"))
			f.next++
			return true
		}
		b.Event(name, "", []byte(fmt.Sprintf(`{"n":%d}`, f.next)))
	}
	return false
}

func (f *testFeed) Notify(wake func()) {
	f.mu.Lock()
	if f.next < len(f.events) {
		f.mu.Unlock()
		wake()
		return
	}
	f.wake = wake
	f.mu.Unlock()
}

func (f *testFeed) Stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wake = nil
	select {
	case <-f.stopped:
	default:
		close(f.stopped)
	}
}

// server serves feed at /stream through Echo, with a middleware that
// records, as the web package's do, whether the handler returned before
// the stream ended.
type server struct {
	*httptest.Server
	streams  *Streams
	feed     *testFeed
	detached chan bool     // whether the handler left a detached stream
	ended    chan struct{} // closed by OnEnd, or when the handler returned inline
}

func newServer(t *testing.T, http2 bool) *server {
	t.Helper()
	s := &server{streams: NewStreams(nil), feed: newTestFeed(), detached: make(chan bool, 1), ended: make(chan struct{})}
	s.streams.beat = 100 * time.Millisecond
	e := echo.New()
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			err := next(c)
			d := DetachedOf(c)
			s.detached <- d != nil
			if d != nil {
				d.OnEnd(func() { close(s.ended) })
			} else {
				close(s.ended)
			}
			return err
		}
	})
	e.GET("/stream", func(c *echo.Context) error { return Stream(c, s.streams, s.feed) })
	s.Server = httptest.NewUnstartedServer(e)
	if http2 {
		s.EnableHTTP2 = true
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	t.Cleanup(s.streams.Close)
	return s
}

func (s *server) open(t *testing.T, ctx context.Context) (*http.Response, *bufio.Reader) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/stream", nil)
	res, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	return res, bufio.NewReader(res.Body)
}

// readEvent reads one event, or heartbeat, up to its blank line.
func readEvent(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var lines []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read after %q: %v", lines, err)
		}
		if line == "\n" {
			return strings.Join(lines, "")
		}
		lines = append(lines, line)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStreamDetachesHTTP1(t *testing.T) {
	s := newServer(t, false)
	s.feed.publish("first")
	res, r := s.open(t, testCtx(t))
	if len(res.TransferEncoding) != 1 || res.TransferEncoding[0] != "chunked" || !res.Close {
		t.Errorf("Transfer-Encoding %q, Connection close %v; want chunked, close", res.TransferEncoding, res.Close)
	}
	if got := readEvent(t, r); got != "event: first\ndata: {\"n\":0}\n" {
		t.Fatalf("first event %q", got)
	}
	// The handler has returned while the stream is open: it was detached.
	if !<-s.detached {
		t.Fatal("the HTTP/1.1 stream was not detached")
	}
	// Each event reaches the client when published, not when the stream
	// ends.
	for i := 1; i <= 3; i++ {
		s.feed.publish(fmt.Sprintf("ev%d", i))
		if got, want := readEvent(t, r), fmt.Sprintf("event: ev%d\ndata: {\"n\":%d}\n", i, i); got != want {
			t.Fatalf("event %d: %q, want %q", i, got, want)
		}
	}
	select {
	case <-s.ended:
		t.Fatal("the stream's end was reported while it was open")
	default:
	}
	s.feed.publish("end")
	if got := readEvent(t, r); got != "event: done\ndata: [DONE]\n" {
		t.Fatalf("last event %q", got)
	}
	// The body ends cleanly: the last chunk arrived (a connection closed
	// without it is an unexpected EOF).
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Fatalf("after the last event: %q, %v", rest, err)
	}
	<-s.ended
	<-s.feed.stopped
}

func TestStreamHeartbeatWhileIdle(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("http2=%v", h2), func(t *testing.T) {
			s := newServer(t, h2)
			_, r := s.open(t, testCtx(t))
			// Nothing is published: heartbeats keep the stream alive.
			for i := 0; i < 2; i++ {
				if got := readEvent(t, r); got != ": keep-alive\n" {
					t.Fatalf("idle stream sent %q, want the heartbeat", got)
				}
			}
			s.feed.publish("late")
			if got := readEvent(t, r); got != "event: late\ndata: {\"n\":0}\n" {
				t.Fatalf("got %q", got)
			}
		})
	}
}

func TestStreamInlineOverHTTP2(t *testing.T) {
	s := newServer(t, true)
	res, r := s.open(t, testCtx(t))
	if res.ProtoMajor != 2 {
		t.Fatalf("served over %s", res.Proto)
	}
	s.feed.publish("a")
	if got := readEvent(t, r); got != "event: a\ndata: {\"n\":0}\n" {
		t.Fatalf("got %q", got)
	}
	s.feed.publish("end")
	if got := readEvent(t, r); got != "event: done\ndata: [DONE]\n" {
		t.Fatalf("got %q", got)
	}
	if detached := <-s.detached; detached {
		t.Fatal("an HTTP/2 stream cannot be detached, yet DetachedOf returned one")
	}
	<-s.ended
}

func TestStreamClientGoneEndsIt(t *testing.T) {
	s := newServer(t, false)
	ctx, cancel := context.WithCancel(testCtx(t))
	_, r := s.open(t, ctx)
	s.feed.publish("a")
	readEvent(t, r)
	cancel() // the client closes its connection
	// The next writes (events or heartbeats) fail, and the stream ends:
	// the feed is stopped and the end reported.
	done := time.After(5 * time.Second)
	for {
		select {
		case <-s.feed.stopped:
			select {
			case <-s.ended:
			case <-done:
				t.Fatal("the feed was stopped but the stream's end not reported")
			}
			return
		case <-time.After(20 * time.Millisecond):
			s.feed.publish("more")
		case <-done:
			t.Fatal("the stream of a client that went away did not end")
		}
	}
}

func TestStreamsCloseEndsDetachedStreams(t *testing.T) {
	s := newServer(t, false)
	_, r := s.open(t, testCtx(t))
	s.feed.publish("a")
	readEvent(t, r)
	if !<-s.detached {
		t.Fatal("not detached")
	}
	s.streams.Close()
	if _, err := io.ReadAll(r); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("reading a stream closed at shutdown: %v, want an unexpected EOF (no last chunk)", err)
	}
	<-s.ended
	<-s.feed.stopped
}

func TestStreamStalledClientIsDropped(t *testing.T) {
	s := &server{streams: NewStreams(nil), feed: newTestFeed(), detached: make(chan bool, 1), ended: make(chan struct{})}
	e := echo.New()
	e.GET("/stream", func(c *echo.Context) error {
		c.SetRequest(c.Request().WithContext(WithWriteStall(c.Request().Context(), 200*time.Millisecond)))
		err := Stream(c, s.streams, s.feed)
		DetachedOf(c).OnEnd(func() { close(s.ended) })
		return err
	})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A small receive buffer, never read from: the server's writes stall.
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
	big := strings.Repeat("x", 64<<10)
	deadline := time.After(8 * time.Second)
	for {
		select {
		case <-s.ended:
			return
		case <-deadline:
			t.Fatal("a client that stopped reading was not dropped")
		case <-time.After(10 * time.Millisecond):
			s.feed.publish(big)
		}
	}
}

// panicFeed panics on its second Fill, as a bug in an encoder would.
type panicFeed struct{ *testFeed }

func (f panicFeed) Fill(b *Batch) bool {
	f.mu.Lock()
	n := f.next
	f.mu.Unlock()
	if n > 0 {
		panic("encoder bug")
	}
	return f.testFeed.Fill(b)
}

func TestStreamPanicEndsOnlyTheStream(t *testing.T) {
	streams := NewStreams(slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(streams.Close)
	feed := panicFeed{newTestFeed()}
	ended := make(chan struct{})
	e := echo.New()
	e.GET("/stream", func(c *echo.Context) error {
		err := Stream(c, streams, feed)
		DetachedOf(c).OnEnd(func() { close(ended) })
		return err
	})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	res, err := srv.Client().Get(srv.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	r := bufio.NewReader(res.Body)
	feed.publish("a")
	readEvent(t, r)
	feed.publish("b") // the next Fill panics
	if _, err := io.ReadAll(r); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("after the panic: %v, want the stream cut short", err)
	}
	<-ended
	// The server (this process) is still there to serve.
	res2, err := srv.Client().Get(srv.URL + "/nothing")
	if err != nil {
		t.Fatal(err)
	}
	res2.Body.Close()
}

// Up to KeepInline's count of streams at once are written by their
// handlers on connections kept alive; one more opened while they are open
// is detached; once one has ended, the next is inline again, on the
// connection the ended one leaves.
func TestStreamKeepsFewInline(t *testing.T) {
	streams := NewStreams(nil)
	streams.KeepInline(1)
	feeds := map[string]*testFeed{"a": newTestFeed(), "b": newTestFeed(), "c": newTestFeed()}
	detached := make(chan string, 3)
	e := echo.New()
	e.GET("/stream/:f", func(c *echo.Context) error {
		err := Stream(c, streams, feeds[c.Param("f")])
		if DetachedOf(c) != nil {
			detached <- c.Param("f") + " detached"
		} else {
			detached <- c.Param("f") + " inline"
		}
		return err
	})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	t.Cleanup(streams.Close)
	ctx := testCtx(t)
	resA, rA, _ := openStream(t, ctx, srv, feeds, "a")
	if resA.Close {
		t.Error("the first stream is inline, yet its connection is closed after it")
	}
	resB, _, _ := openStream(t, ctx, srv, feeds, "b")
	if !resB.Close {
		t.Error("the second stream, opened while the first is inline, is not detached (its connection is not closed after it)")
	}
	if got := <-detached; got != "b detached" {
		t.Fatalf("the second stream's handler returned %q, want b detached", got)
	}
	feeds["a"].publish("end")
	if got := readEvent(t, rA); got != "event: done\ndata: [DONE]\n" {
		t.Fatalf("a's last event %q", got)
	}
	if rest, err := io.ReadAll(rA); err != nil || len(rest) != 0 {
		t.Fatalf("after a's last event: %q, %v", rest, err)
	}
	resA.Body.Close()
	if got := <-detached; got != "a inline" {
		t.Fatalf("the first stream's handler returned %q, want a inline", got)
	}
	resC, rC, reused := openStream(t, ctx, srv, feeds, "c")
	if resC.Close || !*reused {
		t.Errorf("the third stream, the first having ended: Connection close %v, connection reused %v; want inline on a's connection", resC.Close, *reused)
	}
	feeds["c"].publish("end")
	if got := readEvent(t, rC); got != "event: done\ndata: [DONE]\n" {
		t.Fatalf("c's last event %q", got)
	}
	if got := <-detached; got != "c inline" {
		t.Fatalf("the third stream's handler returned %q, want c inline", got)
	}
}

// openStream opens /stream/name, publishes one event on its feed and
// reads it; reused reports whether the request went on a kept connection.
func openStream(t *testing.T, ctx context.Context, srv *httptest.Server, feeds map[string]*testFeed, name string) (res *http.Response, r *bufio.Reader, reused *bool) {
	t.Helper()
	reused = new(bool)
	tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { *reused = i.Reused }})
	req, _ := http.NewRequestWithContext(tctx, http.MethodGet, srv.URL+"/stream/"+name, nil)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	feeds[name].publish("hello")
	r = bufio.NewReader(res.Body)
	if got, want := readEvent(t, r), "event: hello\ndata: {\"n\":0}\n"; got != want {
		t.Fatalf("%s's first event %q, want %q", name, got, want)
	}
	return res, r, reused
}
