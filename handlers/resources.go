package handlers

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
)

// toolResourcesRequest is tool_resources as clients send it: the stored
// shape plus the create-time vector_stores helper.
type toolResourcesRequest struct {
	CodeInterpreter *struct {
		FileIDs []string `json:"file_ids"`
	} `json:"code_interpreter"`
	FileSearch *struct {
		VectorStoreIDs []string          `json:"vector_store_ids"`
		VectorStores   []json.RawMessage `json:"vector_stores"`
	} `json:"file_search"`
}

func (t toolResourcesRequest) hasVectorStoreHelper() bool {
	return t.FileSearch != nil && t.FileSearch.VectorStores != nil
}

// toolResources validates a tool_resources request and returns the stored
// form. Code interpreter files must exist.
func (h *API) toolResources(c *echo.Context, param string, r *toolResourcesRequest) (*db.ToolResources, error) {
	out := &db.ToolResources{}
	if r == nil {
		return out, nil
	}
	if ci := r.CodeInterpreter; ci != nil {
		p := param + ".code_interpreter.file_ids"
		if err := checkArrayLen(p, len(ci.FileIDs), maxCodeFiles); err != nil {
			return nil, err
		}
		if err := h.checkFiles(c, p, ci.FileIDs); err != nil {
			return nil, err
		}
		out.CodeInterpreter = &db.CodeInterpreterResources{FileIDs: dedupe(ci.FileIDs)}
	}
	if fs := r.FileSearch; fs != nil {
		p := param + ".file_search"
		if fs.VectorStores != nil && h.vectors == nil {
			// Without vector stores, say so rather than drop the files.
			return nil, invalid(p+".vector_stores", "unsupported_parameter",
				"Invalid '%s.vector_stores': creating vector stores is not supported here; pass 'vector_store_ids' instead.", p)
		}
		if err := checkArrayLen(p+".vector_store_ids", len(fs.VectorStoreIDs), maxVectorStores); err != nil {
			return nil, err
		}
		if err := checkArrayLen(p+".vector_stores", len(fs.VectorStores), maxVectorStores); err != nil {
			return nil, err
		}
		if len(fs.VectorStoreIDs)+len(fs.VectorStores) > maxVectorStores {
			return nil, invalid(p, "invalid_value",
				"Invalid '%s': at most %d vector store may be attached, with 'vector_store_ids' or 'vector_stores'.", p, maxVectorStores)
		}
		for i, id := range fs.VectorStoreIDs {
			if err := checkID(fmt.Sprintf("%s.vector_store_ids[%d]", p, i), id, "vs_"); err != nil {
				return nil, err
			}
		}
		out.FileSearch = &db.FileSearchResources{VectorStoreIDs: slices.Clone(fs.VectorStoreIDs)}
		if out.FileSearch.VectorStoreIDs == nil {
			out.FileSearch.VectorStoreIDs = []string{}
		}
		// The vector_stores helper: create the store now and attach it.
		for i, raw := range fs.VectorStores {
			id, err := h.helperVectorStore(c, fmt.Sprintf("%s.vector_stores[%d]", p, i), raw)
			if err != nil {
				return nil, err
			}
			out.FileSearch.VectorStoreIDs = append(out.FileSearch.VectorStoreIDs, id)
		}
	}
	return out, nil
}

// checkFiles reports the first of ids that is malformed or names no file.
func (h *API) checkFiles(c *echo.Context, param string, ids []string) error {
	for i, id := range ids {
		if err := checkID(fmt.Sprintf("%s[%d]", param, i), id, "file-"); err != nil {
			return err
		}
	}
	missing, err := h.store.MissingFiles(c.Request().Context(), ids)
	if err != nil {
		return Internal(err)
	}
	if len(missing) > 0 {
		return invalid(param, "invalid_value", "Invalid '%s': no file found with id '%s'.", param, missing[0])
	}
	return nil
}

// checkFile is checkFiles for one id that param names by itself (an
// image_file or attachment file_id, not an element of a list).
func (h *API) checkFile(c *echo.Context, param, id string) error {
	if err := checkID(param, id, "file-"); err != nil {
		return err
	}
	return h.checkFiles(c, param, []string{id})
}

func dedupe(ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}
