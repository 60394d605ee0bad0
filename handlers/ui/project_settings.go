package ui

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/agent/webhook"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/views"
)

// settingsStore is what the project settings page needs.
type settingsStore interface {
	ProjectSettings(ctx context.Context, projectID string) (db.ProjectSettings, error)
	UpdateProjectSettings(ctx context.Context, projectID string, change db.SettingsChange) (db.ProjectSettings, error)
	ListRateLimits(ctx context.Context, projectID string) ([]db.RateLimit, error)
	SetRateLimit(ctx context.Context, projectID, model string, change db.RateLimitChange) (db.RateLimit, error)
}

// Bounds of the project settings forms, as the Admin API's.
const (
	maxSettingsModels = 1000
	maxModelIDLen     = 256
	maxUpstreamURLLen = 2048
	maxUpstreamKeyLen = 4096
)

// modeAll is the form's "every model": an empty deny list in the store.
const modeAll = "all"

// ProjectSettings handles GET /settings/project: the current project's
// allowed models, hosted tools, rate limits and upstream. Everyone in the
// project may read them; owners change them.
func (u *UI) ProjectSettings(c *echo.Context) error {
	return u.renderProjectSettings(c, http.StatusOK, views.ProjectSettingsView{})
}

// renderProjectSettings fills what v does not carry (a form sent back with
// its mistake keeps its input) from the store.
func (u *UI) renderProjectSettings(c *echo.Context, status int, v views.ProjectSettingsView) error {
	ctx := c.Request().Context()
	project := currentProject(c)
	s, err := u.store.ProjectSettings(ctx, project)
	if err != nil {
		return respond.Internal(err)
	}
	limits, err := u.store.ListRateLimits(ctx, project)
	if err != nil {
		return respond.Internal(err)
	}
	w, err := u.workspaceOf(c)
	if err != nil {
		return err
	}
	v.Project = w.Name
	v.Known = u.models(ctx)
	if v.Models == nil {
		v.Models = &views.ModelsForm{Mode: modeOf(s), Checked: map[string]bool{}}
		var other []string
		for _, m := range s.ModelIDs {
			if slices.Contains(v.Known, m) {
				v.Models.Checked[m] = true
			} else {
				other = append(other, m)
			}
		}
		v.Models.Other = strings.Join(other, "\n")
	}
	if v.Tools == nil {
		v.Tools = &views.ToolsForm{CodeInterpreter: s.CodeInterpreter, FileSearch: s.FileSearch}
	}
	for _, l := range limits {
		if l.MaxRequestsPer1Minute > 0 || l.MaxTokensPer1Minute > 0 { // 0 and 0 is no limit: a removed row
			v.Limits = append(v.Limits, views.LimitRow{Model: l.Model, Requests: l.MaxRequestsPer1Minute, Tokens: l.MaxTokensPer1Minute})
		}
	}
	if v.Limit == nil {
		v.Limit = &views.LimitForm{}
	}
	if v.Upstream == nil {
		v.Upstream = &views.UpstreamForm{URL: s.UpstreamURL}
	}
	v.Upstream.Current, v.Upstream.KeyHint = s.UpstreamURL, keyHint(s.UpstreamKey)
	c.Response().Header().Set("Cache-Control", "no-store")
	return render(c, status, views.ProjectSettingsPage(u.page(c, "Project settings", "project-settings"), v))
}

func modeOf(s db.ProjectSettings) string {
	if s.ModelMode == db.DenyList && len(s.ModelIDs) == 0 {
		return modeAll
	}
	return s.ModelMode
}

// keyHint shows that an upstream key is set without showing it: its last
// four characters when it is long enough for that to give nothing away.
func keyHint(key string) string {
	switch {
	case key == "":
		return ""
	case utf8.RuneCountInString(key) >= 16:
		r := []rune(key)
		return "…" + string(r[len(r)-4:])
	}
	return "set"
}

// settingsSaved answers a saved settings form.
func (u *UI) settingsSaved(c *echo.Context, what string) error {
	u.cfg.Log.Info("project settings changed", "project", currentProject(c), "part", what, "by", currentUser(c).Email)
	return u.flash(c, "/settings/project", "Saved the project's "+what+".", false)
}

// settingsErr answers a store error of a settings form.
func settingsErr(err error, project string) error {
	if errors.Is(err, db.ErrArchived) {
		return &respond.Error{Status: http.StatusConflict, Type: "invalid_request_error", Message: "The project is archived; its settings cannot change."}
	}
	return respond.StoreErr(err, "project", project)
}

// SaveModelSettings handles POST /settings/project/models (owners): every
// model, an allow list or a deny list. The list is the models ticked among
// the upstream's and those typed, one a line.
func (u *UI) SaveModelSettings(c *echo.Context) error {
	form, err := c.FormValues()
	if err != nil {
		return &respond.Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Message: "The form could not be read."}
	}
	f := &views.ModelsForm{Mode: c.FormValue("mode"), Other: c.FormValue("other_models"), Checked: map[string]bool{}}
	ids := []string{}
	for _, m := range form["model"] {
		if m = strings.TrimSpace(m); m != "" {
			f.Checked[m] = true
			ids = append(ids, m)
		}
	}
	for line := range strings.Lines(f.Other) {
		if m := strings.TrimSpace(line); m != "" {
			ids = append(ids, m)
		}
	}
	mode := f.Mode
	switch mode {
	case modeAll:
		mode, ids = db.DenyList, []string{}
	case db.AllowList, db.DenyList:
		if mode == db.AllowList && len(ids) == 0 {
			f.Errors = append(f.Errors, "An allow list needs at least one model; choose “All models” to allow every one.")
		}
	default:
		f.Errors = append(f.Errors, "Pick all models, an allow list or a deny list.")
		f.Mode = modeAll
	}
	if len(ids) > maxSettingsModels {
		f.Errors = append(f.Errors, "List at most "+strconv.Itoa(maxSettingsModels)+" models.")
	}
	for _, m := range ids { // the first bad name is enough to say
		if msg := checkModelName(m); msg != "" {
			f.Errors = append(f.Errors, msg)
			break
		}
	}
	if len(f.Errors) > 0 {
		return u.renderProjectSettings(c, http.StatusUnprocessableEntity, views.ProjectSettingsView{Models: f})
	}
	if _, err := u.store.UpdateProjectSettings(c.Request().Context(), currentProject(c), db.SettingsChange{ModelMode: &mode, ModelIDs: ids}); err != nil {
		return settingsErr(err, currentProject(c))
	}
	return u.settingsSaved(c, "models")
}

// checkModelName returns what is wrong with a model's name, or "".
func checkModelName(m string) string {
	switch {
	case hasNul(m):
		return "Models: " + nulRefusal
	case len(m) > maxModelIDLen || !utf8.ValidString(m):
		return "A model name has at most 256 characters: " + clip(strings.ToValidUTF8(m, ""), 40)
	}
	return ""
}

// SaveToolSettings handles POST /settings/project/tools (owners): the
// hosted tools the project's assistants and runs may use.
func (u *UI) SaveToolSettings(c *echo.Context) error {
	ci, fs := c.FormValue("code_interpreter") == "on", c.FormValue("file_search") == "on"
	if _, err := u.store.UpdateProjectSettings(c.Request().Context(), currentProject(c),
		db.SettingsChange{CodeInterpreter: &ci, FileSearch: &fs}); err != nil {
		return settingsErr(err, currentProject(c))
	}
	return u.settingsSaved(c, "tools")
}

// parseLimit reads a per-minute limit: a whole number from 0 (no limit);
// empty is 0.
func parseLimit(s, what string) (int64, string) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, ""
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, what + " per minute must be a whole number, 0 or more (0 is no limit)."
	}
	return n, ""
}

// SaveRateLimit handles POST /settings/project/rate_limits (owners): sets
// a model's requests and tokens per minute (a new row or a changed one).
func (u *UI) SaveRateLimit(c *echo.Context) error {
	// What was typed is shown again as typed when the form is refused.
	f := &views.LimitForm{Model: c.FormValue("model"), Requests: c.FormValue("requests"), Tokens: c.FormValue("tokens")}
	model := strings.TrimSpace(f.Model)
	switch {
	case hasNul(model):
		f.Errors = append(f.Errors, "Model: "+nulRefusal)
	case model == "" || len(model) > maxModelIDLen || !utf8.ValidString(model):
		f.Errors = append(f.Errors, "Name the model (at most 256 characters).")
	}
	rpm, msg := parseLimit(f.Requests, "Requests")
	if msg != "" {
		f.Errors = append(f.Errors, msg)
	}
	tpm, msg := parseLimit(f.Tokens, "Tokens")
	if msg != "" {
		f.Errors = append(f.Errors, msg)
	}
	if len(f.Errors) > 0 {
		return u.renderProjectSettings(c, http.StatusUnprocessableEntity, views.ProjectSettingsView{Limit: f})
	}
	if _, err := u.store.SetRateLimit(c.Request().Context(), currentProject(c), model,
		db.RateLimitChange{MaxRequestsPer1Minute: &rpm, MaxTokensPer1Minute: &tpm}); err != nil {
		return settingsErr(err, currentProject(c))
	}
	return u.settingsSaved(c, "rate limits on "+model)
}

// RemoveRateLimit handles POST /settings/project/rate_limits/remove
// (owners): the model is no longer limited.
func (u *UI) RemoveRateLimit(c *echo.Context) error {
	model := c.FormValue("model")
	if model == "" || len(model) > maxModelIDLen || hasNul(model) || !utf8.ValidString(model) {
		return &respond.Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Message: "Name the model whose limits to remove."}
	}
	var zero int64
	if _, err := u.store.SetRateLimit(c.Request().Context(), currentProject(c), model,
		db.RateLimitChange{MaxRequestsPer1Minute: &zero, MaxTokensPer1Minute: &zero}); err != nil {
		return settingsErr(err, currentProject(c))
	}
	return u.settingsSaved(c, "rate limits on "+model)
}

// guard checks addresses an owner who is not an admin of the server names:
// the webhooks' guard (a strict one when the server gave none).
func (u *UI) guard() *webhook.Guard {
	if u.cfg.Webhooks != nil {
		return u.cfg.Webhooks.Guard()
	}
	return webhook.NewGuard(nil, nil)
}

// SaveUpstream handles POST /settings/project/upstream (owners): the base
// URL of the project's own OpenAI-compatible provider and its key,
// checked as the Admin API checks them. A blank key keeps the key set
// before (it is never shown back); remove_key drops it. An owner who is
// not an admin of the server names only addresses the guard allows.
func (u *UI) SaveUpstream(c *echo.Context) error {
	ctx := c.Request().Context()
	f := &views.UpstreamForm{URL: c.FormValue("base_url"), RemoveKey: c.FormValue("remove_key") == "on"}
	baseURL := strings.TrimSpace(f.URL) // f.URL stays as typed, shown again if refused
	key := strings.TrimSpace(c.FormValue("api_key"))
	pu, err := url.Parse(baseURL)
	switch {
	case hasNul(baseURL):
		f.Errors = append(f.Errors, "Base URL: "+nulRefusal)
	case err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || len(baseURL) > maxUpstreamURLLen:
		f.Errors = append(f.Errors, "The base URL must be an http(s) URL such as https://api.openai.com/v1.")
	}
	switch {
	case hasNul(key):
		f.Errors = append(f.Errors, "API key: "+nulRefusal)
	case len(key) > maxUpstreamKeyLen:
		f.Errors = append(f.Errors, "The API key has at most 4096 characters.")
	case key != "" && f.RemoveKey:
		f.Errors = append(f.Errors, "Either type a new key or remove the key, not both.")
	}
	// An owner who is not an admin of the server may not point it into
	// its own network: the address is checked as a webhook's is, now for
	// a literal one and at every connection for a host name.
	guarded := !isAdmin(c)
	if guarded && len(f.Errors) == 0 {
		if _, err := u.guard().CheckURL(baseURL); err != nil {
			var refused *webhook.RefusedError
			if errors.As(err, &refused) && refused.Reason == "" {
				f.Errors = append(f.Errors, "The base URL's address "+refused.Addr.String()+" is in a network the server does not reach "+
					"on a project's behalf (loopback, private, link-local or metadata). An admin of the server can set it.")
			} else {
				f.Errors = append(f.Errors, "The base URL is refused: "+err.Error()+".")
			}
		}
	}
	if len(f.Errors) > 0 { // the key typed is not sent back into the page
		return u.renderProjectSettings(c, http.StatusUnprocessableEntity, views.ProjectSettingsView{Upstream: f})
	}
	project := currentProject(c)
	if key == "" && !f.RemoveKey {
		s, err := u.store.ProjectSettings(ctx, project)
		if err != nil {
			return respond.Internal(err)
		}
		key = s.UpstreamKey
	}
	if _, err := u.store.UpdateProjectSettings(ctx, project, db.SettingsChange{Upstream: &db.ProjectUpstream{URL: baseURL, Key: key, Guarded: guarded}}); err != nil {
		return settingsErr(err, project)
	}
	return u.settingsSaved(c, "upstream")
}

// RemoveUpstream handles POST /settings/project/upstream/remove (owners):
// the project's runs use the server's upstreams again; its key is dropped.
func (u *UI) RemoveUpstream(c *echo.Context) error {
	if _, err := u.store.UpdateProjectSettings(c.Request().Context(), currentProject(c), db.SettingsChange{Upstream: &db.ProjectUpstream{}}); err != nil {
		return settingsErr(err, currentProject(c))
	}
	return u.settingsSaved(c, "upstream")
}
