package handlers

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
)

// assistantRequest is the body of create and modify assistant.
type assistantRequest struct {
	Model           Opt[string]               `json:"model"`
	Name            Opt[string]               `json:"name"`
	Description     Opt[string]               `json:"description"`
	Instructions    Opt[string]               `json:"instructions"`
	Tools           Opt[[]db.Tool]            `json:"tools"`
	ToolResources   Opt[toolResourcesRequest] `json:"tool_resources"`
	Metadata        Opt[db.Metadata]          `json:"metadata"`
	Temperature     Opt[float64]              `json:"temperature"`
	TopP            Opt[float64]              `json:"top_p"`
	ResponseFormat  Opt[json.RawMessage]      `json:"response_format"`
	ReasoningEffort Opt[string]               `json:"reasoning_effort"`
}

var reasoningEfforts = []string{"none", "minimal", "low", "medium", "high", "xhigh", "max"}

// apply validates r and writes the fields it sets onto a. On create every
// field is applied; on modify only those present.
func (h *API) applyAssistant(c *echo.Context, r assistantRequest, a *db.Assistant) error {
	if r.Model.Set {
		if r.Model.Null || r.Model.V == "" {
			return invalid("model", "invalid_value", "Invalid 'model': expected a non-empty string.")
		}
		if err := checkLen("model", &r.Model.V, maxName); err != nil {
			return err
		}
		a.Model = r.Model.V
	}
	if r.Name.Set {
		if err := checkLen("name", r.Name.Ptr(), maxName); err != nil {
			return err
		}
		a.Name = r.Name.Ptr()
	}
	if r.Description.Set {
		if err := checkLen("description", r.Description.Ptr(), maxDescription); err != nil {
			return err
		}
		a.Description = r.Description.Ptr()
	}
	if r.Instructions.Set {
		if err := checkLen("instructions", r.Instructions.Ptr(), maxInstructions); err != nil {
			return err
		}
		a.Instructions = r.Instructions.Ptr()
	}
	if r.Tools.Set {
		if err := checkTools("tools", r.Tools.V, maxAssistantTools); err != nil {
			return err
		}
		a.Tools = slices.Clone(r.Tools.V)
	}
	if r.ToolResources.Set {
		tr, err := h.toolResources(c, "tool_resources", r.ToolResources.Ptr())
		if err != nil {
			return err
		}
		a.ToolResources = tr
	}
	if r.Metadata.Set {
		if err := checkMetadata("metadata", r.Metadata.V); err != nil {
			return err
		}
		a.Metadata = r.Metadata.V
	}
	if r.Temperature.Set {
		if err := checkRange("temperature", r.Temperature.Ptr(), 0, 2); err != nil {
			return err
		}
		a.Temperature = r.Temperature.Ptr()
	}
	if r.TopP.Set {
		if err := checkRange("top_p", r.TopP.Ptr(), 0, 1); err != nil {
			return err
		}
		a.TopP = r.TopP.Ptr()
	}
	if r.ResponseFormat.Set {
		if r.ResponseFormat.Null {
			a.ResponseFormat = json.RawMessage(`"auto"`)
		} else {
			rf, err := checkResponseFormat("response_format", r.ResponseFormat.V)
			if err != nil {
				return err
			}
			a.ResponseFormat = rf
		}
	}
	if r.ReasoningEffort.Set {
		if e := r.ReasoningEffort.Ptr(); e != nil && !slices.Contains(reasoningEfforts, *e) {
			return invalid("reasoning_effort", "invalid_value",
				"Invalid value: '%s'. Supported values are: 'none', 'minimal', 'low', 'medium', 'high', 'xhigh', and 'max'.", *e)
		}
		a.ReasoningEffort = r.ReasoningEffort.Ptr()
	}
	return nil
}

// CreateAssistant handles POST /v1/assistants.
func (h *API) CreateAssistant(c *echo.Context) error {
	var r assistantRequest
	if err := decodeBody(c.Request(), &r, false); err != nil {
		return err
	}
	if !r.Model.Set {
		return invalid("model", "missing_required_parameter", "Missing required parameter: 'model'.")
	}
	var a db.Assistant
	if err := h.applyAssistant(c, r, &a); err != nil {
		return err
	}
	a, err := h.store.CreateAssistant(c.Request().Context(), a)
	if err != nil {
		return Internal(err)
	}
	return c.JSON(http.StatusOK, a)
}

// GetAssistant handles GET /v1/assistants/{assistant_id}.
func (h *API) GetAssistant(c *echo.Context) error {
	id := c.Param("assistant_id")
	if err := checkID("assistant_id", id, "asst_"); err != nil {
		return err
	}
	a, err := h.store.GetAssistant(c.Request().Context(), id)
	if err != nil {
		return storeErr(err, "assistant", id)
	}
	return c.JSON(http.StatusOK, a)
}

// ModifyAssistant handles POST /v1/assistants/{assistant_id}.
func (h *API) ModifyAssistant(c *echo.Context) error {
	id := c.Param("assistant_id")
	if err := checkID("assistant_id", id, "asst_"); err != nil {
		return err
	}
	var r assistantRequest
	if err := decodeBody(c.Request(), &r, false); err != nil {
		return err
	}
	if r.ToolResources.Set && r.ToolResources.V.hasVectorStoreHelper() {
		return invalid("tool_resources.file_search.vector_stores", "unknown_parameter",
			"Unknown parameter: 'tool_resources.file_search.vector_stores'.")
	}
	a, err := h.store.UpdateAssistant(c.Request().Context(), id, func(a *db.Assistant) error {
		return h.applyAssistant(c, r, a)
	})
	if err != nil {
		return storeErr(err, "assistant", id)
	}
	return c.JSON(http.StatusOK, a)
}

// DeleteAssistant handles DELETE /v1/assistants/{assistant_id}.
func (h *API) DeleteAssistant(c *echo.Context) error {
	id := c.Param("assistant_id")
	if err := checkID("assistant_id", id, "asst_"); err != nil {
		return err
	}
	if err := h.store.DeleteAssistant(c.Request().Context(), id); err != nil {
		return storeErr(err, "assistant", id)
	}
	return c.JSON(http.StatusOK, db.Deleted{ID: id, Object: "assistant.deleted", Deleted: true})
}

// ListAssistants handles GET /v1/assistants.
func (h *API) ListAssistants(c *echo.Context) error {
	p, err := listParams(c, 100, 20, true)
	if err != nil {
		return err
	}
	page, err := h.store.ListAssistants(c.Request().Context(), p)
	if err != nil {
		return storeErr(err, "", "")
	}
	return c.JSON(http.StatusOK, newList(page, func(a db.Assistant) string { return a.ID }))
}
