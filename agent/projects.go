package agent

// Projects' settings, as the engine applies them: which models and
// server-side tools a project may use and its rate limits, checked when a
// run (or response) is created; its own upstream, used when the run
// executes; and its usage, recorded after every upstream request.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/assistantd/assistantd/db"
)

// Projects is what the engine needs from the store for projects'
// settings.
type Projects interface {
	ProjectSettings(ctx context.Context, projectID string) (db.ProjectSettings, error)
	AdmitRequest(ctx context.Context, projectID, model string, window time.Duration) (db.RateState, error)
	CountTokens(ctx context.Context, projectID, model string, tokens int64, window time.Duration) error
	RecordUsages(ctx context.Context, recs []db.UsageRecord) error
}

// projectRules holds what EnableProjects set.
type projectRules struct {
	store  Projects
	window time.Duration // rate limits' window (a minute, shorter in tests)

	// guard dials the upstreams of projects set by someone who is not an
	// admin of the server (nil: no such upstream is reached).
	guard func(ctx context.Context, network, addr string) (net.Conn, error)

	mu        sync.Mutex
	upstreams map[string]*Provider // by project, URL, key and guard digest

	usage usageBatch // waiting for the store (writeUsage)
}

// EnableProjects makes the engine apply projects' settings and record
// their usage (written by a goroutine Start starts). Call it before
// Start. window is the length of a rate-limit window: a minute, as
// the limits' names say, unless a test shortens it. guard dials a
// project's own upstream when someone who is not an admin of the server
// set it (webhook.Guard's DialContext: no private, loopback or metadata
// addresses unless allow-listed).
func (e *Engine) EnableProjects(store Projects, window time.Duration, guard func(ctx context.Context, network, addr string) (net.Conn, error)) {
	if window <= 0 {
		window = time.Minute
	}
	e.projects = &projectRules{store: store, window: window, guard: guard, upstreams: map[string]*Provider{}}
	e.projects.usage.init()
}

// RateLimitError is a request refused by its project's rate limit; the
// API answers it with 429.
type RateLimitError struct {
	ProjectID string
	State     db.RateState
}

func (e *RateLimitError) Error() string {
	what := "requests per min (RPM)"
	limit := e.State.LimitRequests
	if e.State.Refused == "tokens" {
		what, limit = "tokens per min (TPM)", e.State.LimitTokens
	}
	return fmt.Sprintf("Rate limit reached for %s in project %s on %s: Limit %d, Used %d, Requested 1. Please try again in %s.",
		e.State.Model, e.ProjectID, what, limit, e.State.Used, e.State.Reset.Round(time.Millisecond))
}

// runProject is the project a run being created belongs to: the request's
// (its key's), else the run's own, else the Default project.
func runProject(ctx context.Context, r db.Run) string {
	if p, err := db.ProjectFrom(ctx); err == nil {
		return p
	}
	if r.ProjectID != "" {
		return r.ProjectID
	}
	return db.DefaultProjectID
}

// admit checks a run about to be created against its project's settings:
// its model, its server-side tools, then (counting it) the rate limit.
// The state against the limit is noted in ctx for the response's headers.
func (e *Engine) admit(ctx context.Context, r db.Run) error {
	if e.projects == nil {
		return nil
	}
	project := runProject(ctx, r)
	set, err := e.projects.store.ProjectSettings(ctx, project)
	if err != nil {
		return err
	}
	if se := set.Check(r.Model, r.Tools); se != nil {
		return &RequestError{Param: se.Param, Code: se.Code, Message: se.Message}
	}
	if r.Model == "" {
		return nil
	}
	st, err := e.projects.store.AdmitRequest(ctx, project, r.Model, e.projects.window)
	if err != nil {
		return err
	}
	if note := db.RateNoteFrom(ctx); note != nil {
		note.Set(st)
	}
	if st.Refused != "" {
		return &RateLimitError{ProjectID: project, State: st}
	}
	return nil
}

// provider returns the provider a run's model request goes to: its
// project's own upstream when the project has one, else the configured
// provider serving the model.
func (e *Engine) provider(ctx context.Context, run db.Run) (*Provider, bool, error) {
	if e.projects != nil && run.ProjectID != "" {
		set, err := e.projects.store.ProjectSettings(ctx, run.ProjectID)
		if err != nil {
			return nil, false, err
		}
		if set.UpstreamURL != "" {
			return e.projects.upstream(e.providers, set), true, nil
		}
	}
	p, ok := e.providers.For(run.Model)
	return p, ok, nil
}

// upstream returns the client for a project's own upstream, made once per
// project, URL, key and guard. A guarded one dials through the guard,
// never through a proxy (which would reach what the guard refuses).
func (pr *projectRules) upstream(ps *Providers, set db.ProjectSettings) *Provider {
	projectID := set.ProjectID
	guarded := "open"
	if set.UpstreamGuarded {
		guarded = "guarded"
	}
	sum := sha256.Sum256([]byte(projectID + "\x00" + set.UpstreamURL + "\x00" + set.UpstreamKey + "\x00" + guarded))
	id := hex.EncodeToString(sum[:])
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if p, ok := pr.upstreams[id]; ok {
		return p
	}
	for k, p := range pr.upstreams { // the project's previous upstream
		if p.project == projectID {
			delete(pr.upstreams, k)
		}
	}
	var client *http.Client
	if set.UpstreamGuarded {
		client = guardedClient(ps.httpClient, pr.guard)
	}
	p := ps.newProvider(ProviderConfig{Name: "project " + projectID, BaseURL: set.UpstreamURL, APIKey: set.UpstreamKey,
		Models: []string{"*"}, Timeout: 5 * time.Minute}, client)
	p.project = projectID
	pr.upstreams[id] = p
	return p
}

// guardedClient is base (or Go's default client) dialing only through
// dial, without a proxy; with no dial, it reaches nothing.
func guardedClient(base *http.Client, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
	c := &http.Client{}
	var t *http.Transport
	if base != nil {
		*c = *base
		if bt, ok := base.Transport.(*http.Transport); ok {
			t = bt.Clone()
		}
	}
	if t == nil {
		t = http.DefaultTransport.(*http.Transport).Clone()
	}
	if dial == nil {
		dial = func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("this project's upstream is refused: no address guard is configured")
		}
	}
	t.Proxy, t.DialContext, t.DialTLSContext = nil, dial, nil
	c.Transport = t
	return c
}

// Usage is counted in memory and written in batches. A turn adds its
// request's usage to the batch under a mutex and goes on: it never waits
// on the store, whatever the store is doing. The batch sums what it holds
// per project, model and UTC day (and tokens per project and model, for
// rate limits), so it grows with the number of those, not with requests:
// a burst of 10,000 runs of one model is one row. One goroutine writes
// the batch as one transaction, at most every usageEvery; a failed write
// is put back and tried again with the next.

// usageEvery is the shortest time between two usage writes.
const usageEvery = 50 * time.Millisecond

// maxUsageKeys bounds the distinct project, model and day sums waiting
// for the store; usage of a further one is dropped, and counted. Only a
// store that fails for long with many projects' models in use gets there.
const maxUsageKeys = 1 << 16

type usageKey struct {
	project, model string
	day            int64 // UTC day (Unix seconds / 86400)
}

type tokenKey struct{ project, model string }

// usageBatch is the usage waiting for the store.
type usageBatch struct {
	mu      sync.Mutex
	recs    map[usageKey]*db.UsageRecord
	tokens  map[tokenKey]int64
	wake    chan struct{} // buffered(1): the batch has something
	dropped atomic.Int64  // requests dropped (maxUsageKeys)
}

func (b *usageBatch) init() {
	b.recs, b.tokens, b.wake = map[usageKey]*db.UsageRecord{}, map[tokenKey]int64{}, make(chan struct{}, 1)
}

// add counts one request's usage at now; false if it had to be dropped.
func (b *usageBatch) add(project, model string, now time.Time, u db.Usage) bool {
	k := usageKey{project, model, now.UTC().Unix() / 86400}
	b.mu.Lock()
	r := b.recs[k]
	if r == nil {
		if len(b.recs) >= maxUsageKeys {
			b.mu.Unlock()
			return false
		}
		r = &db.UsageRecord{ProjectID: project, Model: model, At: now}
		b.recs[k] = r
	}
	r.Requests++
	r.InputTokens += u.PromptTokens
	r.OutputTokens += u.CompletionTokens
	if u.TotalTokens > 0 {
		b.tokens[tokenKey{project, model}] += u.TotalTokens
	}
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return true
}

// take empties the batch and returns what it held.
func (b *usageBatch) take() ([]db.UsageRecord, map[tokenKey]int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.recs) == 0 && len(b.tokens) == 0 {
		return nil, nil
	}
	recs := make([]db.UsageRecord, 0, len(b.recs))
	for _, r := range b.recs {
		recs = append(recs, *r)
	}
	tokens := b.tokens
	b.recs, b.tokens = map[usageKey]*db.UsageRecord{}, map[tokenKey]int64{}
	return recs, tokens
}

// putBack returns records the store did not take to the batch.
func (b *usageBatch) putBack(recs []db.UsageRecord) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range recs {
		k := usageKey{r.ProjectID, r.Model, r.At.UTC().Unix() / 86400}
		if have := b.recs[k]; have != nil {
			have.Requests += r.Requests
			have.InputTokens += r.InputTokens
			have.OutputTokens += r.OutputTokens
			continue
		}
		if len(b.recs) >= maxUsageKeys {
			b.dropped.Add(r.Requests)
			continue
		}
		r := r
		b.recs[k] = &r
	}
}

// recordUsage counts one upstream request of a run's project for the
// store: its usage for the usage page, and its tokens against the
// project's rate limit. The turn goes on at once (see usageBatch).
func (e *Engine) recordUsage(run db.Run, model string, usage *db.Usage) {
	if e.projects == nil || usage == nil {
		return
	}
	project := run.ProjectID
	if project == "" {
		project = db.DefaultProjectID
	}
	if !e.projects.usage.add(project, model, time.Unix(e.store.Now(), 0), *usage) {
		if n := e.projects.usage.dropped.Add(1); n == 1 || n%1000 == 0 {
			e.log.Warn("usage records dropped: the store is failing", "dropped", n)
		}
	}
}

// writeUsage writes the batched usage until ctx ends, then what is left
// (for a few seconds at most).
func (pr *projectRules) writeUsage(ctx context.Context, log *slog.Logger) {
	b := &pr.usage
	pause := time.NewTimer(usageEvery)
	pause.Stop()
	defer pause.Stop()
	for {
		select {
		case <-b.wake:
		case <-ctx.Done():
			drain, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			pr.flushUsage(drain, log)
			return
		}
		// A write under way when shutdown begins finishes (within the
		// drain's bound): cut short, its tokens would be lost.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		pr.flushUsage(wctx, log)
		cancel()
		// Let usage gather for the next write.
		pause.Reset(usageEvery)
		select {
		case <-pause.C:
		case <-ctx.Done():
		}
	}
}

// flushUsage writes what the batch holds: the usage rows in one
// transaction, then each project and model's tokens against its rate
// limit.
func (pr *projectRules) flushUsage(ctx context.Context, log *slog.Logger) {
	b := &pr.usage
	recs, tokens := b.take()
	if len(recs) > 0 {
		if err := pr.store.RecordUsages(ctx, recs); err != nil {
			log.Warn("recording usage failed; kept for the next write", "records", len(recs), "error", err)
			b.putBack(recs)
			if ctx.Err() == nil {
				select {
				case b.wake <- struct{}{}:
				default:
				}
			}
		}
	}
	for k, n := range tokens {
		if err := pr.store.CountTokens(ctx, k.project, k.model, n, pr.window); err != nil {
			log.Warn("counting tokens failed", "project", k.project, "model", k.model, "error", err)
		}
	}
}
