package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/validate"
	"github.com/assistantd/assistantd/views"
)

// messageStore is what the composer and the run actions need from the
// store beyond reading threads.
type messageStore interface {
	CreateThread(ctx context.Context, t db.Thread, msgs []db.Message) (db.Thread, []db.Message, error)
	CreateMessage(ctx context.Context, m db.Message) (db.Message, error)
	GetRun(ctx context.Context, threadID, id string) (db.Run, error)
}

// The composer and run controls of the thread page and the playground.
// They go through the run engine exactly as the API does: the same
// validation (validate.Message and validate.Run), the same
// one-active-run rule. A mistake is answered in place with what was
// typed kept: 422 with the message for live.js (which sends X-Live), or
// the page rendered again with the form filled in.

// liveRequest reports whether live.js sent the form (fetch, no reload).
func liveRequest(c *echo.Context) bool { return c.Request().Header.Get("X-Live") == "1" }

// done answers a form that worked: 204 for live.js (X-Location says where
// to go when the page must change, as after a new thread), otherwise a
// redirect with a flash.
func (u *UI) done(c *echo.Context, target, location, msg string) error {
	if liveRequest(c) {
		if location != "" {
			c.Response().Header().Set("X-Location", location)
		}
		return c.NoContent(http.StatusNoContent)
	}
	if location != "" {
		target = location
	}
	return u.flash(c, target, msg, false)
}

// refuse answers a user's mistake: 422 and the message for live.js,
// otherwise again (rerender shows the message and keeps the input).
func (u *UI) refuse(c *echo.Context, msg string, rerender func() error) error {
	if liveRequest(c) {
		return c.String(http.StatusUnprocessableEntity, msg)
	}
	return rerender()
}

// refuseBack returns how a run action on a thread page is refused: 422
// with the message for the page's script, otherwise a flash back at back.
func (u *UI) refuseBack(c *echo.Context, back string) func(msg string) error {
	return func(msg string) error {
		return u.refuse(c, msg, func() error { return u.flash(c, back, msg, true) })
	}
}

// userMessage is what a person sees for an error of the engine or the
// validation: validation's words for a person, naming the field.
func userMessage(err error) string {
	if problems, ok := validate.List(err); ok {
		e := problems[0]
		if e.Hint != "" && len(e.Path) > 0 {
			return e.Path.String() + ": " + e.Hint
		}
		return e.Message
	}
	var ae *respond.Error
	if errors.As(err, &ae) && ae.Status < 500 {
		if ae.Param != "" && !strings.Contains(ae.Message, ae.Param) {
			return ae.Param + ": " + ae.Message
		}
		return ae.Message
	}
	return "Something went wrong; see the server log."
}

// newRun validates a run the web app starts with validate.Run, loading
// the assistant as the API does. A person's mistake comes back as msg.
func (u *UI) newRun(ctx context.Context, f validate.RunFields) (run db.Run, msg string, err error) {
	id, err := f.AssistantRef()
	if err != nil {
		return run, userMessage(err), nil
	}
	a, err := u.store.GetAssistant(ctx, id)
	if errors.Is(err, db.ErrNotFound) {
		return run, "Assistant " + id + " does not exist.", nil
	}
	if err != nil {
		return run, "", err
	}
	return runOrMessage(validate.Run(f, a, nil))
}

// runOrMessage splits validate.Run's outcome into a person's message and
// a failure.
func runOrMessage(run db.Run, err error) (db.Run, string, error) {
	if _, ok := validate.List(err); ok {
		return run, userMessage(err), nil
	}
	return run, "", err
}

// AddMessage handles POST /threads/:thread_id/messages: action "add"
// stores the message; "run" stores it and starts a run of the chosen
// assistant in the same transaction. A refused message comes back in the
// composer with the reason (422), so nothing typed is lost.
func (u *UI) AddMessage(c *echo.Context) error {
	threadID := c.Param("thread_id")
	ctx := c.Request().Context()
	if _, err := u.store.GetThread(ctx, threadID); err != nil {
		return respond.StoreErr(err, "thread", threadID)
	}
	text, role, action, assistantID := c.FormValue("content"), c.FormValue("role"), c.FormValue("action"), c.FormValue("assistant_id")
	again := func(msg string) error {
		return u.refuse(c, msg, func() error {
			return u.showThread(c, &views.Composer{Content: text, Role: role, Selected: assistantID, Error: msg})
		})
	}
	m, msg := u.composedMessage(c, text, role)
	if msg != "" {
		return again(msg)
	}
	back := "/threads/" + threadID
	if action != "run" {
		if m, msg = u.attach(c, m, text, role); msg != "" {
			return again(msg)
		}
		m.ThreadID = threadID
		if _, err := u.store.CreateMessage(ctx, m); err != nil {
			if msg := runConflict(err); msg != "" {
				return again(msg)
			}
			return respond.StoreErr(err, "thread", threadID)
		}
		return u.done(c, back, "", "Message added.")
	}
	if u.cfg.Engine == nil {
		return again("Runs are not available on this server.")
	}
	if assistantID == "" || len(assistantID) > maxIDLen {
		return again("Choose an assistant to run.")
	}
	run, msg, err := u.newRun(ctx, validate.RunFields{AssistantID: validate.Some(assistantID)})
	if err != nil {
		return respond.Internal(err)
	}
	if msg != "" {
		return again(msg)
	}
	if m, msg = u.attach(c, m, text, role); msg != "" {
		return again(msg)
	}
	m.ThreadID = threadID
	run.ThreadID = threadID
	if _, err := u.cfg.Engine.CreateRun(ctx, run, []db.Message{m}); err != nil {
		return again(userMessage(respond.RunErr(err, "")))
	}
	return u.done(c, back, "", "Message added; the run started.")
}

// composedMessage validates a composed message with validate.Message, as
// POST /v1/threads/{id}/messages does. Blank text counts as none.
func (u *UI) composedMessage(c *echo.Context, text, role string) (db.Message, string) {
	return u.checkMessage(c, composedRequest(text, role))
}

func composedRequest(text, role string) validate.MessageRequest {
	if strings.TrimSpace(text) == "" {
		text = ""
	}
	if role == "" {
		role = "user"
	}
	return validate.MessageRequest{Role: role, Content: validate.TextContent(text)}
}

// attach adds the files sent with a composed message (the composer's
// "Attach files") to m, which composedMessage passed: they are stored
// only now, after every other check, so a refused message leaves no
// files behind, and attached for the tools picked.
func (u *UI) attach(c *echo.Context, m db.Message, text, role string) (db.Message, string) {
	atts, msg := u.composedAttachments(c)
	if msg != "" || len(atts) == 0 {
		return m, msg
	}
	req := composedRequest(text, role)
	req.Attachments = validate.Some(atts)
	return u.checkMessage(c, req)
}

func (u *UI) checkMessage(c *echo.Context, req validate.MessageRequest) (db.Message, string) {
	m, err := validate.Message(c.Request().Context(), u.store, validate.Path{}, req)
	if problems, ok := validate.List(err); ok {
		return m, problems[0].Text()
	}
	if err != nil {
		u.cfg.Log.Error("validate message", "error", err)
		return m, "Could not add the message; see the server log."
	}
	return m, ""
}

// attachTools are the tools a composed message's files may be for.
var attachTools = []string{"code_interpreter", "file_search"}

// composedAttachments stores the files of a multipart composer form
// (field "attachments", purpose assistants) and returns them as the
// message's attachments for the tools ticked (field "attach_tool").
func (u *UI) composedAttachments(c *echo.Context) ([]validate.AttachmentRequest, string) {
	form := c.Request().MultipartForm
	if form == nil || len(form.File["attachments"]) == 0 {
		return nil, ""
	}
	headers := form.File["attachments"]
	if len(headers) > validate.MaxAttachments {
		return nil, fmt.Sprintf("Attach at most %d files to one message.", validate.MaxAttachments)
	}
	var tools []db.AttachmentTool
	for _, t := range form.Value["attach_tool"] {
		if slices.Contains(attachTools, t) && !slices.ContainsFunc(tools, func(x db.AttachmentTool) bool { return x.Type == t }) {
			tools = append(tools, db.AttachmentTool{Type: t})
		}
	}
	if len(tools) == 0 {
		return nil, "Pick what the attached files are for: code_interpreter, file_search or both."
	}
	out := make([]validate.AttachmentRequest, 0, len(headers))
	for _, fh := range headers {
		f, err := u.uploadOne(c, fh.Filename, fh.Header.Get("Content-Type"), "assistants", func() (io.ReadCloser, error) { return fh.Open() })
		if err != nil {
			return nil, "Could not attach " + filepath.Base(fh.Filename) + ": " + err.Error() + "."
		}
		out = append(out, validate.AttachmentRequest{FileID: f.ID, Tools: tools})
	}
	return out, ""
}
