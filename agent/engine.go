// Package agent is assistantd's run engine: the durable queue and worker
// pool, the run lifecycle, prompt building, the upstream model client, and
// the event hub that feeds streams.
//
// The database is the queue: a run is work to do while it is queued (or
// in_progress when a restart interrupted it). The in-memory channel only
// wakes workers; a periodic scan and start-up recovery pick up anything it
// missed, so a run is never left stuck.
//
// Every state change is written to the store and then published to the hub
// under a per-run lock, so the events a stream reads are in the order the
// store saw the changes.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/assistantd/assistantd/db"
	"go.opentelemetry.io/otel/trace"

	"github.com/assistantd/assistantd/telemetry"
)

// Store is what the engine needs from the store.
type Store interface {
	Batch(ctx context.Context, fn func(ctx context.Context, tx *db.Tx) error) error
	Now() int64
	CreateRun(ctx context.Context, r db.Run, extra []db.Message) (db.Run, error)
	CreateThreadAndRun(ctx context.Context, t db.Thread, msgs []db.Message, r db.Run) (db.Thread, db.Run, error)
	GetRun(ctx context.Context, threadID, id string) (db.Run, error)
	RunProject(ctx context.Context, id string) (string, error)
	RunsWithStatus(ctx context.Context, statuses ...string) ([]db.Run, error)
	ClaimRuns(ctx context.Context, me string, lease time.Duration, limit int, id string) ([]db.Claim, error)
	RenewLease(ctx context.Context, id, me string, attempt int, lease time.Duration) (status string, held bool, err error)
	RenewLeasesWaiting(ctx context.Context, me string, held map[string]int, lease time.Duration) (map[string]string, error)
	RenewLeases(ctx context.Context, me string, held map[string]int, lease time.Duration) (map[string]string, error)
	LeaseHeld(ctx context.Context, id, me string) (bool, error)
	ReleaseLease(ctx context.Context, id, me string, attempt int) error
	PreferKernel(ctx context.Context, runID, me string, window time.Duration) (string, error)
	Notify(ctx context.Context, channel, payload string) error
	AppendRunEvents(ctx context.Context, runID string, events []db.RunEvent) (int64, error)
	AppendRunLogs(ctx context.Context, me string, as []db.RunAppend) ([]db.RunAppended, error)
	RunEvents(ctx context.Context, runID string, after int64, limit int) ([]db.RunEvent, error)
	ThreadLoggedRuns(ctx context.Context, threadID string, since int64) ([]string, error)
	TakeLeadership(ctx context.Context, name, me string, lease time.Duration) (bool, error)
	ResignLeadership(ctx context.Context, name, me string) error
	Listen(ctx context.Context, channels []string, handle func(channel, payload string), listening func(lost error))
	ExpiredRuns(ctx context.Context, now int64) ([]db.Run, error)
	ThreadRuns(ctx context.Context, threadID string) ([]db.Run, error)
	ThreadSteps(ctx context.Context, threadID string) ([]db.RunStep, error)
	HistoryMessages(ctx context.Context, threadID string) ([]db.Message, []int64, error)
	ActiveRun(ctx context.Context, threadID string) (string, error)
	ResponseContextOf(ctx context.Context, resp db.ResponseRecord, input []json.RawMessage) ([]json.RawMessage, error)
	PrepareMessage(m db.Message) db.Message
	PrepareStep(st db.RunStep) db.RunStep
	Announce(threadID, runID string) (settle func())
	WritesWaiting() int
	OpenFile(ctx context.Context, id string) (db.File, io.ReadSeekCloser, error)

	CreateResponse(ctx context.Context, t db.Thread, r db.Run, resp db.ResponseRecord, input []json.RawMessage) (db.Thread, db.Run, error)
	ResponseInput(ctx context.Context, responseID string) ([]json.RawMessage, error)
	GetResponse(ctx context.Context, id string) (db.ResponseRecord, error)
	DeleteResponse(ctx context.Context, id string) error
}

// Config tunes the engine.
type Config struct {
	// Workers bounds how many runs execute at once.
	Workers int
	// RunTimeout is how long a run may stay non-terminal (expires_at).
	RunTimeout time.Duration
	// MaxSteps caps the steps of one run (tool rounds included).
	MaxSteps int
	// Retries is how many times a failed upstream request is retried
	// (429, 5xx, timeouts); RetryBackoff is the first wait, doubled each time.
	Retries      int
	RetryBackoff time.Duration
	// SweepInterval is how often expiry and the queue are checked.
	SweepInterval time.Duration
	// Builtins are the tool types the server runs itself
	// (code_interpreter, file_search), by their Type. A built-in tool type
	// none of them serves is not offered to the model.
	Builtins []Builtin
	// Functions picks a runner for a function call (a webhook); nil, or a
	// call it does not serve, leaves the call to the client.
	Functions FunctionRouter
	// RunLease is how long a claim on a run lasts unless renewed; the
	// executor renews it every third of that. Another replica resumes a
	// run whose lease expired (see lease.go).
	RunLease time.Duration
	// Postgres: the store is PostgreSQL, shared with other replicas that
	// notify this one (see control.go).
	Postgres bool
	// EventLog writes every run event to the store's durable log, from
	// which every replica's readers are fed (PostgreSQL; see eventlog.go).
	// Off, events go straight to the in-memory hub (SQLite).
	EventLog bool
	// EventFlush is how long text deltas wait to be written to the
	// durable log together (default 50 ms).
	EventFlush time.Duration
	// APIOnly keeps this replica from executing runs (--role api): it
	// creates, answers and cancels them, and other replicas execute them.
	APIOnly bool
	// Presence, when set, is this replica's presence lease row (see
	// db.PresenceName), renewed with the housekeeper lease so that
	// starting replicas see it alive.
	Presence string
	// Replica names this process in claims (runs.claimed_by); default a
	// random id per start.
	Replica string
	// KernelAffinity is how long a run queued through this replica waits
	// for the replica whose code_interpreter kernel holds its thread's
	// variables, when that is another live replica, before any replica
	// may claim it (PostgreSQL; default 2 s).
	KernelAffinity time.Duration
	// Sweeps is the server's other housekeeping (expired files, old
	// inspector records …), run beside the engine's own sweep by the one
	// replica holding the housekeeper lease (housekeeper.go).
	Sweeps []Sweep
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 256
	}
	if c.RunTimeout <= 0 {
		c.RunTimeout = 10 * time.Minute
	}
	if c.MaxSteps <= 0 {
		c.MaxSteps = 50
	}
	if c.Retries < 0 {
		c.Retries = 0
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 500 * time.Millisecond
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = time.Second
	}
	if c.EventFlush <= 0 {
		c.EventFlush = 50 * time.Millisecond
	}
	if c.RunLease <= 0 {
		c.RunLease = 30 * time.Second
	}
	if c.Replica == "" {
		c.Replica = NewReplicaID()
	}
	if c.KernelAffinity <= 0 {
		c.KernelAffinity = 2 * time.Second
	}
}

// Causes of a run's execution context being cancelled.
var (
	errCancelled     = errors.New("run cancelled")
	errExpired       = errors.New("run expired")
	errThreadDeleted = errors.New("thread deleted")
)

// maxRecoveries is how many times a run interrupted by restarts is resumed
// before it is failed instead.
const maxRecoveries = 3

type job struct {
	runID       string
	attempt     int    // the claim's fencing token; 0: not claimed yet (claim by id)
	resume      bool   // an in_progress run whose last execution was interrupted
	traceparent string // the creating request's span, kept by the run's first claim
	project     string // the run's project; "" when the job's source did not say (looked up)
	// fresh is set on a run executing before its creation has committed
	// (see create).
	fresh *freshRun
}

// Engine executes runs.
type Engine struct {
	store     Store
	providers *Providers
	hub       *Hub
	elog      *eventLog // the durable event log, when Config.EventLog
	log       *slog.Logger
	cfg       Config

	builtins  map[string]Builtin
	inspector *Inspector         // records upstream exchanges, when enabled
	projects  *projectRules      // projects' settings and usage, when enabled (projects.go)
	metrics   *telemetry.Metrics // nil: none (see EnableMetrics)
	tracer    trace.Tracer       // see EnableTracing
	tracing   bool

	queue chan job
	slots chan struct{} // one per execution under way: at most Workers
	// runCtx is Start's context, which executions run under; nil before
	// Start (a run created then waits in the queue).
	runCtx atomic.Pointer[context.Context]
	locks  [256]sync.Mutex

	renewing atomic.Bool // a renewal of runs whose rows were locked is under way (renewAll)

	mu       sync.Mutex
	inflight map[string]context.CancelCauseFunc
	pending  map[string]bool // queued in the channel, not yet started
	leases   map[string]int  // runs executing here: the attempt this replica's claim holds
	stashed  map[string]job  // claims made while the run was already pending or executing here
	wg       sync.WaitGroup
}

// New returns an engine; Start runs it.
func New(store Store, providers *Providers, hub *Hub, log *slog.Logger, cfg Config) *Engine {
	cfg.defaults()
	builtins := map[string]Builtin{}
	for _, b := range cfg.Builtins {
		builtins[b.Type()] = b
	}
	e := &Engine{
		store: store, providers: providers, hub: hub, log: log, cfg: cfg, builtins: builtins,
		queue:    make(chan job, 4096),
		slots:    make(chan struct{}, cfg.Workers),
		inflight: map[string]context.CancelCauseFunc{},
		pending:  map[string]bool{},
		leases:   map[string]int{},
		stashed:  map[string]job{},
	}
	if cfg.EventLog {
		e.elog = newEventLog(e)
	}
	return e
}

// Models lists the models the configured upstreams serve, as /v1/models
// and the web app's model pickers show them.
func (e *Engine) Models(ctx context.Context) []Model { return e.providers.Models(ctx) }

// Start executes runs until ctx is done: runs are claimed by lease (see
// lease.go), so runs a previous process left unfinished are resumed by
// the first claim that finds their lease expired, here or on another
// replica. Wait blocks until every execution has stopped.
func (e *Engine) Start(ctx context.Context) error {
	go tokenizer() // load the embedded tokenizer before the first run needs it
	e.wg.Add(2)
	go func() { defer e.wg.Done(); e.sweep(ctx) }()
	listening := make(chan struct{})
	go func() { defer e.wg.Done(); e.listen(ctx, listening) }()
	if e.cfg.Postgres {
		// Serve only once other replicas' notifications (cancel, thread
		// deletion, new events) reach this one; polls cover a slow start.
		select {
		case <-listening:
		case <-time.After(5 * time.Second):
			e.log.Warn("not yet listening for other replicas' notifications; polling meanwhile")
		case <-ctx.Done():
		}
	}
	if e.elog != nil {
		e.wg.Go(func() { e.elog.poll(ctx) })
		e.wg.Go(func() { e.elog.flusher(ctx) })
	}
	if !e.cfg.APIOnly {
		e.runCtx.Store(&ctx)
		e.wg.Add(2)
		go func() { defer e.wg.Done(); e.runWorkers(ctx) }()
		go func() { defer e.wg.Done(); e.renewLeases(ctx) }()
		e.claimDue(ctx)
	}
	if len(e.cfg.Sweeps) > 0 {
		e.wg.Go(func() { e.housekeep(ctx) }) // on one replica at a time
	}
	if e.projects != nil {
		e.wg.Go(func() { e.projects.writeUsage(ctx, e.log) })
	}
	return nil
}

// Wait blocks until the engine's goroutines have stopped after ctx ended.
// Runs interrupted by the stop stay in_progress and resume once their
// lease has expired: on SQLite at the next start, on PostgreSQL on
// whichever replica claims them first.
func (e *Engine) Wait() { e.wg.Wait() }

// runWorkers hands queued runs to at most Workers executions at once.
// Runs started at their creation (see startNow) take their slot there.
func (e *Engine) runWorkers(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-e.queue:
			select {
			case e.slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer func() { <-e.slots }()
				e.execute(ctx, j)
			}()
		}
	}
}

// enqueue wakes a worker for the run. If the channel is full the run stays
// queued in the database and the sweeper enqueues it later.
func (e *Engine) enqueue(j job) {
	if e.cfg.APIOnly {
		e.notify(db.ChannelQueue, j.runID) // a worker replica claims it
		return
	}
	e.mu.Lock()
	if e.pending[j.runID] || e.inflight[j.runID] != nil {
		if j.attempt != 0 {
			e.stashed[j.runID] = j // see takeStashed
			// Its lease is renewed from now on, as an enqueued claim's: the
			// job it waits for may wait in the queue longer than the lease.
			e.leases[j.runID] = j.attempt
		}
		e.mu.Unlock()
		return
	}
	e.pending[j.runID] = true
	if j.attempt != 0 {
		// Claimed already (by the sweeper): its lease is renewed from now
		// on, not from when a worker takes the job up, which under load
		// can come after the lease has run out.
		e.leases[j.runID] = j.attempt
	}
	e.mu.Unlock()
	select {
	case e.queue <- j:
	default:
		e.mu.Lock()
		delete(e.pending, j.runID)
		if j.attempt != 0 && e.leases[j.runID] == j.attempt {
			delete(e.leases, j.runID)
		}
		e.mu.Unlock()
		if j.attempt == 0 {
			e.notify(db.ChannelQueue, j.runID) // another replica may have room
		}
	}
}

// enqueueQueued wakes a worker for a run this replica has just queued
// (created, or given its tool outputs), unless the run's thread has a
// code_interpreter kernel alive on another replica: then the run is kept
// for that replica for Config.KernelAffinity, so the thread's code finds
// its variables, and that replica is woken instead. Past the window any
// replica's sweeper claims it (on another replica a new kernel starts,
// with the thread's files restored).
func (e *Engine) enqueueQueued(ctx context.Context, j job) {
	if e.cfg.Postgres {
		home, err := e.store.PreferKernel(context.WithoutCancel(ctx), j.runID, e.cfg.Replica, e.cfg.KernelAffinity)
		if err != nil {
			e.log.Warn("keep a run for its thread's kernel", "run_id", j.runID, "error", err)
		}
		if home != "" {
			e.notify(db.ChannelQueue, j.runID)
			return
		}
	}
	e.enqueue(j)
}

func (e *Engine) lockRun(runID string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = io.WriteString(h, runID)
	return &e.locks[h.Sum32()%uint32(len(e.locks))]
}

// emitter collects the events of one commit.
type emitter struct {
	events []pendingEvent
}

type pendingEvent struct {
	name string
	data json.RawMessage
}

// emit records an event carrying v as it is now.
func (em *emitter) emit(name string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal %s event: %v", name, err)) // our own types: cannot fail
	}
	em.events = append(em.events, pendingEvent{name, b})
}

// commit runs fn in one write transaction under the run's lock and, if it
// commits, publishes the events fn emitted, in order. A write of the
// run's executor (ctx carries its claim, see withFence) first checks that
// the claim still holds the run; if not, the execution stops.
func (e *Engine) commit(ctx context.Context, runID string, fn func(ctx context.Context, tx *db.Tx, em *emitter) error) error {
	mu := e.lockRun(runID)
	mu.Lock()
	defer mu.Unlock()
	return e.commitLocked(ctx, runID, fn)
}

// commitLocked is commit with the run's lock held by the caller.
func (e *Engine) commitLocked(ctx context.Context, runID string, fn func(ctx context.Context, tx *db.Tx, em *emitter) error) error {
	var em emitter
	attempt, fenced := fenceOf(ctx, runID)
	var w *logWrite // the durable log's buffered deltas go first
	var got *db.RunAppended
	if e.elog != nil {
		w = e.elog.begin(runID)
	}
	err := e.store.Batch(db.Background(ctx), func(ctx context.Context, tx *db.Tx) error { // a request's stays foreground
		em.events = em.events[:0]
		got = nil
		if fenced {
			if err := tx.CheckLease(ctx, runID, e.cfg.Replica, attempt); err != nil {
				return err
			}
		}
		if err := fn(ctx, tx, &em); err != nil || e.elog == nil {
			return err
		}
		a := w.append(toRunEvents(em.events))
		if len(a.Shown) == 0 && len(a.Events) == 0 {
			return nil
		}
		r, err := tx.AppendRunLog(ctx, a)
		if err != nil {
			return err
		}
		got = &r
		if n := int64(len(r.Events)); n > 0 {
			e.elog.markOwn(runID, r.Prev+1, r.Prev+n)
		}
		return nil
	})
	if e.elog != nil {
		if err == nil && got != nil {
			e.elog.deliver(runID, got.Prev, got.Events)
		}
		e.elog.end(w, got, err)
	}
	if err != nil {
		if fenced && errors.Is(err, db.ErrLeaseLost) {
			e.leaseLost(runID)
		}
		return err
	}
	if e.elog != nil {
		e.logTransitions(ctx, runID, em.events)
		return nil
	}
	e.publish(ctx, runID, em.events)
	return nil
}

// publish hands committed events to the hub, in order. At debug level it
// logs every run transition (--log-level debug).
//
// With the durable log (create's events, outside a transaction of their
// own) they are appended to it and then handed to the hub.
func (e *Engine) publish(ctx context.Context, runID string, events []pendingEvent) {
	if e.elog != nil {
		e.logTransitions(ctx, runID, events)
		evs := toRunEvents(events)
		first, err := e.store.AppendRunEvents(context.WithoutCancel(ctx), runID, evs)
		if err != nil {
			e.log.Error("write run events", "run_id", runID, "error", err)
			return
		}
		for i := range evs {
			evs[i].Seq = first + int64(i)
		}
		// This replica's own, for the run metrics (a run started with its
		// creation publishes thread.run.in_progress here). Unlike commit's,
		// marked after the append has committed: this replica's poll could
		// read them back first, and then not count them.
		e.elog.markOwn(runID, first, first+int64(len(evs))-1)
		e.elog.deliver(runID, first-1, evs)
		return
	}
	debug := e.log.Enabled(ctx, slog.LevelDebug)
	for _, ev := range events {
		if debug && strings.HasPrefix(ev.name, "thread.run.") && !strings.HasPrefix(ev.name, "thread.run.step.") {
			e.log.Debug("run "+strings.TrimPrefix(ev.name, "thread.run."), "run_id", runID)
		}
		e.hub.Publish(runID, ev.name, ev.data)
	}
}

// logTransitions logs a run's transitions at debug level.
func (e *Engine) logTransitions(ctx context.Context, runID string, events []pendingEvent) {
	if !e.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	for _, ev := range events {
		if strings.HasPrefix(ev.name, "thread.run.") && !strings.HasPrefix(ev.name, "thread.run.step.") {
			e.log.Debug("run "+strings.TrimPrefix(ev.name, "thread.run."), "run_id", runID)
		}
	}
}

// sweep expires overdue runs, settles cancelling runs nobody is working on,
// and claims runs that are due (queued runs the channel missed, runs whose
// lease expired).
func (e *Engine) sweep(ctx context.Context) {
	t := time.NewTicker(e.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		expired, err := e.store.ExpiredRuns(ctx, e.store.Now())
		if err != nil && ctx.Err() == nil {
			e.log.Error("find expired runs", "error", err)
		}
		for _, r := range expired {
			e.mu.Lock()
			cancel := e.inflight[r.ID]
			e.mu.Unlock()
			if cancel != nil {
				cancel(errExpired)
			} else if !e.heldElsewhere(ctx, r.ID) {
				// The sweep spans projects; each run settles in its own.
				e.settle(db.WithProject(ctx, r.ProjectID), r.ID, db.RunExpired, nil)
			}
		}
		if !e.cfg.APIOnly {
			e.claimDue(ctx)
		}
		active, err := e.store.RunsWithStatus(ctx, db.RunCancelling)
		if err != nil && ctx.Err() == nil {
			e.log.Error("scan runs", "error", err)
		}
		for _, r := range active {
			e.mu.Lock()
			busy := e.inflight[r.ID] != nil || e.pending[r.ID]
			e.mu.Unlock()
			if busy || e.heldElsewhere(ctx, r.ID) {
				continue
			}
			e.settle(db.WithProject(ctx, r.ProjectID), r.ID, db.RunCancelling, nil)
		}
	}
}
