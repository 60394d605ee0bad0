package ui

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/views"
)

// The compare view runs the same thread (or the same next message)
// against two configurations side by side: two assistants, two models, or
// an assistant and the playground's unsaved overrides. A thread holds one
// active run at a time, so each side runs on a fork of its own: a new
// thread with copies of the source thread's messages (metadata
// compare_of names the source). Both stream at once, each column
// following its fork; "Keep" continues with one fork in the playground
// and deletes the other.

// maxCompareCopy bounds how many messages a fork copies.
const maxCompareCopy = 200

// compareSide reads side ("a" or "b") of the compare form or address.
func compareSide(get func(string) string, side string) views.CompareSide {
	return views.CompareSide{Key: side, AssistantID: get(side + "_assistant"),
		Overrides: views.Overrides{Model: strings.TrimSpace(get(side + "_model")), Instructions: get(side + "_instructions"),
			Temperature: strings.TrimSpace(get(side + "_temperature"))}}
}

// Compare handles GET /playground/compare: the form, filled from the
// address (?thread=…&assistant=… and the playground's overrides, which
// become side B: "your unsaved edits"), or, with ?a=…&b=… (two forks),
// both columns following their runs.
func (u *UI) Compare(c *echo.Context) error {
	ctx := c.Request().Context()
	v := views.CompareView{SourceThread: c.QueryParam("thread"), CanRun: u.cfg.Engine != nil}
	var err error
	if v.Assistants, err = u.assistantChoices(ctx); err != nil {
		return respond.Internal(err)
	}
	if a, b := c.QueryParam("a"), c.QueryParam("b"); a != "" && b != "" {
		for i, id := range []string{a, b} {
			if _, err := u.store.GetThread(ctx, id); err != nil {
				return respond.StoreErr(err, "thread", id)
			}
			side := views.CompareSide{Key: []string{"a", "b"}[i], ThreadID: id}
			if side.Live, _, err = u.threadLive(c, id); err != nil {
				return err
			}
			if r := side.Live.Latest; r != nil {
				side.AssistantID, side.Overrides.Model = r.AssistantID, r.Model
			}
			v.Sides[i] = side
		}
		v.Started = true
		return render(c, http.StatusOK, views.ComparePage(u.page(c, "Compare", "playground"), v))
	}
	q := c.QueryParams()
	v.Sides[0] = compareSide(q.Get, "a")
	v.Sides[1] = compareSide(q.Get, "b")
	if asst := q.Get("assistant"); asst != "" {
		ov := overridesFromQuery(q).Overrides
		v.Sides[0] = views.CompareSide{Key: "a", AssistantID: asst}
		v.Sides[1] = views.CompareSide{Key: "b", AssistantID: asst, Overrides: views.Overrides{Model: ov.Model, Instructions: ov.Instructions, Temperature: ov.Temperature}}
	}
	return render(c, http.StatusOK, views.ComparePage(u.page(c, "Compare", "playground"), v))
}

// StartCompare handles POST /playground/compare: both sides checked as
// the API checks a run, then two forks, each run with its side's
// configuration; the answer opens the two columns.
func (u *UI) StartCompare(c *echo.Context) error {
	ctx := c.Request().Context()
	if u.cfg.Engine == nil {
		return &respond.Error{Status: http.StatusNotFound, Message: "Runs are not available on this server."}
	}
	source, text := c.FormValue("thread"), c.FormValue("content")
	v := views.CompareView{SourceThread: source, Message: text, CanRun: true}
	var err error
	if v.Assistants, err = u.assistantChoices(ctx); err != nil {
		return respond.Internal(err)
	}
	v.Sides[0], v.Sides[1] = compareSide(c.FormValue, "a"), compareSide(c.FormValue, "b")
	again := func(msg string) error {
		v.Error = msg
		return render(c, http.StatusUnprocessableEntity, views.ComparePage(u.page(c, "Compare", "playground"), v))
	}
	var copies []db.Message
	var resources *db.ToolResources
	if source != "" {
		if len(source) > maxIDLen {
			return again("No such thread.")
		}
		src, err := u.store.GetThread(ctx, source)
		if errors.Is(err, db.ErrNotFound) {
			return again("Thread " + source + " does not exist.")
		}
		if err != nil {
			return respond.Internal(err)
		}
		resources = src.ToolResources // its code files and vector store, for both forks
		msgs, err := u.store.ThreadTranscript(ctx, source, maxCompareCopy)
		if err != nil {
			return respond.Internal(err)
		}
		for _, m := range msgs {
			copies = append(copies, db.Message{Role: m.Role, Status: "completed", Content: m.Content, Attachments: m.Attachments, Metadata: m.Metadata})
		}
	}
	var next []db.Message
	if strings.TrimSpace(text) != "" {
		m, msg := u.composedMessage(c, text, "user")
		if msg != "" {
			return again(msg)
		}
		next = []db.Message{m}
	} else if len(copies) == 0 {
		return again("Write the message both sides answer (or compare from a thread with messages).")
	}
	var runs [2]db.Run
	for i := range v.Sides {
		s := &v.Sides[i]
		if hasNul(s.Overrides.Model) || hasNul(s.Overrides.Instructions) {
			return again("Side " + strings.ToUpper(s.Key) + ": " + nulRefusal)
		}
		if s.AssistantID == "" || len(s.AssistantID) > maxIDLen {
			return again("Side " + strings.ToUpper(s.Key) + ": choose an assistant.")
		}
		a, err := u.store.GetAssistant(ctx, s.AssistantID)
		if errors.Is(err, db.ErrNotFound) {
			return again("Side " + strings.ToUpper(s.Key) + ": assistant " + s.AssistantID + " does not exist.")
		}
		if err != nil {
			return respond.Internal(err)
		}
		run, errs, err := overrideRun(a, s.Overrides)
		if err != nil {
			return respond.Internal(err)
		}
		if len(errs) > 0 {
			s.Errors = errs
			return again("Side " + strings.ToUpper(s.Key) + ": fix " + overrideFields(errs) + ".")
		}
		runs[i] = run
	}
	var forks [2]string
	for i := range runs {
		meta := db.Metadata{"compare_side": strings.ToUpper(v.Sides[i].Key)}
		if source != "" {
			meta["compare_of"] = source
		}
		t, _, err := u.store.CreateThread(ctx, db.Thread{Metadata: meta, ToolResources: resources}, copies)
		if err != nil {
			return respond.Internal(err)
		}
		runs[i].ThreadID = t.ID
		if _, err := u.cfg.Engine.CreateRun(ctx, runs[i], next); err != nil {
			return again(userMessage(respond.RunErr(err, "")))
		}
		forks[i] = t.ID
	}
	return redirect(c, "/playground/compare?"+url.Values{"a": {forks[0]}, "b": {forks[1]}}.Encode())
}

// KeepCompare handles POST /playground/compare/keep: continue with one
// side's fork in the playground; the other fork is deleted.
func (u *UI) KeepCompare(c *echo.Context) error {
	ctx := c.Request().Context()
	keep, drop := c.FormValue("keep"), c.FormValue("drop")
	k, err := u.store.GetThread(ctx, keep)
	if err != nil {
		return respond.StoreErr(err, "thread", keep)
	}
	if d, err := u.store.GetThread(ctx, drop); err == nil && d.Metadata["compare_side"] != "" && drop != keep {
		if u.cfg.Engine != nil {
			if err := u.cfg.Engine.StopThread(ctx, drop); err != nil {
				return respond.Internal(err)
			}
		}
		if err := u.store.DeleteThread(ctx, drop); err != nil && !errors.Is(err, db.ErrNotFound) {
			return respond.Internal(err)
		}
	}
	return u.flash(c, playgroundURL(k.ID, c.FormValue("assistant"), views.Overrides{}), "Kept side "+k.Metadata["compare_side"]+"; the other was deleted.", false)
}
