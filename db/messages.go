package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Message is a thread message as the API shows it.
type Message struct {
	ID                string             `json:"id"`
	Object            string             `json:"object"`
	CreatedAt         int64              `json:"created_at"`
	ThreadID          string             `json:"thread_id"`
	Status            string             `json:"status"`
	IncompleteDetails *IncompleteDetails `json:"incomplete_details"`
	CompletedAt       *int64             `json:"completed_at"`
	IncompleteAt      *int64             `json:"incomplete_at"`
	Role              string             `json:"role"`
	Content           []ContentPart      `json:"content"`
	AssistantID       *string            `json:"assistant_id"`
	RunID             *string            `json:"run_id"`
	Attachments       []Attachment       `json:"attachments"`
	Metadata          Metadata           `json:"metadata"`
}

// IncompleteDetails says why a message or run stopped early.
type IncompleteDetails struct {
	Reason string `json:"reason"`
}

// ContentPart is one part of a message's content, discriminated by Type
// ("text", "image_file", "image_url" or "refusal").
type ContentPart struct {
	Type      string     `json:"type"`
	Text      *Text      `json:"text,omitempty"`
	ImageFile *ImageFile `json:"image_file,omitempty"`
	ImageURL  *ImageURL  `json:"image_url,omitempty"`
	Refusal   *string    `json:"refusal,omitempty"`
}

// Text is a text content part with its annotations.
type Text struct {
	Value       string       `json:"value"`
	Annotations []Annotation `json:"annotations"`
}

// Annotation marks a span of a text part as a file citation or file path.
type Annotation struct {
	Type         string        `json:"type"`
	Text         string        `json:"text"`
	StartIndex   int           `json:"start_index"`
	EndIndex     int           `json:"end_index"`
	FileCitation *FileCitation `json:"file_citation,omitempty"`
	FilePath     *FilePath     `json:"file_path,omitempty"`
	// ContainerFileCitation is set on a response's citation of a file in
	// the container its code ran in (type container_file_citation).
	ContainerFileCitation *ContainerFileCitation `json:"container_file_citation,omitempty"`
}

// ContainerFileCitation points at a container's file (cfile_…).
type ContainerFileCitation struct {
	ContainerID string `json:"container_id"`
	FileID      string `json:"file_id"`
	Filename    string `json:"filename"`
}

// FileCitation points at the file a citation came from.
type FileCitation struct {
	FileID string `json:"file_id"`
}

// FilePath points at a file a tool produced.
type FilePath struct {
	FileID string `json:"file_id"`
}

// ImageFile is an image stored as an uploaded file.
type ImageFile struct {
	FileID string `json:"file_id"`
	Detail string `json:"detail,omitempty"`
}

// ImageURL is an image referenced by URL.
type ImageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

// Attachment is a file attached to a message for the named tools.
type Attachment struct {
	FileID string           `json:"file_id"`
	Tools  []AttachmentTool `json:"tools"`
}

// AttachmentTool names a tool an attachment is for.
type AttachmentTool struct {
	Type string `json:"type"`
}

const messageColumns = `id, thread_id, created_at, status, incomplete_details, completed_at, incomplete_at, role,
	content, assistant_id, run_id, attachments, metadata`

func scanMessage(row rowScanner) (Message, error) {
	var (
		m                              Message
		incomplete, assistantID, runID sql.NullString
		completedAt, incompleteAt      sql.NullInt64
		content, attachments, meta     string
	)
	if err := row.Scan(&m.ID, &m.ThreadID, &m.CreatedAt, &m.Status, &incomplete, &completedAt, &incompleteAt, &m.Role,
		&content, &assistantID, &runID, &attachments, &meta); err != nil {
		return m, err
	}
	m.Object = "thread.message"
	m.CompletedAt, m.IncompleteAt = nullInt(completedAt), nullInt(incompleteAt)
	m.AssistantID, m.RunID = nullString(assistantID), nullString(runID)
	var err error
	if incomplete.Valid {
		m.IncompleteDetails = &IncompleteDetails{}
		err = decodeColumn("incomplete_details", incomplete.String, m.IncompleteDetails)
	}
	err = errors.Join(err, decodeColumn("content", content, &m.Content), decodeColumn("attachments", attachments, &m.Attachments),
		decodeColumn("metadata", meta, &m.Metadata))
	normalizeMessage(&m)
	return m, err
}

// normalizeMessage replaces nil slices so they serialise as [].
func normalizeMessage(m *Message) {
	if m.Content == nil {
		m.Content = []ContentPart{}
	}
	for i := range m.Content {
		if t := m.Content[i].Text; t != nil && t.Annotations == nil {
			t.Annotations = []Annotation{}
		}
	}
	if m.Attachments == nil {
		m.Attachments = []Attachment{}
	}
}

// insertMessage writes m inside tx, assigning its id and creation time. The
// caller has locked m's thread in ctx's project (lockThread), or just
// created it there: the message is that project's.
func (s *Store) insertMessage(ctx context.Context, tx *sql.Tx, m Message) (Message, error) {
	m.ID = ""
	return s.insertPrepared(ctx, tx, s.PrepareMessage(m))
}

// PrepareMessage gives m what storing it would: an id, its object type,
// its creation time (unless set) and empty lists for nil ones. Tx's
// CreatePrepared then stores it as it is.
func (s *Store) PrepareMessage(m Message) Message {
	m.ID, m.Object = NewID("msg_"), "thread.message"
	if m.CreatedAt == 0 {
		m.CreatedAt = s.now().Unix()
	}
	normalizeMessage(&m)
	return m
}

// insertPrepared writes m (PrepareMessage) inside tx.
func (s *Store) insertPrepared(ctx context.Context, tx *sql.Tx, m Message) (Message, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return m, err
	}
	content, err1 := jsonColumn(m.Content)
	attachments, err2 := jsonColumn(m.Attachments)
	meta, err3 := jsonColumn(m.Metadata)
	var incomplete *string
	if m.IncompleteDetails != nil {
		s, err := jsonColumn(m.IncompleteDetails)
		err3 = errors.Join(err3, err)
		incomplete = &s
	}
	if err := errors.Join(err1, err2, err3); err != nil {
		return m, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO messages (id, thread_id, created_at, status, incomplete_details, completed_at,
		incomplete_at, role, content, assistant_id, run_id, attachments, metadata, project_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		m.ID, m.ThreadID, m.CreatedAt, m.Status, incomplete, m.CompletedAt, m.IncompleteAt, m.Role, content, m.AssistantID,
		m.RunID, attachments, meta, project)
	return m, err
}

// CreateMessage appends m to its thread (m.ThreadID), returning ErrNotFound
// if the thread does not exist and *ActiveRunError while it has an active
// run.
func (s *Store) CreateMessage(ctx context.Context, m Message) (Message, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockThread(ctx, tx, m.ThreadID); err != nil {
			return err
		}
		// Checked in the same transaction as the insert: a run created
		// concurrently can never miss this message or see it mid-run.
		if active, err := activeRun(ctx, tx, m.ThreadID); err != nil {
			return err
		} else if active != "" {
			return &ActiveRunError{ThreadID: m.ThreadID, RunID: active}
		}
		var err error
		m, err = s.insertMessage(ctx, tx, m)
		return err
	})
	if err != nil {
		return m, fmt.Errorf("create message: %w", err)
	}
	return m, nil
}

// GetMessage returns message id of thread threadID, or ErrNotFound.
func (s *Store) GetMessage(ctx context.Context, threadID, id string) (Message, error) {
	project, err := ProjectFrom(ctx)
	if err == nil {
		err = s.settled(ctx, threadID)
	}
	if err != nil {
		return Message{}, fmt.Errorf("get message %s: %w", id, err)
	}
	m, err := scanMessage(s.r.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = $1 AND thread_id = $2
		AND project_id = $3`, id, threadID, project))
	if errors.Is(err, sql.ErrNoRows) {
		return m, ErrNotFound
	}
	if err != nil {
		return m, fmt.Errorf("get message %s: %w", id, err)
	}
	return m, nil
}

// UpdateMessageMetadata replaces a message's metadata.
func (s *Store) UpdateMessageMetadata(ctx context.Context, threadID, id string, meta Metadata) (Message, error) {
	col, err := jsonColumn(meta)
	if err != nil {
		return Message{}, err
	}
	project, err := ProjectFrom(ctx)
	if err != nil {
		return Message{}, fmt.Errorf("update message %s: %w", id, err)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE messages SET metadata = $1 WHERE id = $2 AND thread_id = $3 AND project_id = $4`,
		col, id, threadID, project)
	if err != nil {
		return Message{}, fmt.Errorf("update message %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Message{}, ErrNotFound
	}
	return s.GetMessage(ctx, threadID, id)
}

// DeleteMessage removes one message of a thread.
func (s *Store) DeleteMessage(ctx context.Context, threadID, id string) error {
	return s.deleteByID(ctx, "messages", id, "thread_id = $2", threadID)
}

// ListMessages returns one page of a thread's messages, optionally only
// those a run created.
func (s *Store) ListMessages(ctx context.Context, threadID, runID string, p ListParams) (Page[Message], error) {
	if err := s.settled(ctx, threadID); err != nil {
		return Page[Message]{}, err
	}
	where, args := "thread_id = $1", []any{threadID}
	if runID != "" {
		where += " AND run_id = $2"
		args = append(args, runID)
	}
	return listQuery(ctx, s.r, "messages", messageColumns, where, args, p, scanMessage)
}
