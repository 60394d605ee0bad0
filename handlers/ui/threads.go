package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/views"
)

// threadStore is what the threads pages need.
type threadStore interface {
	BrowseThreads(ctx context.Context, f db.ThreadFilter) ([]db.ThreadSummary, bool, error)
	GetThread(ctx context.Context, id string) (db.Thread, error)
	DeleteThread(ctx context.Context, id string) error
	ThreadTranscript(ctx context.Context, threadID string, limit int) ([]db.Message, error)
	FileNames(ctx context.Context, ids []string) (map[string]string, error)
}

const (
	threadsPerPage = 25
	// maxThreadMessagesShown bounds one thread page; exports take all.
	maxThreadMessagesShown = 500
	maxExportMessages      = 100000
)

// Threads handles GET /threads: filters, full-text search, pages.
func (u *UI) Threads(c *echo.Context) error {
	ctx := c.Request().Context()
	fv := views.ThreadFilters{Query: strings.TrimSpace(c.QueryParam("q")), AssistantID: c.QueryParam("assistant"),
		From: c.QueryParam("from"), To: c.QueryParam("to"), MetaKey: strings.TrimSpace(c.QueryParam("meta_key")),
		MetaValue: c.QueryParam("meta_value"), RunStatus: c.QueryParam("run_status")}
	v := views.ThreadsView{Filters: fv}
	page, _ := strconv.Atoi(c.QueryParam("page"))
	page = max(page, 1)
	v.Page = page
	if fv.RunStatus != "" && !slices.Contains(views.RunStatuses, fv.RunStatus) {
		v.Errors = append(v.Errors, "Unknown run status.")
	}
	f := db.ThreadFilter{Query: fv.Query, AssistantID: fv.AssistantID, MetaKey: fv.MetaKey, MetaValue: fv.MetaValue, RunStatus: fv.RunStatus,
		Offset: (page - 1) * threadsPerPage, Limit: threadsPerPage}
	if fv.From != "" {
		t, err := time.Parse("2006-01-02", fv.From)
		if err != nil {
			v.Errors = append(v.Errors, "“From” is not a date (YYYY-MM-DD).")
		}
		f.From = t
	}
	if fv.To != "" {
		t, err := time.Parse("2006-01-02", fv.To)
		if err != nil {
			v.Errors = append(v.Errors, "“To” is not a date (YYYY-MM-DD).")
		} else {
			f.To = t.AddDate(0, 0, 1) // the whole day
		}
	}
	if utf8.RuneCountInString(fv.Query) > 200 {
		v.Errors = append(v.Errors, "The search is too long (at most 200 characters).")
		f.Query = ""
	}
	assistants, err := u.store.AllAssistants(ctx)
	if err != nil {
		return respond.Internal(err)
	}
	names := map[string]string{}
	for _, a := range assistants {
		label := deref(a.Name)
		if label == "" {
			label = a.ID
		}
		names[a.ID] = label
		v.Assistants = append(v.Assistants, [2]string{a.ID, label})
	}
	var more bool
	var rows []db.ThreadSummary
	if len(v.Errors) == 0 {
		if rows, more, err = u.store.BrowseThreads(ctx, f); err != nil {
			return respond.Internal(err)
		}
	}
	for _, t := range rows {
		row := views.ThreadRow{ID: t.ID, CreatedAt: t.CreatedAt, LastActivity: t.LastActivity, Messages: t.Messages,
			Preview: t.Preview, Metadata: sortedPairs(t.Metadata), RunStatus: t.LastRunStatus}
		if t.AssistantID != "" {
			row.Assistant = [2]string{t.AssistantID, names[t.AssistantID]}
			if row.Assistant[1] == "" {
				row.Assistant[1] = t.AssistantID + " (deleted)"
			}
		}
		if t.Snippet != "" {
			row.Snippet = views.SplitSnippet(t.Snippet, db.SnippetOpen, db.SnippetClose)
		}
		v.Rows = append(v.Rows, row)
	}
	q := c.QueryParams()
	link := func(n int) string {
		q.Set("page", strconv.Itoa(n))
		return "/threads?" + q.Encode()
	}
	if more {
		v.NextPage = link(page + 1)
	}
	if page > 1 {
		v.PrevPage = link(page - 1)
	}
	return render(c, http.StatusOK, views.ThreadsPage(u.page(c, "Threads", "threads"), v))
}

func sortedPairs(m db.Metadata) [][2]string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][2]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, [2]string{k, m[k]})
	}
	return out
}

// threadMessages loads a thread's messages for the page (at most
// maxThreadMessagesShown; truncated says there are more).
// Remote images load only where an admin allowed them (remote).
func (u *UI) threadMessages(ctx context.Context, id string, remote bool) ([]views.MessageView, bool, error) {
	msgs, err := u.store.ThreadTranscript(ctx, id, maxThreadMessagesShown+1)
	if err != nil {
		return nil, false, err
	}
	truncated := false
	if len(msgs) > maxThreadMessagesShown {
		msgs, truncated = msgs[:maxThreadMessagesShown], true
	}
	var fileIDs []string
	for _, m := range msgs {
		for _, p := range m.Content {
			if p.Text != nil {
				for _, a := range p.Text.Annotations {
					fileIDs = append(fileIDs, annotationFile(a))
				}
			}
		}
		for _, a := range m.Attachments {
			fileIDs = append(fileIDs, a.FileID)
		}
	}
	names, err := u.store.FileNames(ctx, fileIDs)
	if err != nil {
		return nil, false, err
	}
	out := make([]views.MessageView, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, messageViewWith(m, names, remote))
	}
	return out, truncated, nil
}

// ShowThread handles GET /threads/:thread_id. The page follows the thread
// live (static/live.js over GET /threads/:thread_id/events).
func (u *UI) ShowThread(c *echo.Context) error {
	return u.showThread(c, nil)
}

// showThread renders the thread page; comp, when set, is a composer to
// show again with what was typed and why it was refused.
func (u *UI) showThread(c *echo.Context, comp *views.Composer) error {
	ctx := c.Request().Context()
	id := c.Param("thread_id")
	t, err := u.store.GetThread(ctx, id)
	if err != nil {
		return respond.StoreErr(err, "thread", id)
	}
	v := views.ThreadView{ID: t.ID, CreatedAt: t.CreatedAt, Metadata: sortedPairs(t.Metadata), PlaygroundHref: "/playground?thread=" + url.QueryEscape(t.ID)}
	if id := t.Metadata["response_id"]; id != "" {
		// A response's own thread: the playground opens its conversation
		// (if any) through the Responses API, not a run on this thread.
		v.ResponseID, v.PlaygroundHref = id, ""
		if rec, err := u.store.GetResponse(ctx, id); err == nil && rec.ConversationID != nil {
			v.PlaygroundHref = conversationURL(*rec.ConversationID, "", views.Overrides{})
		}
	}
	if v.Live, v.Truncated, err = u.threadLive(c, id); err != nil {
		return err
	}
	if v.Title, err = u.threadTitle(ctx, id); err != nil {
		return respond.Internal(err)
	}
	status := http.StatusOK
	if canEdit(c) {
		if comp == nil {
			comp = &views.Composer{}
		} else {
			status = http.StatusUnprocessableEntity
		}
		comp.CanRun = u.cfg.Engine != nil
		if comp.Assistants, err = u.assistantChoices(ctx); err != nil {
			return respond.Internal(err)
		}
		if comp.Selected == "" && v.Live.Latest != nil {
			comp.Selected = v.Live.Latest.AssistantID
		}
		comp.Disabled = v.Live.Active
		v.Composer = comp
	}
	title := "Thread " + id
	if v.Title != "" {
		title = clip(v.Title, 60)
	}
	return render(c, status, views.ThreadPage(u.page(c, title, "threads"), v))
}

// threadTitle is what the threads list shows for a thread: the start of
// its first message's text, on one line.
func (u *UI) threadTitle(ctx context.Context, id string) (string, error) {
	first, err := u.store.ThreadTranscript(ctx, id, 1)
	if err != nil || len(first) == 0 {
		return "", err
	}
	for _, p := range first[0].Content {
		if p.Text != nil {
			return clip(strings.Join(strings.Fields(p.Text.Value), " "), 160), nil
		}
	}
	return "", nil
}

// assistantChoices lists assistants for pickers: id and name (or id).
func (u *UI) assistantChoices(ctx context.Context) ([][2]string, error) {
	assistants, err := u.store.AllAssistants(ctx)
	if err != nil {
		return nil, err
	}
	out := make([][2]string, 0, len(assistants))
	for _, a := range assistants {
		label := deref(a.Name)
		if label == "" {
			label = a.ID
		}
		out = append(out, [2]string{a.ID, label})
	}
	return out, nil
}

func annotationFile(a db.Annotation) string {
	switch {
	case a.FileCitation != nil:
		return a.FileCitation.FileID
	case a.FilePath != nil:
		return a.FilePath.FileID
	}
	return ""
}

// messageView prepares a message for the page: text parts as sanitised
// Markdown with citation markers replaced by [n], images as links to the
// app's own file route (or an https URL).
func messageView(m db.Message, names map[string]string) views.MessageView {
	return messageViewWith(m, names, false)
}

// messageViewWith is messageView; remoteImages loads images from other
// sites (the admin's opt-in) instead of showing them as links.
func messageViewWith(m db.Message, names map[string]string, remoteImages bool) views.MessageView {
	mv := views.MessageView{ID: m.ID, Role: m.Role, Status: m.Status, CreatedAt: m.CreatedAt,
		AssistantID: deref(m.AssistantID), RunID: deref(m.RunID), Metadata: sortedPairs(m.Metadata)}
	for _, p := range m.Content {
		switch {
		case p.Type == "text" && p.Text != nil && m.Role == "user" && len(p.Text.Annotations) == 0:
			// A person's text is shown as typed: Markdown would join its
			// lines (code pasted without a fence became one line).
			mv.Parts = append(mv.Parts, views.Part{Kind: "plain", Text: p.Text.Value})
		case p.Type == "text" && p.Text != nil:
			text, cites := withCitationMarkers(p.Text.Value, p.Text.Annotations, names)
			mv.Parts = append(mv.Parts, views.Part{Kind: "text", HTML: renderMarkdownWith(text, remoteImages), Citations: cites})
		case p.Type == "image_file" && p.ImageFile != nil:
			mv.Parts = append(mv.Parts, views.Part{Kind: "image_file", ImageSrc: "/files/" + url.PathEscape(p.ImageFile.FileID) + "/content"})
		case p.Type == "image_url" && p.ImageURL != nil:
			if u, err := url.Parse(p.ImageURL.URL); err == nil && (u.Scheme == "https" || u.Scheme == "http") {
				kind := "image_link"
				if remoteImages {
					kind = "image_url"
				}
				mv.Parts = append(mv.Parts, views.Part{Kind: kind, ImageSrc: u.String()})
			}
		case p.Type == "refusal" && p.Refusal != nil:
			mv.Parts = append(mv.Parts, views.Part{Kind: "refusal", Refusal: *p.Refusal})
		}
	}
	for _, a := range m.Attachments {
		var tools []string
		for _, t := range a.Tools {
			tools = append(tools, t.Type)
		}
		mv.Attachments = append(mv.Attachments, views.Citation{FileID: a.FileID, FileName: names[a.FileID], Kind: strings.Join(tools, ", ")})
	}
	return mv
}

// withCitationMarkers replaces each annotation's text (OpenAI's
// "【4:0†source】" markers, or sandbox: paths) with a numbered "[n]".
// Indexes are in characters; annotations that do not fit are listed but
// left in place.
func withCitationMarkers(text string, anns []db.Annotation, names map[string]string) (string, []views.Citation) {
	if len(anns) == 0 {
		return text, nil
	}
	runes := []rune(text)
	sorted := make([]db.Annotation, len(anns))
	copy(sorted, anns)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].StartIndex < sorted[j].StartIndex })
	var out strings.Builder
	var cites []views.Citation
	pos := 0
	for i, a := range sorted {
		c := views.Citation{N: i + 1, Kind: a.Type, FileID: annotationFile(a)}
		c.FileName = names[c.FileID]
		cites = append(cites, c)
		if a.StartIndex < pos || a.EndIndex > len(runes) || a.StartIndex > a.EndIndex {
			continue
		}
		out.WriteString(string(runes[pos:a.StartIndex]))
		fmt.Fprintf(&out, " [%d]", c.N)
		pos = a.EndIndex
	}
	out.WriteString(string(runes[pos:]))
	return out.String(), cites
}

// ExportThread handles GET /threads/:thread_id/export.json and
// GET /threads/:thread_id/export.md.
func (u *UI) ExportThread(c *echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("thread_id")
	t, err := u.store.GetThread(ctx, id)
	if err != nil {
		return respond.StoreErr(err, "thread", id)
	}
	msgs, err := u.store.ThreadTranscript(ctx, id, maxExportMessages)
	if err != nil {
		return respond.Internal(err)
	}
	if msgs == nil {
		msgs = []db.Message{}
	}
	runs, err := u.store.ThreadRuns(ctx, id)
	if err != nil {
		return respond.Internal(err)
	}
	steps, err := u.store.ThreadSteps(ctx, id)
	if err != nil {
		return respond.Internal(err)
	}
	if runs == nil {
		runs = []db.Run{}
	}
	if steps == nil {
		steps = []db.RunStep{}
	}
	h := c.Response().Header()
	if strings.HasSuffix(c.Path(), ".json") {
		// Runs and their steps carry every tool call with its arguments
		// and output.
		b, err := json.MarshalIndent(struct {
			Thread   db.Thread    `json:"thread"`
			Messages []db.Message `json:"messages"`
			Runs     []db.Run     `json:"runs"`
			Steps    []db.RunStep `json:"run_steps"`
		}{t, msgs, runs, steps}, "", "  ")
		if err != nil {
			return respond.Internal(err)
		}
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": id + ".json"}))
		return c.Blob(http.StatusOK, "application/json", append(b, '\n'))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Thread %s\n\nCreated %s\n", t.ID, views.When(t.CreatedAt))
	for _, kv := range sortedPairs(t.Metadata) {
		fmt.Fprintf(&b, "- %s: %s\n", kv[0], kv[1])
	}
	writeConversationMarkdown(&b, msgs, steps)
	writeRunsMarkdown(&b, runs, steps)
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": id + ".md"}))
	return c.Blob(http.StatusOK, "text/markdown; charset=utf-8", []byte(b.String()))
}

// DeleteThread handles POST /threads/:thread_id/delete.
func (u *UI) DeleteThread(c *echo.Context) error {
	id := c.Param("thread_id")
	if u.cfg.Engine != nil {
		if err := u.cfg.Engine.StopThread(c.Request().Context(), id); err != nil {
			return respond.Internal(err)
		}
	}
	if err := u.store.DeleteThread(c.Request().Context(), id); err != nil {
		return respond.StoreErr(err, "thread", id)
	}
	return u.flash(c, "/threads", "Thread deleted.", false)
}

// ChromaCSS handles GET /static/chroma.css: the code-highlighting styles.
func (u *UI) ChromaCSS(c *echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=86400")
	return c.Blob(http.StatusOK, "text/css; charset=utf-8", chromaCSS())
}

// writeConversationMarkdown writes a thread's messages with its tool
// calls where they happened, in the order the thread page shows them
// (liveView): by time, and within one second a user message before the
// tools its run called, and those before the assistant's answer.
func writeConversationMarkdown(b *strings.Builder, msgs []db.Message, steps []db.RunStep) {
	type keyed struct {
		at, rank int64
		msg      *db.Message
		step     *db.RunStep
	}
	var items []keyed
	for i := range msgs {
		rank := int64(0)
		if msgs[i].Role == "assistant" {
			rank = 2
		}
		items = append(items, keyed{at: msgs[i].CreatedAt, rank: rank, msg: &msgs[i]})
	}
	for i := range steps {
		if len(steps[i].StepDetails.ToolCalls) > 0 {
			items = append(items, keyed{at: steps[i].CreatedAt, rank: 1, step: &steps[i]})
		}
	}
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].at != items[j].at {
			return items[i].at < items[j].at
		}
		return items[i].rank < items[j].rank
	})
	for _, it := range items {
		if st := it.step; st != nil {
			fmt.Fprintf(b, "\n## tool calls · %s · %s\n", st.Status, views.When(st.CreatedAt))
			for _, tc := range st.StepDetails.ToolCalls {
				writeToolCallMarkdown(b, tc)
			}
			continue
		}
		m := it.msg
		fmt.Fprintf(b, "\n## %s · %s\n\n", m.Role, views.When(m.CreatedAt))
		for _, p := range m.Content {
			switch {
			case p.Text != nil:
				b.WriteString(p.Text.Value + "\n")
			case p.ImageFile != nil:
				fmt.Fprintf(b, "[image: %s]\n", p.ImageFile.FileID)
			case p.ImageURL != nil:
				fmt.Fprintf(b, "[image: %s]\n", p.ImageURL.URL)
			case p.Refusal != nil:
				fmt.Fprintf(b, "> Refusal: %s\n", *p.Refusal)
			}
		}
	}
}

// mdFence writes a labelled block in a fence that Markdown in body cannot
// close early.
func mdFence(b *strings.Builder, label, body string) {
	fmt.Fprintf(b, "\n%s:\n\n````\n%s\n````\n", label, body)
}

// writeToolCallMarkdown writes one tool call: a function's arguments and
// output, code with its logs and images, or the chunks a search found.
func writeToolCallMarkdown(b *strings.Builder, tc db.ToolCall) {
	switch {
	case tc.Function != nil:
		fmt.Fprintf(b, "\n### %s `%s` (%s)\n", tc.Type, tc.Function.Name, tc.ID)
		mdFence(b, "Arguments", prettyJSON(tc.Function.Arguments))
		if tc.Function.Output != nil {
			mdFence(b, "Output", prettyJSON(*tc.Function.Output))
		} else {
			b.WriteString("\nOutput: (none yet)\n")
		}
	case tc.CodeInterpreter != nil:
		fmt.Fprintf(b, "\n### code_interpreter (%s)\n", tc.ID)
		mdFence(b, "Code", tc.CodeInterpreter.Input)
		for _, o := range tc.CodeInterpreter.Outputs {
			if o.Image != nil {
				fmt.Fprintf(b, "\n[image: %s]\n", o.Image.FileID)
			} else {
				mdFence(b, "Logs", o.Logs)
			}
		}
	case tc.FileSearch != nil:
		fmt.Fprintf(b, "\n### file_search (%s)\n\n", tc.ID)
		for _, res := range tc.FileSearch.Results {
			fmt.Fprintf(b, "- %s (%s), score %.3f\n", res.FileName, res.FileID, res.Score)
		}
	}
}

// writeRunsMarkdown appends the runs of a thread to its Markdown export:
// status, model, the real last_error, usage, and each step (its tool
// calls named; the conversation above shows them in full).
func writeRunsMarkdown(b *strings.Builder, runs []db.Run, steps []db.RunStep) {
	if len(runs) == 0 {
		return
	}
	b.WriteString("\n# Runs\n")
	for _, r := range runs {
		fmt.Fprintf(b, "\n## Run %s · %s\n\n- assistant: %s\n- model: %s\n- created: %s\n", r.ID, r.Status, r.AssistantID, r.Model, views.When(r.CreatedAt))
		if r.LastError != nil {
			fmt.Fprintf(b, "- last_error: %s\n", lastError(r.LastError))
		}
		if r.Usage != nil {
			fmt.Fprintf(b, "- tokens: prompt %d, completion %d, total %d\n", r.Usage.PromptTokens, r.Usage.CompletionTokens, r.Usage.TotalTokens)
		}
		for _, st := range steps {
			if st.RunID != r.ID {
				continue
			}
			fmt.Fprintf(b, "\n### Step %s · %s · %s\n", st.ID, st.Type, st.Status)
			if mc := st.StepDetails.MessageCreation; mc != nil {
				fmt.Fprintf(b, "\nCreated message %s.\n", mc.MessageID)
			}
			for _, tc := range st.StepDetails.ToolCalls {
				name := tc.Type
				if tc.Function != nil {
					name = tc.Type + " `" + tc.Function.Name + "`"
				}
				fmt.Fprintf(b, "- %s (%s)\n", name, tc.ID)
			}
		}
	}
}
