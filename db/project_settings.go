package db

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// Model permission modes, as OpenAI's ProjectModelPermissions.
const (
	AllowList = "allow_list"
	DenyList  = "deny_list"
)

// ProjectSettings are what a project may use: models (an allow list or a
// deny list), server-side tools, and an upstream of its own. A project
// that never had settings has the defaults: every model, every tool, the
// server's upstreams.
type ProjectSettings struct {
	ProjectID       string
	ModelMode       string // AllowList or DenyList
	ModelIDs        []string
	CodeInterpreter bool
	FileSearch      bool
	// UpstreamURL, when set, is the base URL of the OpenAI-compatible
	// provider every run and response of the project calls; UpstreamKey
	// its key (kept sealed in the store, clear here).
	UpstreamURL string
	UpstreamKey string
	// UpstreamGuarded: the upstream was set by someone who is not an
	// admin of the server, so it is reached only at addresses the
	// webhook guard allows.
	UpstreamGuarded bool
	UpdatedAt       int64
}

// DefaultSettings are the settings of a project that never changed them.
func DefaultSettings(projectID string) ProjectSettings {
	return ProjectSettings{ProjectID: projectID, ModelMode: DenyList, ModelIDs: []string{}, CodeInterpreter: true, FileSearch: true}
}

// AllowsModel reports whether the project may use model.
func (p ProjectSettings) AllowsModel(model string) bool {
	listed := slices.Contains(p.ModelIDs, model)
	if p.ModelMode == AllowList {
		return listed
	}
	return !listed
}

// AllowsTool reports whether the project may use a server-side tool
// (code_interpreter, file_search); any other type (function) is allowed.
func (p ProjectSettings) AllowsTool(typ string) bool {
	switch typ {
	case "code_interpreter":
		return p.CodeInterpreter
	case "file_search":
		return p.FileSearch
	}
	return true
}

// upstreamKeySecret names the server secret project upstream keys are
// sealed under (AES-256-GCM).
const upstreamKeySecret = "project-upstream-key"

// ProjectSettings returns a project's settings, the defaults when it has
// none stored. It does not check that the project exists.
func (s *Store) ProjectSettings(ctx context.Context, projectID string) (ProjectSettings, error) {
	p, sealed, err := s.readSettings(ctx, s.r, projectID)
	if err != nil {
		return p, err
	}
	if len(sealed) > 0 {
		if p.UpstreamKey, err = s.openUpstreamKey(ctx, projectID, sealed); err != nil {
			return p, err
		}
	}
	return p, nil
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) readSettings(ctx context.Context, q queryRower, projectID string) (ProjectSettings, []byte, error) {
	p := DefaultSettings(projectID)
	var ids string
	var ci, fs, guarded int64
	var url sql.NullString
	var sealed []byte
	err := q.QueryRowContext(ctx, `SELECT model_mode, model_ids, code_interpreter, file_search, upstream_url, upstream_key, upstream_guarded, updated_at
		FROM project_settings WHERE project_id = $1`, projectID).Scan(&p.ModelMode, &ids, &ci, &fs, &url, &sealed, &guarded, &p.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return p, nil, nil
	}
	if err != nil {
		return p, nil, fmt.Errorf("project settings %s: %w", projectID, err)
	}
	if err := json.Unmarshal([]byte(ids), &p.ModelIDs); err != nil {
		return p, nil, fmt.Errorf("project settings %s: model_ids: %w", projectID, err)
	}
	if p.ModelIDs == nil {
		p.ModelIDs = []string{}
	}
	p.CodeInterpreter, p.FileSearch, p.UpstreamURL, p.UpstreamGuarded = ci != 0, fs != 0, url.String, guarded != 0
	return p, sealed, nil
}

// SettingsChange changes a project's settings; nil fields are kept.
type SettingsChange struct {
	ModelMode       *string
	ModelIDs        []string // with ModelMode
	CodeInterpreter *bool
	FileSearch      *bool
	// Upstream, when set, replaces the project's upstream; an empty URL
	// removes it.
	Upstream *ProjectUpstream
}

// ProjectUpstream is a project's own provider.
type ProjectUpstream struct {
	URL string
	Key string
	// Guarded: reached only at addresses the webhook guard allows (set
	// by someone who is not an admin of the server).
	Guarded bool
}

// UpdateProjectSettings applies change to an active project's settings
// and returns them. ErrNotFound for a missing project, ErrArchived for an
// archived one.
func (s *Store) UpdateProjectSettings(ctx context.Context, projectID string, change SettingsChange) (ProjectSettings, error) {
	var sealed []byte
	if change.Upstream != nil && change.Upstream.URL != "" && change.Upstream.Key != "" {
		var err error
		if sealed, err = s.sealUpstreamKey(ctx, projectID, change.Upstream.Key); err != nil {
			return ProjectSettings{}, err
		}
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := activeProject(ctx, tx, projectID); err != nil {
			return err
		}
		p, oldSealed, err := s.readSettings(ctx, tx, projectID)
		if err != nil {
			return err
		}
		if change.ModelMode != nil {
			p.ModelMode, p.ModelIDs = *change.ModelMode, slices.Compact(slices.Sorted(slices.Values(change.ModelIDs)))
			if p.ModelIDs == nil {
				p.ModelIDs = []string{}
			}
		}
		if change.CodeInterpreter != nil {
			p.CodeInterpreter = *change.CodeInterpreter
		}
		if change.FileSearch != nil {
			p.FileSearch = *change.FileSearch
		}
		keep := oldSealed
		if change.Upstream != nil {
			p.UpstreamURL, keep = change.Upstream.URL, sealed
			p.UpstreamGuarded = change.Upstream.Guarded && change.Upstream.URL != ""
		}
		ids, _ := json.Marshal(p.ModelIDs)
		_, err = tx.ExecContext(ctx, `INSERT INTO project_settings (project_id, model_mode, model_ids, code_interpreter, file_search, upstream_url, upstream_key, upstream_guarded, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (project_id) DO UPDATE SET model_mode = excluded.model_mode, model_ids = excluded.model_ids,
			code_interpreter = excluded.code_interpreter, file_search = excluded.file_search, upstream_url = excluded.upstream_url,
			upstream_key = excluded.upstream_key, upstream_guarded = excluded.upstream_guarded, updated_at = excluded.updated_at`,
			projectID, p.ModelMode, string(ids), boolInt(p.CodeInterpreter), boolInt(p.FileSearch), nullIfEmpty(p.UpstreamURL), keep,
			boolInt(p.UpstreamGuarded), s.now().Unix())
		if err != nil {
			return fmt.Errorf("update project settings %s: %w", projectID, err)
		}
		return nil
	})
	if err != nil {
		return ProjectSettings{}, err
	}
	return s.ProjectSettings(ctx, projectID)
}

// upstreamCipher is AES-256-GCM under the server secret kept in the
// secrets table (made on first use).
func (s *Store) upstreamCipher(ctx context.Context) (cipher.AEAD, error) {
	// A run's every turn opens its project's key: read the secret, and
	// make it (a write) only the first time.
	var key []byte
	err := s.r.QueryRowContext(ctx, `SELECT value FROM secrets WHERE name = $1`, upstreamKeySecret).Scan(&key)
	if errors.Is(err, sql.ErrNoRows) {
		key, err = s.Secret(ctx, upstreamKeySecret, 32)
	}
	if err != nil {
		return nil, fmt.Errorf("upstream key secret: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("upstream key cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

// sealUpstreamKey encrypts a project's upstream key: a random nonce, then
// the ciphertext, with the project id as additional data so that a sealed
// key copied to another project's row does not open.
func (s *Store) sealUpstreamKey(ctx context.Context, projectID, key string) ([]byte, error) {
	aead, err := s.upstreamCipher(ctx)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, []byte(key), []byte(projectID)), nil
}

func (s *Store) openUpstreamKey(ctx context.Context, projectID string, sealed []byte) (string, error) {
	aead, err := s.upstreamCipher(ctx)
	if err != nil {
		return "", err
	}
	n := aead.NonceSize()
	if len(sealed) < n {
		return "", fmt.Errorf("project %s: sealed upstream key too short", projectID)
	}
	plain, err := aead.Open(nil, sealed[:n], sealed[n:], []byte(projectID))
	if err != nil {
		return "", fmt.Errorf("project %s: open upstream key: %w", projectID, err)
	}
	return string(plain), nil
}

// RateLimit is a project's limits on one model, as OpenAI's
// ProjectRateLimit; 0 is no limit.
type RateLimit struct {
	ID                    string
	ProjectID             string
	Model                 string
	MaxRequestsPer1Minute int64
	MaxTokensPer1Minute   int64
}

// RateLimitID is the id of a project's limits on model: "rl-" + the
// model, so that any model's limits can be addressed before they are set.
func RateLimitID(model string) string { return "rl-" + model }

// ListRateLimits returns a project's limits, by model.
func (s *Store) ListRateLimits(ctx context.Context, projectID string) ([]RateLimit, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, project_id, model, max_requests_per_1_minute, max_tokens_per_1_minute
		FROM project_rate_limits WHERE project_id = $1 ORDER BY model`, projectID)
	if err != nil {
		return nil, fmt.Errorf("list rate limits: %w", err)
	}
	defer rows.Close()
	var out []RateLimit
	for rows.Next() {
		var l RateLimit
		if err := rows.Scan(&l.ID, &l.ProjectID, &l.Model, &l.MaxRequestsPer1Minute, &l.MaxTokensPer1Minute); err != nil {
			return nil, fmt.Errorf("list rate limits: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// GetRateLimit returns a project's limits on model; a model without
// limits has zeros.
func (s *Store) GetRateLimit(ctx context.Context, projectID, model string) (RateLimit, error) {
	l := RateLimit{ID: RateLimitID(model), ProjectID: projectID, Model: model}
	err := s.r.QueryRowContext(ctx, `SELECT max_requests_per_1_minute, max_tokens_per_1_minute FROM project_rate_limits
		WHERE project_id = $1 AND model = $2`, projectID, model).Scan(&l.MaxRequestsPer1Minute, &l.MaxTokensPer1Minute)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("get rate limit: %w", err)
	}
	return l, nil
}

// RateLimitChange changes limits; nil fields are kept.
type RateLimitChange struct {
	MaxRequestsPer1Minute *int64
	MaxTokensPer1Minute   *int64
}

// SetRateLimit changes an active project's limits on model.
func (s *Store) SetRateLimit(ctx context.Context, projectID, model string, change RateLimitChange) (RateLimit, error) {
	var l RateLimit
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := activeProject(ctx, tx, projectID); err != nil {
			return err
		}
		l = RateLimit{ID: RateLimitID(model), ProjectID: projectID, Model: model}
		err := tx.QueryRowContext(ctx, `SELECT max_requests_per_1_minute, max_tokens_per_1_minute FROM project_rate_limits
			WHERE project_id = $1 AND model = $2`, projectID, model).Scan(&l.MaxRequestsPer1Minute, &l.MaxTokensPer1Minute)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("set rate limit: %w", err)
		}
		if change.MaxRequestsPer1Minute != nil {
			l.MaxRequestsPer1Minute = *change.MaxRequestsPer1Minute
		}
		if change.MaxTokensPer1Minute != nil {
			l.MaxTokensPer1Minute = *change.MaxTokensPer1Minute
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO project_rate_limits (id, project_id, model, max_requests_per_1_minute, max_tokens_per_1_minute)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id, model) DO UPDATE SET
			max_requests_per_1_minute = excluded.max_requests_per_1_minute, max_tokens_per_1_minute = excluded.max_tokens_per_1_minute`,
			l.ID, projectID, model, l.MaxRequestsPer1Minute, l.MaxTokensPer1Minute)
		if err != nil {
			return fmt.Errorf("set rate limit: %w", err)
		}
		return nil
	})
	return l, err
}

// RateState is where a project stands against its limits on a model in
// the current window, for the x-ratelimit-* headers.
type RateState struct {
	Model             string
	LimitRequests     int64 // 0: no limit on requests
	RemainingRequests int64
	LimitTokens       int64 // 0: no limit on tokens
	RemainingTokens   int64
	Reset             time.Duration // until the window ends
	// Refused names what ran out ("requests" or "tokens"), "" when the
	// request was admitted.
	Refused string
	Used    int64 // of what ran out, in this window
}

// windowStart is the start (Unix milliseconds) of the window now falls in.
func windowStart(now time.Time, window time.Duration) (int64, time.Duration) {
	ms := window.Milliseconds()
	if ms <= 0 {
		ms = 60_000
	}
	t := now.UnixMilli()
	start := t - t%ms
	return start, time.Duration(start+ms-t) * time.Millisecond
}

// AdmitRequest counts one request of a project on model in the current
// window, unless that would pass the project's limits: then it counts
// nothing and returns the state with Refused set. A model without limits
// is admitted uncounted (LimitRequests and LimitTokens 0). The check and
// the count are one statement, so replicas sharing the database share the
// limit.
func (s *Store) AdmitRequest(ctx context.Context, projectID, model string, window time.Duration) (RateState, error) {
	st := RateState{Model: model}
	l, err := s.GetRateLimit(ctx, projectID, model)
	if err != nil || (l.MaxRequestsPer1Minute <= 0 && l.MaxTokensPer1Minute <= 0) {
		return st, err
	}
	st.LimitRequests, st.LimitTokens = l.MaxRequestsPer1Minute, l.MaxTokensPer1Minute
	maxReq, maxTok := int64(math.MaxInt64), int64(math.MaxInt64)
	if l.MaxRequestsPer1Minute > 0 {
		maxReq = l.MaxRequestsPer1Minute
	}
	if l.MaxTokensPer1Minute > 0 {
		maxTok = l.MaxTokensPer1Minute
	}
	start, reset := windowStart(s.now(), window)
	st.Reset = reset
	var requests, tokens int64
	var refused bool
	err = s.write1(ctx, func(q queryExecer) error {
		err := q.QueryRowContext(ctx, `INSERT INTO rate_counters (project_id, model, window_start, requests, tokens) VALUES ($1, $2, $3, 1, 0)
			ON CONFLICT (project_id, model, window_start) DO UPDATE SET requests = rate_counters.requests + 1
			WHERE rate_counters.requests < $4 AND rate_counters.tokens < $5
			RETURNING requests, tokens`, projectID, model, start, maxReq, maxTok).Scan(&requests, &tokens)
		if refused = errors.Is(err, sql.ErrNoRows); !refused {
			return err
		}
		return q.QueryRowContext(ctx, `SELECT requests, tokens FROM rate_counters WHERE project_id = $1 AND model = $2 AND window_start = $3`,
			projectID, model, start).Scan(&requests, &tokens)
	})
	if err != nil {
		return st, fmt.Errorf("admit request: %w", err)
	}
	if refused {
		if requests >= maxReq {
			st.Refused, st.Used = "requests", requests
		} else {
			st.Refused, st.Used = "tokens", tokens
		}
	}
	if st.LimitRequests > 0 {
		st.RemainingRequests = max(0, st.LimitRequests-requests)
	}
	if st.LimitTokens > 0 {
		st.RemainingTokens = max(0, st.LimitTokens-tokens)
	}
	return st, nil
}

// CountTokens adds tokens a project used of model now to the current
// window's count, when the project limits that model's tokens (so that
// projects without limits write nothing).
func (s *Store) CountTokens(ctx context.Context, projectID, model string, tokens int64, window time.Duration) error {
	if tokens <= 0 {
		return nil
	}
	// Most projects limit no tokens: a read, not the writer, finds it.
	var limited int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM project_rate_limits WHERE project_id = $1 AND model = $2 AND max_tokens_per_1_minute > 0`,
		projectID, model).Scan(&limited)
	if err != nil {
		return fmt.Errorf("count tokens: %w", err)
	}
	if limited == 0 {
		return nil
	}
	start, _ := windowStart(s.now(), window)
	// The usage writer's, in the background.
	_, err = s.exec(Background(ctx), `INSERT INTO rate_counters (project_id, model, window_start, requests, tokens)
		SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS BIGINT), 0, CAST($4 AS BIGINT) WHERE EXISTS (SELECT 1 FROM project_rate_limits
			WHERE project_id = $1 AND model = $2 AND max_tokens_per_1_minute > 0)
		ON CONFLICT (project_id, model, window_start) DO UPDATE SET tokens = rate_counters.tokens + excluded.tokens`,
		projectID, model, start, tokens)
	if err != nil {
		return fmt.Errorf("count tokens: %w", err)
	}
	return nil
}

// PruneRateCounters deletes the counts of windows that ended over an
// hour ago.
func (s *Store) PruneRateCounters(ctx context.Context) (int, error) {
	res, err := s.exec(Background(ctx), `DELETE FROM rate_counters WHERE window_start < $1`, s.now().Add(-time.Hour).UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("prune rate counters: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// ValidModelMode reports whether mode is allow_list or deny_list.
func ValidModelMode(mode string) bool { return mode == AllowList || mode == DenyList }

// RateNote carries, through a request's context, where the request stood
// against its project's rate limit, for the response's x-ratelimit-*
// headers. Safe for concurrent use.
type RateNote struct {
	mu    sync.Mutex
	state *RateState
}

// Set records the state the request was admitted or refused in.
func (n *RateNote) Set(st RateState) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.state = &st
}

// State returns the recorded state, if any limit applied.
func (n *RateNote) State() (RateState, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state == nil || (n.state.LimitRequests == 0 && n.state.LimitTokens == 0) {
		return RateState{}, false
	}
	return *n.state, true
}

type rateNoteKey struct{}

// WithRateNote returns ctx carrying a new, empty RateNote.
func WithRateNote(ctx context.Context) (context.Context, *RateNote) {
	n := &RateNote{}
	return context.WithValue(ctx, rateNoteKey{}, n), n
}

// RateNoteFrom returns ctx's RateNote, or nil.
func RateNoteFrom(ctx context.Context) *RateNote {
	n, _ := ctx.Value(rateNoteKey{}).(*RateNote)
	return n
}

// SettingsError is what a project's settings refuse in a request: a model
// or a server-side tool it may not use.
type SettingsError struct {
	Param   string // "model", "tools[2].type"
	Code    string // model_not_allowed, tool_not_allowed
	Message string
}

func (e *SettingsError) Error() string { return e.Message }

// Check returns what the settings refuse of a model (when model is not
// "") and tools, or nil.
func (p ProjectSettings) Check(model string, tools []Tool) *SettingsError {
	if model != "" && !p.AllowsModel(model) {
		return &SettingsError{Param: "model", Code: "model_not_allowed",
			Message: fmt.Sprintf("The model '%s' is not allowed in project %s.", model, p.ProjectID)}
	}
	for i, t := range tools {
		if !p.AllowsTool(t.Type) {
			return &SettingsError{Param: fmt.Sprintf("tools[%d].type", i), Code: "tool_not_allowed",
				Message: fmt.Sprintf("The %s tool is disabled in project %s.", t.Type, p.ProjectID)}
		}
	}
	return nil
}
