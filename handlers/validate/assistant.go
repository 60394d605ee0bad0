package validate

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/assistantd/assistantd/db"
)

// AssistantRequest is the body of create and modify assistant, and what
// the web app's editor fills in from its form.
type AssistantRequest struct {
	Model           Opt[string]               `json:"model"`
	Name            Opt[string]               `json:"name"`
	Description     Opt[string]               `json:"description"`
	Instructions    Opt[string]               `json:"instructions"`
	Tools           Opt[[]db.Tool]            `json:"tools"`
	ToolResources   Opt[ToolResourcesRequest] `json:"tool_resources"`
	Metadata        Opt[db.Metadata]          `json:"metadata"`
	Temperature     Opt[float64]              `json:"temperature"`
	TopP            Opt[float64]              `json:"top_p"`
	ResponseFormat  Opt[json.RawMessage]      `json:"response_format"`
	ReasoningEffort Opt[string]               `json:"reasoning_effort"`
}

// Assistant validates r and writes the fields it sets onto a: a new
// assistant (no ID yet) needs a model; a stored one changes only the
// fields present. The vector_stores helper is refused on modify, as
// OpenAI did; on create it is checked here and left for the caller to
// create (see ToolResources).
func Assistant(ctx context.Context, files Files, r AssistantRequest, a *db.Assistant) error {
	c := &checker{ctx: ctx, files: files}
	if a.ID == "" && !r.Model.Set {
		c.add(Missing(P("model")).withHint("Choose a model."))
	}
	if r.Model.Set {
		switch {
		case r.Model.Null || r.Model.V == "":
			c.add(New(P("model"), "invalid_value", "Invalid 'model': expected a non-empty string.").withHint("Choose a model."))
		case !c.add(Len(P("model"), &r.Model.V, MaxName)):
			a.Model = r.Model.V
		}
	}
	text := func(name string, o Opt[string], max int, dst **string) {
		if o.Set && !c.add(Len(P(name), o.Ptr(), max)) {
			*dst = o.Ptr()
		}
	}
	text("name", r.Name, MaxName, &a.Name)
	text("description", r.Description, MaxDescription, &a.Description)
	text("instructions", r.Instructions, MaxInstructions, &a.Instructions)
	if r.Tools.Set && !c.add(Tools(P("tools"), r.Tools.V, MaxAssistantTools)) {
		a.Tools = slices.Clone(r.Tools.V)
	}
	if r.ToolResources.Set {
		if a.ID != "" && r.ToolResources.V.HasVectorStoreHelper() {
			p := P("tool_resources", "file_search", "vector_stores")
			c.add(New(p, "unknown_parameter", "Unknown parameter: '%s'.", p))
		} else if tr, err := ToolResources(ctx, files, P("tool_resources"), r.ToolResources.Ptr()); !c.add(err) {
			a.ToolResources = tr
		}
	}
	if r.Metadata.Set && !c.add(Metadata(P("metadata"), r.Metadata.V)) {
		a.Metadata = r.Metadata.V
	}
	if r.Temperature.Set && !c.add(Range(P("temperature"), r.Temperature.Ptr(), 0, 2)) {
		a.Temperature = r.Temperature.Ptr()
	}
	if r.TopP.Set && !c.add(Range(P("top_p"), r.TopP.Ptr(), 0, 1)) {
		a.TopP = r.TopP.Ptr()
	}
	if r.ResponseFormat.Set {
		if r.ResponseFormat.Null {
			a.ResponseFormat = json.RawMessage(`"auto"`)
		} else if rf, err := ResponseFormat(P("response_format"), r.ResponseFormat.V); !c.add(err) {
			a.ResponseFormat = rf
		}
	}
	if r.ReasoningEffort.Set && !c.add(ReasoningEffort(P("reasoning_effort"), r.ReasoningEffort.Ptr())) {
		a.ReasoningEffort = r.ReasoningEffort.Ptr()
	}
	return c.result()
}

// ToolResourcesRequest is tool_resources as clients send it: the stored
// shape plus the create-time vector_stores helper.
type ToolResourcesRequest struct {
	CodeInterpreter *struct {
		FileIDs []string `json:"file_ids"`
	} `json:"code_interpreter"`
	FileSearch *struct {
		VectorStoreIDs []string          `json:"vector_store_ids"`
		VectorStores   []json.RawMessage `json:"vector_stores"`
	} `json:"file_search"`
}

// HasVectorStoreHelper reports whether r asks for vector stores to be
// created (file_search.vector_stores).
func (r ToolResourcesRequest) HasVectorStoreHelper() bool {
	return r.FileSearch != nil && r.FileSearch.VectorStores != nil
}

// NewToolResources returns tool resources with these code interpreter files and
// vector stores, as a form fills them in.
func NewToolResources(fileIDs, vectorStoreIDs []string) ToolResourcesRequest {
	var r ToolResourcesRequest
	if len(fileIDs) > 0 {
		r.CodeInterpreter = &struct {
			FileIDs []string `json:"file_ids"`
		}{FileIDs: fileIDs}
	}
	if len(vectorStoreIDs) > 0 {
		r.FileSearch = &struct {
			VectorStoreIDs []string          `json:"vector_store_ids"`
			VectorStores   []json.RawMessage `json:"vector_stores"`
		}{VectorStoreIDs: vectorStoreIDs}
	}
	return r
}

// ToolResources validates tool_resources and returns the stored form:
// code interpreter files must exist; at most one vector store, named by
// id or asked for through the vector_stores helper. The helper's stores
// are the caller's to create and append (creating is not validation).
func ToolResources(ctx context.Context, files Files, p Path, r *ToolResourcesRequest) (*db.ToolResources, error) {
	out := &db.ToolResources{}
	if r == nil {
		return out, nil
	}
	c := &checker{ctx: ctx, files: files}
	if ci := r.CodeInterpreter; ci != nil {
		fp := p.Key("code_interpreter").Key("file_ids")
		if !c.add(ArrayLen(fp, len(ci.FileIDs), MaxCodeFiles)) && !c.add(FileIDs(ctx, files, fp, ci.FileIDs)) {
			out.CodeInterpreter = &db.CodeInterpreterResources{FileIDs: Dedupe(ci.FileIDs)}
		}
	}
	if fs := r.FileSearch; fs != nil {
		fp := p.Key("file_search")
		switch {
		case c.add(ArrayLen(fp.Key("vector_store_ids"), len(fs.VectorStoreIDs), MaxVectorStores)):
		case c.add(ArrayLen(fp.Key("vector_stores"), len(fs.VectorStores), MaxVectorStores)):
		case len(fs.VectorStoreIDs)+len(fs.VectorStores) > MaxVectorStores:
			c.add(New(fp, "invalid_value",
				"Invalid '%s': at most %d vector store may be attached, with 'vector_store_ids' or 'vector_stores'.", fp, MaxVectorStores).
				withHint("Attach at most %d vector store.", MaxVectorStores))
		default:
			ok := true
			for i, id := range fs.VectorStoreIDs {
				if c.add(ID(fp.Key("vector_store_ids").Index(i), id, "vs_")) {
					ok = false
				}
			}
			if ok {
				out.FileSearch = &db.FileSearchResources{VectorStoreIDs: slices.Clone(fs.VectorStoreIDs)}
				if out.FileSearch.VectorStoreIDs == nil {
					out.FileSearch.VectorStoreIDs = []string{}
				}
			}
		}
	}
	if err := c.result(); err != nil {
		return nil, err
	}
	return out, nil
}

// Dedupe returns ids without repeats, in first-seen order.
func Dedupe(ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}
