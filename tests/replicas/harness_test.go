// Package replicas tests several assistantd processes serving one
// PostgreSQL database: runs claimed by lease and taken over when a replica
// dies or stalls, control across replicas, exactly-once execution. Each
// test starts real assistantd processes (the binary in ASSISTANTD_BIN, or
// one built for the test run) against the scripted upstream, on a
// database of its own on the server ASSISTANTD_TEST_POSTGRES names; the
// package skips without it.
package replicas

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/db/dbtest"
	"github.com/assistantd/assistantd/tests/upstream"
)

var serverBin string

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	if dbtest.URL() == "" {
		fmt.Println("replicas: " + dbtest.EnvURL + " is not set; skipping (these tests need PostgreSQL)")
		return 0
	}
	serverBin = os.Getenv("ASSISTANTD_BIN")
	if serverBin == "" {
		dir, err := os.MkdirTemp("", "assistantd-replicas-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		serverBin = filepath.Join(dir, "assistantd")
		build := exec.Command("go", "build", "-o", serverBin, "github.com/assistantd/assistantd")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build assistantd:", err)
			return 1
		}
	}
	defer dbtest.Cleanup()
	return m.Run()
}

func migrateTemplate(url string) error {
	dir, err := os.MkdirTemp("", "assistantd-replicas-tmpl-")
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

// cluster is one deployment: a database, the scripted upstream (watched
// by upstreamWatch) and the replicas started on them.
type cluster struct {
	t        *testing.T
	dbURL    string
	key      string
	up       *upstream.Server
	watch    *upstreamWatch
	upURL    string
	db       *sql.DB
	replicas []*replica
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{t: t, dbURL: dbtest.Database(t, migrateTemplate), key: "sk-replicas-" + randomHex(12), up: upstream.New()}
	c.watch = &upstreamWatch{next: c.up}
	srv := httptest.NewServer(c.watch)
	t.Cleanup(srv.Close)
	c.upURL = srv.URL + "/v1"
	conn, err := sql.Open("pgx", c.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c.db = conn
	return c
}

// replica is one assistantd process of a cluster.
type replica struct {
	name   string
	cmd    *exec.Cmd
	URL    string
	Client openai.Client
	logs   *logBuffer
	exited chan struct{}
	// metrics is its /metrics URL when started with --metrics-addr.
	metrics string
}

// start starts a replica with args (e.g. --role worker, --run-lease 1s).
func (c *cluster) start(name string, args ...string) *replica {
	t := c.t
	t.Helper()
	all := append([]string{"--addr", "127.0.0.1:0", "--data", t.TempDir(), "--api-key", c.key,
		"--database-url", c.dbURL, "--upstream-url", c.upURL, "--upstream-retries", "0"}, args...)
	r := &replica{name: name, cmd: exec.Command(serverBin, all...), logs: &logBuffer{}, exited: make(chan struct{})}
	out, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	r.cmd.Stderr = r.logs
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m, ok := strings.CutPrefix(sc.Text(), "metrics listening on "); ok {
				r.metrics = m // printed before the listening line below
			}
			if a, ok := strings.CutPrefix(sc.Text(), "assistantd listening on http://"); ok {
				a, _, _ = strings.Cut(a, " ")
				addr <- a
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() { _ = r.cmd.Wait(); close(r.exited) }()
	select {
	case a := <-addr:
		r.URL = "http://" + a
	case <-r.exited:
		t.Fatalf("replica %s exited at start:\n%s", name, r.logs.String())
	case <-time.After(30 * time.Second):
		_ = r.cmd.Process.Kill()
		t.Fatalf("replica %s did not start:\n%s", name, r.logs.String())
	}
	r.Client = openai.NewClient(option.WithBaseURL(r.URL+"/v1/"), option.WithAPIKey(c.key), option.WithMaxRetries(0))
	c.replicas = append(c.replicas, r)
	t.Cleanup(func() {
		r.signal(syscall.SIGCONT)
		r.signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(15 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
		if t.Failed() {
			t.Logf("replica %s log (last lines):\n%s", name, lastLines(r.logs.String(), 40))
		}
	})
	return r
}

func (r *replica) signal(sig syscall.Signal) {
	select {
	case <-r.exited:
	default:
		_ = r.cmd.Process.Signal(sig)
	}
}

// kill ends the replica with SIGKILL and waits for it.
func (r *replica) kill() {
	r.signal(syscall.SIGKILL)
	<-r.exited
}

func (r *replica) pid() int { return r.cmd.Process.Pid }

// byPID returns the replica whose claims name pid.
func (c *cluster) holder(claimedBy string) *replica {
	m := regexp.MustCompile(`-(\d+)-[0-9a-f]+$`).FindStringSubmatch(claimedBy)
	if m == nil {
		return nil
	}
	pid, _ := strconv.Atoi(m[1])
	for _, r := range c.replicas {
		if r.pid() == pid {
			return r
		}
	}
	return nil
}

// runRow is what the database holds about a run's claims.
type runRow struct {
	Status    string
	ClaimedBy string
	Attempts  int
}

func (c *cluster) runRow(id string) runRow {
	c.t.Helper()
	var r runRow
	var by sql.NullString
	if err := c.db.QueryRow(`SELECT status, claimed_by, attempts FROM runs WHERE id = $1`, id).Scan(&r.Status, &by, &r.Attempts); err != nil {
		c.t.Fatalf("run %s: %v", id, err)
	}
	r.ClaimedBy = by.String
	return r
}

// eventually polls cond every 20 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// upstreamWatch wraps the scripted upstream and records, per request, the
// last user message, when it started, and whether the client went away
// before the answer was complete (and when).
type upstreamWatch struct {
	next http.Handler
	mu   sync.Mutex
	reqs []*watched
}

type watched struct {
	message   string
	started   time.Time
	finished  bool      // the whole answer was written
	abandoned time.Time // when the client went away mid-answer
}

func (u *upstreamWatch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/chat/completions") {
		u.next.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	rec := &watched{message: lastUser(body), started: time.Now()}
	u.mu.Lock()
	u.reqs = append(u.reqs, rec)
	u.mu.Unlock()
	gone := func() {
		u.mu.Lock()
		if !rec.finished && rec.abandoned.IsZero() {
			rec.abandoned = time.Now()
		}
		u.mu.Unlock()
	}
	stop := context.AfterFunc(r.Context(), gone)
	defer stop()
	u.next.ServeHTTP(&doneWriter{ResponseWriter: w, done: func() {
		u.mu.Lock()
		if rec.abandoned.IsZero() {
			rec.finished = true
		}
		u.mu.Unlock()
	}}, r)
	// The scripted upstream stops early only when a write fails: the
	// client went away, and its writes may notice that before the
	// server's read does (then the request's context is not yet done).
	gone()
}

// doneWriter calls done when the stream's last line, data: [DONE], is
// written.
type doneWriter struct {
	http.ResponseWriter
	done func()
}

func (d *doneWriter) Write(p []byte) (int, error) {
	n, err := d.ResponseWriter.Write(p)
	if err == nil && strings.Contains(string(p), "[DONE]") {
		d.done()
	}
	return n, err
}

func (d *doneWriter) Flush() {
	if f, ok := d.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// requests returns copies of the requests whose last user message
// contains text.
func (u *upstreamWatch) requests(text string) []watched {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []watched
	for _, r := range u.reqs {
		if strings.Contains(r.message, text) {
			out = append(out, *r)
		}
	}
	return out
}

// lastUser is the text of a chat request's last user message.
func lastUser(body []byte) string {
	var req upstream.Request
	if err := jsonUnmarshal(body, &req); err != nil {
		return ""
	}
	for i := len(req.Messages) - 1; i >= 0; i-- {
		if req.Messages[i].Role == "user" {
			return req.Messages[i].Text()
		}
	}
	return ""
}

type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// httpGet returns the status of GET url with the API key.
func httpGet(url, key string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	res.Body.Close()
	return res.StatusCode, nil
}

// startFails starts a replica that must refuse to start, and returns
// what it wrote to stderr.
func (c *cluster) startFails(args ...string) string {
	c.t.Helper()
	all := append([]string{"--addr", "127.0.0.1:0", "--data", c.t.TempDir(), "--api-key", c.key,
		"--database-url", c.dbURL, "--upstream-url", c.upURL}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, serverBin, all...)
	var stderr logBuffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil {
		c.t.Fatalf("replica started with %q", args)
	}
	return stderr.String()
}
