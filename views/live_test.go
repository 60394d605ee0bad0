package views

import (
	"context"
	"strings"
	"testing"
)

// One pending call is "1 function output", several are "outputs".
func TestPendingTitleCounts(t *testing.T) {
	for n, want := range map[int]string{1: "Waiting for 1 function output<", 2: "Waiting for 2 function outputs<"} {
		r := RunView{ID: "run_1", Status: "requires_action", Active: true}
		for i := 0; i < n; i++ {
			r.Pending = append(r.Pending, ToolCallView{ID: "call_" + itoa(i), Name: "f"})
		}
		var b strings.Builder
		if err := PendingCalls(Page{}, "thread_1", r).Render(context.Background(), &b); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), want) {
			t.Errorf("%d pending: %s", n, b.String())
		}
	}
}
