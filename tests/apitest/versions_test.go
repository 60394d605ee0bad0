package apitest

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// assistantVersion is an assistant version as GET …/versions/{n} shows it.
type assistantVersion struct {
	Object      string `json:"object"`
	AssistantID string `json:"assistant_id"`
	Version     int    `json:"version"`
	CreatedAt   int64  `json:"created_at"`
	CreatedBy   struct {
		Type, ID, Name string
	} `json:"created_by"`
	Assistant openai.Assistant `json:"assistant"`
}

type versionList struct {
	Object  string             `json:"object"`
	Data    []assistantVersion `json:"data"`
	FirstID *string            `json:"first_id"`
	LastID  *string            `json:"last_id"`
	HasMore bool               `json:"has_more"`
}

// TestAssistantVersions: every change through the API records a version
// with the key that made it and the full configuration; an unchanged
// modify records none; the list pages by version number; a missing version
// or assistant is a 404, a bad number a 400.
func TestAssistantVersions(t *testing.T) {
	t.Parallel()
	s := newServer(t, "", t.TempDir()) // a stored, named key: "generated on first start"
	s.Key = generatedKey(s)
	s.connect()
	ctx := context.Background()

	a, err := s.Client.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{Model: "fake-model",
		Name: openai.String("Helper"), Instructions: openai.String("Be brief.")})
	if err != nil {
		t.Fatal(err)
	}
	edits := []openai.BetaAssistantUpdateParams{
		{Instructions: openai.String("Be brief.\nAnswer in French.")},
		{Instructions: openai.String("Be brief.\nAnswer in French.")}, // no change: no version
		{Temperature: openai.Float(0.3), Tools: []openai.AssistantToolUnionParam{{OfCodeInterpreter: &openai.CodeInterpreterToolParam{}}}},
		{Metadata: shared.Metadata{"stage": "prod"}},
	}
	for i, e := range edits {
		if _, err := s.Client.Beta.Assistants.Update(ctx, a.ID, e); err != nil {
			t.Fatalf("edit %d: %v", i, err)
		}
	}

	var all versionList
	if err := s.Client.Get(ctx, "assistants/"+a.ID+"/versions", nil, &all, option.WithQuery("order", "asc")); err != nil {
		t.Fatal(err)
	}
	var nums []int
	for _, v := range all.Data {
		nums = append(nums, v.Version)
		if v.Object != "assistant.version" || v.AssistantID != a.ID || v.Assistant.ID != a.ID || v.CreatedAt == 0 {
			t.Errorf("version %d: object %q, assistant_id %q, assistant.id %q, created_at %d", v.Version, v.Object, v.AssistantID, v.Assistant.ID, v.CreatedAt)
		}
		if v.CreatedBy.Type != "api_key" || v.CreatedBy.Name != "generated on first start" || v.CreatedBy.ID == "" {
			t.Errorf("version %d created_by = %+v, want the generated key", v.Version, v.CreatedBy)
		}
	}
	if !slices.Equal(nums, []int{1, 2, 3, 4}) {
		t.Fatalf("versions %v, want 1..4 (the unchanged modify records none)", nums)
	}
	if got := all.Data[0].Assistant.Instructions; got != "Be brief." {
		t.Errorf("v1 instructions %q", got)
	}
	if got := all.Data[1].Assistant.Instructions; got != "Be brief.\nAnswer in French." {
		t.Errorf("v2 instructions %q", got)
	}
	v3 := all.Data[2].Assistant
	if v3.Temperature != 0.3 || len(v3.Tools) != 1 || v3.Tools[0].Type != "code_interpreter" || len(v3.Metadata) != 0 {
		t.Errorf("v3 = temperature %v, tools %v, metadata %v", v3.Temperature, v3.Tools, v3.Metadata)
	}
	if all.Data[3].Assistant.Metadata["stage"] != "prod" || all.Data[3].Assistant.Temperature != 0.3 {
		t.Errorf("v4 = %+v", all.Data[3].Assistant)
	}

	// Paging: newest first by default, cursors are version numbers.
	var page versionList
	if err := s.Client.Get(ctx, "assistants/"+a.ID+"/versions", nil, &page, option.WithQuery("limit", "2")); err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 2 || page.Data[0].Version != 4 || !page.HasMore || page.LastID == nil || *page.LastID != "3" {
		t.Fatalf("first page: %d items, has_more %v, last_id %v", len(page.Data), page.HasMore, page.LastID)
	}
	if err := s.Client.Get(ctx, "assistants/"+a.ID+"/versions", nil, &page, option.WithQuery("limit", "2"),
		option.WithQuery("after", *page.LastID)); err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 2 || page.Data[0].Version != 2 || page.Data[1].Version != 1 || page.HasMore {
		t.Fatalf("second page: %+v has_more %v", page.Data, page.HasMore)
	}

	var one assistantVersion
	if err := s.Client.Get(ctx, "assistants/"+a.ID+"/versions/2", nil, &one); err != nil {
		t.Fatal(err)
	}
	if one.Version != 2 || one.Assistant.Instructions != "Be brief.\nAnswer in French." {
		t.Errorf("version 2 = %+v", one)
	}

	for _, tc := range []struct {
		path   string
		status int
	}{
		{"assistants/" + a.ID + "/versions/9", http.StatusNotFound},
		{"assistants/" + a.ID + "/versions/x", http.StatusBadRequest},
		{"assistants/" + a.ID + "/versions/0", http.StatusBadRequest},
		{"assistants/asst_missing/versions", http.StatusNotFound},
		{"assistants/" + a.ID + "/versions?after=77", http.StatusBadRequest},
	} {
		err := s.Client.Get(ctx, tc.path, nil, &one)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != tc.status {
			t.Errorf("GET %s: %v, want %d", tc.path, err, tc.status)
		}
	}

	// Deleting the assistant takes its history with it.
	if _, err := s.Client.Beta.Assistants.Delete(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	err = s.Client.Get(ctx, "assistants/"+a.ID+"/versions/1", nil, &one)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
		t.Errorf("version of a deleted assistant: %v", err)
	}
}
