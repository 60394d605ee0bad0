package db

import (
	"context"
	"fmt"
	"slices"
)

// ThreadAttachmentFiles lists the ids of files attached to the thread's
// messages for the tool type (e.g. "code_interpreter"), oldest message
// first: the code_interpreter tool places them in the thread's sandbox.
func (s *Store) ThreadAttachmentFiles(ctx context.Context, threadID, tool string) ([]string, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("thread attachments: %w", err)
	}
	raws, err := s.queryStrings(ctx, "thread attachments", `SELECT attachments FROM messages WHERE thread_id = $1
		AND project_id = $2 AND attachments <> '[]' ORDER BY seq`, threadID, project)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, raw := range raws {
		var atts []Attachment
		if err := decodeColumn("attachments", raw, &atts); err != nil {
			return nil, fmt.Errorf("thread attachments: %w", err)
		}
		for _, a := range atts {
			if slices.ContainsFunc(a.Tools, func(t AttachmentTool) bool { return t.Type == tool }) {
				out = append(out, a.FileID)
			}
		}
	}
	return out, nil
}
