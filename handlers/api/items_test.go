package api

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/assistantd/assistantd/handlers/respond"
)

func raws(items ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(items))
	for i, it := range items {
		out[i] = json.RawMessage(it)
	}
	return out
}

// TestCheckCalls: OpenAI's pairing rules for function calls and outputs.
func TestCheckCalls(t *testing.T) {
	call := func(id string) string {
		return `{"type":"function_call","call_id":"` + id + `","name":"f","arguments":"{}"}`
	}
	out := func(id string) string { return `{"type":"function_call_output","call_id":"` + id + `","output":"x"}` }
	msg := `{"type":"message","role":"user","content":"hi"}`
	tests := []struct {
		name           string
		history, input []json.RawMessage
		want           string // "" = accepted; else a substring of the message
	}{
		{"nothing", nil, raws(msg), ""},
		{"answered", raws(call("a"), call("b")), raws(out("a"), out("b")), ""},
		{"answered earlier", raws(call("a"), out("a")), raws(msg), ""},
		{"one missing", raws(call("a"), call("b")), raws(out("b")), "No tool output found for function call a."},
		{"no call", raws(msg), raws(out("z")), "No tool call found for function call output with call_id z."},
		{"call and output in input", nil, raws(call("c"), out("c")), ""},
		{"call without output in input", nil, raws(call("c"), msg), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkCalls(tc.history, tc.input)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("checkCalls = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("checkCalls = %v, want %q", err, tc.want)
			case err != nil && respond.AsError(err).Param != "input":
				t.Errorf("param = %q, want input", respond.AsError(err).Param)
			}
		})
	}
}

// TestNormalizeItem: items get ids and statuses, string content becomes
// parts, and bad items are refused naming the exact place.
func TestNormalizeItem(t *testing.T) {
	tests := []struct {
		in, param string // param "" = accepted
		has       string // a substring of the normalised item
	}{
		{`{"role":"user","content":"hi"}`, "", `"content":[{"text":"hi","type":"input_text"}]`},
		{`{"type":"message","role":"assistant","content":"yo","phase":"final"}`, "", `"type":"output_text"`},
		{`{"type":"function_call","call_id":"call_1","name":"f","arguments":"{}"}`, "", `"id":"fc_1"`},
		{`{"type":"function_call_output","call_id":"call_1","output":[{"type":"input_text","text":"x"}]}`, "", `"status":"completed"`},
		{`{"type":"message","role":"tool","content":"x"}`, "input[0].role", ""},
		{`{"type":"message","role":"user"}`, "input[0].content", ""},
		{`{"type":"message","role":"user","content":[{"type":"input_image"}]}`, "input[0].content[0].image_url", ""},
		{`{"type":"function_call_output","call_id":"call_1"}`, "input[0].output", ""},
		{`{"type":"function_call_output","call_id":"bad id!","output":"x"}`, "input[0].call_id", ""},
		{`{"type":"compaction","encrypted_content":"gAAAA"}`, "input[0].encrypted_content", ""},
		{`{"type":"item_reference","id":"msg_1"}`, "input[0].type", ""},
		{`[]`, "input[0]", ""},
	}
	for _, tc := range tests {
		got, err := normalizeItem(json.RawMessage(tc.in), "input[0]")
		if tc.param != "" {
			if ae := respond.AsError(err); ae == nil || ae.Param != tc.param {
				t.Errorf("%s: err = %v, want one about %s", tc.in, err, tc.param)
			}
			continue
		}
		if err != nil || !strings.Contains(string(got), tc.has) || !strings.Contains(string(got), `"id":`) {
			t.Errorf("%s → %s, %v; want it to hold %s and an id", tc.in, got, err, tc.has)
		}
	}
}
