package ui_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/assistantd/assistantd/db"
)

// The thread page shows a code_interpreter call as its code and what it
// printed, escaped.
func TestThreadPageShowsCodeInterpreterCall(t *testing.T) {
	a := newApp(t, "")
	ctx := testCtx()
	th, _, err := a.store.CreateThread(ctx, db.Thread{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	run, err := a.store.CreateRun(ctx, db.Run{ThreadID: th.ID, AssistantID: "asst_x", Model: "gpt-4o"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = a.store.Batch(ctx, func(ctx context.Context, tx *db.Tx) error {
		_, err := tx.CreateStep(ctx, db.RunStep{RunID: run.ID, ThreadID: th.ID, AssistantID: "asst_x", Type: "tool_calls",
			StepDetails: db.StepDetails{Type: "tool_calls", ToolCalls: []db.ToolCall{{ID: "call_ci", Type: "code_interpreter",
				CodeInterpreter: &db.CodeInterpreterCall{Input: "print('<b>hi</b>')", Outputs: []db.CodeOutput{
					{Type: "logs", Logs: "<b>hi</b>\n"}, {Type: "image", Image: &db.CodeImage{FileID: "file-fig"}}}}}}}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	doc := a.user(db.RoleViewer).page("/threads/"+th.ID, http.StatusOK)
	if got := testid(doc, "code-input").First().Text(); got != "print('<b>hi</b>')" {
		t.Errorf("code = %q", got)
	}
	logs := testid(doc, "code-logs").First()
	if got := logs.Text(); !strings.Contains(got, "<b>hi</b>") {
		t.Errorf("logs = %q", got)
	}
	if logs.Find("b").Length() != 0 {
		t.Error("logs were rendered as HTML")
	}
	if src, _ := testid(doc, "code-image").First().Attr("src"); src != "/files/file-fig/content" {
		t.Errorf("image src = %q, want the figure's content", src)
	}
}
