package api

import (
	"bytes"
	"encoding/json"
	"slices"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
)

// file_search results are stored with their text; a response shows the
// text only when the request's include[] asks for
// step_details.tool_calls[*].file_search.results[*].content.

// wantsSearchContent reports whether include[] asks for result content.
func wantsSearchContent(c *echo.Context) bool {
	q := c.QueryParams()
	return slices.Contains(append(q["include[]"], q["include"]...), stepIncludes[0])
}

// stripSearchContent removes result content from a step.
func stripSearchContent(st *db.RunStep) {
	for i := range st.StepDetails.ToolCalls {
		fs := st.StepDetails.ToolCalls[i].FileSearch
		if fs == nil {
			continue
		}
		results := slices.Clone(fs.Results)
		for j := range results {
			results[j].Content = nil
		}
		copied := *fs
		copied.Results = results
		st.StepDetails.ToolCalls[i].FileSearch = &copied
	}
}

// stripSearchContentJSON removes result content from a streamed step or
// step delta (any "file_search" object's results[].content).
func stripSearchContentJSON(data []byte) []byte {
	if !bytes.Contains(data, []byte(`"file_search"`)) || !bytes.Contains(data, []byte(`"content"`)) {
		return data
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return data
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if fs, ok := v["file_search"].(map[string]any); ok {
				if rs, ok := fs["results"].([]any); ok {
					for _, r := range rs {
						if m, ok := r.(map[string]any); ok {
							delete(m, "content")
						}
					}
				}
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(v)
	out, err := json.Marshal(v)
	if err != nil {
		return data
	}
	return out
}
