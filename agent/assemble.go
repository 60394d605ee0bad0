package agent

import (
	"strings"

	"github.com/openai/openai-go/v3"

	"github.com/assistantd/assistantd/db"
)

// toolCall is one function call being assembled from streamed fragments.
type toolCall struct {
	ID         string // ours: call_…, unique in the store
	upstreamID string
	index      int64
	hasIndex   bool
	name       string
	args       strings.Builder
	announced  bool // its first delta (id, type, name) has been emitted
	// ignored: a built-in tool call beyond the response's max_tool_calls,
	// neither shown, recorded nor run.
	ignored bool

	// For a call of a built-in tool: the tool, and the decoder of its
	// streamed arguments.
	builtin Builtin
	stream  ArgStream
}

// assembler rebuilds tool calls from chunk deltas leniently. OpenAI sends
// an id and name in each call's first fragment and then fragments keyed by
// index; other servers omit index, repeat index 0 for every parallel call
// (Ollama), or send each call whole. The rules:
//   - a fragment with an id we have not seen starts a new call, even if its
//     index is taken;
//   - a fragment without an id continues the latest call with its index,
//     or, without an index, the latest call.
//
// Calls always get fresh ids of our own: upstream ids may be missing,
// repeated across turns, or not call_-prefixed.
type assembler struct {
	calls []*toolCall
}

// add folds one fragment in and returns the call it belongs to and the
// argument text it added.
func (a *assembler) add(tc openai.ChatCompletionChunkChoiceDeltaToolCall) (*toolCall, string) {
	hasIndex := tc.JSON.Index.Valid()
	var call *toolCall
	switch {
	case tc.ID != "":
		for _, c := range a.calls {
			if c.upstreamID == tc.ID {
				call = c
				break
			}
		}
	case hasIndex:
		for i := len(a.calls) - 1; i >= 0; i-- {
			if a.calls[i].hasIndex && a.calls[i].index == tc.Index {
				call = a.calls[i]
				break
			}
		}
		if call == nil && len(a.calls) > 0 && !a.calls[len(a.calls)-1].hasIndex {
			call = a.calls[len(a.calls)-1]
		}
	case len(a.calls) > 0:
		call = a.calls[len(a.calls)-1]
	}
	if call == nil {
		call = &toolCall{ID: db.NewID("call_"), upstreamID: tc.ID, index: tc.Index, hasIndex: hasIndex}
		a.calls = append(a.calls, call)
	}
	if name := tc.Function.Name; name != "" && call.name == "" {
		call.name = name
	}
	frag := tc.Function.Arguments
	call.args.WriteString(frag)
	return call, frag
}

// position is the call's index among the step's tool calls, the dense
// 0,1,2… the SDKs' delta merging needs.
func (a *assembler) position(c *toolCall) int {
	n := 0
	for _, x := range a.calls {
		if x == c {
			return n
		}
		if !x.ignored {
			n++
		}
	}
	return -1
}
