// Package apitest tests assistantd's /v1 API end to end: the real server
// binary, started per test on a temporary data directory, driven over real
// HTTP through openai-go's client (and raw net/http where the SDK cannot send
// the request), with every JSON response checked against OpenAI's OpenAPI
// component schemas.
//
//	go test ./tests/apitest/                    # builds the server first
//	ASSISTANTD_BIN=/path/to/assistantd go test ./tests/apitest/
//
// Each test that needs a server calls startServer, which runs its own
// process on a free loopback port and a temporary data directory, so tests
// run in parallel. Every JSON body the openai-go client (or s.do) receives
// is validated against the route's schema in schema_test.go; add a route
// there when adding an endpoint.
package apitest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/db/dbtest"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// serverBin is the assistantd binary under test.
var serverBin string

// onPostgres is true when the suite runs on PostgreSQL
// (ASSISTANTD_TEST_STORE=postgres, with ASSISTANTD_TEST_POSTGRES naming the
// server): each server then gets a database of its own, made from a
// migrated template and dropped when its test ends.
var onPostgres = os.Getenv("ASSISTANTD_TEST_STORE") == "postgres"

// storeArgs returns the flags that put a new server's records in its own
// PostgreSQL database, or none on SQLite.
func storeArgs(t testing.TB) []string {
	t.Helper()
	if !onPostgres {
		return nil
	}
	if dbtest.URL() == "" {
		t.Fatal("ASSISTANTD_TEST_STORE=postgres needs " + dbtest.EnvURL)
	}
	// A short run lease: a server killed and started again resumes its
	// runs once their lease has expired (another replica could hold them).
	return []string{"--database-url", dbtest.Database(t, migrateTemplate), "--run-lease", "2s"}
}

// migrateTemplate migrates the template database servers' databases copy.
func migrateTemplate(url string) error {
	dir, err := os.MkdirTemp("", "assistantd-apitest-tmpl-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s, err := db.Open(context.Background(), dir, db.WithDatabaseURL(url))
	if err != nil {
		return err
	}
	return s.Close()
}

// sqliteOnly skips a test that looks into the SQLite database or the data
// directory's file contents, which PostgreSQL does not have.
func sqliteOnly(t testing.TB) {
	t.Helper()
	if onPostgres {
		t.Skip("looks into SQLite's data directory")
	}
}

// Deadlines for the server process; generous for a loaded CI machine.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 20 * time.Second
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

// testMain builds the server once (or uses $ASSISTANTD_BIN), then runs the
// tests.
func testMain(m *testing.M) int {
	serverBin = os.Getenv("ASSISTANTD_BIN")
	if serverBin == "" {
		dir, err := os.MkdirTemp("", "assistantd-apitest-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "apitest:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		serverBin = filepath.Join(dir, "assistantd")
		build := exec.Command("go", "build", "-o", serverBin, "github.com/assistantd/assistantd")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "apitest: building the server:", err)
			return 1
		}
	}
	defer dbtest.Cleanup()
	return m.Run()
}

// server is one running assistantd process.
type server struct {
	URL  string // base URL, e.g. http://127.0.0.1:41234 (no /v1)
	Key  string // the API key it was started with
	Data string // its data directory
	// DatabaseURL is its PostgreSQL database ("" on SQLite).
	DatabaseURL string
	Client      openai.Client // openai-go client for URL/v1, validating every response

	t      testing.TB
	args   []string // the extra flags, kept for restart
	env    []string // extra environment variables (NAME=value), if any
	cmd    *exec.Cmd
	out    *watchWriter // stdout
	errBuf *syncBuffer  // stderr
	exited chan struct{}
	err    error // cmd.Wait's result, valid once exited is closed
}

// startServer starts assistantd on a free loopback port with a fresh data
// directory and a random API key, plus extraArgs (e.g. "--upstream-url",
// url). It is stopped (SIGTERM) when the test ends, and its stderr is shown
// if the test failed.
func startServer(t testing.TB, extraArgs ...string) *server {
	t.Helper()
	return newServer(t, "sk-test-"+randomHex(16), t.TempDir(), extraArgs...)
}

// newServer is startServer with a chosen key ("" starts the server without
// --api-key) and data directory.
func newServer(t testing.TB, key, data string, extraArgs ...string) *server {
	t.Helper()
	store := storeArgs(t)
	s := &server{t: t, Key: key, Data: data, args: append(store, extraArgs...)}
	if len(store) >= 2 {
		s.DatabaseURL = store[1]
	}
	s.start(t)
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("server stderr (last lines):\n%s", lastLines(s.errBuf.String(), 60))
		}
	})
	return s
}

// start execs the binary and waits for its "listening" line.
func (s *server) start(t testing.TB) {
	t.Helper()
	if err := s.startErr(); err != nil {
		t.Fatal(err)
	}
}

// startErr is start for any goroutine: it reports failure as an error.
func (s *server) startErr() error {
	args := []string{"--addr", "127.0.0.1:0", "--data", s.Data}
	if s.Key != "" {
		args = append(args, "--api-key", s.Key)
	}
	args = append(args, s.args...)
	s.cmd, s.out, s.errBuf, s.exited = exec.Command(serverBin, args...), newWatchWriter(), &syncBuffer{}, make(chan struct{})
	if s.env != nil {
		s.cmd.Env = append(os.Environ(), s.env...)
	}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.errBuf
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	addr, err := s.out.waitListening(s.exited, startTimeout)
	if err != nil {
		_ = s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("server did not start: %w\nstdout:\n%s\nstderr:\n%s", err, s.out.String(), s.errBuf.String())
	}
	s.URL = "http://" + addr
	s.connect()
	return nil
}

// connect (re)builds Client for URL and Key.
func (s *server) connect() {
	s.Client = openai.NewClient(
		option.WithBaseURL(s.URL+"/v1/"),
		option.WithAPIKey(s.Key),
		option.WithMaxRetries(0),
		option.WithMiddleware(s.validate),
	)
}

// stop sends SIGTERM and waits for a clean exit; it is a no-op once the
// process has exited.
func (s *server) stop(t testing.TB) {
	t.Helper()
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		if s.err != nil {
			t.Errorf("server exited with %v after SIGTERM, want a clean exit\nstderr:\n%s", s.err, s.errBuf.String())
		}
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
		t.Errorf("server did not exit within %v of SIGTERM", stopTimeout)
	}
}

// restart stops the server gracefully and starts it again on the same data
// directory. The port changes: URL and Client are replaced.
func (s *server) restart(t testing.TB) {
	t.Helper()
	s.stop(t)
	s.start(t)
}

// kill ends the server with SIGKILL, as a crash would.
func (s *server) kill(t testing.TB) {
	t.Helper()
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// validate is the client middleware: it reads every response body, checks
// it (checkResponse), and hands the SDK an identical body. A mismatch fails
// the test and the call.
func (s *server) validate(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
	res, err := next(req)
	if err != nil || res == nil {
		return res, err
	}
	if ct := res.Header.Get("Content-Type"); strings.HasPrefix(ct, "text/event-stream") {
		return res, nil // streamed; read incrementally by the SDK
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return res, err
	}
	if err := checkResponse(req.Method, req.URL.Path, res, body); err != nil {
		s.t.Errorf("%s %s → %d: %v\nbody: %s", req.Method, req.URL.Path, res.StatusCode, err, truncate(body, 2000))
		return nil, fmt.Errorf("response check: %w", err)
	}
	return res, nil
}

// rawResponse is a response read by do.
type rawResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends a request with raw net/http (for what the SDK cannot send) with
// the server's key unless header sets Authorization. The response is
// checked like the client's; a check failure fails the test.
func (s *server) do(t testing.TB, method, path string, body io.Reader, header http.Header) rawResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, s.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if _, ok := header["Authorization"]; !ok {
		req.Header.Set("Authorization", "Bearer "+s.Key)
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	if err := checkResponse(method, req.URL.Path, res, b); err != nil {
		t.Errorf("%s %s → %d: %v\nbody: %s", method, path, res.StatusCode, err, truncate(b, 2000))
	}
	return rawResponse{Status: res.StatusCode, Header: res.Header, Body: b}
}

// doJSON is do with a JSON (or deliberately malformed) body string.
func (s *server) doJSON(t testing.TB, method, path, body string) rawResponse {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	return s.do(t, method, path, r, http.Header{"Openai-Beta": {"assistants=v2"}})
}

// watchWriter collects the server's stdout and reports the address of its
// "assistantd listening on http://ADDR" line.
type watchWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	scanned int
	addr    chan string
	found   bool
}

func newWatchWriter() *watchWriter { return &watchWriter{addr: make(chan string, 1)} }

const listeningPrefix = "assistantd listening on http://"

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for !w.found {
		rest := w.buf.Bytes()[w.scanned:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		line := string(rest[:i])
		w.scanned += i + 1
		if after, ok := strings.CutPrefix(line, listeningPrefix); ok {
			addr, _, _ := strings.Cut(after, " ")
			w.found = true
			w.addr <- addr
		}
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// lines returns the complete lines written so far.
func (w *watchWriter) lines() []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(w.String()))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// waitListening waits for the listening line, the process's exit, or the
// deadline, whichever comes first.
func (w *watchWriter) waitListening(exited <-chan struct{}, timeout time.Duration) (string, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case addr := <-w.addr:
		return addr, nil
	case <-exited:
		// The line may have been written just before exiting.
		select {
		case addr := <-w.addr:
			return addr, errors.New("server exited right after printing its address")
		default:
			return "", errors.New("server exited before listening")
		}
	case <-timer.C:
		return "", fmt.Errorf("no %q line within %v", listeningPrefix, timeout)
	}
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine and readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}

// apiError asserts that err is an *openai.Error and returns it.
func apiError(t testing.TB, err error) *openai.Error {
	t.Helper()
	var ae *openai.Error
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want *openai.Error", err)
	}
	return ae
}
