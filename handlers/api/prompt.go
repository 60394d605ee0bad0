package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
)

// promptVariable is a {{variable}} in a prompt's instructions.
var promptVariable = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}`)

// promptAssistant reads prompt: {"id": "asst_…", "version"?: "3",
// "variables"?: {…}}: an assistant (the version given, else its current
// configuration) standing in for a stored prompt, so code moving off the
// Assistants API keeps its assistant's model, instructions, tools, tool
// resources and webhooks. Its instructions come back with the variables
// substituted; what the request leaves out of temperature, top_p and
// text.format is filled into fields from the assistant, so the request's
// own fields override it. Nil when there is no prompt.
func (h *Responses) promptAssistant(ctx context.Context, fields map[string]json.RawMessage) (*db.Assistant, error) {
	var prompt struct {
		ID        string                     `json:"id"`
		Version   json.RawMessage            `json:"version"`
		Variables map[string]json.RawMessage `json:"variables"`
	}
	if set, err := field(fields, "prompt", &prompt, "an object"); err != nil || !set {
		return nil, err
	}
	if prompt.ID == "" {
		return nil, respond.Invalid("prompt.id", "missing_required_parameter", "Missing required parameter: 'prompt.id'.")
	}
	if !strings.HasPrefix(prompt.ID, "asst_") {
		return nil, respond.Invalid("prompt.id", "invalid_value", "Prompt '%s' not found: this server serves assistants (asst_…) as prompts.", prompt.ID)
	}
	a, err := h.store.GetAssistant(ctx, prompt.ID)
	if errors.Is(err, db.ErrNotFound) {
		return nil, respond.Invalid("prompt.id", "invalid_value", "Prompt '%s' not found.", prompt.ID)
	}
	if err != nil {
		return nil, respond.Internal(err)
	}
	if v := strings.TrimSpace(string(prompt.Version)); v != "" && v != "null" {
		var s string
		if json.Unmarshal(prompt.Version, &s) != nil {
			s = v // a bare number
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, respond.Invalid("prompt.version", "invalid_value", "Invalid 'prompt.version': expected a version number such as \"3\", but got %s.", v)
		}
		ver, err := h.store.GetAssistantVersion(ctx, prompt.ID, n)
		if errors.Is(err, db.ErrNotFound) {
			return nil, respond.Invalid("prompt.version", "invalid_value", "Prompt '%s' has no version %d.", prompt.ID, n)
		}
		if err != nil {
			return nil, respond.Internal(err)
		}
		a = ver.Assistant
	}
	if a.Instructions != nil {
		text, err := substitute(*a.Instructions, prompt.Variables)
		if err != nil {
			return nil, err
		}
		a.Instructions = &text
	}
	promptDefaults(a, fields)
	return &a, nil
}

// substitute replaces each {{name}} in text by variables[name]: a string,
// or an input_text part's text. A name with no value is a 400 naming it.
func substitute(text string, variables map[string]json.RawMessage) (string, error) {
	var problem error
	out := promptVariable.ReplaceAllStringFunc(text, func(m string) string {
		name := promptVariable.FindStringSubmatch(m)[1]
		raw, ok := variables[name]
		if !ok || string(raw) == "null" {
			if problem == nil {
				problem = respond.Invalid("prompt.variables", "missing_required_parameter",
					"Missing prompt variable '%s': the prompt's instructions use {{%s}}, and 'prompt.variables' gives it no value.", name, name)
			}
			return m
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		var part struct {
			Type string  `json:"type"`
			Text *string `json:"text"`
		}
		if json.Unmarshal(raw, &part) == nil && part.Type == "input_text" && part.Text != nil {
			return *part.Text
		}
		if problem == nil {
			problem = respond.Invalid("prompt.variables."+name, "invalid_type",
				"Invalid type for 'prompt.variables.%s': expected a string or an input_text part, as the instructions are text.", name)
		}
		return m
	})
	return out, problem
}

// promptDefaults puts the assistant's temperature, top_p and response
// format into fields where the request gives none, so that they are
// validated, used and echoed exactly as if the request had given them.
func promptDefaults(a db.Assistant, fields map[string]json.RawMessage) {
	if _, ok := fields["temperature"]; !ok && a.Temperature != nil {
		fields["temperature"] = json.RawMessage(strconv.FormatFloat(*a.Temperature, 'g', -1, 64))
	}
	if _, ok := fields["top_p"]; !ok && a.TopP != nil {
		fields["top_p"] = json.RawMessage(strconv.FormatFloat(*a.TopP, 'g', -1, 64))
	}
	if _, ok := fields["text"]; ok {
		return
	}
	var rf struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Name        string          `json:"name"`
			Description string          `json:"description,omitempty"`
			Schema      json.RawMessage `json:"schema"`
			Strict      *bool           `json:"strict,omitempty"`
		} `json:"json_schema"`
	}
	if json.Unmarshal(a.ResponseFormat, &rf) != nil { // "auto", or nothing
		return
	}
	switch rf.Type {
	case "text", "json_object":
		fields["text"] = json.RawMessage(fmt.Sprintf(`{"format":{"type":%q}}`, rf.Type))
	case "json_schema":
		if rf.JSONSchema == nil {
			return
		}
		format := map[string]any{"type": "json_schema", "name": rf.JSONSchema.Name, "schema": rf.JSONSchema.Schema}
		if rf.JSONSchema.Description != "" {
			format["description"] = rf.JSONSchema.Description
		}
		if rf.JSONSchema.Strict != nil {
			format["strict"] = *rf.JSONSchema.Strict
		}
		fields["text"] = mustJSON(map[string]any{"format": format})
	}
}
