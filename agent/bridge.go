package agent

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/openai/openai-go/v3"
)

// builtinRound replays a file_search_call or code_interpreter_call item
// (from a thread continued as a conversation, or an earlier response) as
// the tool round the model made: a call of the function the tool is
// offered as, answered with what the item records, in the form the tool's
// runner gives the model (passages headed by their source markers; the
// code's logs). ok is false for an item that records nothing to replay.
func builtinRound(raw json.RawMessage) (historyItem, bool) {
	var it struct {
		Type    string   `json:"type"`
		ID      string   `json:"id"`
		Queries []string `json:"queries"`
		Results []struct {
			Filename string `json:"filename"`
			Text     string `json:"text"`
		} `json:"results"`
		Code    string `json:"code"`
		Outputs []struct {
			Type string `json:"type"`
			Logs string `json:"logs"`
		} `json:"outputs"`
	}
	if json.Unmarshal(raw, &it) != nil || it.ID == "" {
		return historyItem{}, false
	}
	var name, args, output string
	switch it.Type {
	case "file_search_call":
		if len(it.Queries) == 0 {
			return historyItem{}, false
		}
		name = "file_search"
		b, _ := json.Marshal(map[string]string{"query": strings.Join(it.Queries, " ")})
		args = string(b)
		var out strings.Builder
		for i, r := range it.Results {
			fmt.Fprintf(&out, "%s\n%s\n\n", marker(i, r.Filename), r.Text)
		}
		output = strings.TrimSpace(out.String())
		if output == "" {
			output = "No passages in the files matched the query."
		}
	case "code_interpreter_call":
		if it.Code == "" {
			return historyItem{}, false
		}
		name = "code_interpreter"
		b, _ := json.Marshal(map[string]string{"code": it.Code})
		args = string(b)
		var logs []string
		figures := 0
		for _, o := range it.Outputs {
			if o.Type == "logs" {
				logs = append(logs, o.Logs)
			} else {
				figures++
			}
		}
		output = strings.Join(logs, "\n")
		if figures > 0 {
			output += fmt.Sprintf("\n[%d figure(s) displayed to the user]", figures)
		}
		output = strings.TrimPrefix(output, "\n")
		if strings.TrimSpace(output) == "" {
			output = "[the code ran without output]"
		}
	default:
		return historyItem{}, false
	}
	call := openai.ChatCompletionMessageToolCallUnionParam{OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{
		ID: it.ID, Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: name, Arguments: args}}}
	assistant := openai.ChatCompletionMessageParamUnion{OfAssistant: &openai.ChatCompletionAssistantMessageParam{
		ToolCalls: []openai.ChatCompletionMessageToolCallUnionParam{call}}}
	return historyItem{msgs: []openai.ChatCompletionMessageParamUnion{assistant, openai.ToolMessage(output, it.ID)},
		tokens: CountTokens(name) + CountTokens(args) + CountTokens(output) + 2*perMessageTokens}, true
}
