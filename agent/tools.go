package agent

import (
	"context"
	"errors"

	"github.com/assistantd/assistantd/db"
)

// The tool seam. A run's turn asks the model, then hands each tool call to
// a Runner chosen by the call: a built-in tool type (code_interpreter,
// file_search) by its Builtin, a function by the FunctionRouter (a webhook
// configured for it); a call no runner serves goes to the client through
// requires_action. The turn loop knows nothing of any tool beyond these
// interfaces: a new server-side tool is one new Builtin.

// ToolCall is one call the model made, as a runner receives it.
type ToolCall struct {
	// ID is the call's id (call_...), unique across the store and stable
	// across restarts: a runner may derive idempotency keys from it.
	ID string
	// Name is the function the model called; for a built-in tool it is the
	// tool's type ("code_interpreter").
	Name string
	// Arguments is the model's raw JSON arguments.
	Arguments string
	// Run is the run the call belongs to: its ids, model, tools and
	// tool_resources (the run's own; a runner needing the assistant's or the
	// thread's reads them from its store).
	Run db.Run
}

// ToolResult is what a server-side call produced.
type ToolResult struct {
	// Output is the tool message the model reads next.
	Output string
	// Details is the step's record of the call with its results filled in
	// (Function.Output, CodeInterpreter.Outputs, FileSearch.Results). The
	// engine sets its ID and Type.
	Details db.ToolCall
	// Delta, when set, is the type-specific part of one last step delta
	// sent before the step completes (code_interpreter's outputs:
	// {"outputs":[{"index":0,"type":"logs","logs":"..."}]}).
	Delta any
	// Attachments are content parts added to the run's next message
	// (images a code_interpreter call produced).
	Attachments []db.ContentPart
}

// Runner executes tool calls server-side. Run returns when the call is done
// or ctx ends (cancel, expiry, thread deletion, shutdown). Tool failures
// the model should read are results (an error output), not errors; an
// error fails the run, except ErrToClient.
type Runner interface {
	Run(ctx context.Context, call ToolCall) (ToolResult, error)
}

// ErrToClient is returned by a runner that leaves the call to the client
// after all (a webhook that failed with on_failure "requires_action").
var ErrToClient = errors.New("tool call left to the client")

// FunctionRouter picks the runner for a function call: ok is false when no
// runner serves it and the client answers it.
type FunctionRouter interface {
	Function(ctx context.Context, run db.Run, name string) (r Runner, ok bool, err error)
}

// Builtin is a tool type the server implements itself. Models that know
// only Chat Completions functions are offered it as a function named by
// its type.
type Builtin interface {
	Runner
	// Type is the tool's type in tools lists ("code_interpreter").
	Type() string
	// Offer is the function offered to the model for the run's entry of
	// this tool type.
	Offer(run db.Run, tool db.Tool) db.FunctionDef
	// Stream returns a fresh decoder for one call's streamed arguments.
	Stream() ArgStream
}

// ThreadForgetter is a Builtin that keeps state per thread (a kernel and
// its files): StopThread, called before a thread is deleted, has it drop
// that state, which no one can reach once the thread is gone.
type ThreadForgetter interface {
	Forget(threadID string) error
}

// ArgStream turns one call's arguments, as the model writes them, into the
// type-specific part of step deltas.
type ArgStream interface {
	// Start is the part the call is announced with
	// ({"input":"","outputs":[]} for code_interpreter).
	Start() any
	// Write takes the next fragment of the arguments and returns the part
	// of a delta it adds ({"input":"pri"}), or nil when it adds nothing
	// yet.
	Write(frag string) any
}

// Annotator is a Builtin that annotates the run's answer when its message
// completes: file_search turns its source markers into file_citation
// annotations, code_interpreter its sandbox:/mnt/data links into file_path
// annotations. The text itself is left as the model wrote it (and as it
// streamed); annotations point into it with start_index/end_index.
type Annotator interface {
	Annotate(ctx context.Context, run db.Run, text string) ([]db.Annotation, error)
}
