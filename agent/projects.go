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
	RecordUsage(ctx context.Context, projectID, model string, inputTokens, outputTokens int64) error
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

	usage   chan usageEntry // to the store (writeUsage)
	dropped atomic.Int64    // usage entries dropped because the queue was full
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
	e.projects = &projectRules{store: store, window: window, guard: guard, upstreams: map[string]*Provider{}, usage: make(chan usageEntry, usageBuffer)}
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

// usageEntry is one upstream request's usage, on its way to the store.
type usageEntry struct {
	runID, project, model string
	usage                 db.Usage
}

// usageBuffer bounds the usage waiting to be written. A turn never waits
// on the store's writer for it: past this the entries are dropped, and
// counted.
const usageBuffer = 4096

// recordUsage queues one upstream request of a run's project for the
// store: its usage for the usage page, and its tokens against the
// project's rate limit. The turn goes on at once (see writeUsage); when
// the queue is full the entry is dropped and counted, never waited for.
func (e *Engine) recordUsage(run db.Run, model string, usage *db.Usage) {
	if e.projects == nil || usage == nil {
		return
	}
	project := run.ProjectID
	if project == "" {
		project = db.DefaultProjectID
	}
	select {
	case e.projects.usage <- usageEntry{runID: run.ID, project: project, model: model, usage: *usage}:
	default:
		if n := e.projects.dropped.Add(1); n == 1 || n%1000 == 0 {
			e.log.Warn("usage records dropped: the store is not keeping up", "dropped", n)
		}
	}
}

// writeUsage writes queued usage until ctx ends, then what is left (for
// a few seconds at most).
func (pr *projectRules) writeUsage(ctx context.Context, log *slog.Logger) {
	write := func(ctx context.Context, u usageEntry) {
		if err := pr.store.RecordUsage(ctx, u.project, u.model, u.usage.PromptTokens, u.usage.CompletionTokens); err != nil {
			log.Warn("recording usage failed", "run_id", u.runID, "project", u.project, "error", err)
		}
		if err := pr.store.CountTokens(ctx, u.project, u.model, u.usage.TotalTokens, pr.window); err != nil {
			log.Warn("counting tokens failed", "run_id", u.runID, "project", u.project, "error", err)
		}
	}
loop:
	for {
		select {
		case u := <-pr.usage:
			write(ctx, u)
		case <-ctx.Done():
			break loop
		}
	}
	drain, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for drain.Err() == nil {
		select {
		case u := <-pr.usage:
			write(drain, u)
		default:
			return
		}
	}
}
