package apitest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/assistantd/assistantd/db/dbtest"
	"github.com/openai/openai-go/v3"
)

// TestConcurrentThreadWriters: 50 clients at once add messages and start
// runs on one thread. On PostgreSQL (several writers, READ COMMITTED) as on
// SQLite: a thread never has two active runs (every snapshot of its runs
// shows at most one), a refused write is the active-run 400 and nothing
// else, no message is lost, each client's messages keep the order it wrote
// them in, no message lands between a run's start and its reply, and
// paging through the thread in small pages sees every message exactly once.
func TestConcurrentThreadWriters(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t)
	// Every run waits for the one before it: a loaded CI machine (with
	// -race) needs far longer than a single run's deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	asst := newAssistant(t, s)
	thread := threadWith(t, s, "start")

	const clients, rounds = 50, 1
	var (
		mu         sync.Mutex
		written    = map[int][]string{} // client → its message ids, in order
		runs       []string
		refused    atomic.Int64
		wg         sync.WaitGroup
		stopWatch  = make(chan struct{})
		watchDone  = make(chan struct{})
		maxActive  atomic.Int64
		snapshots  atomic.Int64
		unexpected = func(what string, err error) bool {
			var apiErr *openai.Error
			if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusBadRequest &&
				strings.Contains(apiErr.Message, "active") {
				refused.Add(1)
				return false
			}
			t.Errorf("%s: %v", what, err)
			return true
		}
	)
	// The watcher lists the thread's runs over and over: each list is one
	// snapshot and may show at most one active run.
	go func() {
		defer close(watchDone)
		for {
			select {
			case <-stopWatch:
				return
			default:
			}
			page, err := s.Client.Beta.Threads.Runs.List(ctx, thread, openai.BetaThreadRunListParams{Limit: openai.Int(100)})
			if err != nil {
				t.Errorf("list runs: %v", err)
				return
			}
			active := int64(0)
			for _, r := range page.Data {
				if !slices.Contains(terminalStatuses, r.Status) {
					active++
				}
			}
			snapshots.Add(1)
			for {
				old := maxActive.Load()
				if active <= old || maxActive.CompareAndSwap(old, active) {
					break
				}
			}
		}
	}()
	// Each client writes its messages and runs, trying again (after a
	// pause, until the test's deadline) while another client's run is
	// active: every write is eventually made.
	retry := func(what string, write func() error) bool {
		for {
			err := write()
			if err == nil {
				return true
			}
			if unexpected(what, err) {
				return false
			}
			select {
			case <-ctx.Done():
				t.Errorf("%s: still refused at the deadline", what)
				return false
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				ok := retry("create message", func() error {
					m, err := s.Client.Beta.Threads.Messages.New(ctx, thread, textMessage(fmt.Sprintf("client %d message %d", c, i)))
					if err == nil {
						mu.Lock()
						written[c] = append(written[c], m.ID)
						mu.Unlock()
					}
					return err
				})
				ok = ok && retry("create run", func() error {
					r, err := s.Client.Beta.Threads.Runs.New(ctx, thread, openai.BetaThreadRunNewParams{AssistantID: asst})
					if err == nil {
						mu.Lock()
						runs = append(runs, r.ID)
						mu.Unlock()
					}
					return err
				})
				if !ok {
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, id := range runs {
		waitRun(t, s, thread, id)
	}
	close(stopWatch)
	<-watchDone
	if t.Failed() {
		return
	}
	if got := maxActive.Load(); got > 1 {
		t.Errorf("a snapshot of the thread's runs showed %d active runs", got)
	}
	total := 0
	for _, ids := range written {
		total += len(ids)
	}
	t.Logf("%d messages and %d runs created, %d writes refused while a run was active, %d run snapshots",
		total, len(runs), refused.Load(), snapshots.Load())
	if total != clients*rounds || len(runs) != clients*rounds {
		t.Fatalf("%d messages and %d runs created, want %d of each", total, len(runs), clients*rounds)
	}

	// Page through in small pages, oldest first.
	var listed []string
	lastUser := ""
	params := openai.BetaThreadMessageListParams{Order: "asc", Limit: openai.Int(7)}
	for {
		page, err := s.Client.Beta.Threads.Messages.List(ctx, thread, params)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Data {
			listed = append(listed, m.ID)
			// A run's reply answers the last user message before it in
			// the thread: no message got in between the run's start and
			// its reply (the fake upstream answers "You said: <last>").
			switch text := messageText(m); m.Role {
			case "user":
				lastUser = text
			case "assistant":
				if want := "You said: " + lastUser; text != want {
					t.Errorf("reply %s of run %s is %q, want %q: a message got in while the run was active", m.ID, m.RunID, text, want)
				}
			}
		}
		if !page.HasMore || len(page.Data) == 0 {
			break
		}
		params.After = openai.String(page.Data[len(page.Data)-1].ID)
	}
	pos := map[string]int{}
	for i, id := range listed {
		if _, dup := pos[id]; dup {
			t.Errorf("message %s listed twice", id)
		}
		pos[id] = i
	}
	for c, ids := range written {
		last := -1
		for _, id := range ids {
			p, ok := pos[id]
			if !ok {
				t.Errorf("client %d's message %s is missing from the list", c, id)
				continue
			}
			if p < last {
				t.Errorf("client %d's messages are out of order: %s at %d after %d", c, id, p, last)
			}
			last = p
		}
	}
	// One assistant reply per completed run, plus "start" and the clients'.
	completed := 0
	for _, id := range runs {
		r, err := s.Client.Beta.Threads.Runs.Get(ctx, thread, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == openai.RunStatusCompleted {
			completed++
		}
	}
	if want := 1 + total + completed; len(listed) != want {
		t.Errorf("listed %d messages, want %d (1 + %d written + %d replies)", len(listed), want, total, completed)
	}
}

// TestTwoServersStartTogether: two servers started at the same moment on
// one empty PostgreSQL database both start (one migrates, the other waits
// for it), exactly one generates and prints the first API key, the admin
// from the flags is created once (a second creation would stop that
// server's start), and the key works on both.
func TestTwoServersStartTogether(t *testing.T) {
	if !onPostgres {
		t.Skip("PostgreSQL only: SQLite's data directory belongs to one server")
	}
	t.Parallel()
	url := dbtest.Empty(t)
	servers := make([]*server, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range servers {
		s := &server{t: t, Data: t.TempDir(), args: []string{"--database-url", url,
			"--admin-email", "admin@example.com", "--admin-password", "correct horse battery"}}
		servers[i] = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.startErr()
		}()
	}
	wg.Wait()
	for i, s := range servers {
		if errs[i] != nil {
			t.Fatalf("server %d: %v", i, errs[i])
		}
		t.Cleanup(func() {
			s.stop(t)
			if t.Failed() {
				t.Logf("server %d stderr:\n%s", i, lastLines(s.errBuf.String(), 40))
			}
		})
	}
	var keys []string
	for _, s := range servers {
		if k := generatedKey(s); k != "" {
			keys = append(keys, k)
		}
	}
	if len(keys) != 1 {
		t.Fatalf("%d servers printed a generated key, want exactly 1", len(keys))
	}
	for i, s := range servers {
		s.Key = keys[0]
		s.connect()
		if _, err := s.Client.Beta.Assistants.New(t.Context(), openai.BetaAssistantNewParams{Model: "m"}); err != nil {
			t.Errorf("server %d refused the generated key: %v", i, err)
		}
	}
	page, err := servers[0].Client.Beta.Assistants.List(t.Context(), openai.BetaAssistantListParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 2 {
		t.Errorf("server 0 lists %d assistants, want both servers' 2", len(page.Data))
	}
}

// TestReadyzWhileDatabaseDown: while the server's PostgreSQL database
// refuses connections, /readyz answers 503 and the server keeps running;
// once the database is back /readyz answers 200 again and what was written
// before is all there.
func TestReadyzWhileDatabaseDown(t *testing.T) {
	if !onPostgres {
		t.Skip("PostgreSQL only: SQLite is a file in the data directory")
	}
	t.Parallel()
	s := startServer(t)
	ready := func() int {
		res, err := http.Get(s.URL + "/readyz")
		if err != nil {
			t.Fatalf("/readyz: %v", err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if got := ready(); got != http.StatusOK {
		t.Fatalf("/readyz = %d with the database up", got)
	}
	var made []string
	for i := range 5 {
		a, err := s.Client.Beta.Assistants.New(t.Context(), openai.BetaAssistantNewParams{Model: fmt.Sprint("m", i)})
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, a.ID)
	}

	admin, err := sql.Open("pgx", dbtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	name := strings.TrimPrefix(mustURL(t, s.DatabaseURL).Path, "/")
	down := func(on bool) {
		t.Helper()
		if _, err := admin.Exec(`ALTER DATABASE ` + name + ` ALLOW_CONNECTIONS ` + fmt.Sprint(!on)); err != nil {
			t.Fatal(err)
		}
		if on {
			if _, err := admin.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, name); err != nil {
				t.Fatal(err)
			}
		}
	}
	down(true)
	t.Cleanup(func() { down(false) })
	if got := ready(); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d with the database refusing connections, want 503", got)
	}
	down(false)
	if got := ready(); got != http.StatusOK {
		t.Errorf("/readyz = %d once the database is back, want 200", got)
	}
	page, err := s.Client.Beta.Assistants.List(t.Context(), openai.BetaAssistantListParams{Order: "asc", Limit: openai.Int(100)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range page.Data {
		got = append(got, a.ID)
	}
	if !slices.Equal(got, made) {
		t.Errorf("after the outage: %v, want %v", got, made)
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestNULText: a NUL character in a plain-text field (a name) is stored
// on SQLite and is a 400 on PostgreSQL, whose text cannot hold it; in JSON
// fields (metadata, message text) it is stored on both.
func TestNULText(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	res := s.doJSON(t, "POST", "/v1/assistants", `{"model":"m","name":"a\u0000b"}`)
	want := http.StatusOK
	if onPostgres {
		want = http.StatusBadRequest
	}
	if res.Status != want {
		t.Errorf("assistant named with a NUL: %d %s, want %d", res.Status, res.Body, want)
	}
	res = s.doJSON(t, "POST", "/v1/threads", `{"metadata":{"k":"a\u0000b"},"messages":[{"role":"user","content":"x\u0000y"}]}`)
	if res.Status != http.StatusOK {
		t.Errorf("thread with NULs in metadata and text: %d %s", res.Status, res.Body)
	}
}
