// Command loadgen measures assistantd's streaming overhead and its
// behaviour under many concurrent streaming runs, against the scripted
// upstream (tests/upstream) at a fixed latency per chunk. It reports:
//
//	(a) time to the first thread.message.delta through assistantd versus
//	    time to the first content chunk from the upstream directly:
//	    the overhead's p50 and p99; beside it, the same for a streamed
//	    response (POST /v1/responses, the first response.output_text.delta);
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
//
// -inspect-retention 0 turns the upstream inspector off (it is on by
// default); -args passes further flags to assistantd.
//
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
	"math/rand/v2"
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
	bin := flag.String("bin", "", "assistantd binary (required); several, comma-separated, are measured one after the other and shown side by side")
	runs := flag.Int("runs", 1000, "concurrent streaming runs in phase (b)")
	samples := flag.Int("samples", 200, "sequential runs measured in phase (a)")
	words := flag.Int("words", 20, "text chunks per answer")
	delay := flag.Duration("chunk-delay", 10*time.Millisecond, "upstream latency per chunk")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long (per store)")
	inspect := flag.String("inspect-retention", "", "pass --inspect-retention to assistantd (0 turns the upstream inspector off; empty keeps the binary's default, on)")
	memEvery := flag.Duration("mem-every", 250*time.Millisecond, "how often assistantd's RSS is sampled during phase (b)")
	extra0 := flag.String("args", "", "further space-separated arguments for assistantd")
	pprofURL := flag.String("pprof", "", "base URL of assistantd's profiler (start it with -args \"--debug-addr ...\"); with -heap, heap profiles are fetched from it")
	heapDir := flag.String("heap", "", "directory to save heap profiles in, every -heap-every during phase (b)")
	heapEvery := flag.Duration("heap-every", 2*time.Second, "how often a heap profile is saved")
	firstOnly := flag.Bool("first-only", false, "measure (a) only")
	pg := flag.String("postgres", "", "a PostgreSQL server URL where a database may be created: measure SQLite, then PostgreSQL")
	creates := flag.Int("creates", 4000, "messages created in phase (c)")
	writers := flag.Int("writers", 16, "concurrent clients creating messages in phase (c)")
	mixed := flag.Int("mixed", 0, "clients in phase (m), a mixed load of reads, message creates and streaming runs (0 skips it)")
	mixedFor := flag.Duration("mixed-for", 10*time.Second, "how long phase (m) lasts")
	phases := flag.String("phases", "acb", "phases to measure, of a, c, b (and m with -mixed)")
	cluster := flag.String("replicas", "", "with -postgres: measure replicas instead, one process per comma-separated role (all, api, worker), e.g. all,all or api,worker,worker (see cluster.go)")
	lease := flag.String("run-lease", "", "with -replicas: --run-lease of every replica (the kill -9 takeover waits for it)")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "loadgen: -bin is required")
		os.Exit(2)
	}
	var extra []string
	if *inspect != "" {
		extra = append(extra, "--inspect-retention", *inspect)
	}
	extra = append(extra, strings.Fields(*extra0)...)
	if *cluster != "" {
		if *pg == "" {
			fmt.Fprintln(os.Stderr, "loadgen: -replicas needs -postgres")
			os.Exit(2)
		}
		// Several binaries are measured one after the other, each on a
		// database of its own.
		bins := strings.Split(*bin, ",")
		failed := false
		for _, b := range bins {
			if len(bins) > 1 {
				fmt.Printf("### %s\n", b)
			}
			ctx, cancel := context.WithTimeout(context.Background(), *timeout)
			err := runCluster(ctx, clusterOptions{bin: b, pg: *pg, roles: strings.Split(*cluster, ","),
				runs: *runs, words: *words, delay: *delay, memEvery: *memEvery, lease: *lease, extra: extra})
			cancel()
			if err != nil {
				fmt.Fprintln(os.Stderr, "loadgen:", err)
				failed = true
			}
		}
		if failed {
			os.Exit(1)
		}
		return
	}
	prof := profiler{url: *pprofURL, dir: *heapDir, every: *heapEvery}
	if *firstOnly {
		*phases = "a"
	}
	if *mixed > 0 && !strings.Contains(*phases, "m") {
		*phases += "m"
	}
	opts := options{extra: extra, memEvery: *memEvery, prof: prof, phases: *phases, creates: *creates, writers: *writers,
		mixed: *mixed, mixedFor: *mixedFor}
	stores := []string{"sqlite"}
	if *pg != "" {
		stores = append(stores, "postgres")
	}
	var all []results
	failed := false
	bins := strings.Split(*bin, ",")
	for _, store := range stores {
		for _, bin := range bins {
			label := store
			if len(bins) > 1 {
				label = filepath.Base(bin) + " " + store
			}
			fmt.Printf("== %s (load average %s)\n", label, loadAverage())
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
			r, err := run(ctx, bin, append(args, opts.extra...), *runs, *samples, *words, *delay, opts)
			cancel()
			r.store = label
			r.load = loadAverage()
			all = append(all, r)
			if err != nil {
				fmt.Fprintln(os.Stderr, "loadgen:", label+":", err)
				failed = true
			}
		}
	}
	if len(all) > 1 {
		printSideBySide(all, *runs)
	}
	if failed {
		os.Exit(1)
	}
}

// profiler saves heap profiles of assistantd during phase (b).
type profiler struct {
	url, dir string
	every    time.Duration
}

// snapshots saves a heap profile every p.every until ctx ends, naming
// each by its time and the streams open then, and prints what it saved.
func (p profiler) snapshots(ctx context.Context, pid int, open func() int64) {
	if p.url == "" || p.dir == "" {
		return
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: heap profiles:", err)
		return
	}
	t := time.NewTicker(p.every)
	defer t.Stop()
	start := time.Now()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := open()
		rss, _ := procStatus(pid, "VmRSS:")
		res, err := http.Get(p.url + "/debug/pprof/heap")
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: heap profile:", err)
			continue
		}
		name := filepath.Join(p.dir, fmt.Sprintf("heap-%02d.pb.gz", i))
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if err := os.WriteFile(name, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			continue
		}
		fmt.Printf("    heap profile %s at %v: %d streams open, RSS %.1f MiB; %s\n", name, time.Since(start).Round(time.Second), n,
			float64(rss)/1024, p.breakdown())
	}
}

// memLine matches the runtime.MemStats lines of /debug/pprof/heap?debug=1.
var memLine = regexp.MustCompile(`^# (HeapInuse|HeapIdle|HeapReleased|Stack|Sys) = (\d+)`)

// breakdown reads the Go runtime's memory figures and goroutine count.
func (p profiler) breakdown() string {
	res, err := http.Get(p.url + "/debug/pprof/heap?debug=1")
	if err != nil {
		return err.Error()
	}
	defer res.Body.Close()
	figs := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if m := memLine.FindStringSubmatch(sc.Text()); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			figs[m[1]] = v / (1 << 20)
		}
	}
	goroutines := "?"
	if g, err := http.Get(p.url + "/debug/pprof/goroutine?debug=1"); err == nil {
		b, _ := io.ReadAll(g.Body)
		g.Body.Close()
		line, _, _ := strings.Cut(string(b), "\n")
		goroutines = strings.TrimSpace(strings.TrimPrefix(line, "goroutine profile: total "))
		_ = os.WriteFile(filepath.Join(p.dir, fmt.Sprintf("goroutines-%s.txt", time.Now().Format("150405"))), b, 0o644)
	}
	// The stack bytes the last GC scanned are those in use; the rest of
	// what stacks hold is room they grew into (servers from before
	// runtime-metrics answer 404 and show none).
	scanned := ""
	if r, err := http.Get(p.url + "/debug/pprof/runtime-metrics"); err == nil {
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "/gc/scan/stack:bytes "); ok {
				n, _ := strconv.ParseFloat(v, 64)
				scanned = fmt.Sprintf(" (%.0f MiB in use at the last GC)", n/(1<<20))
			}
		}
		r.Body.Close()
	}
	return fmt.Sprintf("heap in use %.0f MiB, heap idle %.0f MiB (%.0f released), stacks %.0f MiB%s, Go sys %.0f MiB, %s goroutines",
		figs["HeapInuse"], figs["HeapIdle"], figs["HeapReleased"], figs["Stack"], scanned, figs["Sys"], goroutines)
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
	mixed                    mixedResults
	load                     string // the load average after the measurement
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
	if all[0].mixed.clients > 0 {
		row(fmt.Sprintf("%d mixed clients: writes p50/p99/max", all[0].mixed.clients), func(r results) string { return r.mixed.writes.String() })
		row("  reads p50/p99/max", func(r results) string { return r.mixed.reads.String() })
		row("  runs to first delta p50/p99/max", func(r results) string { return r.mixed.runs.String() })
		row("  requests/s (reads, writes, runs)", func(r results) string { return r.mixed.rates })
	}
	row("load average after", func(r results) string { return r.load })
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

// options are loadgen's settings beyond the workload.
type options struct {
	extra            []string // further arguments for assistantd
	memEvery         time.Duration
	prof             profiler
	phases           string // which of a, c, b, m to measure
	creates, writers int
	mixed            int // clients in phase (m)
	mixedFor         time.Duration
}

func run(ctx context.Context, bin string, extra []string, runs, samples, words int, delay time.Duration, opt options) (results, error) {
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
	args := append([]string{"--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--api-key", key,
		"--upstream-url", upURL, "--workers", strconv.Itoa(max(runs, opt.mixed) + 16), "--log-level", "warn"}, extra...)
	cmd := exec.CommandContext(ctx, bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return out, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return out, err
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	addr, metricsURL, err := waitListening(stdout)
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
	if !strings.Contains(opt.phases, "a") {
		samples = 0
	}
	var direct, through, directR, viaResponse []time.Duration
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
		// The same for a streamed response, interleaved so both meet the
		// same machine.
		if d, err = firstChunkDirect(ctx, upURL, prompt); err != nil {
			return out, fmt.Errorf("direct upstream: %w", err)
		}
		directR = append(directR, d)
		first, err := c.streamResponse(ctx, prompt, words)
		if err != nil {
			return out, fmt.Errorf("response %d: %w", i, err)
		}
		viaResponse = append(viaResponse, first)
	}
	overhead := make([]time.Duration, len(direct))
	overheadR := make([]time.Duration, len(directR))
	for i := range direct {
		overhead[i] = through[i] - direct[i]
		overheadR[i] = viaResponse[i] - directR[i]
	}
	if samples > 0 {
		fmt.Printf("(a) first content, %d sequential samples, upstream chunk delay %v\n", samples, delay)
		fmt.Printf("    upstream direct: p50 %v  p99 %v\n", pct(direct, 50), pct(direct, 99))
		fmt.Printf("    via a run:       p50 %v  p99 %v\n", pct(through, 50), pct(through, 99))
		fmt.Printf("    overhead:        p50 %v  p99 %v\n", pct(overhead, 50), pct(overhead, 99))
		fmt.Printf("    via a response:  p50 %v  p99 %v\n", pct(viaResponse, 50), pct(viaResponse, 99))
		fmt.Printf("    overhead:        p50 %v  p99 %v\n", pct(overheadR, 50), pct(overheadR, 99))
	}
	out.overheadP50, out.overheadP99 = pct(overhead, 50), pct(overhead, 99)

	// (c) message creates per second, then list-100 latency.
	if strings.Contains(opt.phases, "c") {
		if err := c.messages(ctx, &out, opt.creates, opt.writers); err != nil {
			return out, fmt.Errorf("messages: %w", err)
		}
	}
	// (m) a mixed load.
	if strings.Contains(opt.phases, "m") && opt.mixed > 0 {
		m, err := c.mixedLoad(ctx, asst.ID, prompt, opt.mixed, opt.mixedFor)
		out.mixed = m
		if err != nil {
			return out, fmt.Errorf("mixed load: %w", err)
		}
	}
	if !strings.Contains(opt.phases, "b") {
		return out, nil
	}

	// (b) many concurrent streaming runs.
	baseRSS, _ := procStatus(cmd.Process.Pid, "VmRSS:")
	baseHWM, _ := procStatus(cmd.Process.Pid, "VmHWM:")
	var maxRSS atomic.Int64
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() { // RSS while the streams run: the peak of this phase alone
		defer close(sampled)
		t := time.NewTicker(opt.memEvery)
		defer t.Stop()
		for {
			if rss, err := procStatus(cmd.Process.Pid, "VmRSS:"); err == nil && rss > maxRSS.Load() {
				maxRSS.Store(rss)
			}
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
			}
		}
	}()
	var wg sync.WaitGroup
	var completed, failed, lost, open atomic.Int64
	profCtx, stopProfiles := context.WithCancel(ctx)
	profiled := make(chan struct{})
	go func() { defer close(profiled); opt.prof.snapshots(profCtx, cmd.Process.Pid, open.Load) }()
	var mu sync.Mutex
	var gaps []time.Duration
	var firstErr error
	start := time.Now()
	for i := 0; i < runs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			open.Add(1)
			res, err := c.streamRun(ctx, asst.ID, prompt)
			open.Add(-1)
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
	stopSampling()
	<-sampled
	stopProfiles()
	<-profiled
	fmt.Printf("(b) %d concurrent streaming runs of %d chunks, upstream chunk delay %v\n", runs, words, delay)
	fmt.Printf("    completed %d, failed %d, events lost %d, wall time %v\n", completed.Load(), failed.Load(), lost.Load(), elapsed.Round(time.Millisecond))
	fmt.Printf("    added inter-event delay: p50 %v  p99 %v  max %v\n", pct(gaps, 50), pct(gaps, 99), pct(gaps, 100))
	if rss, err := procStatus(cmd.Process.Pid, "VmHWM:"); err == nil {
		fmt.Printf("    assistantd peak RSS: %.1f MiB (%.1f MiB before the streams)\n", float64(rss)/1024, float64(baseHWM)/1024)
		out.rssMiB = float64(rss) / 1024
	}
	if m := maxRSS.Load(); m > 0 && runs > 0 {
		fmt.Printf("    assistantd RSS sampled every %v during the streams: max %.1f MiB, from %.1f MiB at rest: %.1f KiB per stream\n",
			opt.memEvery, float64(m)/1024, float64(baseRSS)/1024, float64(m-baseRSS)/float64(runs))
	}
	if metricsURL != "" {
		fmt.Printf("    inspector: %s\n", inspectorFigures(metricsURL))
	}
	out.completed, out.failed, out.lost, out.wall, out.gapP99 = completed.Load(), failed.Load(), lost.Load(), elapsed, pct(gaps, 99)
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

var listening = regexp.MustCompile(`assistantd listening on http://(\S+)`)

var metricsListening = regexp.MustCompile(`metrics listening on (http://\S+)`)

// waitListening reads assistantd's output until it listens, and returns
// its address and, if it serves metrics (-args "--metrics-addr ..."),
// their URL.
func waitListening(r io.Reader) (addr, metrics string, err error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if m := metricsListening.FindStringSubmatch(sc.Text()); m != nil {
			metrics = m[1]
		}
		if m := listening.FindStringSubmatch(sc.Text()); m != nil {
			go io.Copy(io.Discard, r)
			return m[1], metrics, nil
		}
	}
	return "", "", errors.New("assistantd exited before listening")
}

// inspectorLine matches the inspector's figures in the metrics.
var inspectorLine = regexp.MustCompile(`^(assistantd_inspector_dropped_total|assistantd_inspector_queue_bytes) (\S+)`)

// inspectorFigures reads the inspector's drops and backlog from /metrics.
func inspectorFigures(url string) string {
	res, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	defer res.Body.Close()
	var out []string
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if m := inspectorLine.FindStringSubmatch(sc.Text()); m != nil {
			out = append(out, m[1]+" "+m[2])
		}
	}
	if len(out) == 0 {
		return "no inspector figures (inspector off?)"
	}
	return strings.Join(out, ", ")
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
	run        string      // the run's id
	at         []time.Time // when each text delta arrived (cluster mode)
	pieces     []string    // each text delta's text
}

// streamRun creates a thread and run with stream=true (one request) and
// reads its events to the end.
func (c *client) streamRun(ctx context.Context, assistantID, prompt string) (runResult, error) {
	return c.streamEvents(ctx, "/threads/runs", map[string]any{"assistant_id": assistantID, "stream": true,
		"thread": map[string]any{"messages": []map[string]any{{"role": "user", "content": prompt}}}})
}

// streamEvents posts a run with stream=true and reads its events to the
// end.
func (c *client) streamEvents(ctx context.Context, path string, body any) (runResult, error) {
	var res runResult
	start := time.Now()
	resp, err := c.request(ctx, path, body)
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
				piece := ""
				for _, c := range d.Delta.Content {
					piece += c.Text.Value
				}
				text.WriteString(piece)
				res.at, res.pieces = append(res.at, now), append(res.pieces, piece)
			case "thread.run.created":
				var r struct{ ID string }
				_ = json.Unmarshal([]byte(data), &r)
				res.run = r.ID
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

// streamResponse creates a streamed response and reads it to the end; it
// returns the time to the first response.output_text.delta.
func (c *client) streamResponse(ctx context.Context, prompt string, words int) (time.Duration, error) {
	start := time.Now()
	resp, err := c.request(ctx, "/responses", map[string]any{"model": "fake-model", "instructions": "Answer.",
		"input": prompt, "stream": true})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var first time.Duration
	deltas := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		switch line := sc.Text(); {
		case line == "event: response.output_text.delta":
			if deltas == 0 {
				first = time.Since(start)
			}
			deltas++
		case line == "event: response.completed":
			if deltas != words {
				return first, fmt.Errorf("%d text deltas, want %d", deltas, words)
			}
			return first, nil
		case strings.HasPrefix(line, "event: response.failed"), strings.HasPrefix(line, "event: error"):
			return first, errors.New("response failed")
		}
	}
	if err := sc.Err(); err != nil {
		return first, err
	}
	return first, errors.New("stream ended without response.completed")
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

// procStatus reads a KiB figure (VmHWM:, VmRSS:) of a process.
func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			f := strings.Fields(line)
			if len(f) >= 2 {
				return strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	return 0, errors.New("no " + field)
}

// mixedResults are phase (m)'s figures.
type mixedResults struct {
	clients             int
	writes, reads, runs latencies
	rates               string
}

// latencies are one kind of request's p50, p99 and max.
type latencies struct{ p50, p99, max time.Duration }

func latenciesOf(ds []time.Duration) latencies {
	return latencies{pct(ds, 50), pct(ds, 99), pct(ds, 100)}
}

func (l latencies) String() string { return fmt.Sprintf("%v / %v / %v", l.p50, l.p99, l.max) }

// mixedLoad runs clients clients for d, each on a thread of its own, each
// request chosen at random: half reads (a thread's last 20 messages, or
// the thread), a third message creates, the rest a streaming run on the
// thread with the given prompt, read to its end. It reports each kind's
// latency: writes and reads to their response, runs to their first
// delta.
func (c *client) mixedLoad(ctx context.Context, assistantID, prompt string, clients int, d time.Duration) (mixedResults, error) {
	out := mixedResults{clients: clients}
	threads := make([]string, clients)
	for i := range threads {
		var th struct{ ID string }
		if err := c.post(ctx, "/threads", map[string]any{"messages": []map[string]any{{"role": "user", "content": "hello"}}}, &th); err != nil {
			return out, err
		}
		threads[i] = th.ID
	}
	var mu sync.Mutex
	var writes, reads, runs []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(i), 1))
			th := threads[i]
			for time.Now().Before(deadline) {
				var err error
				t0 := time.Now()
				switch n := rnd.IntN(100); {
				case n < 50:
					path := "/threads/" + th + "/messages?limit=20"
					if n < 10 {
						path = "/threads/" + th
					}
					err = c.get(ctx, path)
					mu.Lock()
					reads = append(reads, time.Since(t0))
					mu.Unlock()
				case n < 85:
					var m struct{ ID string }
					err = c.post(ctx, "/threads/"+th+"/messages", map[string]any{"role": "user",
						"content": "a message of a few words to store and list"}, &m)
					mu.Lock()
					writes = append(writes, time.Since(t0))
					mu.Unlock()
				default:
					var res runResult
					res, err = c.streamEvents(ctx, "/threads/"+th+"/runs", map[string]any{"assistant_id": assistantID,
						"stream": true, "additional_messages": []map[string]any{{"role": "user", "content": prompt}}})
					if err == nil && res.status != "completed" {
						err = fmt.Errorf("run %s", res.status)
					}
					mu.Lock()
					runs = append(runs, res.firstDelta)
					mu.Unlock()
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	out.writes, out.reads, out.runs = latenciesOf(writes), latenciesOf(reads), latenciesOf(runs)
	out.rates = fmt.Sprintf("%.0f, %.0f, %.0f", float64(len(reads))/elapsed, float64(len(writes))/elapsed, float64(len(runs))/elapsed)
	fmt.Printf("(m) %d mixed clients for %v (load average %s)\n", clients, d, loadAverage())
	fmt.Printf("    message creates: %d, p50/p99/max %v\n", len(writes), out.writes)
	fmt.Printf("    reads:           %d, p50/p99/max %v\n", len(reads), out.reads)
	fmt.Printf("    runs:            %d, to first delta p50/p99/max %v\n", len(runs), out.runs)
	return out, firstErr
}

// get reads path and discards the body, failing on a status other than
// 200.
func (c *client) get(ctx context.Context, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("OpenAI-Beta", "assistants=v2")
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d", path, res.StatusCode)
	}
	return nil
}

// loadAverage is the machine's 1, 5 and 15 minute load averages.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
