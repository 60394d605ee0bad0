package validate

import (
	"encoding/json"
	"slices"

	"github.com/assistantd/assistantd/db"
)

// RunFields are the knobs of create run and create thread and run, and
// what the playground's settings pane overrides.
type RunFields struct {
	AssistantID         Opt[string]                `json:"assistant_id"`
	Model               Opt[string]                `json:"model"`
	Instructions        Opt[string]                `json:"instructions"`
	Tools               Opt[[]db.Tool]             `json:"tools"`
	Metadata            Opt[db.Metadata]           `json:"metadata"`
	Temperature         Opt[float64]               `json:"temperature"`
	TopP                Opt[float64]               `json:"top_p"`
	Stream              Opt[bool]                  `json:"stream"`
	MaxPromptTokens     Opt[int64]                 `json:"max_prompt_tokens"`
	MaxCompletionTokens Opt[int64]                 `json:"max_completion_tokens"`
	TruncationStrategy  Opt[db.TruncationStrategy] `json:"truncation_strategy"`
	ToolChoice          Opt[json.RawMessage]       `json:"tool_choice"`
	ParallelToolCalls   Opt[bool]                  `json:"parallel_tool_calls"`
	ResponseFormat      Opt[json.RawMessage]       `json:"response_format"`
	ReasoningEffort     Opt[string]                `json:"reasoning_effort"`
}

// AssistantRef returns the assistant id f names, checked; the caller loads
// the assistant (a missing one is a 404, not a validation problem) and
// passes it to Run.
func (f RunFields) AssistantRef() (string, error) {
	if !f.AssistantID.Set || f.AssistantID.Null {
		return "", Missing(P("assistant_id")).withHint("Choose an assistant to run.")
	}
	if err := ID(P("assistant_id"), f.AssistantID.V, "asst_"); err != nil {
		return "", err
	}
	return f.AssistantID.V, nil
}

// Run validates the run knobs against the assistant and returns the run
// with its effective settings: the assistant's values, replaced by those f
// sets, with additional instructions appended.
func Run(f RunFields, asst db.Assistant, additional *string) (db.Run, error) {
	c := &checker{}
	var r db.Run
	r.AssistantID, r.Model, r.Tools = asst.ID, asst.Model, asst.Tools
	r.Temperature, r.TopP, r.ResponseFormat, r.ReasoningEffort = asst.Temperature, asst.TopP, asst.ResponseFormat, asst.ReasoningEffort
	if asst.Instructions != nil {
		r.Instructions = *asst.Instructions
	}
	if f.Model.Set && !f.Model.Null {
		if f.Model.V == "" {
			c.add(New(P("model"), "invalid_value", "Invalid 'model': expected a non-empty string."))
		} else if !c.add(Len(P("model"), &f.Model.V, MaxName)) {
			r.Model = f.Model.V
		}
	}
	if f.Instructions.Set && !f.Instructions.Null && !c.add(Len(P("instructions"), &f.Instructions.V, MaxInstructions)) {
		r.Instructions = f.Instructions.V
	}
	if additional != nil && *additional != "" && !c.add(Len(P("additional_instructions"), additional, MaxInstructions)) {
		if r.Instructions != "" {
			r.Instructions += "\n\n"
		}
		r.Instructions += *additional
	}
	toolsOK := true
	if f.Tools.Set && !f.Tools.Null {
		if c.add(Tools(P("tools"), f.Tools.V, MaxRunTools)) {
			toolsOK = false
		} else {
			r.Tools = slices.Clone(f.Tools.V)
		}
	}
	if !c.add(Metadata(P("metadata"), f.Metadata.V)) {
		r.Metadata = f.Metadata.V
	}
	if f.Temperature.Set && !f.Temperature.Null && !c.add(Range(P("temperature"), &f.Temperature.V, 0, 2)) {
		r.Temperature = f.Temperature.Ptr()
	}
	if f.TopP.Set && !f.TopP.Null && !c.add(Range(P("top_p"), &f.TopP.V, 0, 1)) {
		r.TopP = f.TopP.Ptr()
	}
	for _, lim := range []struct {
		name string
		v    Opt[int64]
		dst  **int64
	}{{"max_prompt_tokens", f.MaxPromptTokens, &r.MaxPromptTokens}, {"max_completion_tokens", f.MaxCompletionTokens, &r.MaxCompletionTokens}} {
		if p := lim.v.Ptr(); p != nil {
			if *p < MinTokenLimit {
				c.add(New(P(lim.name), "integer_below_min_value",
					"Invalid '%s': integer below minimum value. Expected a value >= %d, but got %d instead.", lim.name, MinTokenLimit, *p))
				continue
			}
			*lim.dst = p
		}
	}
	r.TruncationStrategy = &db.TruncationStrategy{Type: "auto"}
	if ts := f.TruncationStrategy.Ptr(); ts != nil && !c.add(truncation(P("truncation_strategy"), ts)) {
		r.TruncationStrategy = ts
	}
	r.ToolChoice = json.RawMessage(`"auto"`)
	if f.ToolChoice.Set && !f.ToolChoice.Null && toolsOK {
		if tc, err := ToolChoice(P("tool_choice"), f.ToolChoice.V, r.Tools); !c.add(err) {
			r.ToolChoice = tc
		}
	}
	r.ParallelToolCalls = true
	if p := f.ParallelToolCalls.Ptr(); p != nil {
		r.ParallelToolCalls = *p
	}
	if f.ResponseFormat.Set && !f.ResponseFormat.Null {
		if rf, err := ResponseFormat(P("response_format"), f.ResponseFormat.V); !c.add(err) {
			r.ResponseFormat = rf
		}
	}
	if e := f.ReasoningEffort.Ptr(); e != nil && !c.add(ReasoningEffort(P("reasoning_effort"), e)) {
		r.ReasoningEffort = e
	}
	return r, c.result()
}

func truncation(p Path, ts *db.TruncationStrategy) error {
	lp := p.Key("last_messages")
	switch ts.Type {
	case "auto":
		if ts.LastMessages != nil {
			return New(lp, "invalid_value", "Invalid '%s': only allowed when type is 'last_messages'.", lp)
		}
	case "last_messages":
		if ts.LastMessages == nil || *ts.LastMessages < 1 {
			return New(lp, "invalid_value", "Invalid '%s': expected an integer >= 1 when type is 'last_messages'.", lp)
		}
	default:
		return New(p.Key("type"), "invalid_value", "Invalid value: '%s'. Supported values are: 'auto' and 'last_messages'.", ts.Type)
	}
	return nil
}

// ToolOutputRequest is one entry of submit_tool_outputs.
type ToolOutputRequest struct {
	ToolCallID *string `json:"tool_call_id"`
	Output     *string `json:"output"`
}

// ToolOutput is a checked tool output.
type ToolOutput struct {
	ToolCallID string
	Output     string
}

// ToolOutputs validates submit_tool_outputs' tool_outputs: each names its
// call, and outputs are bounded. Whether they answer the run's pending
// calls is the engine's to say.
func ToolOutputs(p Path, outs Opt[[]ToolOutputRequest]) ([]ToolOutput, error) {
	if !outs.Set || outs.Null {
		return nil, Missing(p)
	}
	var es Errors
	out := make([]ToolOutput, 0, len(outs.V))
	for i, o := range outs.V {
		ip := p.Index(i)
		if o.ToolCallID == nil || *o.ToolCallID == "" {
			es = append(es, Missing(ip.Key("tool_call_id")))
			continue
		}
		text := ""
		if o.Output != nil {
			text = *o.Output
		}
		if err := Len(ip.Key("output"), &text, MaxToolOutput); err != nil {
			es = append(es, err.(*Error))
			continue
		}
		out = append(out, ToolOutput{ToolCallID: *o.ToolCallID, Output: text})
	}
	return out, es.Err()
}
