package validate

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/assistantd/assistantd/db"
)

// MessageRequest is the body of create message, each entry of a thread's
// initial messages and a run's additional_messages, and what the web
// app's composer sends.
type MessageRequest struct {
	Role        string                   `json:"role"`
	Content     MessageContent           `json:"content"`
	Attachments Opt[[]AttachmentRequest] `json:"attachments"`
	Metadata    Opt[db.Metadata]         `json:"metadata"`
}

// AttachmentRequest is one of a message's attachments.
type AttachmentRequest struct {
	FileID string              `json:"file_id"`
	Tools  []db.AttachmentTool `json:"tools"`
}

// MessageContent is either a string or an array of request content parts.
type MessageContent struct {
	Set   bool
	Text  *string
	Parts []ContentPartRequest
}

// TextContent is content given as a plain string.
func TextContent(s string) MessageContent { return MessageContent{Set: true, Text: &s} }

// ContentPartRequest is a request-side content part: unlike the response
// side, "text" is a plain string.
type ContentPartRequest struct {
	Type      string        `json:"type"`
	Text      *string       `json:"text,omitempty"`
	ImageFile *db.ImageFile `json:"image_file,omitempty"`
	ImageURL  *db.ImageURL  `json:"image_url,omitempty"`
}

// UnmarshalJSON takes a string or an array of parts.
func (mc *MessageContent) UnmarshalJSON(b []byte) error {
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
		return Strict(b, &mc.Parts)
	default:
		return New(P("content"), "invalid_type", "Invalid type for 'content': expected a string or an array of content parts.")
	}
}

var imageDetails = map[string]bool{"": true, "auto": true, "low": true, "high": true}

// Message validates a message request at p (Path{} for create message,
// Path{"messages", 2} in a thread) and returns the message to store,
// status completed.
func Message(ctx context.Context, files Files, p Path, r MessageRequest) (db.Message, error) {
	c := &checker{ctx: ctx, files: files}
	m := db.Message{Role: r.Role, Status: "completed"}
	switch r.Role {
	case "user", "assistant":
	case "":
		c.add(Missing(p.Key("role")).withHint("Add the message as user or assistant."))
	default:
		c.add(New(p.Key("role"), "invalid_value", "Invalid value: '%s'. Supported values are: 'user' and 'assistant'.", r.Role).
			withHint("Add the message as user or assistant."))
	}
	cp := p.Key("content")
	switch {
	case !r.Content.Set:
		c.add(Missing(cp).withHint("Write a message first."))
	case r.Content.Text != nil:
		if !c.add(contentText(cp, *r.Content.Text)) {
			m.Content = []db.ContentPart{{Type: "text", Text: &db.Text{Value: *r.Content.Text, Annotations: []db.Annotation{}}}}
		}
	case len(r.Content.Parts) == 0:
		c.add(New(cp, "empty_array", "Invalid '%s': empty array. Expected an array with minimum length 1, but got an empty array instead.", cp))
	default:
		for i, part := range r.Content.Parts {
			if part, err := contentPart(ctx, files, cp.Index(i), part); !c.add(err) {
				m.Content = append(m.Content, part)
			}
		}
	}
	if r.Attachments.Set && !r.Attachments.Null {
		ap := p.Key("attachments")
		atts := r.Attachments.V
		if !c.add(ArrayLen(ap, len(atts), MaxAttachments)) {
			for i, a := range atts {
				ip := ap.Index(i)
				ok := !c.add(FileID(ctx, files, ip.Key("file_id"), a.FileID))
				for j, t := range a.Tools {
					if t.Type != "code_interpreter" && t.Type != "file_search" {
						ok = false
						c.add(New(ip.Key("tools").Index(j).Key("type"), "invalid_value",
							"Invalid value: '%s'. Supported values are: 'code_interpreter' and 'file_search'.", t.Type))
					}
				}
				if ok {
					tools := a.Tools
					if tools == nil {
						tools = []db.AttachmentTool{}
					}
					m.Attachments = append(m.Attachments, db.Attachment{FileID: a.FileID, Tools: tools})
				}
			}
		}
	}
	if r.Metadata.Set && !c.add(Metadata(p.Key("metadata"), r.Metadata.V)) {
		m.Metadata = r.Metadata.V
	}
	return m, c.result()
}

func contentText(p Path, s string) error {
	if s == "" {
		return New(p, "empty_string", "Invalid '%s': empty string. Expected a string with minimum length 1.", p).
			withHint("Write a message first.")
	}
	if n := utf8.RuneCountInString(s); n > MaxMessageContent {
		return New(p, "string_above_max_length",
			"Invalid '%s': string too long. Expected a string with maximum length %d, but got a string with length %d instead.",
			p, MaxMessageContent, n).withHint("A message may have at most %d characters; this one has %d.", MaxMessageContent, n)
	}
	return nil
}

func contentPart(ctx context.Context, files Files, p Path, part ContentPartRequest) (db.ContentPart, error) {
	switch part.Type {
	case "text":
		if part.Text == nil {
			return db.ContentPart{}, Missing(p.Key("text"))
		}
		if part.ImageFile != nil || part.ImageURL != nil {
			return db.ContentPart{}, New(p, "invalid_value", "Invalid '%s': a text part carries only 'text'.", p)
		}
		if err := contentText(p.Key("text"), *part.Text); err != nil {
			return db.ContentPart{}, err
		}
		return db.ContentPart{Type: "text", Text: &db.Text{Value: *part.Text, Annotations: []db.Annotation{}}}, nil
	case "image_file":
		f := part.ImageFile
		if f == nil {
			return db.ContentPart{}, Missing(p.Key("image_file"))
		}
		if !imageDetails[f.Detail] {
			return db.ContentPart{}, New(p.Key("image_file").Key("detail"), "invalid_value",
				"Invalid value: '%s'. Supported values are: 'auto', 'low', and 'high'.", f.Detail)
		}
		if err := FileID(ctx, files, p.Key("image_file").Key("file_id"), f.FileID); err != nil {
			return db.ContentPart{}, err
		}
		return db.ContentPart{Type: "image_file", ImageFile: f}, nil
	case "image_url":
		u := part.ImageURL
		if u == nil {
			return db.ContentPart{}, Missing(p.Key("image_url"))
		}
		if !imageDetails[u.Detail] {
			return db.ContentPart{}, New(p.Key("image_url").Key("detail"), "invalid_value",
				"Invalid value: '%s'. Supported values are: 'auto', 'low', and 'high'.", u.Detail)
		}
		if !validImageURL(u.URL) {
			up := p.Key("image_url").Key("url")
			return db.ContentPart{}, New(up, "invalid_value", "Invalid '%s': expected an http(s) URL or a data: URL of an image.", up)
		}
		return db.ContentPart{Type: "image_url", ImageURL: u}, nil
	case "":
		return db.ContentPart{}, Missing(p.Key("type"))
	default:
		return db.ContentPart{}, New(p.Key("type"), "invalid_value",
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

// ThreadRequest is the body of create thread (and the "thread" of create
// thread and run).
type ThreadRequest struct {
	Messages      Opt[[]MessageRequest]     `json:"messages"`
	ToolResources Opt[ToolResourcesRequest] `json:"tool_resources"`
	Metadata      Opt[db.Metadata]          `json:"metadata"`
}

// Thread validates a thread request at p and returns the thread and its
// initial messages. A vector_stores helper is left to the caller.
func Thread(ctx context.Context, files Files, p Path, r ThreadRequest) (db.Thread, []db.Message, error) {
	c := &checker{ctx: ctx, files: files}
	var t db.Thread
	var msgs []db.Message
	mp := p.Key("messages")
	if !c.add(ArrayLen(mp, len(r.Messages.V), MaxThreadMessages)) {
		msgs = make([]db.Message, 0, len(r.Messages.V))
		for i, mr := range r.Messages.V {
			if m, err := Message(ctx, files, mp.Index(i), mr); !c.add(err) {
				msgs = append(msgs, m)
			}
		}
	}
	if tr, err := ToolResources(ctx, files, p.Key("tool_resources"), r.ToolResources.Ptr()); !c.add(err) {
		t.ToolResources = tr
	}
	if !c.add(Metadata(p.Key("metadata"), r.Metadata.V)) {
		t.Metadata = r.Metadata.V
	}
	return t, msgs, c.result()
}
