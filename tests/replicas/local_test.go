package replicas

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// liveOnly reports whether an event changes no state (a delta, or the
// inspector's upstream exchange): the executor shows such events before
// they are written, and only such events may be shown and never logged.
func liveOnly(name string) bool {
	return strings.HasSuffix(name, ".delta") || strings.HasPrefix(name, "assistantd.")
}

// TestKillWithDeltasShownLocally: a reader on the replica executing a run
// is served its deltas from memory, before they are written to the log.
// The replica is killed (kill -9) while its reader has seen deltas the
// log never got; the reader reconnects to another replica with
// Last-Event-ID and reads the rest: every logged event exactly once
// (those up to its position it had already, the rest after it), nothing
// twice, ids only growing; the interrupted message is ended for it and
// the new owner's answer streams whole.
func TestKillWithDeltasShownLocally(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	admin := []string{"--admin-email", "admin@example.com", "--admin-password", "correct horse battery"}
	flags := append([]string{"--run-lease", "1s", "--event-flush", "1s"}, admin...)
	a := c.start("a", append([]string{"--role", "api"}, flags...)...)
	c.start("b", append([]string{"--role", "all"}, flags...)...)
	c.start("c", append([]string{"--role", "all"}, flags...)...)
	asst := newAssistant(t, a)
	th, id := createRun(t, a, asst, "shown [[slow 30ms]] [[chunks 60]]")
	var holder *replica
	eventually(t, 10*time.Second, "a replica to claim the run", func() bool {
		holder = c.holder(c.runRow(id).ClaimedBy)
		return holder != nil
	})
	browser := signIn(t, holder, "admin@example.com", "correct horse battery")

	var before, after []seen
	var last string
	var lastSeq int64
	texts := map[string]*strings.Builder{} // message id → its deltas' text
	var completed []string                 // "id status: text" of message end events
	read := func(ev liveEvent) seen {
		run, n, _ := strings.Cut(ev.id, "/")
		seq, err := strconv.ParseInt(n, 10, 64)
		if err != nil || run != id {
			t.Fatalf("event id %q, want %s/<seq>", ev.id, id)
		}
		if seq <= lastSeq {
			t.Errorf("event %d (%s) after %d: ids must grow", seq, ev.event, lastSeq)
		}
		last, lastSeq = ev.id, seq
		var m struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}
		_ = json.Unmarshal(ev.data, &m)
		switch ev.event {
		case "thread.message.delta":
			if texts[m.ID] == nil {
				texts[m.ID] = &strings.Builder{}
			}
			texts[m.ID].WriteString(deltaText(ev.data))
		case "thread.message.completed", "thread.message.incomplete":
			var msg struct {
				Content []struct {
					Text struct {
						Value string `json:"value"`
					} `json:"text"`
				} `json:"content"`
			}
			_ = json.Unmarshal(ev.data, &msg)
			var text strings.Builder
			for _, c := range msg.Content {
				text.WriteString(c.Text.Value)
			}
			completed = append(completed, m.ID+" "+m.Status+": "+text.String())
		}
		return seen{seq, ev.event}
	}
	maxLogged := func() int64 {
		var n int64
		if err := c.db.QueryRow(`SELECT COALESCE(MAX(seq), 0) FROM run_events WHERE run_id = $1`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	deltas := 0
	readLive(t, browser, holder, th, "", func(ev liveEvent) bool {
		before = append(before, read(ev))
		if ev.event == "thread.message.delta" {
			deltas++
		}
		if deltas < 10 {
			return true
		}
		// Freeze the executor and look: has this reader seen deltas the
		// log does not hold? Then kill it; else let it go on.
		holder.signal(syscall.SIGSTOP)
		if lastSeq > maxLogged() {
			return false
		}
		holder.signal(syscall.SIGCONT)
		return true
	})
	holder.kill()
	killed := time.Now()
	readLive(t, browser, a, th, last, func(ev liveEvent) bool {
		after = append(after, read(ev))
		return ev.event != "thread.run.completed"
	})
	t.Logf("kill -9 to the end of the stream on another replica (lease 1s): %v", time.Since(killed).Round(time.Millisecond))

	logged := c.logged(t, id)
	pos := before[len(before)-1].seq
	var upTo, beyond []seen
	for _, s := range logged {
		if s.seq <= pos {
			upTo = append(upTo, s)
		} else {
			beyond = append(beyond, s)
		}
	}
	// Nothing logged up to the reader's position was missed.
	var shownOnly []seen
	for _, s := range upTo {
		if !slices.Contains(before, s) {
			t.Errorf("logged event %d %s was not shown to the executor's reader", s.seq, s.name)
		}
	}
	for _, s := range before {
		if !slices.Contains(upTo, s) {
			shownOnly = append(shownOnly, s)
			if !liveOnly(s.name) {
				t.Errorf("event %d %s was shown but never logged", s.seq, s.name)
			}
		}
	}
	if len(shownOnly) == 0 {
		t.Errorf("the reader saw no delta the log lacks: the test killed the executor too late (%d events seen, log up to %d)", len(before), pos)
	}
	t.Logf("the executor's reader saw %d events, %d of them deltas the log never got", len(before), len(shownOnly))
	// After the reconnect: exactly the log beyond the position, in order.
	if !slices.Equal(after, beyond) {
		t.Errorf("read after the reconnect:\n%v\nlogged after %d:\n%v", after, pos, beyond)
	}
	// The interrupted message is ended, the new answer whole.
	if len(completed) != 2 || !strings.Contains(completed[0], " incomplete: ") || !strings.HasSuffix(completed[1], " completed: "+words(60)) {
		t.Fatalf("message ends: %q", completed)
	}
	answer, _, _ := strings.Cut(completed[1], " ")
	if got := texts[answer]; got == nil || got.String() != words(60) {
		t.Errorf("the answer's deltas gave %v, want %q", got, words(60))
	}
	var afterNames []string
	for _, s := range after {
		afterNames = append(afterNames, s.name)
	}
	if n := count(afterNames, "thread.run.completed"); n != 1 {
		t.Errorf("thread.run.completed %d times", n)
	}
	finished := 0
	for _, r := range c.watch.requests("shown") {
		if r.finished {
			finished++
		}
	}
	if finished != 1 {
		t.Errorf("upstream finished %d answers, want 1", finished)
	}
	if msgs := assistantMessages(t, a, th); !slices.Equal(msgs, []string{"completed: " + words(60)}) {
		t.Errorf("stored assistant messages: %q", msgs)
	}
}

// TestCancelWithDeltasShownLocally: a run streams to a reader on the
// replica executing it, which shows deltas before they are written; the
// run is cancelled through another replica, whose cancelling event comes
// after the executor's reservation, so the deltas it showed but had not
// written are never written. That reader still sees every logged event
// once, in order, ids only growing, and nothing but deltas the log lacks;
// a reader on the other replica reads exactly the log.
func TestCancelWithDeltasShownLocally(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	admin := []string{"--admin-email", "admin@example.com", "--admin-password", "correct horse battery"}
	flags := append([]string{"--event-flush", "1s"}, admin...)
	a := c.start("a", append([]string{"--role", "api"}, flags...)...)
	b := c.start("b", append([]string{"--role", "all"}, flags...)...)
	asst := newAssistant(t, a)
	th, id := createRun(t, a, asst, "cancel shown [[slow 30ms]] [[chunks 200]]")
	c.executing(id)
	browser := signIn(t, b, "admin@example.com", "correct horse battery")

	reader := func() (func(ev liveEvent) seen, *[]seen) {
		var got []seen
		var lastSeq int64
		return func(ev liveEvent) seen {
			run, n, _ := strings.Cut(ev.id, "/")
			seq, err := strconv.ParseInt(n, 10, 64)
			if err != nil || run != id {
				t.Fatalf("event id %q, want %s/<seq>", ev.id, id)
			}
			if seq <= lastSeq {
				t.Errorf("event %d (%s) after %d: ids must grow", seq, ev.event, lastSeq)
			}
			lastSeq = seq
			s := seen{seq, ev.event}
			got = append(got, s)
			return s
		}, &got
	}
	readB, onB := reader()
	deltas, cancelled := 0, false
	readLive(t, browser, b, th, "", func(ev liveEvent) bool {
		readB(ev)
		if ev.event == "thread.message.delta" {
			deltas++
		}
		if deltas == 10 && !cancelled {
			cancelled = true
			if _, err := a.Client.Beta.Threads.Runs.Cancel(context.Background(), th, id); err != nil {
				t.Fatal(err)
			}
		}
		return ev.event != "thread.run.cancelled"
	})
	readA, onA := reader()
	readLive(t, signIn(t, a, "admin@example.com", "correct horse battery"), a, th, "", func(ev liveEvent) bool {
		readA(ev)
		return ev.event != "thread.run.cancelled"
	})

	logged := c.logged(t, id)
	if !slices.Equal(*onA, logged) {
		t.Errorf("read on the other replica:\n%v\nlogged:\n%v", *onA, logged)
	}
	i, shownOnly := 0, 0
	for _, s := range *onB {
		if i < len(logged) && logged[i] == s {
			i++
			continue
		}
		shownOnly++
		if !liveOnly(s.name) || slices.Contains(logged, s) {
			t.Errorf("the executor's reader saw %d %s out of the log's order", s.seq, s.name)
		}
	}
	if i != len(logged) {
		t.Errorf("the executor's reader missed logged event %d %s", logged[i].seq, logged[i].name)
	}
	if !slices.ContainsFunc(logged, func(s seen) bool { return s.name == "thread.run.cancelling" }) {
		t.Errorf("no thread.run.cancelling in the log: %v", logged)
	}
	t.Logf("the executor's reader saw %d events, %d of them deltas the log never got", len(*onB), shownOnly)
}

// seen is an event of a run's log: its seq and name.
type seen struct {
	seq  int64
	name string
}

// logged reads run id's durable event log, in order.
func (c *cluster) logged(t *testing.T, id string) []seen {
	t.Helper()
	rows, err := c.db.Query(`SELECT seq, event FROM run_events WHERE run_id = $1 ORDER BY seq`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var logged []seen
	for rows.Next() {
		var s seen
		if err := rows.Scan(&s.seq, &s.name); err != nil {
			t.Fatal(err)
		}
		logged = append(logged, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return logged
}
