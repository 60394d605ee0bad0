package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
)

// messageRequest is the body of create message, and each entry of a
// thread's initial messages and a run's additional_messages.
type messageRequest struct {
	Role        string                   `json:"role"`
	Content     messageContent           `json:"content"`
	Attachments Opt[[]attachmentRequest] `json:"attachments"`
	Metadata    Opt[db.Metadata]         `json:"metadata"`
}

type attachmentRequest struct {
	FileID string              `json:"file_id"`
	Tools  []db.AttachmentTool `json:"tools"`
}

// messageContent is either a string or an array of request content parts.
type messageContent struct {
	Set   bool
	Text  *string
	Parts []contentPartRequest
}

// contentPartRequest is a request-side content part: unlike the response
// side, "text" is a plain string.
type contentPartRequest struct {
	Type      string        `json:"type"`
	Text      *string       `json:"text,omitempty"`
	ImageFile *db.ImageFile `json:"image_file,omitempty"`
	ImageURL  *db.ImageURL  `json:"image_url,omitempty"`
}

func (mc *messageContent) UnmarshalJSON(b []byte) error {
	mc.Set = true
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		mc.Text = &s
		return nil
	case len(b) > 0 && b[0] == '[':
		return strictUnmarshal(b, &mc.Parts)
	default:
		return invalid("content", "invalid_type", "Invalid type for 'content': expected a string or an array of content parts.")
	}
}

var imageDetails = map[string]bool{"": true, "auto": true, "low": true, "high": true}

// buildMessage validates a message request (param names it in errors, e.g.
// "messages[2]") and returns the message to store, status completed.
func (h *API) buildMessage(c *echo.Context, param string, r messageRequest) (db.Message, error) {
	p := func(field string) string {
		if param == "" {
			return field
		}
		return param + "." + field
	}
	m := db.Message{Role: r.Role, Status: "completed"}
	switch r.Role {
	case "user", "assistant":
	case "":
		return m, invalid(p("role"), "missing_required_parameter", "Missing required parameter: '%s'.", p("role"))
	default:
		return m, invalid(p("role"), "invalid_value", "Invalid value: '%s'. Supported values are: 'user' and 'assistant'.", r.Role)
	}
	if !r.Content.Set {
		return m, invalid(p("content"), "missing_required_parameter", "Missing required parameter: '%s'.", p("content"))
	}
	if r.Content.Text != nil {
		if err := checkContentText(p("content"), *r.Content.Text); err != nil {
			return m, err
		}
		m.Content = []db.ContentPart{{Type: "text", Text: &db.Text{Value: *r.Content.Text, Annotations: []db.Annotation{}}}}
	} else {
		if len(r.Content.Parts) == 0 {
			return m, invalid(p("content"), "empty_array",
				"Invalid '%s': empty array. Expected an array with minimum length 1, but got an empty array instead.", p("content"))
		}
		for i, part := range r.Content.Parts {
			cp, err := h.contentPart(c, fmt.Sprintf("%s[%d]", p("content"), i), part)
			if err != nil {
				return m, err
			}
			m.Content = append(m.Content, cp)
		}
	}
	if r.Attachments.Set && !r.Attachments.Null {
		atts := r.Attachments.V
		if err := checkArrayLen(p("attachments"), len(atts), maxAttachments); err != nil {
			return m, err
		}
		for i, a := range atts {
			ap := fmt.Sprintf("%s[%d]", p("attachments"), i)
			if err := h.checkFile(c, ap+".file_id", a.FileID); err != nil {
				return m, err
			}
			for j, t := range a.Tools {
				if t.Type != "code_interpreter" && t.Type != "file_search" {
					return m, invalid(fmt.Sprintf("%s.tools[%d].type", ap, j), "invalid_value",
						"Invalid value: '%s'. Supported values are: 'code_interpreter' and 'file_search'.", t.Type)
				}
			}
			tools := a.Tools
			if tools == nil {
				tools = []db.AttachmentTool{}
			}
			m.Attachments = append(m.Attachments, db.Attachment{FileID: a.FileID, Tools: tools})
		}
	}
	if r.Metadata.Set {
		if err := checkMetadata(p("metadata"), r.Metadata.V); err != nil {
			return m, err
		}
		m.Metadata = r.Metadata.V
	}
	return m, nil
}

func checkContentText(param, s string) error {
	if s == "" {
		return invalid(param, "empty_string", "Invalid '%s': empty string. Expected a string with minimum length 1.", param)
	}
	if n := utf8.RuneCountInString(s); n > maxMessageContent {
		return invalid(param, "string_above_max_length",
			"Invalid '%s': string too long. Expected a string with maximum length %d, but got a string with length %d instead.",
			param, maxMessageContent, n)
	}
	return nil
}

func (h *API) contentPart(c *echo.Context, p string, part contentPartRequest) (db.ContentPart, error) {
	switch part.Type {
	case "text":
		if part.Text == nil {
			return db.ContentPart{}, invalid(p+".text", "missing_required_parameter", "Missing required parameter: '%s.text'.", p)
		}
		if part.ImageFile != nil || part.ImageURL != nil {
			return db.ContentPart{}, invalid(p, "invalid_value", "Invalid '%s': a text part carries only 'text'.", p)
		}
		if err := checkContentText(p+".text", *part.Text); err != nil {
			return db.ContentPart{}, err
		}
		return db.ContentPart{Type: "text", Text: &db.Text{Value: *part.Text, Annotations: []db.Annotation{}}}, nil
	case "image_file":
		f := part.ImageFile
		if f == nil {
			return db.ContentPart{}, invalid(p+".image_file", "missing_required_parameter", "Missing required parameter: '%s.image_file'.", p)
		}
		if !imageDetails[f.Detail] {
			return db.ContentPart{}, invalid(p+".image_file.detail", "invalid_value",
				"Invalid value: '%s'. Supported values are: 'auto', 'low', and 'high'.", f.Detail)
		}
		if err := h.checkFile(c, p+".image_file.file_id", f.FileID); err != nil {
			return db.ContentPart{}, err
		}
		return db.ContentPart{Type: "image_file", ImageFile: f}, nil
	case "image_url":
		u := part.ImageURL
		if u == nil {
			return db.ContentPart{}, invalid(p+".image_url", "missing_required_parameter", "Missing required parameter: '%s.image_url'.", p)
		}
		if !imageDetails[u.Detail] {
			return db.ContentPart{}, invalid(p+".image_url.detail", "invalid_value",
				"Invalid value: '%s'. Supported values are: 'auto', 'low', and 'high'.", u.Detail)
		}
		if !validImageURL(u.URL) {
			return db.ContentPart{}, invalid(p+".image_url.url", "invalid_value",
				"Invalid '%s.image_url.url': expected an http(s) URL or a data: URL of an image.", p)
		}
		return db.ContentPart{Type: "image_url", ImageURL: u}, nil
	case "":
		return db.ContentPart{}, invalid(p+".type", "missing_required_parameter", "Missing required parameter: '%s.type'.", p)
	default:
		return db.ContentPart{}, invalid(p+".type", "invalid_value",
			"Invalid value: '%s'. Supported values are: 'text', 'image_file', and 'image_url'.", part.Type)
	}
}

func validImageURL(s string) bool {
	if strings.HasPrefix(s, "data:image/") {
		return true
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// CreateMessage handles POST /v1/threads/{thread_id}/messages.
func (h *API) CreateMessage(c *echo.Context) error {
	threadID := c.Param("thread_id")
	if err := checkID("thread_id", threadID, "thread_"); err != nil {
		return err
	}
	var r messageRequest
	if err := decodeBody(c.Request(), &r, false); err != nil {
		return err
	}
	m, err := h.buildMessage(c, "", r)
	if err != nil {
		return err
	}
	m.ThreadID = threadID
	m, err = h.store.CreateMessage(c.Request().Context(), m)
	var ar *db.ActiveRunError
	if errors.As(err, &ar) {
		return invalid("", "", "Can't add messages to %s while a run %s is active.", ar.ThreadID, ar.RunID)
	}
	if err != nil {
		return storeErr(err, "thread", threadID)
	}
	if err := h.attachForSearch(c.Request().Context(), threadID, m); err != nil {
		return Internal(err)
	}
	return c.JSON(http.StatusOK, m)
}

// messagePath reads and checks the thread and message ids of the URL.
func messagePath(c *echo.Context) (threadID, msgID string, err error) {
	threadID, msgID = c.Param("thread_id"), c.Param("message_id")
	if err := checkID("thread_id", threadID, "thread_"); err != nil {
		return "", "", err
	}
	if err := checkID("message_id", msgID, "msg_"); err != nil {
		return "", "", err
	}
	return threadID, msgID, nil
}

// GetMessage handles GET /v1/threads/{thread_id}/messages/{message_id}.
func (h *API) GetMessage(c *echo.Context) error {
	threadID, id, err := messagePath(c)
	if err != nil {
		return err
	}
	m, err := h.store.GetMessage(c.Request().Context(), threadID, id)
	if err != nil {
		return storeErr(err, "message", id)
	}
	return c.JSON(http.StatusOK, m)
}

// ModifyMessage handles POST /v1/threads/{thread_id}/messages/{message_id}.
func (h *API) ModifyMessage(c *echo.Context) error {
	threadID, id, err := messagePath(c)
	if err != nil {
		return err
	}
	return modifyMetadata(c, "message", id,
		func(ctx context.Context) (db.Message, error) { return h.store.GetMessage(ctx, threadID, id) },
		func(ctx context.Context, meta db.Metadata) (db.Message, error) {
			return h.store.UpdateMessageMetadata(ctx, threadID, id, meta)
		})
}

// modifyMetadata serves the modify endpoints whose only field is metadata
// (messages, runs): absent metadata changes nothing and returns the object.
func modifyMetadata[T any](c *echo.Context, kind, id string, get func(context.Context) (T, error),
	update func(context.Context, db.Metadata) (T, error)) error {
	var r struct {
		Metadata Opt[db.Metadata] `json:"metadata"`
	}
	if err := decodeBody(c.Request(), &r, true); err != nil {
		return err
	}
	ctx := c.Request().Context()
	var v T
	var err error
	if !r.Metadata.Set {
		v, err = get(ctx)
	} else if err = checkMetadata("metadata", r.Metadata.V); err != nil {
		return err
	} else {
		v, err = update(ctx, r.Metadata.V)
	}
	if err != nil {
		return storeErr(err, kind, id)
	}
	return c.JSON(http.StatusOK, v)
}

// DeleteMessage handles DELETE /v1/threads/{thread_id}/messages/{message_id}.
func (h *API) DeleteMessage(c *echo.Context) error {
	threadID, id, err := messagePath(c)
	if err != nil {
		return err
	}
	if err := h.store.DeleteMessage(c.Request().Context(), threadID, id); err != nil {
		return storeErr(err, "message", id)
	}
	return c.JSON(http.StatusOK, db.Deleted{ID: id, Object: "thread.message.deleted", Deleted: true})
}

// ListMessages handles GET /v1/threads/{thread_id}/messages.
func (h *API) ListMessages(c *echo.Context) error {
	threadID := c.Param("thread_id")
	if err := checkID("thread_id", threadID, "thread_"); err != nil {
		return err
	}
	p, err := listParams(c, 100, 20, true)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := h.store.GetThread(ctx, threadID); err != nil {
		return storeErr(err, "thread", threadID)
	}
	runID := c.QueryParam("run_id")
	if runID != "" {
		if err := checkID("run_id", runID, "run_"); err != nil {
			return err
		}
	}
	page, err := h.store.ListMessages(ctx, threadID, runID, p)
	if err != nil {
		return storeErr(err, "", "")
	}
	return c.JSON(http.StatusOK, newList(page, func(m db.Message) string { return m.ID }))
}
