package apitest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
)

func newThread(t testing.TB, s *server) string {
	t.Helper()
	th, err := s.Client.Beta.Threads.New(context.Background(), openai.BetaThreadNewParams{})
	if err != nil {
		t.Fatalf("create thread: %v", err)
	}
	return th.ID
}

func uploadFile(t testing.TB, s *server, name, content string, purpose openai.FilePurpose) *openai.FileObject {
	t.Helper()
	f, err := s.Client.Files.New(context.Background(), openai.FileNewParams{
		File:    openai.File(strings.NewReader(content), name, "application/octet-stream"),
		Purpose: purpose,
	})
	if err != nil {
		t.Fatalf("upload %s: %v", name, err)
	}
	return f
}

func textMessage(text string) openai.BetaThreadMessageNewParams {
	return openai.BetaThreadMessageNewParams{Role: "user", Content: openai.BetaThreadMessageNewParamsContentUnion{OfString: openai.String(text)}}
}

func TestMessages(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()
	thread := newThread(t, s)
	img := uploadFile(t, s, "cat.png", "\x89PNG\r\n\x1a\nfake", openai.FilePurposeVision)
	doc := uploadFile(t, s, "notes.txt", "some notes", openai.FilePurposeAssistants)

	tests := []struct {
		name   string
		params openai.BetaThreadMessageNewParams
		want   string // the message JSON without id, created_at, thread_id
	}{
		{
			name:   "string content",
			params: textMessage("Hello <world> & \"friends\""),
			want: `{"role":"user","content":[{"type":"text","text":{"value":"Hello <world> & \"friends\"","annotations":[]}}],
				"attachments":[],"metadata":{}}`,
		},
		{
			name: "assistant role with metadata",
			params: openai.BetaThreadMessageNewParams{Role: "assistant", Content: openai.BetaThreadMessageNewParamsContentUnion{OfString: openai.String("Hi.")},
				Metadata: shared.Metadata{"source": "import"}},
			want: `{"role":"assistant","content":[{"type":"text","text":{"value":"Hi.","annotations":[]}}],
				"attachments":[],"metadata":{"source":"import"}}`,
		},
		{
			name: "content parts",
			params: openai.BetaThreadMessageNewParams{Role: "user", Content: openai.BetaThreadMessageNewParamsContentUnion{OfArrayOfContentParts: []openai.MessageContentPartParamUnion{
				openai.MessageContentPartParamOfText("Look:"),
				openai.MessageContentPartParamOfImageFile(openai.ImageFileParam{FileID: img.ID, Detail: "high"}),
				openai.MessageContentPartParamOfImageURL(openai.ImageURLParam{URL: "https://example.com/x.jpg"}),
				openai.MessageContentPartParamOfImageFile(openai.ImageFileParam{FileID: img.ID}),
			}}},
			want: `{"role":"user","content":[
				{"type":"text","text":{"value":"Look:","annotations":[]}},
				{"type":"image_file","image_file":{"file_id":"` + img.ID + `","detail":"high"}},
				{"type":"image_url","image_url":{"url":"https://example.com/x.jpg"}},
				{"type":"image_file","image_file":{"file_id":"` + img.ID + `"}}
			],"attachments":[],"metadata":{}}`,
		},
		{
			name: "attachments",
			params: openai.BetaThreadMessageNewParams{Role: "user", Content: openai.BetaThreadMessageNewParamsContentUnion{OfString: openai.String("see file")},
				Attachments: []openai.BetaThreadMessageNewParamsAttachment{
					{FileID: openai.String(doc.ID), Tools: []openai.BetaThreadMessageNewParamsAttachmentToolUnion{{OfCodeInterpreter: &openai.CodeInterpreterToolParam{}}}},
				}},
			want: `{"role":"user","content":[{"type":"text","text":{"value":"see file","annotations":[]}}],
				"attachments":[{"file_id":"` + doc.ID + `","tools":[{"type":"code_interpreter"}]}],"metadata":{}}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := s.Client.Beta.Threads.Messages.New(ctx, thread, tc.params)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(m.ID, "msg_") {
				t.Errorf("id = %q", m.ID)
			}
			got := decode(t, m.RawJSON())
			want := withIDs(t, tc.want, got).(map[string]any)
			for k, v := range map[string]any{"object": "thread.message", "thread_id": thread, "status": "completed",
				"incomplete_details": nil, "completed_at": nil, "incomplete_at": nil, "assistant_id": nil, "run_id": nil} {
				want[k] = v
			}
			// completed_at is a timestamp or null (wire contract §5.4); for a
			// message created through the API either is fine, as long as a
			// timestamp is not before created_at.
			g := got.(map[string]any)
			if ca, ok := g["completed_at"].(float64); ok && ca >= g["created_at"].(float64) {
				want["completed_at"] = ca
			}
			if diff := cmp.Diff(any(want), got); diff != "" {
				t.Errorf("create (-want +got):\n%s", diff)
			}
			again, err := s.Client.Beta.Threads.Messages.Get(ctx, thread, m.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, decode(t, again.RawJSON())); diff != "" {
				t.Errorf("retrieve (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("file_search attachment", func(t *testing.T) {
		// file_search attachments need the thread's vector store, which the
		// Foundation does not serve yet: the message is either stored with
		// the attachment or refused with a 400, never a 5xx.
		_, err := s.Client.Beta.Threads.Messages.New(ctx, newThread(t, s), openai.BetaThreadMessageNewParams{Role: "user",
			Content: openai.BetaThreadMessageNewParamsContentUnion{OfString: openai.String("search this")},
			Attachments: []openai.BetaThreadMessageNewParamsAttachment{{FileID: openai.String(doc.ID),
				Tools: []openai.BetaThreadMessageNewParamsAttachmentToolUnion{{OfFileSearch: &openai.BetaThreadMessageNewParamsAttachmentToolFileSearch{Type: "file_search"}}}}},
		})
		if err != nil {
			if ae := apiError(t, err); ae.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 200 or 400", ae.StatusCode)
			}
		}
	})

	t.Run("modify metadata", func(t *testing.T) {
		m, err := s.Client.Beta.Threads.Messages.New(ctx, thread, openai.BetaThreadMessageNewParams{Role: "user",
			Content: openai.BetaThreadMessageNewParamsContentUnion{OfString: openai.String("x")}, Metadata: shared.Metadata{"a": "1"}})
		if err != nil {
			t.Fatal(err)
		}
		mod, err := s.Client.Beta.Threads.Messages.Update(ctx, thread, m.ID, openai.BetaThreadMessageUpdateParams{Metadata: shared.Metadata{"b": "2"}})
		if err != nil {
			t.Fatal(err)
		}
		want := decode(t, m.RawJSON()).(map[string]any)
		want["metadata"] = map[string]any{"b": "2"}
		if diff := cmp.Diff(any(want), decode(t, mod.RawJSON())); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		// An empty modify changes nothing.
		same, err := s.Client.Beta.Threads.Messages.Update(ctx, thread, m.ID, openai.BetaThreadMessageUpdateParams{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(any(want), decode(t, same.RawJSON())); diff != "" {
			t.Errorf("empty modify (-want +got):\n%s", diff)
		}
	})

	t.Run("delete", func(t *testing.T) {
		th := newThread(t, s)
		var ids []string
		for i := range 3 {
			m, err := s.Client.Beta.Threads.Messages.New(ctx, th, textMessage(fmt.Sprint(i)))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, m.ID)
		}
		del, err := s.Client.Beta.Threads.Messages.Delete(ctx, th, ids[1])
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(decode(t, `{"id":"`+ids[1]+`","object":"thread.message.deleted","deleted":true}`), decode(t, del.RawJSON())); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		page, err := s.Client.Beta.Threads.Messages.List(ctx, th, openai.BetaThreadMessageListParams{Order: "asc"})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{ids[0], ids[2]}, messageIDs(page.Data)); diff != "" {
			t.Errorf("list after delete (-want +got):\n%s", diff)
		}
		notFound := apiErr{http.StatusNotFound, "invalid_request_error", "", "", "No message found with id '" + ids[1] + "'."}
		for name, call := range map[string]func() error{
			"retrieve": func() error { _, err := s.Client.Beta.Threads.Messages.Get(ctx, th, ids[1]); return err },
			"modify": func() error {
				_, err := s.Client.Beta.Threads.Messages.Update(ctx, th, ids[1], openai.BetaThreadMessageUpdateParams{Metadata: shared.Metadata{"a": "b"}})
				return err
			},
			"delete": func() error { _, err := s.Client.Beta.Threads.Messages.Delete(ctx, th, ids[1]); return err },
			// A message is found only under its own thread.
			"other thread": func() error { _, err := s.Client.Beta.Threads.Messages.Get(ctx, thread, ids[1]); return err },
		} {
			if diff := cmp.Diff(notFound, toAPIErr(apiError(t, call()))); diff != "" {
				t.Errorf("%s (-want +got):\n%s", name, diff)
			}
		}
		_, err = s.Client.Beta.Threads.Messages.Get(ctx, thread, ids[0])
		if diff := cmp.Diff(apiErr{http.StatusNotFound, "invalid_request_error", "", "", "No message found with id '" + ids[0] + "'."},
			toAPIErr(apiError(t, err))); diff != "" {
			t.Errorf("message under another thread (-want +got):\n%s", diff)
		}
	})

	t.Run("run_id filter", func(t *testing.T) {
		// No runs exist yet, so no message was created by one.
		page, err := s.Client.Beta.Threads.Messages.List(ctx, thread, openai.BetaThreadMessageListParams{RunID: openai.String("run_abc123")})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(decode(t, `{"object":"list","data":[],"first_id":null,"last_id":null,"has_more":false}`), decode(t, page.RawJSON())); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		all, err := s.Client.Beta.Threads.Messages.List(ctx, thread, openai.BetaThreadMessageListParams{})
		if err != nil {
			t.Fatal(err)
		}
		if len(all.Data) == 0 {
			t.Error("unfiltered list is empty")
		}
	})
}

func messageIDs(ms []openai.Message) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

// TestMessagePaging creates 45 messages as fast as the server takes them,
// so many share a created_at second, and pages through them every way the
// SDKs do. Order must follow creation exactly.
func TestMessagePaging(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()
	thread := newThread(t, s)
	const n = 45
	var ids []string
	seconds := map[int64]int{}
	for i := range n {
		m, err := s.Client.Beta.Threads.Messages.New(ctx, thread, textMessage(fmt.Sprintf("message %d", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
		seconds[m.CreatedAt]++
	}
	if len(seconds) == n {
		t.Logf("note: no two messages shared a created_at second; tie ordering untested this run")
	}
	rev := reversed(ids)

	t.Run("auto paging", func(t *testing.T) {
		for _, tc := range []struct {
			order openai.BetaThreadMessageListParamsOrder
			limit int64
			want  []string
		}{
			{"asc", 10, ids}, {"desc", 10, rev}, {"asc", 1, ids}, {"desc", 44, rev}, {"asc", 45, ids}, {"", 100, rev},
		} {
			var got []string
			iter := s.Client.Beta.Threads.Messages.ListAutoPaging(ctx, thread, openai.BetaThreadMessageListParams{Order: tc.order, Limit: openai.Int(tc.limit)})
			for iter.Next() {
				got = append(got, iter.Current().ID)
			}
			if err := iter.Err(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("order %q limit %d: (-want +got):\n%s", tc.order, tc.limit, diff)
			}
		}
	})

	t.Run("manual pages forward with after", func(t *testing.T) {
		for _, order := range []openai.BetaThreadMessageListParamsOrder{"asc", "desc"} {
			want := ids
			if order == "desc" {
				want = rev
			}
			var got []string
			params := openai.BetaThreadMessageListParams{Order: order, Limit: openai.Int(20)}
			for pageNo := 0; ; pageNo++ {
				page, err := s.Client.Beta.Threads.Messages.List(ctx, thread, params)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, messageIDs(page.Data)...)
				wantMore := len(got) < n
				if page.HasMore != wantMore {
					t.Errorf("%s page %d: has_more = %v, want %v", order, pageNo, page.HasMore, wantMore)
				}
				if !page.HasMore || pageNo > 5 {
					break
				}
				params.After = openai.String(page.Data[len(page.Data)-1].ID)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", order, diff)
			}
		}
	})

	t.Run("manual pages backward with before", func(t *testing.T) {
		// Start from the end of the asc order and walk back with before:
		// each page holds the items just before the cursor, in asc order.
		var pages [][]string
		cursor := ids[n-1]
		for range 10 {
			page, err := s.Client.Beta.Threads.Messages.List(ctx, thread, openai.BetaThreadMessageListParams{Order: "asc", Before: openai.String(cursor), Limit: openai.Int(20)})
			if err != nil {
				t.Fatal(err)
			}
			got := messageIDs(page.Data)
			pages = append(pages, got)
			if !page.HasMore {
				break
			}
			cursor = got[0]
		}
		want := [][]string{ids[24:44], ids[4:24], ids[0:4]}
		if diff := cmp.Diff(want, pages); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})

	t.Run("pages", func(t *testing.T) {
		tests := []struct {
			name        string
			params      openai.BetaThreadMessageListParams
			want        []string
			wantHasMore bool
		}{
			{"default 20 desc", openai.BetaThreadMessageListParams{}, rev[:20], true},
			{"exact fit", openai.BetaThreadMessageListParams{Order: "asc", Limit: openai.Int(45)}, ids, false},
			{"one short", openai.BetaThreadMessageListParams{Order: "asc", Limit: openai.Int(44)}, ids[:44], true},
			{"after to exact end", openai.BetaThreadMessageListParams{Order: "asc", After: openai.String(ids[34]), Limit: openai.Int(10)}, ids[35:], false},
			{"desc before", openai.BetaThreadMessageListParams{Before: openai.String(ids[40]), Limit: openai.Int(3)}, []string{ids[43], ids[42], ids[41]}, true},
			{"desc before newest", openai.BetaThreadMessageListParams{Before: openai.String(ids[44])}, []string{}, false},
			{"asc before exact", openai.BetaThreadMessageListParams{Order: "asc", Before: openai.String(ids[3]), Limit: openai.Int(3)}, ids[:3], false},
			{"after and before", openai.BetaThreadMessageListParams{Order: "asc", After: openai.String(ids[10]), Before: openai.String(ids[20])}, ids[11:20], false},
			{"after and before desc", openai.BetaThreadMessageListParams{After: openai.String(ids[20]), Before: openai.String(ids[10]), Limit: openai.Int(5)},
				[]string{ids[19], ids[18], ids[17], ids[16], ids[15]}, true},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				page, err := s.Client.Beta.Threads.Messages.List(ctx, thread, tc.params)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tc.want, messageIDs(page.Data)); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
				if page.HasMore != tc.wantHasMore {
					t.Errorf("has_more = %v, want %v", page.HasMore, tc.wantHasMore)
				}
			})
		}
	})

	t.Run("cursor from another thread", func(t *testing.T) {
		other := newThread(t, s)
		m, err := s.Client.Beta.Threads.Messages.New(ctx, other, textMessage("elsewhere"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Client.Beta.Threads.Messages.List(ctx, thread, openai.BetaThreadMessageListParams{After: openai.String(m.ID)})
		ae := apiError(t, err)
		if ae.StatusCode != http.StatusBadRequest || ae.Param != "after" {
			t.Errorf("got %+v, want 400 with param after", toAPIErr(ae))
		}
	})
}
