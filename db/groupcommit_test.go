package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// holdWriter runs a write that blocks the committer until release is
// called, so that the writes sent meanwhile queue and form one group.
// queued reports how many writes wait behind it.
func holdWriter(t *testing.T, s *Store) (release func(), queued func() int) {
	t.Helper()
	started, hold := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.tx(context.Background(), func(tx *sql.Tx) error {
			close(started)
			<-hold
			return nil
		})
	}()
	<-started
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(hold)
			if err := <-done; err != nil {
				t.Errorf("holding write: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return release, func() int { return len(s.gc.fg) + len(s.gc.bg) }
}

// waitQueued polls until n writes wait behind the held one.
func waitQueued(t *testing.T, queued func() int, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for queued() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", queued(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// insertThread is a write of one thread row with id, failing with fail
// after the insert when fail is not nil.
func insertThread(ctx context.Context, id string, fail error) func(tx *sql.Tx) error {
	return func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO threads (id, created_at, tool_resources, metadata) VALUES ($1, 1, '{}', '{}')`, id); err != nil {
			return err
		}
		return fail
	}
}

func threadExists(t *testing.T, s *Store, id string) bool {
	t.Helper()
	var n int
	if err := s.r.QueryRow(`SELECT count(*) FROM threads WHERE id = $1`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// TestGroupCommitGroups: writes that queue while one commits are committed
// together in one transaction, and each caller returns only once its write
// is visible to readers (committed).
func TestGroupCommitGroups(t *testing.T) {
	s := openTest(t)
	ctx := WithProject(context.Background(), DefaultProjectID)
	release, queued := holdWriter(t, s)
	before := s.GroupCommitStats()
	const n = 2*maxGroup + maxGroup/2
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("thread_group%02d", i)
			if errs[i] = s.tx(ctx, insertThread(ctx, id, nil)); errs[i] == nil && !threadExists(t, s, id) {
				errs[i] = fmt.Errorf("%s: acknowledged but not visible to readers", id)
			}
		}()
	}
	waitQueued(t, queued, n)
	release()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	after := s.GroupCommitStats()
	writes, groups := after.Writes-before.Writes, after.Groups-before.Groups
	// The held write's group counted before; the n queued writes were
	// all waiting when it committed, so they make full groups of maxGroup
	// and one of the rest.
	if want := int64((n + maxGroup - 1) / maxGroup); writes != n || groups != want {
		t.Errorf("%d writes in %d groups, want %d in %d (%v)", writes, groups, n, want, after)
	}
}

// TestGroupCommitIsolatesFailures: in one group, a write that fails or
// panics is undone alone; the writes around it commit.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	s := openTest(t)
	ctx := WithProject(context.Background(), DefaultProjectID)
	release, queued := holdWriter(t, s)
	refused := errors.New("refused after writing")
	type outcome struct {
		err      error
		panicked any
	}
	fns := []func(tx *sql.Tx) error{
		insertThread(ctx, "thread_ok1", nil),
		insertThread(ctx, "thread_failed", refused),
		func(tx *sql.Tx) error {
			if err := insertThread(ctx, "thread_panicked", nil)(tx); err != nil {
				return err
			}
			panic("write panicked")
		},
		insertThread(ctx, "thread_ok1", nil), // a duplicate key: fails in SQLite
		insertThread(ctx, "thread_ok2", nil),
	}
	out := make([]outcome, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		waitQueued(t, queued, i) // in this order
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { out[i].panicked = recover() }()
			out[i].err = s.tx(ctx, fn)
		}()
	}
	waitQueued(t, queued, len(fns))
	before := s.GroupCommitStats()
	release()
	wg.Wait()
	if out[0].err != nil || out[4].err != nil {
		t.Errorf("the good writes failed: %v, %v", out[0].err, out[4].err)
	}
	if !errors.Is(out[1].err, refused) {
		t.Errorf("failed write: %v, want %v", out[1].err, refused)
	}
	if out[2].panicked != "write panicked" {
		t.Errorf("panicking write: recovered %v, err %v", out[2].panicked, out[2].err)
	}
	if !isUnique(out[3].err) {
		t.Errorf("duplicate write: %v, want a unique violation", out[3].err)
	}
	for id, want := range map[string]bool{"thread_ok1": true, "thread_ok2": true, "thread_failed": false, "thread_panicked": false} {
		if got := threadExists(t, s, id); got != want {
			t.Errorf("%s stored: %v, want %v", id, got, want)
		}
	}
	if st := s.GroupCommitStats(); st.Groups-before.Groups != 1 || st.Regrouped != 0 {
		t.Errorf("stats %v (from %v): want the five writes in one group, none regrouped", st, before)
	}
}

// TestGroupCommitLostGroup: when the group's transaction is lost (here a
// write ends it itself), nothing of the group was written, and each write
// runs again alone: the good ones are stored exactly once.
func TestGroupCommitLostGroup(t *testing.T) {
	s := openTest(t)
	ctx := WithProject(context.Background(), DefaultProjectID)
	release, queued := holdWriter(t, s)
	var mu sync.Mutex
	runs := map[string]int{}
	counted := func(id string, fn func(tx *sql.Tx) error) func(tx *sql.Tx) error {
		return func(tx *sql.Tx) error {
			mu.Lock()
			runs[id]++
			mu.Unlock()
			return fn(tx)
		}
	}
	fns := []func(tx *sql.Tx) error{
		counted("thread_a", insertThread(ctx, "thread_a", nil)),
		counted("breaker", func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `ROLLBACK`)
			return err
		}),
		counted("thread_b", insertThread(ctx, "thread_b", nil)),
	}
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		waitQueued(t, queued, i)
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.tx(ctx, fn) }()
	}
	waitQueued(t, queued, len(fns))
	release()
	wg.Wait()
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("good writes: %v, %v", errs[0], errs[2])
	}
	if errs[1] == nil {
		t.Error("the write that ended its transaction succeeded")
	}
	for _, id := range []string{"thread_a", "thread_b"} {
		if !threadExists(t, s, id) {
			t.Errorf("%s not stored", id)
		}
	}
	if runs["thread_a"] != 2 || runs["breaker"] != 2 || runs["thread_b"] != 1 {
		// a ran in the group and again alone; the breaker too; the group
		// was lost at the breaker, before b's turn.
		t.Errorf("runs %v, want thread_a 2, breaker 2, thread_b 1", runs)
	}
	if st := s.GroupCommitStats(); st.Regrouped != 1 {
		t.Errorf("stats %v: want one group regrouped", st)
	}
}

// TestGroupCommitCancelledWhileQueued: a write whose context ends before
// its turn is not run, and says so.
func TestGroupCommitCancelledWhileQueued(t *testing.T) {
	s := openTest(t)
	release, queued := holdWriter(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.tx(ctx, insertThread(ctx, "thread_cancelled", nil)) }()
	waitQueued(t, queued, 1)
	cancel()
	release()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled write: %v, want context.Canceled", err)
	}
	if threadExists(t, s, "thread_cancelled") {
		t.Error("the cancelled write was stored")
	}
}

// TestGroupCommitClose: Close runs what is queued, in both lanes; later
// writes fail.
func TestGroupCommitClose(t *testing.T) {
	s := openTest(t)
	ctx := WithProject(context.Background(), DefaultProjectID)
	release, queued := holdWriter(t, s)
	done := make(chan error, 2)
	go func() { done <- s.tx(ctx, insertThread(ctx, "thread_last", nil)) }()
	bctx := Background(ctx)
	go func() { done <- s.tx(bctx, insertThread(bctx, "thread_last_bg", nil)) }()
	waitQueued(t, queued, 2)
	closed := make(chan struct{})
	go func() { s.gc.close(); close(closed) }()
	release()
	<-closed
	for range 2 {
		if err := <-done; err != nil {
			t.Errorf("write queued before close: %v", err)
		}
	}
	for _, id := range []string{"thread_last", "thread_last_bg"} {
		if !threadExists(t, s, id) {
			t.Errorf("%s, queued before close, was not stored", id)
		}
	}
	if err := s.tx(ctx, insertThread(ctx, "thread_after", nil)); !errors.Is(err, errStoreClosed) {
		t.Errorf("write after close: %v, want %v", err, errStoreClosed)
	}
}

// BenchmarkCreateMessage measures the write path: message creates by 1 and
// by 32 concurrent clients, each on a thread of its own, on SQLite and
// (with ASSISTANTD_TEST_POSTGRES) PostgreSQL:
//
//	go test ./db/ -run '^$' -bench CreateMessage -benchtime 3000x
func BenchmarkCreateMessage(b *testing.B) {
	for _, store := range []string{"sqlite", "postgres"} {
		for _, clients := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s/clients=%d", store, clients), func(b *testing.B) { benchCreateMessage(b, clients) })
		}
	}
}

func benchCreateMessage(b *testing.B, clients int) {
	s := openTest(b)
	ctx := WithProject(context.Background(), DefaultProjectID)
	// RunParallel starts parallelism × GOMAXPROCS goroutines.
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		th, _, err := s.CreateThread(ctx, Thread{}, nil)
		if err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			if _, err := s.CreateMessage(ctx, Message{ThreadID: th.ID, Role: "user", Status: "completed",
				Content: []ContentPart{{Type: "text", Text: &Text{Value: "a message of a few words"}}}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	st := s.GroupCommitStats()
	if st.Groups > 0 {
		b.ReportMetric(float64(st.Writes)/float64(st.Groups), "writes/group")
	}
}

// TestStatementCacheNested: a query run again while its own rows are open
// on the same connection (here inside one write transaction) gets a
// statement of its own; both read correctly, and the kept statement is
// reused after.
func TestStatementCacheNested(t *testing.T) {
	s := openTest(t)
	ctx := WithProject(context.Background(), DefaultProjectID)
	for range 3 {
		if _, _, err := s.CreateThread(ctx, Thread{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	const q = `SELECT id FROM threads ORDER BY id`
	for round := range 2 {
		err := s.tx(ctx, func(tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, q)
			if err != nil {
				return err
			}
			defer rows.Close()
			n := 0
			for rows.Next() {
				var id, first string
				if err := rows.Scan(&id); err != nil {
					return err
				}
				if err := tx.QueryRowContext(ctx, q).Scan(&first); err != nil {
					return fmt.Errorf("nested query: %w", err)
				}
				if first > id {
					return fmt.Errorf("nested query read %s, after the outer row %s", first, id)
				}
				n++
			}
			if n != 3 {
				return fmt.Errorf("%d rows, want 3", n)
			}
			return rows.Err()
		})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}

// TestGroupCommitAlonePanics: a lone write that panics (in a transaction
// of its own) raises the panic on its caller, stores nothing, and leaves
// the writer free for the next write.
func TestGroupCommitAlonePanics(t *testing.T) {
	s := openTest(t)
	ctx := WithProject(context.Background(), DefaultProjectID)
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Errorf("recovered %v, want the write's panic", v)
			}
		}()
		_ = s.tx(ctx, func(tx *sql.Tx) error {
			if err := insertThread(ctx, "thread_panicked", nil)(tx); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	if threadExists(t, s, "thread_panicked") {
		t.Error("the panicked write was stored")
	}
	next, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.tx(next, insertThread(next, "thread_next", nil)); err != nil {
		t.Fatalf("write after a panicked one: %v", err)
	}
	if !threadExists(t, s, "thread_next") {
		t.Error("the write after a panicked one was not stored")
	}
}

// TestHotWritesJoinTheCommitter: the writes on a request's or a run's
// path that were single statements on the writer connection (the
// inspector's exchanges, a key's last use, rate counters) queue at the
// group committer like every other write, in their lane, rather than
// taking the connection between two groups: while the committer is held
// each of them waits in its queue, and once released it is stored.
func TestHotWritesJoinTheCommitter(t *testing.T) {
	s := openTest(t)
	ctx := WithProject(context.Background(), DefaultProjectID)
	th, run := threadRun(t, s, ctx)
	key, secret, err := s.CreateAPIKey(ctx, KeyOptions{Name: "k"})
	if err != nil {
		t.Fatal(err)
	}
	_, adminSecret, err := s.CreateAdminKey(ctx, "a", "")
	if err != nil {
		t.Fatal(err)
	}
	one, many := int64(1), int64(1000)
	if _, err := s.SetRateLimit(ctx, DefaultProjectID, "m", RateLimitChange{MaxRequestsPer1Minute: &many, MaxTokensPer1Minute: &many}); err != nil {
		t.Fatal(err)
	}
	var xid int64
	cases := []struct {
		name       string
		background bool
		write      func() error
		check      func() error
	}{
		{"start exchange", true, func() (err error) {
			xid, err = s.StartExchange(ctx, Exchange{RunID: run.ID, StartedAt: 1, Method: "POST", URL: "http://up"})
			return err
		}, func() error {
			if l, err := s.RunExchanges(ctx, run.ID); err != nil || len(l) != 1 || l[0].ID != xid {
				return fmt.Errorf("exchanges %+v, %v; want %d", l, err, xid)
			}
			return nil
		}},
		{"finish exchange", true, func() error {
			return s.FinishExchange(ctx, Exchange{ID: xid, DurationMS: &one, Status: 200, ResponseBody: "ok"})
		}, func() error {
			if x, err := s.GetExchange(ctx, th.ID, xid); err != nil || x.Status != 200 || x.ResponseBody != "ok" {
				return fmt.Errorf("finished exchange %+v, %v", x, err)
			}
			return nil
		}},
		{"sweep exchanges", true, func() error {
			n, err := s.DeleteExchangesBefore(ctx, 2)
			if err == nil && n != 1 {
				err = fmt.Errorf("swept %d, want 1", n)
			}
			return err
		}, func() error { return nil }},
		{"api key use", false, func() error {
			p, ok, err := s.CheckAPIKey(ctx, secret)
			if err == nil && (!ok || p.KeyID != key.ID) {
				err = fmt.Errorf("check api key: %+v %v", p, ok)
			}
			return err
		}, func() error {
			if k, err := s.GetAPIKey(ctx, DefaultProjectID, key.ID); err != nil || k.LastUsedAt == nil {
				return fmt.Errorf("api key after use: %+v, %v", k, err)
			}
			return nil
		}},
		{"admin key use", false, func() error {
			ok, err := s.CheckAdminKey(ctx, adminSecret)
			if err == nil && !ok {
				err = errors.New("admin key refused")
			}
			return err
		}, func() error {
			if l, err := s.ListAdminKeys(ctx); err != nil || len(l) != 1 || l[0].LastUsedAt == nil {
				return fmt.Errorf("admin keys after use: %+v, %v", l, err)
			}
			return nil
		}},
		{"admit request", false, func() error {
			st, err := s.AdmitRequest(ctx, DefaultProjectID, "m", time.Minute)
			if err == nil && (st.Refused != "" || st.RemainingRequests != many-1) {
				err = fmt.Errorf("admit: %+v", st)
			}
			return err
		}, func() error { return nil }},
		{"count tokens", true, func() error { return s.CountTokens(ctx, DefaultProjectID, "m", 10, time.Minute) }, func() error {
			if st, err := s.AdmitRequest(ctx, DefaultProjectID, "m", time.Minute); err != nil || st.RemainingTokens != many-10 {
				return fmt.Errorf("after counting tokens: %+v, %v", st, err)
			}
			return nil
		}},
	}
	for _, c := range cases {
		release, _ := holdWriter(t, s)
		lane, other := s.gc.fg, s.gc.bg
		if c.background {
			lane, other = other, lane
		}
		done := make(chan error, 1)
		go func() { done <- c.write() }()
		waitQueued(t, func() int { return len(lane) }, 1)
		if len(other) != 0 {
			t.Errorf("%s: queued in the wrong lane", c.name)
		}
		release()
		if err := <-done; err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := c.check(); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// laneWrites queues writes named by names while the committer is held,
// one at a time in that order, each in the background lane if its name
// starts with "bg"; releases the committer; and returns the names in the
// order the writes ran, with the group each ran in (counted from 0).
// fail maps names to the error their write returns after its insert.
// The name "+wait" is no write: it moves the committer's clock (which
// stands still otherwise) on by bgMaxWait.
func laneWrites(t *testing.T, s *Store, names []string, fail map[string]error) (order []string, groups []int, errs map[string]error) {
	t.Helper()
	ctx := WithProject(context.Background(), DefaultProjectID)
	clock := stillClock(s)
	release, queued := holdWriter(t, s)
	var mu sync.Mutex
	var last *sql.Tx
	errs = map[string]error{}
	var wg sync.WaitGroup
	writes := 0
	for _, name := range names {
		if name == "+wait" {
			clock.advance(bgMaxWait)
			continue
		}
		waitQueued(t, queued, writes)
		writes++
		wctx := ctx
		if strings.HasPrefix(name, "bg") {
			wctx = Background(ctx)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.tx(wctx, func(tx *sql.Tx) error {
				mu.Lock()
				if tx != last {
					groups = append(groups, len(order))
					last = tx
				}
				order = append(order, name)
				mu.Unlock()
				return insertThread(ctx, "thread_"+name, fail[name])(tx)
			})
			mu.Lock()
			errs[name] = err
			mu.Unlock()
		}()
	}
	waitQueued(t, queued, writes)
	release()
	wg.Wait()
	// groups holds where each group starts in order; turn it into each
	// write's group.
	starts := groups
	groups = make([]int, len(order))
	for g, start := range starts {
		for i := start; i < len(order); i++ {
			groups[i] = g
		}
	}
	return order, groups, errs
}

// testClock is a clock that moves only when told.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// stillClock gives s's committer a clock that stands still until
// advanced, so that no background write ages while a test queues writes.
// Call it before the test's first write.
func stillClock(s *Store) *testClock {
	c := &testClock{t: time.Unix(1_000_000, 0)}
	s.gc.now = c.now
	return c
}

// TestGroupCommitLanes: writes queued in both lanes while the writer is
// busy are committed in one group, the foreground ones first, each lane
// in the order it queued, although the background ones queued first.
func TestGroupCommitLanes(t *testing.T) {
	s := openTest(t)
	names := []string{"bg1", "bg2", "bg3", "fg1", "fg2", "fg3"}
	order, groups, errs := laneWrites(t, s, names, nil)
	want := []string{"fg1", "fg2", "fg3", "bg1", "bg2", "bg3"}
	if diff := cmp.Diff(want, order); diff != "" {
		t.Errorf("order the writes ran in (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(make([]int, len(names)), groups); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	for _, name := range names {
		if errs[name] != nil || !threadExists(t, s, "thread_"+name) {
			t.Errorf("%s: %v, stored %v", name, errs[name], threadExists(t, s, "thread_"+name))
		}
	}
}

// TestGroupCommitBackgroundNotStarved: however many foreground writes
// wait, each group keeps bgShare places for the background writes
// queued, so they are committed in the first groups, not after the
// foreground lane has drained.
func TestGroupCommitBackgroundNotStarved(t *testing.T) {
	s := openTest(t)
	names := []string{"bg1", "bg2", "bg3"}
	for i := range 2 * maxGroup {
		names = append(names, fmt.Sprintf("fg%02d", i+1))
	}
	order, groups, errs := laneWrites(t, s, names, nil)
	fg := func(from, to int) []string {
		var out []string
		for i := from; i <= to; i++ {
			out = append(out, fmt.Sprintf("fg%02d", i))
		}
		return out
	}
	// The first group: maxGroup-bgShare foreground writes, then bgShare
	// background ones; the second: the last background one and, in the
	// place it leaves, one more foreground (which runs first, with the
	// group's other foreground writes); the third the rest.
	n := maxGroup - bgShare
	var want []string
	var wantGroups []int
	add := func(g int, names ...string) {
		want = append(want, names...)
		for range names {
			wantGroups = append(wantGroups, g)
		}
	}
	add(0, fg(1, n)...)
	add(0, "bg1", "bg2")
	add(1, fg(n+1, 2*n)...)
	add(1, fg(2*n+1, 2*n+bgShare-1)...)
	add(1, "bg3")
	add(2, fg(2*n+bgShare, 2*maxGroup)...)
	if bgShare != 2 {
		t.Fatalf("the expectation is written for bgShare 2, not %d", bgShare)
	}
	if diff := cmp.Diff(want, order); diff != "" {
		t.Errorf("order the writes ran in (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantGroups, groups); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	for _, name := range names {
		if errs[name] != nil {
			t.Errorf("%s: %v", name, errs[name])
		}
	}
}

// TestGroupCommitLanesIsolateFailures: in a group of both lanes, a write
// that fails is still undone alone, in either lane.
func TestGroupCommitLanesIsolateFailures(t *testing.T) {
	s := openTest(t)
	refused := errors.New("refused after writing")
	names := []string{"bg_ok", "bg_failed", "fg_failed", "fg_ok"}
	order, groups, errs := laneWrites(t, s, names, map[string]error{"bg_failed": refused, "fg_failed": refused})
	if diff := cmp.Diff([]string{"fg_failed", "fg_ok", "bg_ok", "bg_failed"}, order); diff != "" {
		t.Errorf("order the writes ran in (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{0, 0, 0, 0}, groups); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	for _, name := range names {
		failed := strings.HasSuffix(name, "_failed")
		if failed && !errors.Is(errs[name], refused) || !failed && errs[name] != nil {
			t.Errorf("%s: %v", name, errs[name])
		}
		if got := threadExists(t, s, "thread_"+name); got == failed {
			t.Errorf("%s stored: %v", name, got)
		}
	}
}

// TestBackgroundLane: Background marks a context's writes as background,
// except a request's: a handler that marks its context (as the engine's
// commits do) still writes in the foreground, for its client waits.
func TestBackgroundLane(t *testing.T) {
	s := openTest(t)
	ctx := WithProject(context.Background(), DefaultProjectID)
	write := func(ctx context.Context, id string) error { return s.tx(ctx, insertThread(ctx, id, nil)) }
	lanes := func() (fg, bg int) { return len(s.gc.fg), len(s.gc.bg) }

	release, _ := holdWriter(t, s)
	done := make(chan error, 1)
	go func() { done <- write(Background(Background(ctx)), "thread_bg") }()
	waitQueued(t, func() int { _, bg := lanes(); return bg }, 1)
	if fg, _ := lanes(); fg != 0 {
		t.Errorf("%d foreground writes queued, want 0", fg)
	}
	release()
	if err := <-done; err != nil || !threadExists(t, s, "thread_bg") {
		t.Fatalf("background write: %v", err)
	}

	release, _ = holdWriter(t, s)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := write(Background(WithProject(r.Context(), DefaultProjectID)), "thread_request"); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	resp := make(chan error, 1)
	go func() {
		r, err := http.Get(srv.URL)
		if err == nil {
			r.Body.Close()
			if r.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", r.StatusCode)
			}
		}
		resp <- err
	}()
	waitQueued(t, func() int { fg, _ := lanes(); return fg }, 1)
	if _, bg := lanes(); bg != 0 {
		t.Errorf("a request's write: %d background writes queued, want 0", bg)
	}
	release()
	if err := <-resp; err != nil || !threadExists(t, s, "thread_request") {
		t.Fatalf("request's write: %v", err)
	}
}

// TestGroupCommitBackgroundAging: background writes that have waited
// bgMaxWait go ahead of the foreground writes, in up to half of a group;
// younger ones keep their bgShare places behind the foreground.
func TestGroupCommitBackgroundAging(t *testing.T) {
	s := openTest(t)
	names := []string{"bg1", "bg2", "bg3", "bg4", "bg5", "+wait", "bg6"}
	for i := range 2 * maxGroup {
		names = append(names, fmt.Sprintf("fg%02d", i+1))
	}
	order, groups, errs := laneWrites(t, s, names, nil)
	if maxGroup != 8 || bgShare != 2 {
		t.Fatalf("the expectation is written for groups of 8 with 2 places kept, not %d and %d", maxGroup, bgShare)
	}
	// First group: four of the five aged writes (half the group), four
	// foreground ones. Second: the last aged one and bg6, which is not,
	// behind six foreground writes (bg6 keeps a place of bgShare). Third:
	// the rest of the foreground.
	want := []string{"fg01", "fg02", "fg03", "fg04", "bg1", "bg2", "bg3", "bg4",
		"fg05", "fg06", "fg07", "fg08", "fg09", "fg10", "bg5", "bg6",
		"fg11", "fg12", "fg13", "fg14", "fg15", "fg16"}
	wantGroups := []int{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2}
	if diff := cmp.Diff(want, order); diff != "" {
		t.Errorf("order the writes ran in (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantGroups, groups); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	for name, err := range errs {
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// threadRun creates a thread in ctx's project and a queued run on it.
func threadRun(t *testing.T, s *Store, ctx context.Context) (Thread, Run) {
	t.Helper()
	th, _, err := s.CreateThread(ctx, Thread{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	run, err := s.CreateRun(ctx, Run{ThreadID: th.ID, AssistantID: "asst_x", Model: "m"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return th, run
}
