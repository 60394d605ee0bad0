package ui

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/views"
)

// The playground's per-run overrides live in its address, so a reload, a
// shared link or the page after "Add and run" on a new thread opens the
// same settings. The query keys are the settings pane's form names:
// model, instructions, temperature, top_p, tool_choice, response_format,
// tools_override (1 when the tool list is overridden) and tool (repeated,
// the tools kept). live.js keeps the address in step as the pane changes.

// overrideKeys are every query key the overrides own.
var overrideKeys = []string{"model", "instructions", "instructions_omitted", "temperature", "top_p",
	"tool_choice", "response_format", "tools_override", "tool"}

// Bounds of what an address carries. Some proxies refuse a request line
// over about 8 KB, and percent-encoding can triple a byte, so instructions
// longer than maxURLInstructions are left out of the addresses we write
// (instructions_omitted=1 says so, and the pane tells the person);
// live.js reads the same limit from the page. What is read from a query
// is bounded too, field by field: a longer value is left out with a note.
const (
	maxURLInstructions   = 2000
	maxQueryInstructions = 8 << 10
	maxQueryModel        = 256
	maxQueryNumber       = 32
	maxQueryChoice       = 9 + 64 // "function:" and a function name
	maxQueryTools        = 128
	maxQueryToolName     = 64
)

// overrideState is the settings pane as the address or a form gave it.
type overrideState struct {
	views.Overrides
	// InstructionsOmitted: the address had instructions too long to carry.
	InstructionsOmitted bool
	// Notes say what of the address was not taken, and why.
	Notes []string
}

// overridesFromQuery reads the overrides an address carries, each within
// its bound.
func overridesFromQuery(q url.Values) overrideState {
	var st overrideState
	take := func(key, label string, max int, trim bool) string {
		v := q.Get(key)
		if trim {
			v = strings.TrimSpace(v)
		}
		if len(v) > max {
			st.Notes = append(st.Notes, fmt.Sprintf("The link's %s override is longer than %d bytes; it was left out.", label, max))
			return ""
		}
		return v
	}
	st.Model = take("model", "model", maxQueryModel, true)
	st.Instructions = take("instructions", "instructions", maxQueryInstructions, false)
	st.Temperature = take("temperature", "temperature", maxQueryNumber, true)
	st.TopP = take("top_p", "top_p", maxQueryNumber, true)
	st.ToolChoice = take("tool_choice", "tool choice", maxQueryChoice, true)
	st.ResponseFormat = take("response_format", "response format", maxQueryNumber, true)
	st.InstructionsOmitted = st.Instructions == "" && q.Get("instructions_omitted") != ""
	switch q.Get("tools_override") {
	case "1", "on", "true":
		st.ToolsSet = true
	}
	if st.ToolsSet {
		tools := q["tool"]
		switch {
		case len(tools) > maxQueryTools:
			st.Notes = append(st.Notes, fmt.Sprintf("The link names more than %d tools; the tool override was left out.", maxQueryTools))
			st.ToolsSet = false
		case slices.ContainsFunc(tools, func(t string) bool { return len(t) > maxQueryToolName }):
			st.Notes = append(st.Notes, fmt.Sprintf("The link names a tool longer than %d bytes; the tool override was left out.", maxQueryToolName))
			st.ToolsSet = false
		default:
			st.Tools = append([]string{}, tools...)
		}
	}
	return st
}

// setOverrides writes the overrides that are set into q, instructions
// only when short enough for an address.
func setOverrides(q url.Values, ov views.Overrides) {
	for _, kv := range [][2]string{{"model", ov.Model}, {"temperature", ov.Temperature}, {"top_p", ov.TopP},
		{"tool_choice", ov.ToolChoice}, {"response_format", ov.ResponseFormat}} {
		if kv[1] != "" {
			q.Set(kv[0], kv[1])
		}
	}
	switch {
	case ov.Instructions == "":
	case len(ov.Instructions) > maxURLInstructions:
		q.Set("instructions_omitted", "1")
	default:
		q.Set("instructions", ov.Instructions)
	}
	if ov.ToolsSet {
		q.Set("tools_override", "1")
		for _, t := range ov.Tools {
			q.Add("tool", t)
		}
	}
}

// fitOverrides drops what does not apply to the assistant (tools it does
// not have, a tool choice naming a function it does not have), saying
// what went; the run then does what the pane shows. Values that are
// merely malformed stay, for the pane to show with a message.
func fitOverrides(st overrideState, a *views.AssistantSettings) overrideState {
	if a == nil {
		return st
	}
	if name, ok := strings.CutPrefix(st.ToolChoice, "function:"); ok && !hasFunction(a, name) {
		st.Notes = append(st.Notes, "Tool choice “function "+name+"” dropped: "+assistantLabel(a)+" has no such function.")
		st.ToolChoice = ""
	}
	if st.ToolsSet {
		var kept, gone []string
		for _, t := range st.Tools {
			if slices.Contains(a.Tools, t) {
				kept = append(kept, t)
			} else {
				gone = append(gone, t)
			}
		}
		if len(gone) > 0 {
			st.Notes = append(st.Notes, "Dropped from the tool override: "+strings.Join(gone, ", ")+" ("+assistantLabel(a)+" has no such tool).")
		}
		st.Tools = kept
		if st.Tools == nil {
			st.Tools = []string{}
		}
		if all := len(a.Tools) > 0 && !slices.ContainsFunc(a.Tools, func(t string) bool { return !slices.Contains(kept, t) }); all {
			// Every tool kept: the assistant's own list.
			st.ToolsSet, st.Tools = false, nil
		}
		if len(a.Tools) == 0 {
			// No tools to choose from: an empty override is the assistant's own.
			st.ToolsSet, st.Tools = false, nil
		}
	}
	return st
}

// fitTools drops a tool override that keeps every tool of the
// assistant's (all is its tools): that run uses the assistant's own list,
// and the address stays short.
func fitTools(ov views.Overrides, all []db.Tool) views.Overrides {
	if !ov.ToolsSet {
		return ov
	}
	for _, t := range all {
		name := t.Type
		if t.Function != nil {
			name = t.Function.Name
		}
		if !slices.Contains(ov.Tools, name) {
			return ov
		}
	}
	ov.ToolsSet, ov.Tools = false, nil
	return ov
}

func hasFunction(a *views.AssistantSettings, name string) bool {
	return name != "code_interpreter" && name != "file_search" && slices.Contains(a.Tools, name)
}

func assistantLabel(a *views.AssistantSettings) string {
	if a.Name != "" {
		return "assistant “" + a.Name + "”"
	}
	return "assistant " + a.ID
}

// overrideErrors says, by the pane's field, what a run with these
// overrides would be refused for, so the pane shows it before any run.
func (u *UI) overrideErrors(a db.Assistant, ov views.Overrides) map[string]string {
	_, errs, err := overrideRun(a, ov)
	if err != nil {
		u.cfg.Log.Error("check overrides", "error", err)
	}
	return errs
}

// carryQuery lists the overrides as query pairs, for the assistant
// picker's hidden fields (so switching assistant keeps them).
func carryQuery(ov views.Overrides) [][2]string {
	q := url.Values{}
	setOverrides(q, ov)
	var out [][2]string
	for _, k := range overrideKeys {
		for _, v := range q[k] {
			out = append(out, [2]string{k, v})
		}
	}
	return out
}
