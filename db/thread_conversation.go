package db

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// ThreadBusyError is returned for a thread whose run is still working: its
// history is not settled yet.
type ThreadBusyError struct{ ThreadID, RunID string }

func (e *ThreadBusyError) Error() string {
	return fmt.Sprintf("thread %s has an active run (%s); convert it once the run has finished", e.ThreadID, e.RunID)
}

// ThreadItems returns a thread's history as Responses items, in the order
// the model reads it for a run (see agent.buildHistory): each message, and
// each run's steps after the message the run started from — its messages,
// and its tool calls: function_call with a function_call_output when the
// call was answered, file_search_call with its results,
// code_interpreter_call with its code and outputs. A function call still
// waiting for its output (the run requires_action) is kept, so that the
// first response on the conversation can answer it; an unanswered call of a
// run that ended is left out, as runs' own history leaves it out. A thread
// with a queued or in-progress run is a *ThreadBusyError. The thread is
// only read.
func (s *Store) ThreadItems(ctx context.Context, threadID string) ([]json.RawMessage, error) {
	if _, err := s.GetThread(ctx, threadID); err != nil {
		return nil, err
	}
	runs, err := s.ThreadRuns(ctx, threadID)
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		if r.Status == "queued" || r.Status == "in_progress" || r.Status == "cancelling" {
			return nil, &ThreadBusyError{ThreadID: threadID, RunID: r.ID}
		}
	}
	msgs, seqs, err := s.HistoryMessages(ctx, threadID)
	if err != nil {
		return nil, err
	}
	steps, err := s.ThreadSteps(ctx, threadID)
	if err != nil {
		return nil, err
	}
	byID := map[string]Message{}
	for _, m := range msgs {
		byID[m.ID] = m
	}
	stepsOf := map[string][]RunStep{}
	for _, st := range steps {
		stepsOf[st.RunID] = append(stepsOf[st.RunID], st)
	}
	out := []json.RawMessage{}
	add := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		out = append(out, b)
		return nil
	}
	ri := 0
	runsBefore := func(seq int64) error {
		for ; ri < len(runs) && runs[ri].HistorySeq < seq; ri++ {
			waiting := runs[ri].Status == "requires_action"
			for _, st := range stepsOf[runs[ri].ID] {
				for _, it := range stepItems(st, byID, waiting) {
					if err := add(it); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}
	for i, m := range msgs {
		if m.RunID != nil {
			continue // with its run's steps
		}
		if err := runsBefore(seqs[i]); err != nil {
			return nil, err
		}
		if it, ok := threadMessageItem(m); ok {
			if err := add(it); err != nil {
				return nil, err
			}
		}
	}
	if err := runsBefore(1 << 62); err != nil {
		return nil, err
	}
	return out, nil
}

// stepItems are a run step as conversation items.
func stepItems(st RunStep, byID map[string]Message, waiting bool) []any {
	var items []any
	switch st.Type {
	case StepMessageCreation:
		if st.StepDetails.MessageCreation == nil {
			return nil
		}
		if m, ok := byID[st.StepDetails.MessageCreation.MessageID]; ok {
			if it, ok := threadMessageItem(m); ok {
				items = append(items, it)
			}
		}
	case StepToolCalls:
		for _, tc := range st.StepDetails.ToolCalls {
			io, server := st.ToolIO[tc.ID]
			if tc.Type != "function" {
				if server && io.Output == nil {
					continue // never finished: nothing the model read
				}
				items = append(items, ToolCallItem(tc, io, "completed"))
				continue
			}
			var output *string
			if server && io.Output != nil {
				output = io.Output
			} else if tc.Function != nil {
				output = tc.Function.Output
			}
			if output == nil && !waiting {
				continue
			}
			items = append(items, ToolCallItem(tc, io, "completed"))
			if output != nil {
				items = append(items, map[string]any{"type": "function_call_output",
					"id": "fco_" + strings.TrimPrefix(CallItemID(tc.Type, tc.ID), "fc_"), "call_id": tc.ID,
					"output": *output, "status": "completed"})
			}
		}
	}
	return items
}

// threadMessageItem is a thread message as a conversation item: an
// assistant's as an output message (text with its annotations), a user's
// as an input message (text and images). A message with nothing to show is
// left out.
func threadMessageItem(m Message) (any, bool) {
	if m.Role == "assistant" {
		it := MessageItem(m)
		if it["status"] == "in_progress" {
			it["status"] = "incomplete"
		}
		return it, len(it["content"].([]any)) > 0
	}
	content := []any{}
	for _, c := range m.Content {
		switch {
		case c.Type == "text" && c.Text != nil:
			content = append(content, map[string]any{"type": "input_text", "text": c.Text.Value})
		case c.Type == "image_file" && c.ImageFile != nil:
			content = append(content, map[string]any{"type": "input_image", "file_id": c.ImageFile.FileID,
				"detail": detailOr(c.ImageFile.Detail)})
		case c.Type == "image_url" && c.ImageURL != nil:
			content = append(content, map[string]any{"type": "input_image", "image_url": c.ImageURL.URL,
				"detail": detailOr(c.ImageURL.Detail)})
		}
	}
	return map[string]any{"type": "message", "id": m.ID, "status": "completed", "role": "user", "content": content},
		len(content) > 0
}

func detailOr(d string) string {
	if d == "" {
		return "auto"
	}
	return d
}

// ThreadToConversation creates a conversation holding thread id's history
// (ThreadItems), with the thread's id in its metadata under "thread_id".
// The thread is left as it was.
func (s *Store) ThreadToConversation(ctx context.Context, threadID string) (Conversation, error) {
	items, err := s.ThreadItems(ctx, threadID)
	if err != nil {
		return Conversation{}, err
	}
	return s.CreateConversation(ctx, Metadata{"thread_id": threadID}, items)
}

// ConvertibleThreads returns the ids of the threads of ctx's project the
// Assistants API made, oldest first: not the threads that hold responses'
// runs.
func (s *Store) ConvertibleThreads(ctx context.Context) ([]string, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("convertible threads: %w", err)
	}
	return s.queryStrings(ctx, "convertible threads", `SELECT id FROM threads WHERE project_id = $1
		AND NOT EXISTS (SELECT 1 FROM responses WHERE responses.thread_id = threads.id) ORDER BY seq`, project)
}
