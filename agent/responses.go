package agent

// Responses: a response of the Responses API is a run on a thread of its
// own. Its prompt starts with the response's context (previous responses'
// items, its conversation's items, its input; see db.Store.ResponseInput),
// converted here to chat messages; its own steps follow as a run's do. A
// client function call ends it completed (see afterTools) instead of
// waiting in requires_action: the next response carries the output.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/openai/openai-go/v3"

	"github.com/assistantd/assistantd/db"
)

// CreateResponse stores a response (its thread, queued run, record and
// input items) and enqueues its run, as CreateThreadAndRun does for a run.
func (e *Engine) CreateResponse(ctx context.Context, t db.Thread, r db.Run, resp db.ResponseRecord, input []json.RawMessage) (db.Run, error) {
	var fresh *freshRun
	if resp.ConversationID == nil {
		// Known before the response is stored (see create); a response in
		// a conversation waits for its creation, which may find the
		// conversation busy.
		t.ID = db.NewID("thread_")
		r.ThreadID, r.ResponseID = t.ID, resp.ID
		fresh = &freshRun{msgs: []db.Message{}, resp: &resp, input: input}
	}
	return e.create(ctx, r, fresh, func(r db.Run) (*db.Thread, db.Run, error) {
		resp.RunID = r.ID
		var run db.Run
		var err error
		t, run, err = e.store.CreateResponse(ctx, t, r, resp, input)
		return &t, run, err
	})
}

// responsePrefix is the chat history a response run starts from; nil for
// a run that serves no response.
func (e *Engine) responsePrefix(ctx context.Context, run db.Run, fresh *freshRun) ([]historyItem, error) {
	if run.ResponseID == "" {
		return nil, nil
	}
	var items []json.RawMessage
	var err error
	if fresh != nil && fresh.resp != nil { // not stored yet, perhaps
		items, err = e.store.ResponseContextOf(ctx, *fresh.resp, fresh.input)
	} else {
		items, err = e.store.ResponseInput(ctx, run.ResponseID)
	}
	if err != nil {
		return nil, err
	}
	return responseHistory(ctx, storeFiles{e.store}, items)
}

// CountTokens estimates the prompt tokens of a response run would send
// with items as its context: its instructions, the tools offered, the
// items as chat messages (the estimate the engine truncates by).
func (e *Engine) CountTokens(ctx context.Context, run db.Run, items []json.RawMessage) (int64, error) {
	hist, err := responseHistory(ctx, storeFiles{e.store}, items)
	if err != nil {
		return 0, err
	}
	n := CountTokens(run.Instructions) + perMessageTokens // as model() counts its fixed part
	for _, fd := range e.offer(run) {
		n += CountTokens(fd.Name) + CountTokens(fd.Description) + CountTokens(string(fd.Parameters))
	}
	for _, it := range hist {
		n += it.tokens
	}
	return n, nil
}

// responseItem is the part of a Responses item the prompt reads.
type responseItem struct {
	Type      string          `json:"type"`
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	CallID    string          `json:"call_id"`
	Name      string          `json:"name"`
	Arguments string          `json:"arguments"`
	Output    json.RawMessage `json:"output"`
}

type contentPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL string `json:"image_url"`
	FileID   string `json:"file_id"`
	Detail   string `json:"detail"`
	Filename string `json:"filename"`
	FileData string `json:"file_data"`
}

// responseHistory converts Responses items to chat history: messages by
// role (system and developer become system messages), function calls
// grouped into one assistant message with their outputs after it,
// file_search and code_interpreter calls replayed as the tool rounds they
// were (builtinRound). Items the chat history has no place for
// (reasoning) are left out.
func responseHistory(ctx context.Context, files fileReader, raw []json.RawMessage) ([]historyItem, error) {
	var items []historyItem
	var calls []openai.ChatCompletionMessageToolCallUnionParam
	var results []openai.ChatCompletionMessageParamUnion
	var roundTokens int64
	flush := func() {
		if len(calls) > 0 {
			assistant := openai.ChatCompletionMessageParamUnion{OfAssistant: &openai.ChatCompletionAssistantMessageParam{ToolCalls: calls}}
			items = append(items, historyItem{msgs: append([]openai.ChatCompletionMessageParamUnion{assistant}, results...), tokens: roundTokens})
		}
		calls, results, roundTokens = nil, nil, 0
	}
	for _, r := range raw {
		var it responseItem
		if err := json.Unmarshal(r, &it); err != nil {
			return nil, fmt.Errorf("response item: %w", err)
		}
		if it.Type == "" && it.Role != "" {
			it.Type = "message"
		}
		switch it.Type {
		case "function_call":
			if len(results) > 0 {
				flush() // a new round after answered calls
			}
			calls = append(calls, openai.ChatCompletionMessageToolCallUnionParam{
				OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{ID: it.CallID,
					Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: it.Name, Arguments: it.Arguments}}})
			roundTokens += CountTokens(it.Name) + CountTokens(it.Arguments) + perMessageTokens
		case "function_call_output":
			out := outputText(it.Output)
			results = append(results, openai.ToolMessage(out, it.CallID))
			roundTokens += CountTokens(out) + perMessageTokens
		case "compaction":
			flush()
			var c struct {
				Content string `json:"encrypted_content"`
			}
			_ = json.Unmarshal(r, &c)
			summary, err := DecodeSummary(c.Content)
			if err != nil {
				return nil, err
			}
			text := "Summary of the conversation so far:\n\n" + summary
			items = append(items, historyItem{msgs: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage(text)},
				tokens: CountTokens(text) + perMessageTokens, isMessage: true})
		case "file_search_call", "code_interpreter_call":
			if round, ok := builtinRound(r); ok { // bridge.go
				flush()
				items = append(items, round)
			}
		case "message":
			flush()
			item, ok, err := responseMessage(ctx, files, it)
			if err != nil {
				return nil, err
			}
			if ok {
				items = append(items, item)
			}
		}
	}
	flush()
	return items, nil
}

// outputText is a function_call_output's output: a string, or the text of
// its parts.
func outputText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []contentPart
	_ = json.Unmarshal(raw, &parts)
	var texts []string
	for _, p := range parts {
		if p.Text != "" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, "\n")
}

// responseMessage converts a message item. Assistant messages carry their
// text only; user messages keep images (files inline as data URLs) and
// name attached files.
func responseMessage(ctx context.Context, files fileReader, it responseItem) (historyItem, bool, error) {
	var parts []contentPart
	var s string
	if json.Unmarshal(it.Content, &s) == nil {
		parts = []contentPart{{Type: "input_text", Text: s}}
	} else if err := json.Unmarshal(it.Content, &parts); err != nil {
		return historyItem{}, false, fmt.Errorf("message content: %w", err)
	}
	var texts []string
	var chat []openai.ChatCompletionContentPartUnionParam
	tokens := int64(perMessageTokens)
	images := false
	for _, p := range parts {
		switch p.Type {
		case "input_text", "output_text", "text", "refusal":
			texts = append(texts, p.Text)
			chat = append(chat, openai.TextContentPart(p.Text))
			tokens += CountTokens(p.Text)
		case "input_image":
			url := p.ImageURL
			if url == "" && p.FileID != "" {
				u, err := imageDataURL(ctx, files, p.FileID)
				if err != nil {
					chat = append(chat, openai.TextContentPart(fmt.Sprintf("[image %s is no longer available]", p.FileID)))
					continue
				}
				url = u
			}
			if url == "" {
				continue
			}
			detail := p.Detail
			if detail == "" {
				detail = "auto"
			}
			images = true
			chat = append(chat, openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: url, Detail: detail}))
			tokens += 85
		case "input_file":
			name := p.Filename
			if name == "" {
				name = p.FileID
			}
			note := fmt.Sprintf("[file %s attached]", name)
			texts = append(texts, note)
			chat = append(chat, openai.TextContentPart(note))
		}
	}
	text := strings.Join(texts, "\n\n")
	var msg openai.ChatCompletionMessageParamUnion
	switch it.Role {
	case "assistant":
		if text == "" {
			return historyItem{}, false, nil
		}
		msg = openai.AssistantMessage(text)
	case "system", "developer":
		msg = openai.SystemMessage(text)
	default:
		if len(chat) == 0 {
			return historyItem{}, false, nil
		}
		if images {
			msg = openai.UserMessage(chat)
		} else {
			msg = openai.UserMessage(text)
		}
	}
	return historyItem{msgs: []openai.ChatCompletionMessageParamUnion{msg}, tokens: tokens, isMessage: true}, true, nil
}

// summaryPrefix marks the encrypted_content of the compaction items this
// server writes: opaque to clients, as OpenAI's is, but only encoded.
const summaryPrefix = "assistantd.summary.v1:"

// EncodeSummary is the encrypted_content of a compaction item carrying a
// conversation's summary.
func EncodeSummary(s string) string {
	return summaryPrefix + base64.StdEncoding.EncodeToString([]byte(s))
}

// ErrForeignCompaction is a compaction item this server did not write:
// OpenAI's encrypted content cannot be read here.
var ErrForeignCompaction = errors.New("the compaction item's encrypted_content was not produced by this server")

// DecodeSummary reads the summary in a compaction item's encrypted_content.
func DecodeSummary(content string) (string, error) {
	rest, ok := strings.CutPrefix(content, summaryPrefix)
	if !ok {
		return "", ErrForeignCompaction
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrForeignCompaction, err)
	}
	return string(b), nil
}
