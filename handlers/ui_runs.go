package handlers

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/views"
)

// runStore is what the thread page needs to show runs and their steps.
type runStore interface {
	ThreadRuns(ctx context.Context, threadID string) ([]db.Run, error)
	ThreadSteps(ctx context.Context, threadID string) ([]db.RunStep, error)
}

// threadRuns returns the thread's runs, each with its steps, for the
// thread page: status, the real last_error, usage, timings and every tool
// call with its arguments and output.
func (u *UI) threadRuns(ctx context.Context, threadID string) ([]views.RunView, error) {
	runs, err := u.store.ThreadRuns(ctx, threadID)
	if err != nil || len(runs) == 0 {
		return nil, err
	}
	steps, err := u.store.ThreadSteps(ctx, threadID)
	if err != nil {
		return nil, err
	}
	byRun := map[string][]views.StepView{}
	for _, st := range steps {
		sv := views.StepView{ID: st.ID, Type: st.Type, Status: st.Status, CreatedAt: st.CreatedAt, LastError: lastError(st.LastError)}
		if mc := st.StepDetails.MessageCreation; mc != nil {
			sv.MessageID = mc.MessageID
		}
		for _, tc := range st.StepDetails.ToolCalls {
			tv := views.ToolCallView{ID: tc.ID, Type: tc.Type}
			if f := tc.Function; f != nil {
				tv.Name, tv.Arguments = f.Name, prettyJSON(f.Arguments)
				if f.Output != nil {
					tv.Output = prettyJSON(*f.Output)
				} else {
					tv.Pending = true
				}
			} else if ci := tc.CodeInterpreter; ci != nil {
				// The code as written and what it printed; its images are
				// in the run's message.
				tv.Name, tv.Arguments = "code_interpreter", ci.Input
				var out []string
				for _, o := range ci.Outputs {
					if o.Type == "logs" {
						out = append(out, o.Logs)
					} else if o.Image != nil {
						out = append(out, "[image "+o.Image.FileID+"]")
					}
				}
				tv.Output = strings.Join(out, "\n")
			} else if raw, err := json.MarshalIndent(tc, "", "  "); err == nil {
				tv.Arguments = string(raw)
			}
			if fs := tc.FileSearch; fs != nil {
				tv.Name = "file_search"
				for _, r := range fs.Results {
					hit := views.SearchHit{FileID: r.FileID, Filename: r.FileName, Score: strconv.FormatFloat(r.Score, 'f', 3, 64)}
					if len(r.Content) > 0 {
						hit.Text = r.Content[0].Text
					}
					tv.Results = append(tv.Results, hit)
				}
			}
			sv.ToolCalls = append(sv.ToolCalls, tv)
		}
		byRun[st.RunID] = append(byRun[st.RunID], sv)
	}
	out := make([]views.RunView, 0, len(runs))
	for _, r := range runs {
		rv := views.RunView{ID: r.ID, AssistantID: r.AssistantID, Model: r.Model, Status: r.Status, LastError: lastError(r.LastError),
			CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, Steps: byRun[r.ID]}
		for _, end := range []*int64{r.CompletedAt, r.FailedAt, r.CancelledAt} {
			if end != nil {
				rv.CompletedAt = end
			}
		}
		if r.Usage != nil {
			rv.PromptTokens, rv.CompletionTokens, rv.TotalTokens = r.Usage.PromptTokens, r.Usage.CompletionTokens, r.Usage.TotalTokens
		}
		if r.IncompleteDetails != nil {
			rv.Incomplete = r.IncompleteDetails.Reason
		}
		rv.Active = slices.Contains(db.ActiveStatuses, r.Status)
		if r.Status == db.RunRequiresAction && r.RequiredAction != nil {
			for _, call := range r.RequiredAction.SubmitToolOutputs.ToolCalls {
				rv.Pending = append(rv.Pending, views.ToolCallView{ID: call.ID, Type: call.Type, Name: call.Function.Name,
					Arguments: prettyJSON(call.Function.Arguments), Pending: true})
			}
		}
		out = append(out, rv)
	}
	if err := u.attachDeliveries(ctx, threadID, out); err != nil {
		return nil, err
	}
	return out, nil
}

func lastError(e *db.LastError) string {
	if e == nil {
		return ""
	}
	return strings.TrimSpace(e.Code + ": " + e.Message)
}
