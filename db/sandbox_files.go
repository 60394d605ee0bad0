package db

import (
	"context"
)

// ThreadAttachmentFiles lists the ids of files attached to the thread's
// messages for the tool type (e.g. "code_interpreter"), oldest message
// first: the code_interpreter tool places them in the thread's sandbox.
func (s *Store) ThreadAttachmentFiles(ctx context.Context, threadID, tool string) ([]string, error) {
	return s.queryStrings(ctx, "thread attachments", `SELECT json_extract(a.value, '$.file_id') FROM messages m, json_each(m.attachments) a
		WHERE m.thread_id = ? AND EXISTS (SELECT 1 FROM json_each(a.value, '$.tools') t WHERE json_extract(t.value, '$.type') = ?)
		ORDER BY m.seq, a.key`, threadID, tool)
}
