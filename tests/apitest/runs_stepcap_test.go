package apitest

import (
	"context"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
)

// TestRunStepCap: a model that keeps calling tools is stopped at
// --max-run-steps: the run fails with a last_error naming the limit, after
// exactly that many steps, and the upstream is not called again.
func TestRunStepCap(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t, "--max-run-steps", "3")
	ctx := context.Background()
	asst := newAssistant(t, s)
	thread := threadWith(t, s, `loop [[call get_time {"tz":"UTC"}]] [[repeat]]`)
	run := startRun(t, s, thread, asst)
	for round := 0; ; round++ {
		r := waitRun(t, s, thread, run.ID, openai.RunStatusRequiresAction, openai.RunStatusFailed)
		if r.Status == openai.RunStatusFailed {
			if r.LastError.Code != "server_error" || !strings.Contains(r.LastError.Message, "limit of 3 steps") {
				t.Fatalf("last_error = %+v, want server_error naming the limit of 3 steps", r.LastError)
			}
			if round != 3 {
				t.Errorf("failed after %d tool rounds, want 3", round)
			}
			break
		}
		if round > 5 {
			t.Fatalf("still asking for tool outputs after %d rounds: the step cap did not stop the run", round)
		}
		calls := r.RequiredAction.SubmitToolOutputs.ToolCalls
		var outs []openai.BetaThreadRunSubmitToolOutputsParamsToolOutput
		for _, c := range calls {
			outs = append(outs, openai.BetaThreadRunSubmitToolOutputsParamsToolOutput{ToolCallID: openai.String(c.ID), Output: openai.String("12:00")})
		}
		if _, err := s.Client.Beta.Threads.Runs.SubmitToolOutputs(ctx, thread, run.ID,
			openai.BetaThreadRunSubmitToolOutputsParams{ToolOutputs: outs}); err != nil {
			t.Fatalf("round %d: submit: %v", round, err)
		}
	}
	if steps := runSteps(t, s, thread, run.ID); len(steps) != 3 {
		t.Errorf("the run has %d steps, want 3", len(steps))
	}
	if n := len(requestsWith(up, "[[repeat]]")); n != 3 {
		t.Errorf("the upstream was called %d times, want 3", n)
	}
}
