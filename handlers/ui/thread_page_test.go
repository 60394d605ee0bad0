package ui_test

import (
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/ui"
)

func textPart(s string) db.ContentPart {
	return db.ContentPart{Type: "text", Text: &db.Text{Value: s, Annotations: []db.Annotation{}}}
}

// What a reviewer of a thread notices: a person's text shown as typed
// (line breaks and indentation kept, nothing rendered as HTML), the
// attachments listed with their tools, the page headed by the thread's
// title as the list shows it, and search by word prefixes.
func TestThreadPageAsReviewed(t *testing.T) {
	a := newApp(t, "")
	c := a.user(db.RoleViewer)
	ctx := testCtx()
	sf, err := a.store.StageFile(strings.NewReader("x,y\n1,2\n"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	f, err := a.store.CommitFile(ctx, db.File{Filename: "data.csv", Purpose: "assistants", ContentType: "text/csv"}, sf, 0)
	if err != nil {
		t.Fatal(err)
	}
	code := "Plan my vacation:\nfor day in days:\n    pack(<b>day</b>)"
	th, _, err := a.store.CreateThread(ctx, db.Thread{}, []db.Message{
		{Role: "user", Status: "completed", Content: []db.ContentPart{textPart(code)},
			Attachments: []db.Attachment{{FileID: f.ID, Tools: []db.AttachmentTool{{Type: "code_interpreter"}}}}},
		{Role: "assistant", Status: "completed", Content: []db.ContentPart{textPart("**Sure**\nline two")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	doc := c.page("/threads/"+th.ID, http.StatusOK)
	user := doc.Find(`[data-role="user"] [data-testid="message-body"]`)
	if got := user.Text(); got != code {
		t.Errorf("the user's text is shown as %q, want it as typed %q", got, code)
	}
	if user.Find("b").Length() != 0 {
		t.Error("the user's <b> became markup")
	}
	if doc.Find(`[data-role="assistant"] [data-testid="message-body"] strong`).Length() != 1 {
		t.Error("the assistant's Markdown is not rendered")
	}
	att := testid(doc, "attachment")
	if att.Length() != 1 || !strings.Contains(att.Text(), "data.csv") || !strings.Contains(att.Text(), "code_interpreter") {
		t.Errorf("attachments: %q", att.Text())
	}
	if got := strings.TrimSpace(testid(doc, "thread-title").Text()); got != "Plan my vacation: for day in days: pack(<b>day</b>)" {
		t.Errorf("the page is headed %q", got)
	}
	if got := doc.Find("title").Text(); !strings.HasPrefix(got, "Plan my vacation") {
		t.Errorf("the page's title is %q", got)
	}
	// The list's title is the same.
	doc = c.page("/threads?q="+url.QueryEscape("vacat"), http.StatusOK)
	if rows := testid(doc, "thread-row"); rows.Length() != 1 || !strings.HasPrefix(testid(doc, "thread-title").Text(), "Plan my vacation") {
		t.Errorf("a search for a word's start finds %d threads (%q)", rows.Length(), testid(doc, "thread-title").Text())
	}
	if rows := testid(c.page("/threads?q=acation", http.StatusOK), "thread-row"); rows.Length() != 0 {
		t.Errorf("a search for a word's middle finds %d threads", rows.Length())
	}
}

// The composer's "Attach files" without script: a multipart form whose
// files are stored and attached for the tools ticked; with no tool
// ticked the message is refused in place and no file is stored.
func TestComposerAttachments(t *testing.T) {
	a := newApp(t, "")
	c := a.user(db.RoleEditor)
	ctx := testCtx()
	th, _, err := a.store.CreateThread(ctx, db.Thread{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	post := func(tools ...string) *http.Response {
		var body strings.Builder
		mw := multipart.NewWriter(&body)
		_ = mw.WriteField("csrf_token", c.token())
		_ = mw.WriteField("content", "see the file")
		_ = mw.WriteField("action", "add")
		for _, t := range tools {
			_ = mw.WriteField("attach_tool", t)
		}
		w, _ := mw.CreateFormFile("attachments", "notes.txt")
		_, _ = w.Write([]byte("some notes"))
		mw.Close()
		req, _ := http.NewRequest(http.MethodPost, c.base+"/threads/"+th.ID+"/messages", strings.NewReader(body.String()))
		req.Header.Set("Content-Type", mw.FormDataContentType())
		return c.do(req)
	}
	res := post()
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(testid(parse(t, res), "composer-error").Text(), "Pick what the attached files are for") {
		t.Errorf("no tool ticked: status %d", res.StatusCode)
	}
	if files, _ := a.store.ListFiles(ctx, "", db.ListParams{Limit: 10}); len(files.Data) != 0 {
		t.Errorf("a refused message stored %d files", len(files.Data))
	}
	if res := post("file_search", "code_interpreter", "bogus"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("attach: status %d", res.StatusCode)
	}
	msgs, err := a.store.ThreadTranscript(ctx, th.ID, 10)
	if err != nil || len(msgs) != 1 || len(msgs[0].Attachments) != 1 {
		t.Fatalf("messages %+v %v", msgs, err)
	}
	var tools []string
	for _, tl := range msgs[0].Attachments[0].Tools {
		tools = append(tools, tl.Type)
	}
	if got := strings.Join(tools, ","); got != "file_search,code_interpreter" {
		t.Errorf("attached for %q", got)
	}
	if f, err := a.store.GetFile(ctx, msgs[0].Attachments[0].FileID); err != nil || f.Filename != "notes.txt" || f.Purpose != "assistants" {
		t.Errorf("the attached file: %+v %v", f, err)
	}
}

// A sandbox that cannot run code is named on the assistant editor, where
// code_interpreter is switched on, not only in the server's log.
func TestCodeProblemShown(t *testing.T) {
	a := newAppWith(t, func(cfg *ui.Config, _ *db.Store) {
		cfg.CodeProblem = func() string { return "sandbox: /root does not let other users pass" }
	}, nil)
	doc := a.user(db.RoleEditor).page("/assistants/new", http.StatusOK)
	if got := testid(doc, "code-problem").Text(); !strings.Contains(got, "/root does not let other users pass") {
		t.Errorf("code problem shown as %q", got)
	}
	if doc := newApp(t, "").user(db.RoleEditor).page("/assistants/new", http.StatusOK); testid(doc, "code-problem").Length() != 0 {
		t.Error("a problem shown when there is none")
	}
}
