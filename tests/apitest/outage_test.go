package apitest

import (
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
)

// privateCluster is a PostgreSQL cluster of the test's own (initdb and
// pg_ctl from Debian's postgresql, socket only, fsync on), which the test
// may stop and start; as root it runs as the postgres user.
type privateCluster struct {
	bin, dir string
}

func startPrivateCluster(t *testing.T) *privateCluster {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("PostgreSQL's initdb is not installed")
		}
		t.Skip("PostgreSQL's initdb is not installed (Debian's postgresql)")
	}
	dir, err := os.MkdirTemp("", "assistantd-outage-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := &privateCluster{bin: filepath.Dir(bins[len(bins)-1]), dir: dir}
	if os.Geteuid() == 0 {
		pg, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		var uid, gid int
		fmt.Sscan(pg.Uid, &uid)
		fmt.Sscan(pg.Gid, &gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	c.run(t, "initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale")
	c.start(t)
	t.Cleanup(func() { _ = c.cmd("pg_ctl", "-D", filepath.Join(dir, "data"), "-m", "immediate", "-w", "stop").Run() })
	return c
}

func (c *privateCluster) cmd(name string, args ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(c.bin, name)}, args...)...)
	}
	return exec.Command(filepath.Join(c.bin, name), args...)
}

func (c *privateCluster) run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := c.cmd(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

// start starts the cluster, durable as a production one (fsync on).
func (c *privateCluster) start(t *testing.T) {
	c.run(t, "pg_ctl", "-D", filepath.Join(c.dir, "data"), "-l", filepath.Join(c.dir, "log"), "-w", "-o",
		"-k "+c.dir+" -c listen_addresses=''", "start")
}

// crash stops the cluster the way a crash does (no shutdown checkpoint).
func (c *privateCluster) crash(t *testing.T) {
	c.run(t, "pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop")
}

func (c *privateCluster) url(database string) string {
	return "postgres:///" + database + "?host=" + c.dir + "&user=postgres"
}

// TestDatabaseCrashAndReturn: a server on a PostgreSQL cluster that
// crashes keeps running, /readyz answers 503 while the cluster is down and
// 200 once it is back, and every write acknowledged before the crash is
// there afterwards; writes work again. Runs in the PostgreSQL pass, on a
// cluster of its own (the shared one is never stopped).
func TestDatabaseCrashAndReturn(t *testing.T) {
	if !onPostgres {
		t.Skip("PostgreSQL pass only")
	}
	c := startPrivateCluster(t)
	admin, err := sql.Open("pgx", c.url("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(`CREATE DATABASE assistantd`); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	s := &server{t: t, Key: "sk-test-" + randomHex(16), Data: t.TempDir(), args: []string{"--database-url", c.url("assistantd")}}
	s.start(t)
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("server stderr (last lines):\n%s", lastLines(s.errBuf.String(), 60))
		}
	})
	ready := func() int {
		res, err := http.Get(s.URL + "/readyz")
		if err != nil {
			t.Fatalf("/readyz (the server must keep answering): %v", err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	waitReady := func(want int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for got := ready(); got != want; got = ready() {
			if time.Now().After(deadline) {
				t.Fatalf("/readyz = %d after 30 s, want %d", got, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitReady(http.StatusOK)
	var acked []string
	for i := range 20 {
		a, err := s.Client.Beta.Assistants.New(t.Context(), openai.BetaAssistantNewParams{Model: fmt.Sprint("m", i)})
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, a.ID)
	}

	c.crash(t)
	waitReady(http.StatusServiceUnavailable)
	if _, err := s.Client.Beta.Assistants.New(t.Context(), openai.BetaAssistantNewParams{Model: "during"}); err == nil {
		t.Error("a write succeeded with the database down")
	}
	select {
	case <-s.exited:
		t.Fatalf("the server exited during the outage: %v", s.err)
	default:
	}

	c.start(t)
	waitReady(http.StatusOK)
	after, err := s.Client.Beta.Assistants.New(t.Context(), openai.BetaAssistantNewParams{Model: "after"})
	if err != nil {
		t.Fatalf("write after the database returned: %v", err)
	}
	have := map[string]bool{}
	iter := s.Client.Beta.Assistants.ListAutoPaging(t.Context(), openai.BetaAssistantListParams{Limit: openai.Int(100)})
	for iter.Next() {
		have[iter.Current().ID] = true
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	for _, id := range append(acked, after.ID) {
		if !have[id] {
			t.Errorf("acknowledged assistant %s lost", id)
		}
	}
}
