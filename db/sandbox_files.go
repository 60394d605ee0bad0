package db

import (
	"context"
	"fmt"
)

// ThreadAttachmentFiles lists the ids of files attached to the thread's
// messages for the tool type (e.g. "code_interpreter"), oldest message
// first: the code_interpreter tool places them in the thread's sandbox.
func (s *Store) ThreadAttachmentFiles(ctx context.Context, threadID, tool string) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT json_extract(a.value, '$.file_id') FROM messages m, json_each(m.attachments) a
		WHERE m.thread_id = ? AND EXISTS (SELECT 1 FROM json_each(a.value, '$.tools') t WHERE json_extract(t.value, '$.type') = ?)
		ORDER BY m.seq, a.key`, threadID, tool)
	if err != nil {
		return nil, fmt.Errorf("thread attachments: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("thread attachments: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
