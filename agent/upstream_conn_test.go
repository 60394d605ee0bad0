package agent_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/tests/upstream"
)

// TestUpstreamConnectionReused: runs one after another reuse one
// connection to the upstream (each streamed answer is read to its end
// before its body is closed), instead of dialling for each run.
func TestUpstreamConnectionReused(t *testing.T) {
	var dialled atomic.Int32
	up := upstream.New()
	// Chunks apart, as from a real model: the response's end then
	// arrives after its last chunk has been read.
	up.ChunkDelay = 2 * time.Millisecond
	srv := httptest.NewUnstartedServer(up)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dialled.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	store, eng, newRun := bareEngine(t, srv.URL+"/v1")
	startEngine(t, eng)
	const runs = 5
	for i := range runs {
		waitRun(t, store, newRun(fmt.Sprintf("run %d [[chunks 3]]", i)), db.RunCompleted)
	}
	if n := dialled.Load(); n != 1 {
		t.Errorf("%d runs, one after another, opened %d connections to the upstream; want 1", runs, n)
	}
}

// TestUpstreamOpenAfterDone: an upstream that keeps its response open
// after data: [DONE] does not hold the run up.
func TestUpstreamOpenAfterDone(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, data := range []string{
			`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"hi"},"finish_reason":null}]}`,
			`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
			`[DONE]`,
		} {
			fmt.Fprintf(w, "data: %s\n\n", data)
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done() // never ends the response
	}))
	t.Cleanup(srv.Close)
	store, eng, newRun := bareEngine(t, srv.URL+"/v1")
	startEngine(t, eng)
	waitRun(t, store, newRun("hello"), db.RunCompleted)
}
