package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"

	"github.com/assistantd/assistantd/agent/retrieval"
	"github.com/assistantd/assistantd/db"
)

// maxImageBytes bounds an image_file sent to the model inline.
const maxImageBytes = 20 << 20

// CountTokens estimates the tokens of s with o200k_base, piece by piece
// as retrieval counts them (within a few percent of the tokenizer's own
// count), in time linear in len(s): the tokenizer's merge loop is
// quadratic in the length of an unbroken run, and a message of 256,000
// letters cost 47 s of CPU on every turn. Counts are estimates for
// non-OpenAI models; they drive truncation and stand in when an upstream
// reports no usage.
func CountTokens(s string) int64 {
	return int64(retrieval.CountTokens(s))
}

// tokenizer loads the embedded tokenizer (the engine does so at start).
func tokenizer() { retrieval.LoadTokenizer() }

// historyItem is one unit the prompt keeps or drops as a whole: a thread
// message, or one tool round (an assistant message with tool_calls and the
// tool messages answering them, which the Chat API requires together).
type historyItem struct {
	msgs      []openai.ChatCompletionMessageParamUnion
	tokens    int64
	isMessage bool
}

// perMessageTokens is the framing overhead of one chat message.
const perMessageTokens = 4

// fileReader opens stored files (images sent inline).
type fileReader interface {
	OpenFile(ctx context.Context, id string) (db.File, io.ReadCloser, error)
}

// buildHistory turns a thread into chat messages: messages in order, and
// each run's steps (its text and its tool calls with their outputs)
// replayed after the message the run started from.
func buildHistory(ctx context.Context, files fileReader, msgs []db.Message, seqs []int64, runs []db.Run, steps []db.RunStep) ([]historyItem, error) {
	byID := map[string]db.Message{}
	for _, m := range msgs {
		byID[m.ID] = m
	}
	stepsOf := map[string][]db.RunStep{}
	for _, st := range steps {
		stepsOf[st.RunID] = append(stepsOf[st.RunID], st)
	}
	var items []historyItem
	ri := 0
	emitRunsBefore := func(seq int64) error {
		for ; ri < len(runs) && runs[ri].HistorySeq < seq; ri++ {
			runItems, err := runHistory(byID, stepsOf[runs[ri].ID])
			if err != nil {
				return err
			}
			items = append(items, runItems...)
		}
		return nil
	}
	for i, m := range msgs {
		if m.RunID != nil {
			continue // replayed with its run's steps
		}
		if err := emitRunsBefore(seqs[i]); err != nil {
			return nil, err
		}
		item, ok, err := messageItem(ctx, files, m)
		if err != nil {
			return nil, err
		}
		if ok {
			items = append(items, item)
		}
	}
	if err := emitRunsBefore(1 << 62); err != nil {
		return nil, err
	}
	return items, nil
}

// runHistory replays one run's steps: the text it wrote and every tool
// round that has outputs (a round without outputs — the run was cancelled
// or expired while waiting — cannot be sent: the Chat API requires each
// tool call to be answered).
func runHistory(byID map[string]db.Message, steps []db.RunStep) ([]historyItem, error) {
	var items []historyItem
	for _, st := range steps {
		switch st.StepDetails.Type {
		case db.StepMessageCreation:
			if st.StepDetails.MessageCreation == nil {
				continue
			}
			m, ok := byID[st.StepDetails.MessageCreation.MessageID]
			if !ok {
				continue
			}
			if text := messageText(m); text != "" {
				items = append(items, historyItem{
					msgs:      []openai.ChatCompletionMessageParamUnion{openai.AssistantMessage(text)},
					tokens:    CountTokens(text) + perMessageTokens,
					isMessage: true,
				})
			}
		case db.StepToolCalls:
			var calls []openai.ChatCompletionMessageToolCallUnionParam
			var results []openai.ChatCompletionMessageParamUnion
			var tokens int64
			for _, tc := range st.StepDetails.ToolCalls {
				name, args, output, ok := replayedCall(st, tc)
				if !ok {
					continue
				}
				calls = append(calls, openai.ChatCompletionMessageToolCallUnionParam{
					OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{
						ID:       tc.ID,
						Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: name, Arguments: args},
					},
				})
				results = append(results, openai.ToolMessage(output, tc.ID))
				tokens += CountTokens(name) + CountTokens(args) + CountTokens(output) + 2*perMessageTokens
			}
			if len(calls) == 0 {
				continue
			}
			assistant := openai.ChatCompletionMessageParamUnion{OfAssistant: &openai.ChatCompletionAssistantMessageParam{ToolCalls: calls}}
			items = append(items, historyItem{msgs: append([]openai.ChatCompletionMessageParamUnion{assistant}, results...), tokens: tokens})
		}
	}
	return items, nil
}

// replayedCall is a finished tool call as the model made and read it: a
// server-side call from its ToolIO record, a client's function call from
// the step (its submitted output). ok is false for a call without output.
func replayedCall(st db.RunStep, tc db.ToolCall) (name, args, output string, ok bool) {
	if io, server := st.ToolIO[tc.ID]; server && io.Output != nil {
		return io.Name, io.Arguments, *io.Output, true
	}
	if tc.Function == nil || tc.Function.Output == nil {
		return "", "", "", false
	}
	return tc.Function.Name, tc.Function.Arguments, *tc.Function.Output, true
}

// messageText joins a message's text parts.
func messageText(m db.Message) string {
	var parts []string
	for _, c := range m.Content {
		if c.Type == "text" && c.Text != nil && c.Text.Value != "" {
			parts = append(parts, c.Text.Value)
		}
	}
	return strings.Join(parts, "\n\n")
}

// messageItem converts a thread message. Assistant messages carry text
// only (the Chat API has no images in assistant turns); user messages keep
// their images, uploaded ones sent inline as data URLs.
func messageItem(ctx context.Context, files fileReader, m db.Message) (historyItem, bool, error) {
	if m.Role == "assistant" {
		text := messageText(m)
		if text == "" {
			return historyItem{}, false, nil
		}
		return historyItem{msgs: []openai.ChatCompletionMessageParamUnion{openai.AssistantMessage(text)},
			tokens: CountTokens(text) + perMessageTokens, isMessage: true}, true, nil
	}
	var parts []openai.ChatCompletionContentPartUnionParam
	tokens := int64(perMessageTokens)
	onlyText := true
	for _, c := range m.Content {
		switch c.Type {
		case "text":
			if c.Text != nil {
				parts = append(parts, openai.TextContentPart(c.Text.Value))
				tokens += CountTokens(c.Text.Value)
			}
		case "image_url":
			if c.ImageURL != nil {
				onlyText = false
				parts = append(parts, openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{
					URL: c.ImageURL.URL, Detail: c.ImageURL.Detail}))
				tokens += 85
			}
		case "image_file":
			if c.ImageFile == nil {
				continue
			}
			url, err := imageDataURL(ctx, files, c.ImageFile.FileID)
			if err != nil {
				// A deleted image must not make the thread unusable.
				parts = append(parts, openai.TextContentPart(fmt.Sprintf("[image %s is no longer available]", c.ImageFile.FileID)))
				continue
			}
			onlyText = false
			parts = append(parts, openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{
				URL: url, Detail: c.ImageFile.Detail}))
			tokens += 85
		}
	}
	if len(parts) == 0 {
		return historyItem{}, false, nil
	}
	var msg openai.ChatCompletionMessageParamUnion
	if onlyText {
		// Plain string content is what every OpenAI-compatible server accepts.
		msg = openai.UserMessage(messageText(m))
	} else {
		msg = openai.UserMessage(parts)
	}
	return historyItem{msgs: []openai.ChatCompletionMessageParamUnion{msg}, tokens: tokens, isMessage: true}, true, nil
}

func imageDataURL(ctx context.Context, files fileReader, id string) (string, error) {
	f, r, err := files.OpenFile(ctx, id)
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxImageBytes+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxImageBytes {
		return "", fmt.Errorf("image %s is larger than %d bytes", id, maxImageBytes)
	}
	ct := f.ContentType
	if !strings.HasPrefix(ct, "image/") {
		ct = "image/png"
	}
	return "data:" + ct + ";base64," + base64.StdEncoding.EncodeToString(b), nil
}

// truncate applies a run's truncation strategy to the history: last_messages
// keeps the N most recent messages (and the tool rounds after the first of
// them); then, when budget > 0, the oldest items are dropped until the
// prompt fits, always keeping the newest item. It reports false when even
// that does not fit.
func truncate(items []historyItem, ts *db.TruncationStrategy, fixed, budget int64) ([]historyItem, bool) {
	if ts != nil && ts.Type == "last_messages" && ts.LastMessages != nil {
		n := *ts.LastMessages
		start := len(items)
		for i := len(items) - 1; i >= 0 && n > 0; i-- {
			if items[i].isMessage {
				n--
			}
			start = i
		}
		items = items[start:]
	}
	if budget <= 0 {
		return items, true
	}
	total := fixed
	for _, it := range items {
		total += it.tokens
	}
	for len(items) > 1 && total > budget {
		total -= items[0].tokens
		items = items[1:]
	}
	return items, total <= budget
}

// requestParams builds the Chat Completions request for a run, offering
// the model the functions in offered (the run's functions and its built-in
// tools as functions).
func requestParams(run db.Run, items []historyItem, offered []db.FunctionDef) openai.ChatCompletionNewParams {
	p := openai.ChatCompletionNewParams{Model: run.Model}
	if run.Instructions != "" {
		p.Messages = append(p.Messages, openai.SystemMessage(run.Instructions))
	}
	for _, it := range items {
		p.Messages = append(p.Messages, it.msgs...)
	}
	for _, f := range offered {
		fd := shared.FunctionDefinitionParam{Name: f.Name}
		if f.Description != "" {
			fd.Description = openai.String(f.Description)
		}
		if len(f.Parameters) > 0 {
			var params shared.FunctionParameters
			if json.Unmarshal(f.Parameters, &params) == nil {
				fd.Parameters = params
			}
		}
		if f.Strict != nil {
			fd.Strict = openai.Bool(*f.Strict)
		}
		p.Tools = append(p.Tools, openai.ChatCompletionFunctionTool(fd))
	}
	if len(p.Tools) > 0 {
		p.ParallelToolCalls = openai.Bool(run.ParallelToolCalls)
		p.ToolChoice = toolChoice(run.ToolChoice, offered)
	}
	if run.Temperature != nil {
		p.Temperature = openai.Float(*run.Temperature)
	}
	if run.TopP != nil {
		p.TopP = openai.Float(*run.TopP)
	}
	if run.ReasoningEffort != nil {
		p.ReasoningEffort = shared.ReasoningEffort(*run.ReasoningEffort)
	}
	p.ResponseFormat = responseFormat(run.ResponseFormat)
	return p
}

// toolChoice maps a run's tool_choice to the request's: {"type":
// "code_interpreter"} names the function a built-in tool is offered as,
// when it is offered.
func toolChoice(raw json.RawMessage, offered []db.FunctionDef) openai.ChatCompletionToolChoiceOptionUnionParam {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			s = "auto"
		}
		return openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String(s)}
	}
	var obj struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(raw, &obj) == nil {
		name := obj.Function.Name
		if obj.Type != "function" {
			name = obj.Type
		}
		for _, f := range offered {
			if f.Name == name {
				return openai.ChatCompletionToolChoiceOptionUnionParam{OfFunctionToolChoice: &openai.ChatCompletionNamedToolChoiceParam{
					Function: openai.ChatCompletionNamedToolChoiceFunctionParam{Name: name}}}
			}
		}
	}
	// A tool this server does not offer.
	return openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("auto")}
}

func responseFormat(raw json.RawMessage) openai.ChatCompletionNewParamsResponseFormatUnion {
	var rf struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Name        string         `json:"name"`
			Description string         `json:"description"`
			Schema      map[string]any `json:"schema"`
			Strict      *bool          `json:"strict"`
		} `json:"json_schema"`
	}
	if json.Unmarshal(raw, &rf) != nil {
		return openai.ChatCompletionNewParamsResponseFormatUnion{} // "auto"
	}
	switch rf.Type {
	case "text":
		return openai.ChatCompletionNewParamsResponseFormatUnion{OfText: &shared.ResponseFormatTextParam{}}
	case "json_object":
		return openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &shared.ResponseFormatJSONObjectParam{}}
	case "json_schema":
		if rf.JSONSchema == nil {
			break
		}
		js := shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: rf.JSONSchema.Name}
		if rf.JSONSchema.Description != "" {
			js.Description = openai.String(rf.JSONSchema.Description)
		}
		if rf.JSONSchema.Schema != nil {
			js.Schema = rf.JSONSchema.Schema
		}
		if rf.JSONSchema.Strict != nil {
			js.Strict = openai.Bool(*rf.JSONSchema.Strict)
		}
		return openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{JSONSchema: js}}
	}
	return openai.ChatCompletionNewParamsResponseFormatUnion{}
}
