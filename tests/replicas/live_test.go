package replicas

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
)

var csrfInput = regexp.MustCompile(`name="csrf_token"\s+value="([^"]+)"`)

// signIn signs in to the web app through r; the session (its keys are in
// the database) is good on every replica.
func signIn(t *testing.T, r *replica, email, password string) *http.Client {
	t.Helper()
	return signInAt(t, r.URL, email, password)
}

// signInAt signs in to the web app at base.
func signInAt(t *testing.T, base, email, password string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	res, err := c.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := csrfInput.FindStringSubmatch(string(body))
	if m == nil {
		t.Fatalf("no csrf_token on /login")
	}
	res, err = c.PostForm(base+"/login", url.Values{"csrf_token": {m[1]}, "email": {email}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return c
}

// liveEvent is one event of the web app's thread stream.
type liveEvent struct {
	id    string
	run   string
	event string
	data  json.RawMessage
}

// readLive reads the thread's live stream from r, resuming after last
// (Last-Event-ID, "" for the start), and hands each event to keep until
// it returns false.
func readLive(t *testing.T, c *http.Client, r *replica, threadID, last string, keep func(liveEvent) bool) {
	t.Helper()
	readLiveAt(t, c, r.URL, r.name, threadID, last, keep)
}

// readLiveAt is readLive from the server at base (named name), and
// returns the response's headers.
func readLiveAt(t *testing.T, c *http.Client, base, name, threadID, last string, keep func(liveEvent) bool) http.Header {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/threads/"+threadID+"/events", nil)
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET events on %s: %d %s", name, res.StatusCode, res.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var ev liveEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			var v struct {
				Run   string          `json:"run"`
				Event string          `json:"event"`
				Data  json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &v); err != nil {
				t.Fatalf("event data %q: %v", line, err)
			}
			ev.run, ev.event, ev.data = v.Run, v.Event, v.Data
		case line == "" && ev.event != "":
			if !keep(ev) {
				return res.Header
			}
			ev = liveEvent{}
		}
	}
	t.Fatalf("the live stream on %s ended: %v", name, sc.Err())
	return nil
}

// deltaText is the text of a thread.message.delta event's data.
func deltaText(data json.RawMessage) string {
	var d struct {
		Delta struct {
			Content []struct {
				Text struct {
					Value string `json:"value"`
				} `json:"text"`
			} `json:"content"`
		} `json:"delta"`
	}
	_ = json.Unmarshal(data, &d)
	var b strings.Builder
	for _, c := range d.Delta.Content {
		b.WriteString(c.Text.Value)
	}
	return b.String()
}

// TestLiveThreadResumesOnAnotherReplica: the web app's live thread page
// reads a run executed by a worker through replica A, loses its
// connection, and reconnects (as a load balancer would send it) to
// replica C with Last-Event-ID: it reads the rest of the answer with
// nothing lost or repeated.
func TestLiveThreadResumesOnAnotherReplica(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	admin := []string{"--admin-email", "admin@example.com", "--admin-password", "correct horse battery"}
	a := c.start("a", append([]string{"--role", "api"}, admin...)...)
	c.start("b", "--role", "worker")
	cc := c.start("c", append([]string{"--role", "api"}, admin...)...)
	browser := signIn(t, a, "admin@example.com", "correct horse battery")
	asst := newAssistant(t, a)
	th, id := createRun(t, a, asst, "live [[slow 30ms]] [[chunks 60]]")
	var text strings.Builder
	ids := map[string]bool{}
	var last string
	deltas := 0
	read := func(ev liveEvent) {
		if ids[ev.id] {
			t.Errorf("event %s read twice", ev.id)
		}
		ids[ev.id], last = true, ev.id
		if ev.run != id {
			t.Errorf("event of run %s, want %s", ev.run, id)
		}
		if ev.event == "thread.message.delta" {
			text.WriteString(deltaText(ev.data))
			deltas++
		}
	}
	readLive(t, browser, a, th, "", func(ev liveEvent) bool {
		read(ev)
		return deltas < 15
	})
	if row := c.runRow(id); row.Status != "in_progress" {
		t.Fatalf("the run is %s before the reconnect; the test needs it streaming", row.Status)
	}
	var completed string
	readLive(t, browser, cc, th, last, func(ev liveEvent) bool {
		read(ev)
		if ev.event == "thread.message.completed" {
			var m openai.Message
			_ = json.Unmarshal(ev.data, &m)
			completed = msgText(m)
		}
		return ev.event != "thread.run.completed"
	})
	if text.String() != words(60) || completed != words(60) {
		t.Errorf("deltas across both connections gave %q, completed message %q; want %q", text.String(), completed, words(60))
	}
}
