package agent

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestChunkDecoding: a streamed chunk decodes into what the turn reads,
// through our own type or, for what it does not fit, the SDK's.
func TestChunkDecoding(t *testing.T) {
	type read struct {
		Content, Refusal, Reasoning, Finish string
		ToolCalls                           int
		Usage                               [4]int64 // prompt, completion, total, reasoning
	}
	tests := []struct {
		name, data string
		want       read
	}{
		{"text", `{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}`,
			read{Content: "Hi"}},
		{"finish and usage", `{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"completion_tokens_details":{"reasoning_tokens":1}}}`,
			read{Finish: "stop", Usage: [4]int64{3, 2, 5, 1}}},
		{"usage chunk without choices", `{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`,
			read{Usage: [4]int64{3, 2, 5, 0}}},
		{"reasoning_content", `{"choices":[{"index":0,"delta":{"reasoning_content":"think"}}]}`, read{Reasoning: "think"}},
		{"reasoning", `{"choices":[{"index":0,"delta":{"reasoning":"think"}}]}`, read{Reasoning: "think"}},
		{"reasoning not a string is none", `{"choices":[{"index":0,"delta":{"reasoning":{"summary":"x"},"content":"a"}}]}`, read{Content: "a"}},
		{"refusal", `{"choices":[{"index":0,"delta":{"refusal":"no"}}]}`, read{Refusal: "no"}},
		{"tool calls", `{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}},{"function":{"arguments":"{}"}}]}}]}`,
			read{ToolCalls: 2}},
		{"nulls", `{"choices":[{"index":0,"delta":{"content":null,"tool_calls":null},"finish_reason":null}],"usage":null}`, read{}},
		// A field of an unexpected JSON type: our type refuses the chunk,
		// the SDK's takes it, and reads it as it always did (a number
		// where a string belongs becomes that string).
		{"unexpected type falls back to the SDK", `{"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":7}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`,
			read{Content: "ok", Finish: "7", Usage: [4]int64{3, 2, 5, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c chunk
			if err := json.Unmarshal([]byte(tt.data), &c); err != nil {
				t.Fatalf("decode: %v", err)
			}
			var got read
			for i := range c.Choices {
				ch := &c.Choices[i]
				got.Content += ch.Delta.Content
				got.Refusal += ch.Delta.Refusal
				got.Reasoning += ch.reasoning()
				got.Finish += ch.FinishReason
				got.ToolCalls += len(ch.Delta.ToolCalls)
			}
			if u := c.Usage; u != nil {
				got.Usage = [4]int64{u.PromptTokens, u.CompletionTokens, u.TotalTokens, u.CompletionTokensDetails.ReasoningTokens}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}
