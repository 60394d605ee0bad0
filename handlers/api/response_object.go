package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"

	"github.com/assistantd/assistantd/db"
)

// responseObject is the Response object, every field the spec lists (and
// the Open Responses suite requires) present, null where it does not
// apply. The echoed request fields are kept raw, as sent.
type responseObject struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	CreatedAt          int64             `json:"created_at"`
	Status             string            `json:"status"`
	Background         bool              `json:"background"`
	CompletedAt        *int64            `json:"completed_at"`
	Conversation       *conversationRef  `json:"conversation"`
	Error              *responseError    `json:"error"`
	IncompleteDetails  *incompleteReason `json:"incomplete_details"`
	Instructions       json.RawMessage   `json:"instructions"`
	MaxOutputTokens    json.RawMessage   `json:"max_output_tokens"`
	MaxToolCalls       json.RawMessage   `json:"max_tool_calls"`
	Model              string            `json:"model"`
	Output             []json.RawMessage `json:"output"`
	ParallelToolCalls  json.RawMessage   `json:"parallel_tool_calls"`
	PreviousResponseID *string           `json:"previous_response_id"`
	Prompt             json.RawMessage   `json:"prompt"`
	PromptCacheKey     json.RawMessage   `json:"prompt_cache_key"`
	Reasoning          json.RawMessage   `json:"reasoning"`
	SafetyIdentifier   json.RawMessage   `json:"safety_identifier"`
	ServiceTier        json.RawMessage   `json:"service_tier"`
	Store              bool              `json:"store"`
	Temperature        json.RawMessage   `json:"temperature"`
	Text               json.RawMessage   `json:"text"`
	ToolChoice         json.RawMessage   `json:"tool_choice"`
	Tools              json.RawMessage   `json:"tools"`
	TopLogprobs        json.RawMessage   `json:"top_logprobs"`
	TopP               json.RawMessage   `json:"top_p"`
	Truncation         json.RawMessage   `json:"truncation"`
	PresencePenalty    json.RawMessage   `json:"presence_penalty"`
	FrequencyPenalty   json.RawMessage   `json:"frequency_penalty"`
	Usage              *usage            `json:"usage"`
	User               json.RawMessage   `json:"user,omitempty"` // deprecated; a string, never null
	Metadata           json.RawMessage   `json:"metadata"`
}

type conversationRef struct {
	ID string `json:"id"`
}

type responseError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type incompleteReason struct {
	Reason string `json:"reason"`
}

type usage struct {
	InputTokens        int64 `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens     int64 `json:"cached_tokens"`
		CacheWriteTokens int64 `json:"cache_write_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int64 `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int64 `json:"total_tokens"`
}

// echoDefaults are what the Response shows for request fields not sent.
var echoDefaults = map[string]string{
	"instructions": "null", "max_output_tokens": "null", "max_tool_calls": "null", "parallel_tool_calls": "true",
	"prompt": "null", "prompt_cache_key": "null", "reasoning": "null", "safety_identifier": "null",
	"service_tier": `"default"`, "temperature": "1", "text": `{"format":{"type":"text"},"verbosity":"medium"}`,
	"tool_choice": `"auto"`, "tools": "[]", "top_logprobs": "0", "top_p": "1", "truncation": `"disabled"`,
	"presence_penalty": "0", "frequency_penalty": "0", "user": "null", "metadata": "{}",
}

// responseStatus maps a run's status onto a response's.
func responseStatus(run string) string {
	switch run {
	case db.RunQueued:
		return "queued"
	case db.RunCompleted, db.RunFailed, db.RunIncomplete, db.RunCancelled:
		return run
	case db.RunExpired:
		return "failed"
	}
	return "in_progress" // in_progress, cancelling, requires_action
}

// shell is the response as it stands before its run has done anything:
// the request's echo, the given status and no output.
func shell(rec db.ResponseRecord, model, status string) responseObject {
	echo := func(key string) json.RawMessage {
		if v, ok := rec.Echo[key]; ok {
			return v
		}
		return json.RawMessage(echoDefaults[key])
	}
	o := responseObject{
		ID: rec.ID, Object: "response", CreatedAt: rec.CreatedAt, Status: status, Background: rec.Background,
		Instructions: echo("instructions"), MaxOutputTokens: echo("max_output_tokens"), MaxToolCalls: echo("max_tool_calls"),
		Model: model, Output: []json.RawMessage{}, ParallelToolCalls: echo("parallel_tool_calls"),
		PreviousResponseID: rec.PreviousResponseID, Prompt: echo("prompt"), PromptCacheKey: echo("prompt_cache_key"),
		Reasoning: echo("reasoning"), SafetyIdentifier: echo("safety_identifier"), ServiceTier: echo("service_tier"),
		Store: rec.Store, Temperature: echo("temperature"), Text: echo("text"), ToolChoice: echo("tool_choice"),
		Tools: echo("tools"), TopLogprobs: echo("top_logprobs"), TopP: echo("top_p"), Truncation: echo("truncation"),
		PresencePenalty: echo("presence_penalty"), FrequencyPenalty: echo("frequency_penalty"), User: echo("user"),
		Metadata: echo("metadata"),
	}
	if rec.ConversationID != nil {
		o.Conversation = &conversationRef{ID: *rec.ConversationID}
	}
	return o
}

// withRun fills in what the response's run holds: status, timestamps,
// error, usage.
func withRun(o responseObject, run db.Run) responseObject {
	o.Status = responseStatus(run.Status)
	if o.Status == "completed" {
		o.CompletedAt = run.CompletedAt
	}
	if run.LastError != nil && o.Status == "failed" {
		code := run.LastError.Code
		switch code {
		case "server_error", "rate_limit_exceeded", "invalid_prompt":
		default:
			code = "server_error"
		}
		o.Error = &responseError{Code: code, Message: run.LastError.Message}
	}
	if run.Status == db.RunExpired && o.Error == nil {
		o.Error = &responseError{Code: "server_error", Message: "The response expired before it finished."}
	}
	if run.IncompleteDetails != nil {
		reason := "max_output_tokens"
		if run.IncompleteDetails.Reason == "content_filter" {
			reason = "content_filter"
		}
		o.IncompleteDetails = &incompleteReason{Reason: reason}
	}
	if u := run.Usage; u != nil && db.IsTerminal(run.Status) {
		o.Usage = &usage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
	}
	return o
}

// includes are the include[] values a request may ask for.
var includes = []string{"file_search_call.results", "code_interpreter_call.outputs", "message.output_text.logprobs",
	"reasoning.encrypted_content", "message.input_image.image_url", "computer_call_output.output.image_url",
	"web_search_call.action.sources", "web_search_call.results"}

// shown applies include[] to output items: file_search results and
// code_interpreter outputs only when asked for.
func shown(items []json.RawMessage, include []string) []json.RawMessage {
	out := make([]json.RawMessage, 0, len(items))
	for _, raw := range items {
		var it map[string]any
		if json.Unmarshal(raw, &it) != nil {
			out = append(out, raw)
			continue
		}
		switch it["type"] {
		case "file_search_call":
			if !slices.Contains(include, "file_search_call.results") {
				it["results"] = nil
			}
		case "code_interpreter_call":
			if !slices.Contains(include, "code_interpreter_call.outputs") {
				it["outputs"] = nil
			}
		case "reasoning":
			// The reasoning in a form to pass back as input (opaque, as
			// OpenAI's is; here it is only encoded, since the text is
			// shown anyway).
			if slices.Contains(include, "reasoning.encrypted_content") {
				it["encrypted_content"] = encodeReasoning(it)
			}
		default:
			out = append(out, raw)
			continue
		}
		out = append(out, mustJSON(it))
	}
	return out
}

// load builds the Response object of a stored response as it is now.
func (h *Responses) load(ctx context.Context, rec db.ResponseRecord, include []string) (responseObject, error) {
	run, err := h.store.GetRun(ctx, "", rec.RunID)
	if err != nil {
		return responseObject{}, err
	}
	o := withRun(shell(rec, run.Model, ""), run)
	items := rec.Output
	if items == nil {
		if items, err = h.store.ResponseOutput(ctx, rec.RunID); err != nil {
			return o, err
		}
	}
	o.Output = shown(items, include)
	if o.Usage != nil {
		o.Usage.OutputTokensDetails.ReasoningTokens = rec.ReasoningTokens
	}
	return o, nil
}

// reasoningPrefix marks the encrypted_content of this server's reasoning
// items.
const reasoningPrefix = "assistantd.reasoning.v1:"

// encodeReasoning is a reasoning item's encrypted_content: its
// reasoning_text, encoded.
func encodeReasoning(item map[string]any) string {
	var text strings.Builder
	parts, _ := item["content"].([]any)
	for _, p := range parts {
		if part, ok := p.(map[string]any); ok {
			t, _ := part["text"].(string)
			text.WriteString(t)
		}
	}
	return reasoningPrefix + base64.StdEncoding.EncodeToString([]byte(text.String()))
}
