// Command loadgen measures assistantd's streaming overhead and its
// behaviour under many concurrent streaming runs, against the scripted
// upstream (tests/upstream) at a fixed latency per chunk. It reports:
//
//	(a) time to the first thread.message.delta through assistantd versus
//	    time to the first content chunk from the upstream directly:
//	    the overhead's p50 and p99;
//	(b) N concurrent streaming runs: how many completed, events lost (text
//	    deltas missing or out of order against the upstream's chunks),
//	    assistantd's peak RSS, and the added inter-event delay p99 (the gap
//	    between consecutive deltas beyond the upstream's own chunk delay);
//	(c) message creates per second (concurrent clients, a thread each) and
//	    the latency of listing 100 messages.
//
// With -postgres (a server where it may create a database) it measures
// SQLite and PostgreSQL one after the other and prints them side by side.
//
// Usage (from the repo root):
//
//	go build -o /tmp/assistantd . && go run ./tests/loadgen -bin /tmp/assistantd -runs 1000
//	go run ./tests/loadgen -bin /tmp/assistantd -postgres "postgres:///postgres?host=/tmp/pg&user=postgres"
package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/assistantd/assistantd/db/dbtest"
	"github.com/assistantd/assistantd/tests/upstream"
)

func main() {
	bin := flag.String("bin", "", "assistantd binary (required)")
	runs := flag.Int("runs", 1000, "concurrent streaming runs in phase (b)")
	samples := flag.Int("samples", 200, "sequential runs measured in phase (a)")
	words := flag.Int("words", 20, "text chunks per answer")
	delay := flag.Duration("chunk-delay", 10*time.Millisecond, "upstream latency per chunk")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long (per store)")
	pg := flag.String("postgres", "", "a PostgreSQL server URL where a database may be created: measure SQLite, then PostgreSQL")
	creates := flag.Int("creates", 4000, "messages created in phase (c)")
	writers := flag.Int("writers", 16, "concurrent clients creating messages in phase (c)")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "loadgen: -bin is required")
		os.Exit(2)
	}
	stores := []string{"sqlite"}
	if *pg != "" {
		stores = append(stores, "postgres")
	}
	var all []results
	failed := false
	for _, store := range stores {
		fmt.Printf("== %s\n", store)
		var args []string
		if store == "postgres" {
			url, drop, err := createDatabase(*pg)
			if err != nil {
				fmt.Fprintln(os.Stderr, "loadgen:", err)
				os.Exit(1)
			}
			defer drop()
			args = []string{"--database-url", url, "--db-max-conns", "50"}
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		r, err := run(ctx, *bin, args, *runs, *samples, *words, *delay, *creates, *writers)
		cancel()
		r.store = store
		all = append(all, r)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", store+":", err)
			failed = true
		}
	}
	if len(all) > 1 {
		printSideBySide(all, *runs)
	}
	if failed {
		os.Exit(1)
	}
}

// results are one store's figures.
type results struct {
	store                    string
	overheadP50, overheadP99 time.Duration
	completed, failed, lost  int64
	wall                     time.Duration
	gapP99                   time.Duration
	rssMiB                   float64
	createsPerSec            float64
	listP50, listP99         time.Duration
}

func printSideBySide(all []results, runs int) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\n== side by side\t"+strings.Join(func() []string {
		var s []string
		for _, r := range all {
			s = append(s, r.store)
		}
		return s
	}(), "\t"))
	row := func(name string, f func(r results) string) {
		cells := []string{name}
		for _, r := range all {
			cells = append(cells, f(r))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	row("message creates/s", func(r results) string { return fmt.Sprintf("%.0f", r.createsPerSec) })
	row("list 100 messages p50", func(r results) string { return r.listP50.String() })
	row("list 100 messages p99", func(r results) string { return r.listP99.String() })
	row("first delta overhead p50/p99", func(r results) string { return r.overheadP50.String() + " / " + r.overheadP99.String() })
	row(fmt.Sprintf("%d streaming runs: completed", runs), func(r results) string { return fmt.Sprint(r.completed) })
	row("  failed / events lost", func(r results) string { return fmt.Sprintf("%d / %d", r.failed, r.lost) })
	row("  wall time", func(r results) string { return r.wall.Round(time.Millisecond).String() })
	row("  added inter-event delay p99", func(r results) string { return r.gapP99.String() })
	row("  assistantd peak RSS", func(r results) string { return fmt.Sprintf("%.1f MiB", r.rssMiB) })
	tw.Flush()
}

// createDatabase makes an empty database on the server at base and
// returns its URL and a function dropping it.
func createDatabase(base string) (string, func(), error) {
	admin, err := sql.Open("pgx", base)
	if err != nil {
		return "", nil, err
	}
	name := fmt.Sprintf("assistantd_loadgen_%d", time.Now().UnixNano())
	if _, err := admin.Exec(`CREATE DATABASE ` + name); err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	drop := func() {
		_, _ = admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`)
		admin.Close()
	}
	return dbtest.WithDatabase(base, name), drop, nil
}

func run(ctx context.Context, bin string, storeArgs []string, runs, samples, words int, delay time.Duration,
	creates, writers int) (results, error) {
	var out results
	up := upstream.New()
	up.ChunkDelay = delay
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return out, err
	}
	upSrv := &http.Server{Handler: up}
	go upSrv.Serve(ln)
	defer upSrv.Close()
	upURL := "http://" + ln.Addr().String() + "/v1"

	dir, err := os.MkdirTemp("", "loadgen-")
	if err != nil {
		return out, err
	}
	defer os.RemoveAll(dir)
	key := "sk-loadgen-0123456789abcdef"
	cmd := exec.CommandContext(ctx, bin, append([]string{"--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--api-key", key,
		"--upstream-url", upURL, "--workers", strconv.Itoa(runs + 16), "--log-level", "warn"}, storeArgs...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return out, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return out, err
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	addr, err := waitListening(stdout)
	if err != nil {
		return out, err
	}
	c := &client{base: "http://" + addr + "/v1", key: key, http: &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: runs + 16, MaxConnsPerHost: 0, DisableCompression: true}}}

	var asst struct{ ID string }
	if err := c.post(ctx, "/assistants", map[string]any{"model": "fake-model", "instructions": "Answer."}, &asst); err != nil {
		return out, fmt.Errorf("create assistant: %w", err)
	}
	prompt := fmt.Sprintf("[[chunks %d]]", words)

	// (a) overhead to the first delta, sequentially (no contention).
	var direct, through []time.Duration
	for i := 0; i < samples; i++ {
		d, err := firstChunkDirect(ctx, upURL, prompt)
		if err != nil {
			return out, fmt.Errorf("direct upstream: %w", err)
		}
		direct = append(direct, d)
		res, err := c.streamRun(ctx, asst.ID, prompt)
		if err != nil {
			return out, fmt.Errorf("run %d: %w", i, err)
		}
		through = append(through, res.firstDelta)
	}
	overhead := make([]time.Duration, len(direct))
	for i := range direct {
		overhead[i] = through[i] - direct[i]
	}
	fmt.Printf("(a) first content, %d sequential samples, upstream chunk delay %v\n", samples, delay)
	fmt.Printf("    upstream direct: p50 %v  p99 %v\n", pct(direct, 50), pct(direct, 99))
	fmt.Printf("    via assistantd:  p50 %v  p99 %v\n", pct(through, 50), pct(through, 99))
	fmt.Printf("    overhead:        p50 %v  p99 %v\n", pct(overhead, 50), pct(overhead, 99))
	out.overheadP50, out.overheadP99 = pct(overhead, 50), pct(overhead, 99)

	// (c) message creates per second, then list-100 latency.
	if err := c.messages(ctx, &out, creates, writers); err != nil {
		return out, fmt.Errorf("messages: %w", err)
	}

	// (b) many concurrent streaming runs.
	var wg sync.WaitGroup
	var completed, failed, lost atomic.Int64
	var mu sync.Mutex
	var gaps []time.Duration
	var firstErr error
	start := time.Now()
	for i := 0; i < runs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.streamRun(ctx, asst.ID, prompt)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed.Add(1)
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			if res.status == "completed" {
				completed.Add(1)
			} else {
				failed.Add(1)
			}
			lost.Add(int64(words - res.deltas))
			if res.text != expectedText(words) {
				lost.Add(1) // reordered or corrupted text counts as a loss
			}
			for _, g := range res.gaps {
				gaps = append(gaps, max(g-delay, 0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	fmt.Printf("(b) %d concurrent streaming runs of %d chunks, upstream chunk delay %v\n", runs, words, delay)
	fmt.Printf("    completed %d, failed %d, events lost %d, wall time %v\n", completed.Load(), failed.Load(), lost.Load(), elapsed.Round(time.Millisecond))
	fmt.Printf("    added inter-event delay: p50 %v  p99 %v  max %v\n", pct(gaps, 50), pct(gaps, 99), pct(gaps, 100))
	out.completed, out.failed, out.lost, out.wall, out.gapP99 = completed.Load(), failed.Load(), lost.Load(), elapsed, pct(gaps, 99)
	if rss, err := peakRSS(cmd.Process.Pid); err == nil {
		fmt.Printf("    assistantd peak RSS: %.1f MiB\n", float64(rss)/1024)
		out.rssMiB = float64(rss) / 1024
	}
	if firstErr != nil {
		fmt.Printf("    first error: %v\n", firstErr)
	}
	if failed.Load() > 0 || lost.Load() > 0 {
		return out, errors.New("some runs failed or lost events")
	}
	return out, nil
}

// messages measures message creates per second (writers clients, each on
// its own thread, creates messages in all) and the latency of listing
// 100 messages of a thread.
func (c *client) messages(ctx context.Context, out *results, creates, writers int) error {
	threads := make([]string, writers)
	for i := range threads {
		var th struct{ ID string }
		if err := c.post(ctx, "/threads", map[string]any{}, &th); err != nil {
			return err
		}
		threads[i] = th.ID
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	start := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(creates) {
				var m struct{ ID string }
				if err := c.post(ctx, "/threads/"+threads[w]+"/messages", map[string]any{"role": "user",
					"content": "a message of a few words to store and list"}, &m); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	elapsed := time.Since(start)
	out.createsPerSec = float64(creates) / elapsed.Seconds()
	// A thread of exactly 100 messages to list.
	var listed struct{ ID string }
	if err := c.post(ctx, "/threads", map[string]any{}, &listed); err != nil {
		return err
	}
	for i := range 100 {
		var m struct{ ID string }
		if err := c.post(ctx, "/threads/"+listed.ID+"/messages", map[string]any{"role": "user",
			"content": fmt.Sprintf("message %d of a few words to store and list", i)}, &m); err != nil {
			return err
		}
	}
	var lat []time.Duration
	for range 200 {
		t0 := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/threads/"+listed.ID+"/messages?limit=100", nil)
		req.Header.Set("Authorization", "Bearer "+c.key)
		req.Header.Set("OpenAI-Beta", "assistants=v2")
		res, err := c.http.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("list messages: %d", res.StatusCode)
		}
		lat = append(lat, time.Since(t0))
	}
	out.listP50, out.listP99 = pct(lat, 50), pct(lat, 99)
	fmt.Printf("(c) %d message creates by %d clients (a thread each): %.0f/s; list 100 messages: p50 %v  p99 %v\n",
		creates, writers, out.createsPerSec, out.listP50, out.listP99)
	return nil
}

func expectedText(words int) string {
	w := make([]string, words)
	for i := range w {
		w[i] = fmt.Sprintf("w%d", i)
	}
	return strings.Join(w, " ")
}

var listening = regexp.MustCompile(`listening on http://(\S+)`)

func waitListening(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if m := listening.FindStringSubmatch(sc.Text()); m != nil {
			go io.Copy(io.Discard, r)
			return m[1], nil
		}
	}
	return "", errors.New("assistantd exited before listening")
}

type client struct {
	base, key string
	http      *http.Client
}

func (c *client) request(ctx context.Context, path string, body any) (*http.Response, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("OpenAI-Beta", "assistants=v2")
	res, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return nil, fmt.Errorf("POST %s: %d %s", path, res.StatusCode, msg)
	}
	return res, nil
}

func (c *client) post(ctx context.Context, path string, body, out any) error {
	res, err := c.request(ctx, path, body)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	return json.NewDecoder(res.Body).Decode(out)
}

type runResult struct {
	firstDelta time.Duration
	deltas     int
	text       string
	status     string
	gaps       []time.Duration
}

// streamRun creates a thread and run with stream=true (one request) and
// reads its events to the end.
func (c *client) streamRun(ctx context.Context, assistantID, prompt string) (runResult, error) {
	var res runResult
	start := time.Now()
	resp, err := c.request(ctx, "/threads/runs", map[string]any{"assistant_id": assistantID, "stream": true,
		"thread": map[string]any{"messages": []map[string]any{{"role": "user", "content": prompt}}}})
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	var text strings.Builder
	var last time.Time
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data := strings.TrimPrefix(line, "data: ")
			now := time.Now()
			switch event {
			case "thread.message.delta":
				if res.deltas == 0 {
					res.firstDelta = now.Sub(start)
				} else {
					res.gaps = append(res.gaps, now.Sub(last))
				}
				last = now
				res.deltas++
				var d struct {
					Delta struct {
						Content []struct {
							Text struct{ Value string } `json:"text"`
						} `json:"content"`
					} `json:"delta"`
				}
				if err := json.Unmarshal([]byte(data), &d); err != nil {
					return res, err
				}
				for _, c := range d.Delta.Content {
					text.WriteString(c.Text.Value)
				}
			case "thread.run.completed", "thread.run.failed", "thread.run.incomplete", "thread.run.cancelled", "thread.run.expired":
				res.status = strings.TrimPrefix(event, "thread.run.")
			case "done":
				res.text = text.String()
				return res, nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return res, err
	}
	return res, errors.New("stream ended without done")
}

// firstChunkDirect measures the time to the first content chunk from the
// upstream itself.
func firstChunkDirect(ctx context.Context, base, prompt string) (time.Duration, error) {
	body, _ := json.Marshal(map[string]any{"model": "fake-model", "stream": true,
		"messages": []map[string]any{{"role": "user", "content": prompt}}})
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/chat/completions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	var first time.Duration
	for sc.Scan() {
		if line := sc.Text(); strings.Contains(line, `"content":"w`) && first == 0 {
			first = time.Since(start)
		}
	}
	if first == 0 {
		return 0, errors.New("no content chunk")
	}
	return first, nil
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := min(len(s)-1, len(s)*p/100)
	return s[i].Round(10 * time.Microsecond)
}

// peakRSS reads VmHWM (KiB) of a process.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				return strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	return 0, errors.New("no VmHWM")
}
