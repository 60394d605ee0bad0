package apitest

import (
	"context"
	"database/sql"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
)

// countRows runs a COUNT query on the server's database (SQLite file or
// PostgreSQL), beside the running server.
func countRows(t *testing.T, s *server, query string, args ...any) int {
	t.Helper()
	driver, dsn := "pgx", s.DatabaseURL
	if dsn == "" {
		driver = "sqlite"
		dsn = "file:" + filepath.Join(s.Data, "assistantd.db") + "?" + url.Values{"_pragma": {"busy_timeout(10000)"}}.Encode()
	}
	conn, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n int
	if err := conn.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// A store: false response whose process dies mid-way leaves nothing
// behind: after the restart its run is not resumed (the upstream is not
// asked again) and the unstored-responses sweep deletes the response with
// its thread, run, steps and messages.
func TestResponseStoreFalseSweep(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t)
	const marker = "unstored secret"
	go func() {
		p := textParams(marker + " [[slow 100ms]] [[chunks 200]]")
		p.Store = openai.Bool(false)
		_, _ = s.Client.Responses.New(context.Background(), p) // fails when the server dies
	}()
	deadline := time.Now().Add(runDeadline)
	for len(requestsWith(up, marker)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the upstream was never asked")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Mid-way: the answer is streaming into a message.
	for countRows(t, s, `SELECT COUNT(*) FROM messages m JOIN responses r ON r.thread_id = m.thread_id WHERE r.stored = 0 AND m.role = 'assistant'`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no message was started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := countRows(t, s, `SELECT COUNT(*) FROM responses WHERE stored = 0`); n != 1 {
		t.Fatalf("%d unstored responses in flight, want 1", n)
	}
	asked := len(requestsWith(up, marker))
	s.kill(t)
	s.restart(t)
	for deadline = time.Now().Add(runDeadline); countRows(t, s, `SELECT COUNT(*) FROM responses WHERE stored = 0`) > 0; {
		if time.Now().After(deadline) {
			t.Fatal("the unstored response is still there after the restart")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, q := range []string{
		`SELECT COUNT(*) FROM threads WHERE metadata LIKE '%response_id%'`,
		`SELECT COUNT(*) FROM runs`,
		`SELECT COUNT(*) FROM run_steps`,
		`SELECT COUNT(*) FROM messages`,
		`SELECT COUNT(*) FROM response_input_items`,
	} {
		if n := countRows(t, s, q); n != 0 {
			t.Errorf("%s = %d after the sweep", q, n)
		}
	}
	if n := len(requestsWith(up, marker)); n != asked {
		t.Errorf("the upstream was asked %d times after the restart", n-asked)
	}
	// A stored response on the same server is untouched by the sweep.
	r, err := s.Client.Responses.New(context.Background(), textParams("keep me"))
	if err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, s, `SELECT COUNT(*) FROM responses WHERE id = $1`, r.ID); n != 1 {
		t.Errorf("stored response count %d", n)
	}
}
