package api

import (
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
)

// Items: the input a request sends (a string, or a list of items) checked
// and normalised into the items the store keeps and the API lists: each
// with an id and a status, message content always a list of parts.

// textInput is a plain string input: one user message.
func textInput(text string) json.RawMessage {
	return mustJSON(map[string]any{"type": "message", "id": db.NewID("msg_"), "status": "completed", "role": "user",
		"content": []any{map[string]any{"type": "input_text", "text": text}}})
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal item: %v", err)) // maps of plain values: cannot fail
	}
	return b
}

// parseInput reads a request's input: a string or a list of items. param
// names the field in errors ("input", "items").
func parseInput(raw json.RawMessage, param string) ([]json.RawMessage, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []json.RawMessage{textInput(s)}, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, respond.Invalid(param, "invalid_type", "Invalid type for '%s': expected a string or an array of input items, but got %s instead.", param, valueKind(raw))
	}
	out := make([]json.RawMessage, 0, len(list))
	for i, it := range list {
		n, err := normalizeItem(it, fmt.Sprintf("%s[%d]", param, i))
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

var callIDPattern = regexp.MustCompile(`^[A-Za-z0-9_\-.:]{1,128}$`)

// normalizeItem checks one input item and gives it an id and status.
func normalizeItem(raw json.RawMessage, param string) (json.RawMessage, error) {
	var it map[string]any
	if err := json.Unmarshal(raw, &it); err != nil {
		return nil, respond.Invalid(param, "invalid_type", "Invalid type for '%s': expected an object, but got %s instead.", param, valueKind(raw))
	}
	typ, _ := it["type"].(string)
	if _, hasType := it["type"]; !hasType {
		if _, hasRole := it["role"]; hasRole {
			typ = "message"
		}
	}
	str := func(key string, required bool) (string, error) {
		v, ok := it[key]
		if !ok || v == nil {
			if required {
				return "", respond.Invalid(param+"."+key, "missing_required_parameter", "Missing required parameter: '%s.%s'.", param, key)
			}
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", respond.Invalid(param+"."+key, "invalid_type", "Invalid type for '%s.%s': expected a string.", param, key)
		}
		return s, nil
	}
	id, err := str("id", false)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "message":
		role, err := str("role", true)
		if err != nil {
			return nil, err
		}
		switch role {
		case "user", "system", "developer", "assistant":
		default:
			return nil, respond.Invalid(param+".role", "invalid_value",
				"Invalid value: '%s'. Supported values are: 'assistant', 'system', 'developer', and 'user'.", role)
		}
		content, err := normalizeContent(it["content"], role, param+".content")
		if err != nil {
			return nil, err
		}
		if id == "" {
			id = db.NewID("msg_")
		}
		out := map[string]any{"type": "message", "id": id, "status": "completed", "role": role, "content": content}
		if phase, ok := it["phase"]; ok && role == "assistant" {
			out["phase"] = phase
		}
		return mustJSON(out), nil
	case "function_call":
		callID, err := str("call_id", true)
		if err != nil {
			return nil, err
		}
		name, err := str("name", true)
		if err != nil {
			return nil, err
		}
		args, err := str("arguments", true)
		if err != nil {
			return nil, err
		}
		if id == "" {
			id = db.CallItemID("function", callID)
		}
		return mustJSON(map[string]any{"type": "function_call", "id": id, "call_id": callID, "name": name,
			"arguments": args, "status": "completed"}), nil
	case "function_call_output":
		callID, err := str("call_id", true)
		if err != nil {
			return nil, err
		}
		if !callIDPattern.MatchString(callID) {
			return nil, respond.Invalid(param+".call_id", "invalid_value", "Invalid 'call_id': '%s'.", callID)
		}
		out, ok := it["output"]
		if !ok || out == nil {
			return nil, respond.Invalid(param+".output", "missing_required_parameter", "Missing required parameter: '%s.output'.", param)
		}
		if _, isStr := out.(string); !isStr {
			if _, isList := out.([]any); !isList {
				return nil, respond.Invalid(param+".output", "invalid_type", "Invalid type for '%s.output': expected a string or an array of content parts.", param)
			}
		}
		if id == "" {
			id = db.NewID("fco_")
		}
		return mustJSON(map[string]any{"type": "function_call_output", "id": id, "call_id": callID, "output": out,
			"status": "completed"}), nil
	case "compaction":
		content, err := str("encrypted_content", true)
		if err != nil {
			return nil, err
		}
		if _, err := agent.DecodeSummary(content); err != nil {
			return nil, respond.Invalid(param+".encrypted_content", "invalid_value", "Invalid '%s.encrypted_content': %v.", param, err)
		}
		if id == "" {
			id = db.NewID("cmp_")
		}
		return mustJSON(map[string]any{"type": "compaction", "id": id, "encrypted_content": content}), nil
	case "reasoning", "file_search_call", "code_interpreter_call":
		// Earlier output items sent back as input: kept as they are.
		if id == "" {
			return nil, respond.Invalid(param+".id", "missing_required_parameter", "Missing required parameter: '%s.id'.", param)
		}
		return mustJSON(it), nil
	case "":
		return nil, respond.Invalid(param+".type", "missing_required_parameter", "Missing required parameter: '%s.type'.", param)
	}
	return nil, respond.Invalid(param+".type", "invalid_value", "Invalid value: '%s'. Input items of this type are not supported by this server.", typ)
}

// normalizeContent checks a message's content (a string or a list of
// parts) and returns it as a list of parts.
func normalizeContent(v any, role, param string) ([]any, error) {
	textType := "input_text"
	if role == "assistant" {
		textType = "output_text"
	}
	switch c := v.(type) {
	case nil:
		return nil, respond.Invalid(param, "missing_required_parameter", "Missing required parameter: '%s'.", param)
	case string:
		part := map[string]any{"type": textType, "text": c}
		if textType == "output_text" {
			part["annotations"] = []any{}
		}
		return []any{part}, nil
	case []any:
		out := make([]any, 0, len(c))
		for i, p := range c {
			pp := fmt.Sprintf("%s[%d]", param, i)
			part, ok := p.(map[string]any)
			if !ok {
				return nil, respond.Invalid(pp, "invalid_type", "Invalid type for '%s': expected an object.", pp)
			}
			typ, _ := part["type"].(string)
			switch typ {
			case "input_text", "output_text", "refusal":
				if _, ok := part["text"].(string); !ok && typ != "refusal" {
					return nil, respond.Invalid(pp+".text", "missing_required_parameter", "Missing required parameter: '%s.text'.", pp)
				}
				if typ == "output_text" && part["annotations"] == nil {
					part["annotations"] = []any{}
				}
			case "input_image":
				url, _ := part["image_url"].(string)
				file, _ := part["file_id"].(string)
				if url == "" && file == "" {
					return nil, respond.Invalid(pp+".image_url", "missing_required_parameter", "Missing required parameter: '%s.image_url' (or file_id).", pp)
				}
				if part["detail"] == nil {
					part["detail"] = "auto"
				}
			case "input_file":
				if part["file_id"] == nil && part["file_data"] == nil && part["file_url"] == nil {
					return nil, respond.Invalid(pp+".file_id", "missing_required_parameter", "Missing required parameter: '%s.file_id' (or file_data, file_url).", pp)
				}
			case "":
				return nil, respond.Invalid(pp+".type", "missing_required_parameter", "Missing required parameter: '%s.type'.", pp)
			default:
				return nil, respond.Invalid(pp+".type", "invalid_value",
					"Invalid value: '%s'. Supported values are: 'input_text', 'input_image', 'input_file', 'output_text' and 'refusal'.", typ)
			}
			out = append(out, part)
		}
		return out, nil
	}
	return nil, respond.Invalid(param, "invalid_type", "Invalid type for '%s': expected a string or an array of content parts.", param)
}

// itemHead is what the call checks read of an item.
type itemHead struct {
	Type   string `json:"type"`
	CallID string `json:"call_id"`
}

func heads(items []json.RawMessage) []itemHead {
	out := make([]itemHead, len(items))
	for i, it := range items {
		_ = json.Unmarshal(it, &out[i])
	}
	return out
}

// checkCalls applies OpenAI's pairing rules to a request continuing from
// history: every function call of the history without an output must get
// one in input, and every output in input must answer a call of the
// history or of input.
func checkCalls(history, input []json.RawMessage) error {
	calls := map[string]bool{}
	answered := map[string]bool{}
	var order []string
	for _, h := range heads(history) {
		switch h.Type {
		case "function_call":
			if !calls[h.CallID] {
				order = append(order, h.CallID)
			}
			calls[h.CallID] = true
		case "function_call_output":
			answered[h.CallID] = true
		}
	}
	in := heads(input)
	for _, h := range in {
		if h.Type == "function_call" {
			calls[h.CallID] = true
		}
	}
	for _, h := range in {
		if h.Type == "function_call_output" {
			if !calls[h.CallID] {
				return respond.Invalid("input", "", "No tool call found for function call output with call_id %s.", h.CallID)
			}
			answered[h.CallID] = true
		}
	}
	for _, id := range order {
		if !answered[id] {
			return respond.Invalid("input", "", "No tool output found for function call %s.", id)
		}
	}
	return nil
}
