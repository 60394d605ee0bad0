package api

import (
	"context"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
)

// ProjectSettings reads a project's settings (models and tools it may
// use), which assistants are checked against.
type ProjectSettings interface {
	ProjectSettings(ctx context.Context, projectID string) (db.ProjectSettings, error)
}

// WithProjectSettings checks assistants' models and tools against their
// project's settings. (Runs and responses are checked by the engine.)
func WithProjectSettings(ps ProjectSettings) APIOption {
	return func(h *API) { h.settings = ps }
}

// checkProject refuses a model or a server-side tool the request's
// project may not use; model "" and nil tools are not checked.
func (h *API) checkProject(ctx context.Context, model string, tools []db.Tool) error {
	if h.settings == nil {
		return nil
	}
	project, err := db.ProjectFrom(ctx)
	if err != nil {
		project = db.DefaultProjectID
	}
	set, err := h.settings.ProjectSettings(ctx, project)
	if err != nil {
		return respond.Internal(err)
	}
	if se := set.Check(model, tools); se != nil {
		return respond.Invalid(se.Param, se.Code, "%s", se.Message)
	}
	return nil
}

// projectModels leaves out of models those the request's project may not
// use, as OpenAI's model list shows a project only its models.
func (h *API) projectModels(ctx context.Context, models []agent.Model) ([]agent.Model, error) {
	if h.settings == nil {
		return models, nil
	}
	project, err := db.ProjectFrom(ctx)
	if err != nil {
		project = db.DefaultProjectID
	}
	set, err := h.settings.ProjectSettings(ctx, project)
	if err != nil {
		return nil, respond.Internal(err)
	}
	out := make([]agent.Model, 0, len(models))
	for _, m := range models {
		if set.AllowsModel(m.ID) {
			out = append(out, m)
		}
	}
	return out, nil
}
