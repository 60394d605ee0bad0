package api

// The Admin API under /v1/organization, compatible with OpenAI's:
// projects, their keys, service accounts, people, rate limits, model and
// hosted tool permissions, and (an assistantd extension) a project's own
// upstream. Only admin keys reach it (see web's requireAdminKey).

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/validate"
)

// OrganizationStore is what the Admin API needs from the store.
type OrganizationStore interface {
	CreateProject(ctx context.Context, name string) (db.Project, error)
	GetProject(ctx context.Context, id string) (db.Project, error)
	ListProjects(ctx context.Context, includeArchived bool) ([]db.Project, error)
	RenameProject(ctx context.Context, id, name string) (db.Project, error)
	ArchiveProject(ctx context.Context, id string) (db.Project, error)

	ListAPIKeys(ctx context.Context, projectID string) ([]db.APIKey, error)
	GetAPIKey(ctx context.Context, projectID, id string) (db.APIKey, error)
	RevokeAPIKey(ctx context.Context, projectID, id string) error

	CreateServiceAccount(ctx context.Context, projectID, name, role string) (db.ServiceAccount, db.APIKey, string, error)
	ListServiceAccounts(ctx context.Context, projectID string) ([]db.ServiceAccount, error)
	GetServiceAccount(ctx context.Context, projectID, id string) (db.ServiceAccount, error)
	DeleteServiceAccount(ctx context.Context, projectID, id string) error

	GetUser(ctx context.Context, id string) (db.User, error)
	ListUsers(ctx context.Context) ([]db.User, error)
	SetMember(ctx context.Context, projectID, userID, role string) error
	RemoveMember(ctx context.Context, projectID, userID string) error
	GetMember(ctx context.Context, projectID, userID string) (db.Member, error)
	ListMembers(ctx context.Context, projectID string) ([]db.Member, error)

	ListRateLimits(ctx context.Context, projectID string) ([]db.RateLimit, error)
	GetRateLimit(ctx context.Context, projectID, model string) (db.RateLimit, error)
	SetRateLimit(ctx context.Context, projectID, model string, change db.RateLimitChange) (db.RateLimit, error)

	ProjectSettings(ctx context.Context, projectID string) (db.ProjectSettings, error)
	UpdateProjectSettings(ctx context.Context, projectID string, change db.SettingsChange) (db.ProjectSettings, error)
}

// Organization serves the Admin API.
type Organization struct {
	store  OrganizationStore
	models func(ctx context.Context) []agent.Model // the models the upstreams serve, for rate limits' list
}

// NewOrganization returns the Admin API handlers. models lists the models
// the server's upstreams serve (each has a rate limit entry, unlimited
// until set).
func NewOrganization(store OrganizationStore, models func(ctx context.Context) []agent.Model) *Organization {
	return &Organization{store: store, models: models}
}

// projectObject is OpenAI's Project.
type projectObject struct {
	ID         string `json:"id"`
	Object     string `json:"object"`
	Name       string `json:"name"`
	CreatedAt  int64  `json:"created_at"`
	ArchivedAt *int64 `json:"archived_at"`
	Status     string `json:"status"`
}

func toProject(p db.Project) projectObject {
	status := "active"
	if !p.Active() {
		status = "archived"
	}
	return projectObject{ID: p.ID, Object: "organization.project", Name: p.Name, CreatedAt: p.CreatedAt, ArchivedAt: p.ArchivedAt, Status: status}
}

// deleted is the answer to a DELETE.
type deleted struct {
	Object  string `json:"object"`
	ID      string `json:"id,omitempty"`
	Deleted bool   `json:"deleted"`
}

// orgPage pages a whole list: after is the id of the last object of the
// previous page, limit 1 to 100 (default 20).
// orgList answers a list request with a page of items (see orgPage).
func orgList[T any](c *echo.Context, items []T, id func(T) string) error {
	l, err := orgPage(c, items, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, l)
}

// mapSlice converts each item with f.
func mapSlice[T, O any](items []T, f func(T) O) []O {
	out := make([]O, len(items))
	for i, t := range items {
		out[i] = f(t)
	}
	return out
}

func orgPage[T any](c *echo.Context, items []T, id func(T) string) (list[T], error) {
	limit := 20
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			return list[T]{}, respond.Invalid("limit", "invalid_type", "Invalid 'limit': expected an integer, but got '%s' instead.", v)
		case n < 1:
			return list[T]{}, respond.Invalid("limit", "integer_below_min_value",
				"Invalid 'limit': integer below minimum value. Expected a value >= 1, but got %d instead.", n)
		case n > 100:
			return list[T]{}, respond.Invalid("limit", "integer_above_max_value",
				"Invalid 'limit': integer above maximum value. Expected a value <= 100, but got %d instead.", n)
		}
		limit = n
	}
	if after := c.QueryParam("after"); after != "" {
		i := slices.IndexFunc(items, func(t T) bool { return id(t) == after })
		if i < 0 {
			return list[T]{}, respond.Invalid("after", "invalid_value", "Invalid 'after': no object with id '%s' exists in this list.", after)
		}
		items = items[i+1:]
	}
	l := list[T]{Object: "list", Data: items, HasMore: len(items) > limit}
	if l.HasMore {
		l.Data = items[:limit]
	}
	if l.Data == nil {
		l.Data = []T{}
	}
	if len(l.Data) > 0 {
		first, last := id(l.Data[0]), id(l.Data[len(l.Data)-1])
		l.FirstID, l.LastID = &first, &last
	}
	return l, nil
}

// orgErr maps the store's errors of a project's sub-resource.
func orgErr(err error, kind, id string) error {
	switch {
	case errors.Is(err, db.ErrArchived):
		return respond.Invalid("project_id", "project_archived", "The project is archived; archived projects cannot be changed.")
	case errors.Is(err, db.ErrDefaultProject):
		return respond.Invalid("project_id", "invalid_value", "The Default project cannot be archived.")
	}
	return respond.StoreErr(err, kind, id)
}

// project loads the project of the URL.
func (h *Organization) project(c *echo.Context) (db.Project, error) {
	id := c.Param("project_id")
	if err := checkID("project_id", id, "proj_"); err != nil {
		return db.Project{}, err
	}
	p, err := h.store.GetProject(c.Request().Context(), id)
	if err != nil {
		return p, respond.StoreErr(err, "project", id)
	}
	return p, nil
}

// projectName checks a project's name: 1 to 256 characters, not blank.
func projectName(name string) error {
	if strings.TrimSpace(name) == "" {
		return respond.Invalid("name", "invalid_value", "Invalid 'name': the project name must not be empty.")
	}
	if len([]rune(name)) > 256 {
		return respond.Invalid("name", "string_above_max_length",
			"Invalid 'name': string too long. Expected a string with maximum length 256, but got a string with length %d instead.", len([]rune(name)))
	}
	return nil
}

// ListProjects handles GET /v1/organization/projects.
func (h *Organization) ListProjects(c *echo.Context) error {
	include := false
	switch v := c.QueryParam("include_archived"); v {
	case "", "false":
	case "true":
		include = true
	default:
		return respond.Invalid("include_archived", "invalid_type", "Invalid 'include_archived': expected a boolean, but got '%s' instead.", v)
	}
	ps, err := h.store.ListProjects(c.Request().Context(), include)
	if err != nil {
		return respond.Internal(err)
	}
	return orgList(c, mapSlice(ps, toProject), func(p projectObject) string { return p.ID })
}

// CreateProject handles POST /v1/organization/projects.
func (h *Organization) CreateProject(c *echo.Context) error {
	var req struct {
		Name validate.Opt[string] `json:"name"`
	}
	if err := decodeBody(c.Request(), &req, false); err != nil {
		return err
	}
	if !req.Name.Set || req.Name.Null {
		return respond.Invalid("name", "missing_required_parameter", "Missing required parameter: 'name'.")
	}
	if err := projectName(req.Name.V); err != nil {
		return err
	}
	p, err := h.store.CreateProject(c.Request().Context(), req.Name.V)
	if err != nil {
		return respond.Internal(err)
	}
	return c.JSON(http.StatusOK, toProject(p))
}

// GetProject handles GET /v1/organization/projects/{project_id}.
func (h *Organization) GetProject(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toProject(p))
}

// ModifyProject handles POST /v1/organization/projects/{project_id}.
func (h *Organization) ModifyProject(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	var req struct {
		Name validate.Opt[string] `json:"name"`
	}
	if err := decodeBody(c.Request(), &req, true); err != nil {
		return err
	}
	if !req.Name.Set || req.Name.Null {
		return c.JSON(http.StatusOK, toProject(p))
	}
	if err := projectName(req.Name.V); err != nil {
		return err
	}
	p, err = h.store.RenameProject(c.Request().Context(), p.ID, req.Name.V)
	if err != nil {
		return orgErr(err, "project", p.ID)
	}
	return c.JSON(http.StatusOK, toProject(p))
}

// ArchiveProject handles POST /v1/organization/projects/{project_id}/archive:
// the project's keys stop working at once.
func (h *Organization) ArchiveProject(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	p, err = h.store.ArchiveProject(c.Request().Context(), p.ID)
	if err != nil {
		return orgErr(err, "project", c.Param("project_id"))
	}
	return c.JSON(http.StatusOK, toProject(p))
}

// apiKeyObject is OpenAI's ProjectApiKey.
type apiKeyObject struct {
	Object             string   `json:"object"`
	RedactedValue      string   `json:"redacted_value"`
	Name               string   `json:"name"`
	CreatedAt          int64    `json:"created_at"`
	LastUsedAt         *int64   `json:"last_used_at"`
	ExpiresAt          *int64   `json:"expires_at"`
	ID                 string   `json:"id"`
	OwnerProjectAccess string   `json:"owner_project_access"`
	Owner              keyOwner `json:"owner"`
	ReadOnly           bool     `json:"read_only"` // extension: the key may only read (GET)
}

type keyOwner struct {
	Type           string          `json:"type,omitempty"`
	User           *keyOwnerUser   `json:"user,omitempty"`
	ServiceAccount *keyOwnerSvcAcc `json:"service_account,omitempty"`
}

type keyOwnerUser struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	Name      string `json:"name"`
	CreatedAt int64  `json:"created_at"`
	Role      string `json:"role"`
}

type keyOwnerSvcAcc struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	CreatedAt int64  `json:"created_at"`
	Role      string `json:"role"`
}

// toAPIKey describes a key with its owner: a person (and their role in
// the project, "inactive" when they left it), a service account, or none
// (keys made before projects, or by the server on first start).
func (h *Organization) toAPIKey(ctx context.Context, k db.APIKey) (apiKeyObject, error) {
	o := apiKeyObject{Object: "organization.project.api_key", RedactedValue: k.Hint, Name: k.Name, CreatedAt: k.CreatedAt,
		LastUsedAt: k.LastUsedAt, ExpiresAt: k.ExpiresAt, ID: k.ID, OwnerProjectAccess: "active", ReadOnly: k.ReadOnly}
	switch {
	case k.ServiceAccountID != "":
		sa, err := h.store.GetServiceAccount(ctx, k.ProjectID, k.ServiceAccountID)
		if err != nil && !errors.Is(err, db.ErrNotFound) {
			return o, err
		}
		o.Owner = keyOwner{Type: "service_account", ServiceAccount: &keyOwnerSvcAcc{ID: k.ServiceAccountID, Name: sa.Name, CreatedAt: sa.CreatedAt, Role: sa.Role}}
		if err != nil {
			o.OwnerProjectAccess = "inactive"
		}
	case k.UserID != "":
		u, err := h.store.GetUser(ctx, k.UserID)
		if err != nil && !errors.Is(err, db.ErrNotFound) {
			return o, err
		}
		m, merr := h.store.GetMember(ctx, k.ProjectID, k.UserID)
		if merr != nil && !errors.Is(merr, db.ErrNotFound) {
			return o, merr
		}
		o.Owner = keyOwner{Type: "user", User: &keyOwnerUser{ID: k.UserID, Email: u.Email, Name: u.Email, CreatedAt: u.CreatedAt, Role: m.Role}}
		if err != nil || merr != nil {
			o.OwnerProjectAccess = "inactive"
		}
	}
	return o, nil
}

// ListAPIKeys handles GET /v1/organization/projects/{project_id}/api_keys:
// the keys in force (revoked ones are deleted, as OpenAI shows them),
// newest first.
func (h *Organization) ListAPIKeys(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	keys, err := h.store.ListAPIKeys(ctx, p.ID)
	if err != nil {
		return respond.Internal(err)
	}
	out := []apiKeyObject{}
	for _, k := range keys {
		if k.RevokedAt != nil {
			continue
		}
		o, err := h.toAPIKey(ctx, k)
		if err != nil {
			return respond.Internal(err)
		}
		out = append(out, o)
	}
	return orgList(c, out, func(k apiKeyObject) string { return k.ID })
}

// apiKey loads the key of the URL; a revoked key is not found.
func (h *Organization) apiKey(c *echo.Context) (db.APIKey, error) {
	p, err := h.project(c)
	if err != nil {
		return db.APIKey{}, err
	}
	id := c.Param("key_id")
	k, err := h.store.GetAPIKey(c.Request().Context(), p.ID, id)
	if err == nil && k.RevokedAt != nil {
		err = db.ErrNotFound
	}
	if err != nil {
		return k, respond.StoreErr(err, "API key", id)
	}
	return k, nil
}

// GetAPIKey handles GET /v1/organization/projects/{project_id}/api_keys/{key_id}.
func (h *Organization) GetAPIKey(c *echo.Context) error {
	k, err := h.apiKey(c)
	if err != nil {
		return err
	}
	o, err := h.toAPIKey(c.Request().Context(), k)
	if err != nil {
		return respond.Internal(err)
	}
	return c.JSON(http.StatusOK, o)
}

// DeleteAPIKey handles DELETE /v1/organization/projects/{project_id}/api_keys/{key_id}:
// the key stops working at once.
func (h *Organization) DeleteAPIKey(c *echo.Context) error {
	k, err := h.apiKey(c)
	if err != nil {
		return err
	}
	if err := h.store.RevokeAPIKey(c.Request().Context(), k.ProjectID, k.ID); err != nil {
		return respond.StoreErr(err, "API key", k.ID)
	}
	return c.JSON(http.StatusOK, deleted{Object: "organization.project.api_key.deleted", ID: k.ID, Deleted: true})
}

// serviceAccountObject is OpenAI's ProjectServiceAccount.
type serviceAccountObject struct {
	Object    string `json:"object"`
	ID        string `json:"id"`
	Name      string `json:"name"`
	Role      string `json:"role"`
	CreatedAt int64  `json:"created_at"`
}

func toServiceAccount(sa db.ServiceAccount) serviceAccountObject {
	return serviceAccountObject{Object: "organization.project.service_account", ID: sa.ID, Name: sa.Name, Role: sa.Role, CreatedAt: sa.CreatedAt}
}

// ListServiceAccounts handles GET /v1/organization/projects/{project_id}/service_accounts.
func (h *Organization) ListServiceAccounts(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	sas, err := h.store.ListServiceAccounts(c.Request().Context(), p.ID)
	if err != nil {
		return respond.Internal(err)
	}
	return orgList(c, mapSlice(sas, toServiceAccount), func(s serviceAccountObject) string { return s.ID })
}

// CreateServiceAccount handles POST /v1/organization/projects/{project_id}/service_accounts:
// the account and its key, whose value is shown this once.
func (h *Organization) CreateServiceAccount(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	var req struct {
		Name                     validate.Opt[string] `json:"name"`
		CreateServiceAccountOnly validate.Opt[bool]   `json:"create_service_account_only"`
	}
	if err := decodeBody(c.Request(), &req, false); err != nil {
		return err
	}
	if !req.Name.Set || req.Name.Null {
		return respond.Invalid("name", "missing_required_parameter", "Missing required parameter: 'name'.")
	}
	if err := projectName(req.Name.V); err != nil {
		return err
	}
	if req.CreateServiceAccountOnly.V {
		return respond.Invalid("create_service_account_only", "unsupported_value",
			"Unsupported value: 'create_service_account_only' true is not supported: a service account is created with its key.")
	}
	sa, key, secret, err := h.store.CreateServiceAccount(c.Request().Context(), p.ID, req.Name.V, "member")
	if err != nil {
		return orgErr(err, "project", p.ID)
	}
	type keyObject struct {
		Object    string `json:"object"`
		Value     string `json:"value"`
		Name      string `json:"name"`
		CreatedAt int64  `json:"created_at"`
		ID        string `json:"id"`
	}
	return c.JSON(http.StatusOK, struct {
		serviceAccountObject
		APIKey keyObject `json:"api_key"`
	}{toServiceAccount(sa), keyObject{Object: "organization.project.service_account.api_key", Value: secret, Name: key.Name,
		CreatedAt: key.CreatedAt, ID: key.ID}})
}

// GetServiceAccount handles GET /v1/organization/projects/{project_id}/service_accounts/{service_account_id}.
func (h *Organization) GetServiceAccount(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	id := c.Param("service_account_id")
	sa, err := h.store.GetServiceAccount(c.Request().Context(), p.ID, id)
	if err != nil {
		return respond.StoreErr(err, "service account", id)
	}
	return c.JSON(http.StatusOK, toServiceAccount(sa))
}

// DeleteServiceAccount handles DELETE /v1/organization/projects/{project_id}/service_accounts/{service_account_id}:
// its keys stop working at once.
func (h *Organization) DeleteServiceAccount(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	id := c.Param("service_account_id")
	if err := h.store.DeleteServiceAccount(c.Request().Context(), p.ID, id); err != nil {
		return respond.StoreErr(err, "service account", id)
	}
	return c.JSON(http.StatusOK, deleted{Object: "organization.project.service_account.deleted", ID: id, Deleted: true})
}

// projectUserObject is OpenAI's ProjectUser.
type projectUserObject struct {
	Object  string  `json:"object"`
	ID      string  `json:"id"`
	Name    *string `json:"name"`
	Email   string  `json:"email"`
	Role    string  `json:"role"`
	AddedAt int64   `json:"added_at"`
}

func toProjectUser(m db.Member) projectUserObject {
	return projectUserObject{Object: "organization.project.user", ID: m.User.ID, Email: m.User.Email, Role: m.Role, AddedAt: m.AddedAt}
}

// projectRole reads a person's project role: owner, editor or viewer, and
// OpenAI's member, which is an editor here.
func projectRole(role string) (string, error) {
	if role == "member" {
		return db.ProjectEditor, nil
	}
	if !slices.Contains(db.ProjectRoles, role) {
		return "", respond.Invalid("role", "invalid_value",
			"Invalid value: '%s'. Supported values are: 'owner', 'member' (an editor), 'editor' and 'viewer'.", role)
	}
	return role, nil
}

// ListProjectUsers handles GET /v1/organization/projects/{project_id}/users.
func (h *Organization) ListProjectUsers(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	ms, err := h.store.ListMembers(c.Request().Context(), p.ID)
	if err != nil {
		return respond.Internal(err)
	}
	return orgList(c, mapSlice(ms, toProjectUser), func(u projectUserObject) string { return u.ID })
}

// AddProjectUser handles POST /v1/organization/projects/{project_id}/users:
// a web app user, named by user_id or email, joins the project (or gets
// the role, when already in it).
func (h *Organization) AddProjectUser(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	var req struct {
		UserID validate.Opt[string] `json:"user_id"`
		Email  validate.Opt[string] `json:"email"`
		Role   validate.Opt[string] `json:"role"`
	}
	if err := decodeBody(c.Request(), &req, false); err != nil {
		return err
	}
	if !req.Role.Set || req.Role.Null {
		return respond.Invalid("role", "missing_required_parameter", "Missing required parameter: 'role'.")
	}
	role, err := projectRole(req.Role.V)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	var user db.User
	switch {
	case req.UserID.V != "":
		if user, err = h.store.GetUser(ctx, req.UserID.V); err != nil {
			return respond.StoreErr(err, "user", req.UserID.V)
		}
	case req.Email.V != "":
		users, err := h.store.ListUsers(ctx)
		if err != nil {
			return respond.Internal(err)
		}
		i := slices.IndexFunc(users, func(u db.User) bool { return strings.EqualFold(u.Email, strings.TrimSpace(req.Email.V)) })
		if i < 0 {
			return &respond.Error{Status: http.StatusNotFound, Type: "invalid_request_error", Param: "email",
				Message: "No user found with email '" + req.Email.V + "'."}
		}
		user = users[i]
	default:
		return respond.Invalid("user_id", "missing_required_parameter", "Missing required parameter: 'user_id' (or 'email').")
	}
	if !p.Active() {
		return orgErr(db.ErrArchived, "project", p.ID)
	}
	if err := h.store.SetMember(ctx, p.ID, user.ID, role); err != nil {
		return respond.Internal(err)
	}
	m, err := h.store.GetMember(ctx, p.ID, user.ID)
	if err != nil {
		return respond.StoreErr(err, "user", user.ID)
	}
	return c.JSON(http.StatusOK, toProjectUser(m))
}

// GetProjectUser handles GET /v1/organization/projects/{project_id}/users/{user_id}.
func (h *Organization) GetProjectUser(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	id := c.Param("user_id")
	m, err := h.store.GetMember(c.Request().Context(), p.ID, id)
	if err != nil {
		return respond.StoreErr(err, "user", id)
	}
	return c.JSON(http.StatusOK, toProjectUser(m))
}

// ModifyProjectUser handles POST /v1/organization/projects/{project_id}/users/{user_id}.
func (h *Organization) ModifyProjectUser(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	id := c.Param("user_id")
	ctx := c.Request().Context()
	m, err := h.store.GetMember(ctx, p.ID, id)
	if err != nil {
		return respond.StoreErr(err, "user", id)
	}
	var req struct {
		Role validate.Opt[string] `json:"role"`
	}
	if err := decodeBody(c.Request(), &req, false); err != nil {
		return err
	}
	if !req.Role.Set || req.Role.Null {
		return respond.Invalid("role", "missing_required_parameter", "Missing required parameter: 'role'.")
	}
	role, err := projectRole(req.Role.V)
	if err != nil {
		return err
	}
	if !p.Active() {
		return orgErr(db.ErrArchived, "project", p.ID)
	}
	if err := h.store.SetMember(ctx, p.ID, id, role); err != nil {
		return respond.Internal(err)
	}
	m.Role = role
	return c.JSON(http.StatusOK, toProjectUser(m))
}

// DeleteProjectUser handles DELETE /v1/organization/projects/{project_id}/users/{user_id}.
func (h *Organization) DeleteProjectUser(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	id := c.Param("user_id")
	if err := h.store.RemoveMember(c.Request().Context(), p.ID, id); err != nil {
		return respond.StoreErr(err, "user", id)
	}
	return c.JSON(http.StatusOK, deleted{Object: "organization.project.user.deleted", ID: id, Deleted: true})
}

// rateLimitObject is OpenAI's ProjectRateLimit; 0 is no limit.
type rateLimitObject struct {
	Object                string `json:"object"`
	ID                    string `json:"id"`
	Model                 string `json:"model"`
	MaxRequestsPer1Minute int64  `json:"max_requests_per_1_minute"`
	MaxTokensPer1Minute   int64  `json:"max_tokens_per_1_minute"`
}

func toRateLimit(l db.RateLimit) rateLimitObject {
	return rateLimitObject{Object: "project.rate_limit", ID: l.ID, Model: l.Model,
		MaxRequestsPer1Minute: l.MaxRequestsPer1Minute, MaxTokensPer1Minute: l.MaxTokensPer1Minute}
}

// ListRateLimits handles GET /v1/organization/projects/{project_id}/rate_limits:
// every model the upstreams name, and every model with limits, by model.
func (h *Organization) ListRateLimits(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	set, err := h.store.ListRateLimits(ctx, p.ID)
	if err != nil {
		return respond.Internal(err)
	}
	byModel := map[string]db.RateLimit{}
	for _, l := range set {
		byModel[l.Model] = l
	}
	if h.models != nil {
		for _, m := range h.models(ctx) {
			if _, ok := byModel[m.ID]; !ok {
				byModel[m.ID] = db.RateLimit{ID: db.RateLimitID(m.ID), ProjectID: p.ID, Model: m.ID}
			}
		}
	}
	out := make([]rateLimitObject, 0, len(byModel))
	for _, l := range byModel {
		out = append(out, toRateLimit(l))
	}
	slices.SortFunc(out, func(a, b rateLimitObject) int { return strings.Compare(a.Model, b.Model) })
	return orgList(c, out, func(r rateLimitObject) string { return r.ID })
}

// UpdateRateLimit handles POST /v1/organization/projects/{project_id}/rate_limits/{rate_limit_id}.
// The id is "rl-" and the model. Limits are requests and tokens per
// minute; OpenAI's other limits (images, audio, per day, batch) do not
// apply to this server.
func (h *Organization) UpdateRateLimit(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	id := c.Param("rate_limit_id")
	model, ok := strings.CutPrefix(id, "rl-")
	if !ok || model == "" {
		return respond.NotFound("rate limit", id)
	}
	var req struct {
		MaxRequestsPer1Minute       validate.Opt[int64] `json:"max_requests_per_1_minute"`
		MaxTokensPer1Minute         validate.Opt[int64] `json:"max_tokens_per_1_minute"`
		MaxImagesPer1Minute         validate.Opt[int64] `json:"max_images_per_1_minute"`
		MaxAudioMegabytesPer1Minute validate.Opt[int64] `json:"max_audio_megabytes_per_1_minute"`
		MaxRequestsPer1Day          validate.Opt[int64] `json:"max_requests_per_1_day"`
		Batch1DayMaxInputTokens     validate.Opt[int64] `json:"batch_1_day_max_input_tokens"`
	}
	if err := decodeBody(c.Request(), &req, false); err != nil {
		return err
	}
	for name, o := range map[string]validate.Opt[int64]{"max_images_per_1_minute": req.MaxImagesPer1Minute,
		"max_audio_megabytes_per_1_minute": req.MaxAudioMegabytesPer1Minute, "max_requests_per_1_day": req.MaxRequestsPer1Day,
		"batch_1_day_max_input_tokens": req.Batch1DayMaxInputTokens} {
		if o.Set && !o.Null {
			return respond.Invalid(name, "unsupported_parameter", "Unsupported parameter: '%s' is not supported by this server; "+
				"it limits requests and tokens per minute.", name)
		}
	}
	var change db.RateLimitChange
	for _, f := range []struct {
		name string
		o    validate.Opt[int64]
		to   **int64
	}{{"max_requests_per_1_minute", req.MaxRequestsPer1Minute, &change.MaxRequestsPer1Minute},
		{"max_tokens_per_1_minute", req.MaxTokensPer1Minute, &change.MaxTokensPer1Minute}} {
		if !f.o.Set || f.o.Null {
			continue
		}
		if f.o.V < 0 {
			return respond.Invalid(f.name, "integer_below_min_value",
				"Invalid '%s': integer below minimum value. Expected a value >= 0, but got %d instead.", f.name, f.o.V)
		}
		v := f.o.V
		*f.to = &v
	}
	l, err := h.store.SetRateLimit(c.Request().Context(), p.ID, model, change)
	if err != nil {
		return orgErr(err, "project", p.ID)
	}
	return c.JSON(http.StatusOK, toRateLimit(l))
}

// modelPermissionsObject is OpenAI's ProjectModelPermissions.
type modelPermissionsObject struct {
	Object   string   `json:"object"`
	Mode     string   `json:"mode"`
	ModelIDs []string `json:"model_ids"`
}

func toModelPermissions(s db.ProjectSettings) modelPermissionsObject {
	return modelPermissionsObject{Object: "project.model_permissions", Mode: s.ModelMode, ModelIDs: s.ModelIDs}
}

// GetModelPermissions handles GET /v1/organization/projects/{project_id}/model_permissions.
// A project that never set them has an empty deny list: every model.
func (h *Organization) GetModelPermissions(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	s, err := h.store.ProjectSettings(c.Request().Context(), p.ID)
	if err != nil {
		return respond.Internal(err)
	}
	return c.JSON(http.StatusOK, toModelPermissions(s))
}

// UpdateModelPermissions handles POST /v1/organization/projects/{project_id}/model_permissions.
func (h *Organization) UpdateModelPermissions(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	var req struct {
		Mode     validate.Opt[string]   `json:"mode"`
		ModelIDs validate.Opt[[]string] `json:"model_ids"`
	}
	if err := decodeBody(c.Request(), &req, false); err != nil {
		return err
	}
	if !req.Mode.Set || req.Mode.Null {
		return respond.Invalid("mode", "missing_required_parameter", "Missing required parameter: 'mode'.")
	}
	if !db.ValidModelMode(req.Mode.V) {
		return respond.Invalid("mode", "invalid_value", "Invalid value: '%s'. Supported values are: 'allow_list' and 'deny_list'.", req.Mode.V)
	}
	if !req.ModelIDs.Set || req.ModelIDs.Null {
		return respond.Invalid("model_ids", "missing_required_parameter", "Missing required parameter: 'model_ids'.")
	}
	if err := checkArrayLen("model_ids", len(req.ModelIDs.V), 1000); err != nil {
		return err
	}
	for i, m := range req.ModelIDs.V {
		if strings.TrimSpace(m) == "" || len(m) > 256 {
			return respond.Invalid("model_ids["+strconv.Itoa(i)+"]", "invalid_value",
				"Invalid 'model_ids[%d]': a model id of 1 to 256 characters was expected.", i)
		}
	}
	mode := req.Mode.V
	s, err := h.store.UpdateProjectSettings(c.Request().Context(), p.ID, db.SettingsChange{ModelMode: &mode, ModelIDs: req.ModelIDs.V})
	if err != nil {
		return orgErr(err, "project", p.ID)
	}
	return c.JSON(http.StatusOK, toModelPermissions(s))
}

// DeleteModelPermissions handles DELETE /v1/organization/projects/{project_id}/model_permissions:
// every model is allowed again.
func (h *Organization) DeleteModelPermissions(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	mode := db.DenyList
	if _, err := h.store.UpdateProjectSettings(c.Request().Context(), p.ID, db.SettingsChange{ModelMode: &mode}); err != nil {
		return orgErr(err, "project", p.ID)
	}
	return c.JSON(http.StatusOK, deleted{Object: "project.model_permissions.deleted", Deleted: true})
}

type toolPermission struct {
	Enabled bool `json:"enabled"`
}

// hostedToolsObject is OpenAI's ProjectHostedToolPermissions. Web search,
// image generation and MCP are not served here: always off.
type hostedToolsObject struct {
	FileSearch      toolPermission `json:"file_search"`
	CodeInterpreter toolPermission `json:"code_interpreter"`
	WebSearch       toolPermission `json:"web_search"`
	ImageGeneration toolPermission `json:"image_generation"`
	MCP             toolPermission `json:"mcp"`
}

func toHostedTools(s db.ProjectSettings) hostedToolsObject {
	return hostedToolsObject{FileSearch: toolPermission{s.FileSearch}, CodeInterpreter: toolPermission{s.CodeInterpreter}}
}

// GetHostedToolPermissions handles GET /v1/organization/projects/{project_id}/hosted_tool_permissions.
func (h *Organization) GetHostedToolPermissions(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	s, err := h.store.ProjectSettings(c.Request().Context(), p.ID)
	if err != nil {
		return respond.Internal(err)
	}
	return c.JSON(http.StatusOK, toHostedTools(s))
}

// UpdateHostedToolPermissions handles POST /v1/organization/projects/{project_id}/hosted_tool_permissions:
// code_interpreter and file_search on or off for the project.
func (h *Organization) UpdateHostedToolPermissions(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	type update = validate.Opt[struct {
		Enabled validate.Opt[bool] `json:"enabled"`
	}]
	var req struct {
		FileSearch      update `json:"file_search"`
		CodeInterpreter update `json:"code_interpreter"`
		WebSearch       update `json:"web_search"`
		ImageGeneration update `json:"image_generation"`
		MCP             update `json:"mcp"`
	}
	if err := decodeBody(c.Request(), &req, false); err != nil {
		return err
	}
	var change db.SettingsChange
	for _, f := range []struct {
		name   string
		u      update
		to     **bool
		served bool
	}{{"file_search", req.FileSearch, &change.FileSearch, true}, {"code_interpreter", req.CodeInterpreter, &change.CodeInterpreter, true},
		{"web_search", req.WebSearch, nil, false}, {"image_generation", req.ImageGeneration, nil, false}, {"mcp", req.MCP, nil, false}} {
		if !f.u.Set || f.u.Null {
			continue
		}
		if !f.u.V.Enabled.Set || f.u.V.Enabled.Null {
			return respond.Invalid(f.name+".enabled", "missing_required_parameter", "Missing required parameter: '%s.enabled'.", f.name)
		}
		on := f.u.V.Enabled.V
		if !f.served {
			if on {
				return respond.Invalid(f.name+".enabled", "unsupported_value", "Unsupported value: this server has no %s tool to enable.", f.name)
			}
			continue
		}
		*f.to = &on
	}
	s, err := h.store.UpdateProjectSettings(c.Request().Context(), p.ID, change)
	if err != nil {
		return orgErr(err, "project", p.ID)
	}
	return c.JSON(http.StatusOK, toHostedTools(s))
}

// upstreamObject is a project's own upstream (an assistantd extension).
// The key is never shown, only whether one is set.
type upstreamObject struct {
	Object    string  `json:"object"`
	BaseURL   *string `json:"base_url"`
	APIKeySet bool    `json:"api_key_set"`
}

func toUpstream(s db.ProjectSettings) upstreamObject {
	o := upstreamObject{Object: "project.upstream", APIKeySet: s.UpstreamKey != ""}
	if s.UpstreamURL != "" {
		o.BaseURL = &s.UpstreamURL
	}
	return o
}

// GetUpstream handles GET /v1/organization/projects/{project_id}/upstream.
func (h *Organization) GetUpstream(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	s, err := h.store.ProjectSettings(c.Request().Context(), p.ID)
	if err != nil {
		return respond.Internal(err)
	}
	return c.JSON(http.StatusOK, toUpstream(s))
}

// SetUpstream handles POST /v1/organization/projects/{project_id}/upstream:
// base_url (an http(s) URL of an OpenAI-compatible provider) and api_key
// (omitted: the saved key is kept; "" or null: none); the project's runs
// and responses call it for every model.
func (h *Organization) SetUpstream(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	var req struct {
		BaseURL validate.Opt[string] `json:"base_url"`
		APIKey  validate.Opt[string] `json:"api_key"`
	}
	if err := decodeBody(c.Request(), &req, false); err != nil {
		return err
	}
	if !req.BaseURL.Set || req.BaseURL.Null {
		return respond.Invalid("base_url", "missing_required_parameter", "Missing required parameter: 'base_url'.")
	}
	u, err := url.Parse(req.BaseURL.V)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(req.BaseURL.V) > 2048 {
		return respond.Invalid("base_url", "invalid_url", "Invalid 'base_url': expected an http(s) URL such as https://api.openai.com/v1.")
	}
	if len(req.APIKey.V) > 4096 {
		return respond.Invalid("api_key", "string_above_max_length", "Invalid 'api_key': string too long. Expected a string with maximum length 4096.")
	}
	key := req.APIKey.V
	if !req.APIKey.Set { // as in the web app: the saved key is kept; "" or null removes it
		cur, err := h.store.ProjectSettings(c.Request().Context(), p.ID)
		if err != nil {
			return orgErr(err, "project", p.ID)
		}
		key = cur.UpstreamKey
	}
	s, err := h.store.UpdateProjectSettings(c.Request().Context(), p.ID,
		db.SettingsChange{Upstream: &db.ProjectUpstream{URL: req.BaseURL.V, Key: key}})
	if err != nil {
		return orgErr(err, "project", p.ID)
	}
	return c.JSON(http.StatusOK, toUpstream(s))
}

// DeleteUpstream handles DELETE /v1/organization/projects/{project_id}/upstream:
// the project's runs use the server's upstreams again.
func (h *Organization) DeleteUpstream(c *echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	if _, err := h.store.UpdateProjectSettings(c.Request().Context(), p.ID, db.SettingsChange{Upstream: &db.ProjectUpstream{}}); err != nil {
		return orgErr(err, "project", p.ID)
	}
	return c.JSON(http.StatusOK, deleted{Object: "project.upstream.deleted", Deleted: true})
}
