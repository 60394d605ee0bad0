package main

// Cluster mode (-replicas, with -postgres): several assistantd processes
// on one PostgreSQL database, as a deployment runs them, with roles as
// given (all, api, worker). It measures:
//
//	(r) -runs concurrent streaming runs spread round-robin over the
//	    replicas serving the API: completed, events lost, each replica's
//	    peak RSS, and the delay each text delta adds between the upstream
//	    writing its chunk and the reader receiving it, split by whether
//	    the reader's replica is the one executing the run or another
//	    (every delta of a run executed elsewhere crosses the database's
//	    event log);
//	(k) with an API replica and two replicas executing runs: kill -9 of
//	    the replica executing a run streamed through the API replica, and
//	    the time until the run continues on another (its new answer's
//	    first delta reaches the reader), which waits for the lease
//	    (-run-lease).
//
//	go run ./tests/loadgen -bin /tmp/assistantd -postgres "$PG" -replicas all,all -runs 1000
//	go run ./tests/loadgen -bin /tmp/assistantd -postgres "$PG" -replicas api,worker,worker -runs 1000 -run-lease 5s

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/assistantd/assistantd/tests/upstream"
)

type clusterOptions struct {
	bin, pg  string
	roles    []string
	runs     int
	words    int
	delay    time.Duration
	memEvery time.Duration
	lease    string
	extra    []string
}

// replicaProc is one assistantd process of the cluster.
type replicaProc struct {
	name, role string
	cmd        *exec.Cmd
	c          *client // nil for a worker
	exited     chan struct{}
	maxRSS     atomic.Int64
}

func (p *replicaProc) pid() int { return p.cmd.Process.Pid }

// chunkLog records when the upstream sent each content chunk of each
// run's latest request, by the run's tag (tagN in its message).
type chunkLog struct {
	mu    sync.Mutex
	byTag map[string][]chunkAt
}

type chunkAt struct {
	at      time.Time
	content string
}

var (
	tagWord    = regexp.MustCompile(`\btag\d+\b`)
	contentRaw = regexp.MustCompile(`"content":"((?:[^"\\]|\\.)*)"`)
)

func (l *chunkLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/chat/completions") {
			next.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var req upstream.Request
		_ = json.Unmarshal(body, &req)
		tag := ""
		for i := len(req.Messages) - 1; i >= 0; i-- {
			if req.Messages[i].Role == "user" {
				tag = tagWord.FindString(req.Messages[i].Text())
				break
			}
		}
		if tag == "" {
			next.ServeHTTP(w, r)
			return
		}
		l.mu.Lock()
		l.byTag[tag] = nil // a resumed run asks again: its latest request counts
		l.mu.Unlock()
		next.ServeHTTP(&chunkWriter{ResponseWriter: w, log: l, tag: tag}, r)
	})
}

// chunkWriter notes each content chunk the upstream writes, timed when it
// is flushed to the wire.
type chunkWriter struct {
	http.ResponseWriter
	log     *chunkLog
	tag     string
	pending string
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	if m := contentRaw.FindSubmatch(p); m != nil && len(m[1]) > 0 {
		var s string
		if json.Unmarshal(append(append([]byte{'"'}, m[1]...), '"'), &s) == nil {
			c.pending = s
		}
	}
	return c.ResponseWriter.Write(p)
}

func (c *chunkWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	if c.pending != "" {
		now := time.Now()
		c.log.mu.Lock()
		c.log.byTag[c.tag] = append(c.log.byTag[c.tag], chunkAt{now, c.pending})
		c.log.mu.Unlock()
		c.pending = ""
	}
}

func runCluster(ctx context.Context, o clusterOptions) error {
	url, drop, err := createDatabase(o.pg)
	if err != nil {
		return err
	}
	defer drop()
	chunks := &chunkLog{byTag: map[string][]chunkAt{}}
	up := upstream.New()
	up.ChunkDelay = o.delay
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	upSrv := &http.Server{Handler: chunks.wrap(up)}
	go upSrv.Serve(ln)
	defer upSrv.Close()
	upURL := "http://" + ln.Addr().String() + "/v1"
	dir, err := os.MkdirTemp("", "loadgen-cluster-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	key := "sk-loadgen-0123456789abcdef"
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.runs + 16, DisableCompression: true}}

	var procs []*replicaProc
	defer func() {
		for _, p := range procs {
			_ = p.cmd.Process.Signal(os.Interrupt)
			select {
			case <-p.exited:
			case <-time.After(20 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.exited
			}
		}
	}()
	for i, role := range o.roles {
		args := []string{"--addr", "127.0.0.1:0", "--data", filepath.Join(dir, strconv.Itoa(i)), "--api-key", key,
			"--database-url", url, "--db-max-conns", "50", "--upstream-url", upURL, "--workers", strconv.Itoa(o.runs + 16),
			"--log-level", "warn", "--role", role}
		if o.lease != "" {
			args = append(args, "--run-lease", o.lease)
		}
		cmd := exec.Command(o.bin, append(args, o.extra...)...)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return err
		}
		p := &replicaProc{name: fmt.Sprintf("r%d (%s)", i+1, role), role: role, cmd: cmd, exited: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(p.exited) }()
		procs = append(procs, p)
		addr, _, err := waitListening(stdout)
		if err != nil {
			return fmt.Errorf("replica %s: %w", p.name, err)
		}
		if role != "worker" {
			p.c = &client{base: "http://" + addr + "/v1", key: key, http: httpc}
		}
	}
	var apis []*replicaProc
	for _, p := range procs {
		if p.c != nil {
			apis = append(apis, p)
		}
	}
	if len(apis) == 0 {
		return errors.New("-replicas: no replica serves the API")
	}
	var asst struct{ ID string }
	if err := apis[0].c.post(ctx, "/assistants", map[string]any{"model": "fake-model", "instructions": "Answer."}, &asst); err != nil {
		return fmt.Errorf("create assistant: %w", err)
	}
	conn, err := sql.Open("pgx", url)
	if err != nil {
		return err
	}
	defer conn.Close()
	fmt.Printf("== %d replicas (%s) on PostgreSQL, load average %s\n", len(procs), strings.Join(o.roles, ", "), loadAverage())

	// (r) streams spread over the API replicas.
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(o.memEvery)
		defer t.Stop()
		for {
			for _, p := range procs {
				if rss, err := procStatus(p.pid(), "VmRSS:"); err == nil && rss > p.maxRSS.Load() {
					p.maxRSS.Store(rss)
				}
			}
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
			}
		}
	}()
	rest := make([]int64, len(procs))
	for i, p := range procs {
		rest[i], _ = procStatus(p.pid(), "VmRSS:")
	}
	type stream struct {
		reader int
		tag    string
		res    runResult
		err    error
	}
	streams := make([]stream, o.runs)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range streams {
		s := &streams[i]
		reader := apis[i%len(apis)]
		for j, p := range procs {
			if p == reader {
				s.reader = j
			}
		}
		s.tag = fmt.Sprintf("tag%d", i)
		wg.Go(func() {
			s.res, s.err = reader.c.streamRun(ctx, asst.ID, fmt.Sprintf("[[chunks %d]] %s", o.words, s.tag))
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopSampling()
	<-sampled

	executors, err := runExecutors(ctx, conn, procs)
	if err != nil {
		return err
	}
	var completed, failed, lost, cross int
	var firstErr error
	var local, remote, gaps []time.Duration
	unmatched := 0
	for _, s := range streams {
		if s.err != nil {
			failed++
			if firstErr == nil {
				firstErr = s.err
			}
			continue
		}
		if s.res.status == "completed" {
			completed++
		} else {
			failed++
		}
		lost += o.words - s.res.deltas
		if s.res.text != expectedText(o.words) {
			lost++
		}
		for _, g := range s.res.gaps {
			gaps = append(gaps, max(g-o.delay, 0))
		}
		exec, known := executors[s.res.run]
		elsewhere := known && exec != s.reader
		if elsewhere {
			cross++
		}
		chunks.mu.Lock()
		sent := chunks.byTag[s.tag]
		chunks.mu.Unlock()
		for i, at := range s.res.at {
			if i >= len(sent) || strings.TrimSpace(sent[i].content) != strings.TrimSpace(s.res.pieces[i]) {
				unmatched++
				continue
			}
			d := at.Sub(sent[i].at)
			if elsewhere {
				remote = append(remote, d)
			} else {
				local = append(local, d)
			}
		}
	}
	fmt.Printf("(r) %d concurrent streaming runs of %d chunks (upstream chunk delay %v), spread over %d API replica(s); %d read on another replica than the one executing them\n",
		o.runs, o.words, o.delay, len(apis), cross)
	fmt.Printf("    completed %d, failed %d, events lost %d, wall time %v\n", completed, failed, lost, elapsed.Round(time.Millisecond))
	fmt.Printf("    upstream chunk → reader, reader on the executing replica: p50 %v  p99 %v  max %v (%d deltas)\n",
		pct(local, 50), pct(local, 99), pct(local, 100), len(local))
	fmt.Printf("    upstream chunk → reader, reader on another replica:       p50 %v  p99 %v  max %v (%d deltas)\n",
		pct(remote, 50), pct(remote, 99), pct(remote, 100), len(remote))
	if unmatched > 0 {
		fmt.Printf("    %d deltas not matched to an upstream chunk (not timed)\n", unmatched)
	}
	fmt.Printf("    added inter-event delay: p50 %v  p99 %v  max %v\n", pct(gaps, 50), pct(gaps, 99), pct(gaps, 100))
	for i, p := range procs {
		hwm, _ := procStatus(p.pid(), "VmHWM:")
		n := 0
		for _, e := range executors {
			if e == i {
				n++
			}
		}
		fmt.Printf("    %s: executed %d runs; RSS max %.1f MiB while streaming (%.1f at rest), peak %.1f MiB\n",
			p.name, n, float64(p.maxRSS.Load())/1024, float64(rest[i])/1024, float64(hwm)/1024)
	}
	if firstErr != nil {
		fmt.Printf("    first error: %v\n", firstErr)
	}

	// (k) kill -9 of the replica executing a run another replica streams.
	var reader *replicaProc
	executing := 0
	for _, p := range procs {
		if p.role == "api" && reader == nil {
			reader = p
		}
		if p.role != "api" {
			executing++
		}
	}
	if reader != nil && executing >= 2 {
		if err := killTakeover(ctx, conn, reader, procs, asst.ID); err != nil {
			return fmt.Errorf("kill takeover: %w", err)
		}
	}
	if failed > 0 || lost > 0 {
		return errors.New("some runs failed or lost events")
	}
	return nil
}

var claimPID = regexp.MustCompile(`-(\d+)-[0-9a-f]+$`)

// runExecutors maps each run to the replica (index into procs) whose
// claim it ended with.
func runExecutors(ctx context.Context, conn *sql.DB, procs []*replicaProc) (map[string]int, error) {
	rows, err := conn.QueryContext(ctx, `SELECT id, claimed_by FROM runs WHERE claimed_by IS NOT NULL`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id, by string
		if err := rows.Scan(&id, &by); err != nil {
			return nil, err
		}
		if m := claimPID.FindStringSubmatch(by); m != nil {
			pid, _ := strconv.Atoi(m[1])
			for i, p := range procs {
				if p.pid() == pid {
					out[id] = i
				}
			}
		}
	}
	return out, rows.Err()
}

// killTakeover streams a slow run through reader, kills the replica
// executing it once 20 deltas have arrived, and reports how long until
// another replica claimed it and until its new answer's first delta
// reached the reader.
func killTakeover(ctx context.Context, conn *sql.DB, reader *replicaProc, procs []*replicaProc, asst string) error {
	resp, err := reader.c.request(ctx, "/threads/runs", map[string]any{"assistant_id": asst, "stream": true,
		"thread": map[string]any{"messages": []map[string]any{{"role": "user", "content": "[[slow 20ms]] [[chunks 200]] takeover"}}}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var runID string
	var killed, claimed, continued time.Time
	deltas, newMessages := 0, 0
	claimedCh := make(chan time.Time, 1)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		if e, ok := strings.CutPrefix(line, "event: "); ok {
			event = e
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		switch event {
		case "thread.run.created":
			var r struct{ ID string }
			_ = json.Unmarshal([]byte(data), &r)
			runID = r.ID
		case "thread.message.created":
			if !killed.IsZero() {
				newMessages++
			}
		case "thread.message.delta":
			deltas++
			if deltas == 20 && killed.IsZero() {
				var by string
				var attempts int
				if err := conn.QueryRowContext(ctx, `SELECT claimed_by, attempts FROM runs WHERE id = $1`, runID).Scan(&by, &attempts); err != nil {
					return err
				}
				var victim *replicaProc
				if m := claimPID.FindStringSubmatch(by); m != nil {
					pid, _ := strconv.Atoi(m[1])
					for _, p := range procs {
						if p.pid() == pid {
							victim = p
						}
					}
				}
				if victim == nil || victim == reader {
					return fmt.Errorf("run %s is executed by %q, not another replica of this cluster", runID, by)
				}
				_ = victim.cmd.Process.Signal(syscall.SIGKILL)
				<-victim.exited
				killed = time.Now()
				go func() { // the claim by another replica, polled
					for ctx.Err() == nil {
						var n int
						_ = conn.QueryRowContext(ctx, `SELECT attempts FROM runs WHERE id = $1`, runID).Scan(&n)
						if n > attempts {
							claimedCh <- time.Now()
							return
						}
						time.Sleep(5 * time.Millisecond)
					}
				}()
			}
			if newMessages > 0 && continued.IsZero() {
				continued = time.Now()
			}
		case "done":
			select {
			case claimed = <-claimedCh:
			default:
			}
			if continued.IsZero() {
				return errors.New("the run did not continue after the kill")
			}
			fmt.Printf("(k) kill -9 of the replica executing a run streamed through %s: claimed by another replica after %v, its new answer's first delta reached the reader after %v\n",
				reader.name, claimed.Sub(killed).Round(time.Millisecond), continued.Sub(killed).Round(time.Millisecond))
			return nil
		}
	}
	return errors.New("the stream ended without done")
}
