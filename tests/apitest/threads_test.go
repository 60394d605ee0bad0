package apitest

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
)

func TestThreads(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()

	t.Run("create with empty params", func(t *testing.T) {
		th, err := s.Client.Beta.Threads.New(ctx, openai.BetaThreadNewParams{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(th.ID, "thread_") {
			t.Errorf("id = %q", th.ID)
		}
		got := decode(t, th.RawJSON())
		want := withIDs(t, `{"object":"thread","tool_resources":{},"metadata":{}}`, got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		msgs, err := s.Client.Beta.Threads.Messages.List(ctx, th.ID, openai.BetaThreadMessageListParams{})
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs.Data) != 0 || msgs.HasMore {
			t.Errorf("messages = %s, want none", msgs.RawJSON())
		}
	})

	t.Run("create with messages and metadata", func(t *testing.T) {
		th, err := s.Client.Beta.Threads.New(ctx, openai.BetaThreadNewParams{
			Metadata: shared.Metadata{"user": "u1"},
			Messages: []openai.BetaThreadNewParamsMessage{
				{Role: "user", Content: openai.BetaThreadNewParamsMessageContentUnion{OfString: openai.String("first")}},
				{Role: "assistant", Content: openai.BetaThreadNewParamsMessageContentUnion{OfString: openai.String("second")},
					Metadata: shared.Metadata{"k": "v"}},
				{Role: "user", Content: openai.BetaThreadNewParamsMessageContentUnion{OfArrayOfContentParts: []openai.MessageContentPartParamUnion{
					openai.MessageContentPartParamOfText("third"),
					openai.MessageContentPartParamOfImageURL(openai.ImageURLParam{URL: "https://example.com/a.png", Detail: "low"}),
				}}},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		got := decode(t, th.RawJSON())
		if diff := cmp.Diff(withIDs(t, `{"object":"thread","tool_resources":{},"metadata":{"user":"u1"}}`, got), got); diff != "" {
			t.Errorf("thread (-want +got):\n%s", diff)
		}
		page, err := s.Client.Beta.Threads.Messages.List(ctx, th.ID, openai.BetaThreadMessageListParams{Order: "asc"})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Data) != 3 {
			t.Fatalf("got %d messages, want 3: %s", len(page.Data), page.RawJSON())
		}
		type msg struct {
			Role, Status, ThreadID string
			Content                string
			AssistantID, RunID     string
			Metadata               map[string]string
		}
		var gotMsgs []msg
		for _, m := range page.Data {
			raw := decode(t, m.RawJSON()).(map[string]any)
			if raw["assistant_id"] != nil || raw["run_id"] != nil {
				t.Errorf("message %s: assistant_id=%v run_id=%v, want null", m.ID, raw["assistant_id"], raw["run_id"])
			}
			gotMsgs = append(gotMsgs, msg{string(m.Role), string(m.Status), m.ThreadID, contentString(m.Content), m.AssistantID, m.RunID, m.Metadata})
		}
		wantMsgs := []msg{
			{"user", "completed", th.ID, "text:first", "", "", map[string]string{}},
			{"assistant", "completed", th.ID, "text:second", "", "", map[string]string{"k": "v"}},
			{"user", "completed", th.ID, "text:third|image_url:https://example.com/a.png:low", "", "", map[string]string{}},
		}
		if diff := cmp.Diff(wantMsgs, gotMsgs); diff != "" {
			t.Errorf("initial messages (-want +got):\n%s", diff)
		}
	})

	t.Run("retrieve modify delete", func(t *testing.T) {
		th, err := s.Client.Beta.Threads.New(ctx, openai.BetaThreadNewParams{
			Metadata: shared.Metadata{"a": "1", "b": "2"},
			Messages: []openai.BetaThreadNewParamsMessage{{Role: "user", Content: openai.BetaThreadNewParamsMessageContentUnion{OfString: openai.String("hi")}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Client.Beta.Threads.Get(ctx, th.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(decode(t, th.RawJSON()), decode(t, got.RawJSON())); diff != "" {
			t.Errorf("retrieve (-want +got):\n%s", diff)
		}

		mod, err := s.Client.Beta.Threads.Update(ctx, th.ID, openai.BetaThreadUpdateParams{Metadata: shared.Metadata{"c": "3"}})
		if err != nil {
			t.Fatal(err)
		}
		want := decode(t, th.RawJSON()).(map[string]any)
		want["metadata"] = map[string]any{"c": "3"}
		if diff := cmp.Diff(any(want), decode(t, mod.RawJSON())); diff != "" {
			t.Errorf("modify replaces metadata (-want +got):\n%s", diff)
		}
		got, err = s.Client.Beta.Threads.Get(ctx, th.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(any(want), decode(t, got.RawJSON())); diff != "" {
			t.Errorf("retrieve after modify (-want +got):\n%s", diff)
		}

		page, err := s.Client.Beta.Threads.Messages.List(ctx, th.ID, openai.BetaThreadMessageListParams{})
		if err != nil || len(page.Data) != 1 {
			t.Fatalf("messages before delete: %v, %v", page, err)
		}
		msgID := page.Data[0].ID

		del, err := s.Client.Beta.Threads.Delete(ctx, th.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(decode(t, `{"id":"`+th.ID+`","object":"thread.deleted","deleted":true}`), decode(t, del.RawJSON())); diff != "" {
			t.Errorf("delete (-want +got):\n%s", diff)
		}
		notFound := apiErr{http.StatusNotFound, "invalid_request_error", "", "", "No thread found with id '" + th.ID + "'."}
		for name, call := range map[string]func() error{
			"retrieve": func() error { _, err := s.Client.Beta.Threads.Get(ctx, th.ID); return err },
			"modify": func() error {
				_, err := s.Client.Beta.Threads.Update(ctx, th.ID, openai.BetaThreadUpdateParams{})
				return err
			},
			"delete": func() error { _, err := s.Client.Beta.Threads.Delete(ctx, th.ID); return err },
			"list messages": func() error {
				_, err := s.Client.Beta.Threads.Messages.List(ctx, th.ID, openai.BetaThreadMessageListParams{})
				return err
			},
			"create message": func() error {
				_, err := s.Client.Beta.Threads.Messages.New(ctx, th.ID, openai.BetaThreadMessageNewParams{Role: "user",
					Content: openai.BetaThreadMessageNewParamsContentUnion{OfString: openai.String("x")}})
				return err
			},
		} {
			if diff := cmp.Diff(notFound, toAPIErr(apiError(t, call()))); diff != "" {
				t.Errorf("%s after delete (-want +got):\n%s", name, diff)
			}
		}
		// The thread's messages went with it.
		_, err = s.Client.Beta.Threads.Messages.Get(ctx, th.ID, msgID)
		if ae := apiError(t, err); ae.StatusCode != http.StatusNotFound {
			t.Errorf("message after thread delete: status %d, want 404", ae.StatusCode)
		}
	})
}

func toAPIErr(ae *openai.Error) apiErr {
	return apiErr{ae.StatusCode, ae.Type, ae.Param, ae.Code, ae.Message}
}

// contentString summarises message content parts as "type:value|…".
func contentString(parts []openai.MessageContentUnion) string {
	var out []string
	for _, p := range parts {
		switch p.Type {
		case "text":
			out = append(out, "text:"+p.Text.Value)
		case "image_file":
			s := "image_file:" + p.ImageFile.FileID
			if p.ImageFile.Detail != "" {
				s += ":" + string(p.ImageFile.Detail)
			}
			out = append(out, s)
		case "image_url":
			s := "image_url:" + p.ImageURL.URL
			if p.ImageURL.Detail != "" {
				s += ":" + string(p.ImageURL.Detail)
			}
			out = append(out, s)
		default:
			out = append(out, p.Type+":?")
		}
	}
	return strings.Join(out, "|")
}
