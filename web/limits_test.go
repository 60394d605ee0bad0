package web

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/api"
	"github.com/assistantd/assistantd/handlers/ui"
)

const testKey = "sk-test-key-0123456789"

// serveApp runs the whole server (API and web app on a real SQLite store)
// behind NewHTTPServer with limits l on a real listener, and returns its
// address.
func serveApp(t *testing.T, l Limits) string {
	t.Helper()
	store, err := db.Open(context.Background(), t.TempDir(), db.WithPasswordCost(bcrypt.MinCost))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := New(Config{
		API: api.NewAPI(store, nil, 256<<20, log),
		UI:  ui.New(ui.Config{Store: store, HashKey: make([]byte, 64), BlockKey: make([]byte, 32), MaxUpload: 256 << 20, Log: log}),
		CheckKey: func(_ context.Context, key string) (db.Principal, bool, error) {
			return db.Principal{ProjectID: db.DefaultProjectID}, key == testKey, nil
		},
		Health: store.Ping,
		Logger: log,
	})
	return serve(t, h, l)
}

func serve(t *testing.T, h http.Handler, l Limits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer(h, l, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// testLimits are DefaultLimits with times short enough for a test.
func testLimits() Limits {
	l := DefaultLimits()
	l.BodyGrace = 500 * time.Millisecond
	l.MinBodyRate = 64 << 10
	l.WriteStall = 500 * time.Millisecond
	return l
}

// dial opens a raw connection that gives up reading after wait.
func dial(t *testing.T, addr string, wait time.Duration) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	return conn
}

func TestSlowBodyIsCutOff(t *testing.T) {
	l := testLimits()
	addr := serveApp(t, l)
	for path, ctype := range map[string]string{
		"/v1/files":      "multipart/form-data; boundary=b",
		"/v1/assistants": "application/json",
		"/login":         "application/x-www-form-urlencoded",
	} {
		t.Run(path, func(t *testing.T) {
			conn := dial(t, addr, 30*time.Second)
			start := time.Now()
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: 100000\r\n\r\n", path, testKey, ctype)
			// Drip one byte every 50 ms (20 bytes a second) until the
			// server answers or hangs up; sending the whole body would
			// take well over an hour.
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					select {
					case <-time.After(50 * time.Millisecond):
					case <-t.Context().Done():
						return
					}
					if _, err := conn.Write([]byte("a")); err != nil {
						return
					}
				}
			}()
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			elapsed := time.Since(start)
			if err != nil {
				t.Fatalf("no response after %s: %v", elapsed, err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusRequestTimeout || !res.Close {
				t.Errorf("status %d, Connection: close %v; want 408 and the connection closed", res.StatusCode, res.Close)
			}
			// Cut off within the documented limit: BodyGrace (the byte
			// rate never reaches MinBodyRate), with room for a slow machine.
			if limit := l.BodyGrace + 2*time.Second; elapsed > limit {
				t.Errorf("cut off after %s, want within %s", elapsed, limit)
			}
			t.Logf("cut off after %s (BodyGrace %s)", elapsed.Round(time.Millisecond), l.BodyGrace)
			conn.Close()
			<-done
		})
	}
}

// upload posts a file of size bytes to /v1/files, feeding the body in
// chunks of chunk bytes with pause between them.
func upload(t *testing.T, addr string, size, chunk int, pause time.Duration) (*http.Response, []byte) {
	t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		_ = mw.WriteField("purpose", "assistants")
		w, _ := mw.CreateFormFile("file", "big.bin")
		buf := make([]byte, chunk)
		_, _ = rand.Read(buf)
		for sent := 0; sent < size; sent += chunk {
			if _, err := w.Write(buf[:min(chunk, size-sent)]); err != nil {
				pw.CloseWithError(err)
				return
			}
			if pause > 0 {
				time.Sleep(pause) // the client's own pace, not a wait for the server
			}
		}
		pw.CloseWithError(mw.Close())
	}()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/files", pr)
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, body
}

func TestLargeAndSteadyUploadsSucceed(t *testing.T) {
	l := testLimits()
	addr := serveApp(t, l)
	check := func(name string, res *http.Response, body []byte, size int) {
		t.Helper()
		var f struct {
			Bytes int `json:"bytes"`
		}
		if res.StatusCode != http.StatusOK || json.Unmarshal(body, &f) != nil || f.Bytes != size {
			t.Errorf("%s: status %d, body %.200s", name, res.StatusCode, body)
		}
	}
	// 64 MiB as fast as loopback goes.
	start := time.Now()
	res, body := upload(t, addr, 64<<20, 1<<20, 0)
	check("64 MiB", res, body, 64<<20)
	t.Logf("64 MiB uploaded in %s", time.Since(start).Round(time.Millisecond))
	// A slow but steady upload for several times BodyGrace: 16 KiB every
	// 125 ms is 128 KiB/s, twice MinBodyRate.
	start = time.Now()
	res, body = upload(t, addr, 384<<10, 16<<10, 125*time.Millisecond)
	check("steady 128 KiB/s", res, body, 384<<10)
	t.Logf("384 KiB at 128 KiB/s uploaded in %s (BodyGrace %s)", time.Since(start).Round(time.Millisecond), l.BodyGrace)
}

func TestUnauthorizedBodyIsNotDrained(t *testing.T) {
	l := DefaultLimits()
	l.BodyGrace = 3 * time.Second // the 401 must come well before this
	addr := serveApp(t, l)
	conn := dial(t, addr, time.Second)
	// A body declared but never sent, small enough that net/http would
	// otherwise wait to discard it before answering.
	fmt.Fprintf(conn, "POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong-key\r\nContent-Type: application/json\r\nContent-Length: 200000\r\n\r\n")
	br := bufio.NewReader(conn)
	start := time.Now()
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to a wrong key within 1 s: %v", err)
	}
	t.Logf("401 after %s", time.Since(start).Round(time.Millisecond))
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized || !res.Close {
		t.Errorf("status %d, Connection: close %v; want 401 and close", res.StatusCode, res.Close)
	}
	// The server hangs up once the unsent rest of the body has had
	// BodyGrace to arrive.
	_ = conn.SetReadDeadline(time.Now().Add(l.BodyGrace + 5*time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		var ne net.Error
		if !errors.As(err, &ne) || ne.Timeout() {
			t.Errorf("after the 401 the connection stays open: %v", err)
		}
	}
}

func TestHeaderSizeCapped(t *testing.T) {
	addr := serveApp(t, DefaultLimits())
	conn := dial(t, addr, 10*time.Second)
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 100<<10))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("100 KiB of headers: status %d, want 431", res.StatusCode)
	}
	// An ordinary request is fine.
	res, err = http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("healthz: %d", res.StatusCode)
	}
}

func TestWriteLimitKeepsStreamsAndDropsStalledReaders(t *testing.T) {
	l := testLimits() // WriteStall 500 ms
	writeErr := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		if r.URL.Path == "/stream" {
			// An SSE stream longer than WriteStall in all, with one quiet
			// spell between events longer than WriteStall too (a run
			// waiting on a slow model).
			for i := range 8 {
				fmt.Fprintf(w, "data: %d\n\n", i)
				w.(http.Flusher).Flush()
				pause := 100 * time.Millisecond
				if i == 3 {
					pause = 2 * l.WriteStall
				}
				time.Sleep(pause) // the stream's own pace
			}
			return
		}
		// /flood: write until the client, which reads nothing, makes a
		// write wait longer than WriteStall.
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				writeErr <- err
				return
			}
		}
	})
	addr := serve(t, h, l)

	res, err := http.Get("http://" + addr + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || strings.Count(string(body), "data: ") != 8 {
		t.Errorf("stream: %v, got %q", err, body)
	}

	conn := dial(t, addr, time.Minute)
	fmt.Fprintf(conn, "GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case err := <-writeErr:
		if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout") {
			t.Logf("write ended with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a client that reads nothing held the response for 30 s")
	}
}
