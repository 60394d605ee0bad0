package agent_test

import (
	"context"
	"strings"
	"testing"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
)

// Issue 21: counting tokens was quadratic in an unbroken run (256,000
// letters cost 47 s of CPU per model turn), so these runs, whose only
// difference from any other is a long run of one letter, did not finish
// within waitFor.

// TestLongUnbrokenMessage: a user message of 1 MB of one letter.
func TestLongUnbrokenMessage(t *testing.T) {
	e := newEnv(t, agent.Config{})
	run := e.run(t, strings.Repeat("x", 1<<20))
	e.waitStatus(t, run, db.RunCompleted)
}

// TestLongUnbrokenToolOutput: a function answering 512 KiB of one letter
// (what the webhook runner keeps of a 5 MB answer).
func TestLongUnbrokenToolOutput(t *testing.T) {
	long := runnerFunc(func(context.Context, agent.ToolCall) (agent.ToolResult, error) {
		return agent.ToolResult{Output: strings.Repeat("x", 512<<10)}, nil
	})
	e := newEnv(t, agent.Config{Functions: router{map[string]agent.Runner{"get_weather": long}}})
	run := e.run(t, `[[call get_weather {}]]`)
	e.waitStatus(t, run, db.RunCompleted)
	if out := toolMessages(e.up); len(out) != 1 {
		t.Fatalf("the model read %d tool results", len(out))
	}
}
