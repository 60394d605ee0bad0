package api

import (
	"fmt"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/validate"
)

// refuseHelper says so when a tool_resources at param asks for vector
// stores (the vector_stores helper) on a server without them, rather than
// drop the files.
func (h *API) refuseHelper(r *validate.ToolResourcesRequest, param string) error {
	if r == nil || !r.HasVectorStoreHelper() || h.vectors != nil {
		return nil
	}
	p := param + ".file_search"
	return respond.Invalid(p+".vector_stores", "unsupported_parameter",
		"Invalid '%s.vector_stores': creating vector stores is not supported here; pass 'vector_store_ids' instead.", p)
}

// toolResources validates tool_resources at param and creates the stores
// of its vector_stores helper.
func (h *API) toolResources(c *echo.Context, param string, r *validate.ToolResourcesRequest) (*db.ToolResources, error) {
	if err := h.refuseHelper(r, param); err != nil {
		return nil, err
	}
	tr, err := validate.ToolResources(c.Request().Context(), h.store, pathOf(param), r)
	if err != nil {
		return nil, err
	}
	return tr, h.createHelperStores(c, param, r, tr)
}

// createHelperStores creates the vector store of each vector_stores helper
// entry in r and attaches it to tr; validation has checked how many.
func (h *API) createHelperStores(c *echo.Context, param string, r *validate.ToolResourcesRequest, tr *db.ToolResources) error {
	if r == nil || !r.HasVectorStoreHelper() {
		return nil
	}
	for i, raw := range r.FileSearch.VectorStores {
		id, err := h.helperVectorStore(c, fmt.Sprintf("%s.file_search.vector_stores[%d]", param, i), raw)
		if err != nil {
			return err
		}
		if tr.FileSearch == nil {
			tr.FileSearch = &db.FileSearchResources{VectorStoreIDs: []string{}}
		}
		tr.FileSearch.VectorStoreIDs = append(tr.FileSearch.VectorStoreIDs, id)
	}
	return nil
}

// pathOf is a top-level parameter as a validation path ("" is the body).
func pathOf(param string) validate.Path {
	if param == "" {
		return validate.Path{}
	}
	return validate.P(param)
}
