package apitest

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/param"
	"github.com/openai/openai-go/v3/shared"
)

// decode parses a JSON document into generic values for cmp.Diff.
func decode(t testing.TB, raw string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		t.Fatalf("decode %q: %v", truncate([]byte(raw), 200), err)
	}
	return v
}

// withIDs returns want (a JSON object) with the id and created_at of got,
// which the server assigns.
func withIDs(t testing.TB, want string, got any) any {
	t.Helper()
	w := decode(t, want).(map[string]any)
	g, _ := got.(map[string]any)
	for _, k := range []string{"id", "created_at"} {
		if _, ok := w[k]; !ok {
			w[k] = g[k]
		}
	}
	return w
}

func TestAssistantsCRUD(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()
	file, err := s.Client.Files.New(ctx, openai.FileNewParams{
		File:    openai.File(strings.NewReader("print(1)\n"), "tool.py", "text/x-python"),
		Purpose: openai.FilePurposeAssistants,
	})
	if err != nil {
		t.Fatalf("upload: %v", err)
	}

	start := time.Now().Unix()
	created, err := s.Client.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{
		Model:        "gpt-4o-mini",
		Name:         openai.String("Math Tutor"),
		Description:  openai.String("Helps with sums"),
		Instructions: openai.String("You are a tutor. Use <b>code</b> & explain."),
		Tools: []openai.AssistantToolUnionParam{
			{OfCodeInterpreter: &openai.CodeInterpreterToolParam{}},
			{OfFileSearch: &openai.FileSearchToolParam{FileSearch: openai.FileSearchToolFileSearchParam{
				MaxNumResults:  openai.Int(7),
				RankingOptions: openai.FileSearchToolFileSearchRankingOptionsParam{Ranker: "auto", ScoreThreshold: 0.5},
			}}},
			openai.AssistantToolParamOfFunction(shared.FunctionDefinitionParam{
				Name:        "get_weather",
				Description: openai.String("Weather for a city"),
				Parameters: shared.FunctionParameters{
					"type":                 "object",
					"properties":           map[string]any{"city": map[string]any{"type": "string"}},
					"required":             []string{"city"},
					"additionalProperties": false,
				},
				Strict: openai.Bool(true),
			}),
		},
		ToolResources: openai.BetaAssistantNewParamsToolResources{
			CodeInterpreter: openai.BetaAssistantNewParamsToolResourcesCodeInterpreter{FileIDs: []string{file.ID}},
		},
		Metadata:        shared.Metadata{"team": "math", "tier": "1"},
		Temperature:     openai.Float(0.5),
		TopP:            openai.Float(0.9),
		ReasoningEffort: shared.ReasoningEffortLow,
		ResponseFormat: openai.AssistantResponseFormatOptionParamOfJSONSchema(shared.ResponseFormatJSONSchemaJSONSchemaParam{
			Name: "answer",
			Schema: map[string]any{"type": "object", "properties": map[string]any{"n": map[string]any{"type": "number"}},
				"required": []string{"n"}, "additionalProperties": false},
			Strict: openai.Bool(true),
		}),
	})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if !strings.HasPrefix(created.ID, "asst_") || len(created.ID) < len("asst_")+16 {
		t.Errorf("id = %q, want asst_ and a long random part", created.ID)
	}
	if end := time.Now().Unix(); created.CreatedAt < start || created.CreatedAt > end {
		t.Errorf("created_at = %d, want Unix seconds within [%d, %d]", created.CreatedAt, start, end)
	}
	got := decode(t, created.RawJSON())
	want := withIDs(t, `{
		"object": "assistant",
		"name": "Math Tutor",
		"description": "Helps with sums",
		"model": "gpt-4o-mini",
		"instructions": "You are a tutor. Use <b>code</b> & explain.",
		"tools": [
			{"type": "code_interpreter"},
			{"type": "file_search", "file_search": {"max_num_results": 7, "ranking_options": {"ranker": "auto", "score_threshold": 0.5}}},
			{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
				"parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}, "strict": true}}
		],
		"tool_resources": {"code_interpreter": {"file_ids": ["`+file.ID+`"]}},
		"metadata": {"team": "math", "tier": "1"},
		"temperature": 0.5,
		"top_p": 0.9,
		"response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object", "properties": {"n": {"type": "number"}}, "required": ["n"], "additionalProperties": false}, "strict": true}}
	}`, got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("create response mismatch (-want +got):\n%s", diff)
	}
	// The SDK decodes the unions by their discriminators.
	if n := len(created.Tools); n != 3 || created.Tools[2].Function.Name != "get_weather" || created.Tools[1].FileSearch.MaxNumResults != 7 {
		t.Errorf("SDK tools = %+v", created.Tools)
	}
	if created.ResponseFormat.JSONSchema.Name != "answer" {
		t.Errorf("SDK response_format = %s", created.ResponseFormat.RawJSON())
	}

	t.Run("retrieve", func(t *testing.T) {
		a, err := s.Client.Beta.Assistants.Get(ctx, created.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(got, decode(t, a.RawJSON())); diff != "" {
			t.Errorf("retrieve differs from create (-want +got):\n%s", diff)
		}
	})

	t.Run("minimal create has defaults", func(t *testing.T) {
		a, err := s.Client.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{Model: "any-model-name"})
		if err != nil {
			t.Fatal(err)
		}
		g := decode(t, a.RawJSON())
		w := withIDs(t, `{"object": "assistant", "name": null, "description": null, "model": "any-model-name",
			"instructions": null, "tools": [], "tool_resources": {}, "metadata": {}, "temperature": null, "top_p": null,
			"response_format": "auto"}`, g)
		if diff := cmp.Diff(w, g); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if a.ResponseFormat.RawJSON() != `"auto"` {
			t.Errorf("SDK response_format = %s, want auto", a.ResponseFormat.RawJSON())
		}
	})

	t.Run("modify", func(t *testing.T) {
		a, err := s.Client.Beta.Assistants.Update(ctx, created.ID, openai.BetaAssistantUpdateParams{
			Name:        openai.String("Renamed"),
			Description: param.Null[string](),
			Metadata:    shared.Metadata{"team": "algebra"},
			Tools:       []openai.AssistantToolUnionParam{{OfCodeInterpreter: &openai.CodeInterpreterToolParam{}}},
			Model:       "gpt-4o",
		})
		if err != nil {
			t.Fatal(err)
		}
		g := decode(t, a.RawJSON())
		w := decode(t, created.RawJSON()).(map[string]any)
		w["name"], w["description"], w["model"] = "Renamed", nil, "gpt-4o"
		w["metadata"] = map[string]any{"team": "algebra"}
		w["tools"] = []any{map[string]any{"type": "code_interpreter"}}
		if diff := cmp.Diff(any(w), g); diff != "" {
			t.Errorf("modify: fields not sent must be kept (-want +got):\n%s", diff)
		}
		again, err := s.Client.Beta.Assistants.Get(ctx, created.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(g, decode(t, again.RawJSON())); diff != "" {
			t.Errorf("retrieve after modify (-want +got):\n%s", diff)
		}
	})

	t.Run("delete", func(t *testing.T) {
		a, err := s.Client.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{Model: "m"})
		if err != nil {
			t.Fatal(err)
		}
		del, err := s.Client.Beta.Assistants.Delete(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(decode(t, `{"id":"`+a.ID+`","object":"assistant.deleted","deleted":true}`), decode(t, del.RawJSON())); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		for name, call := range map[string]func() error{
			"retrieve": func() error { _, err := s.Client.Beta.Assistants.Get(ctx, a.ID); return err },
			"modify": func() error {
				_, err := s.Client.Beta.Assistants.Update(ctx, a.ID, openai.BetaAssistantUpdateParams{Name: openai.String("x")})
				return err
			},
			"delete": func() error { _, err := s.Client.Beta.Assistants.Delete(ctx, a.ID); return err },
		} {
			ae := apiError(t, call())
			got := apiErr{ae.StatusCode, ae.Type, ae.Param, ae.Code, ae.Message}
			want := apiErr{http.StatusNotFound, "invalid_request_error", "", "", "No assistant found with id '" + a.ID + "'."}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s after delete (-want +got):\n%s", name, diff)
			}
		}
	})
}

// apiErr is the comparable part of an *openai.Error.
type apiErr struct {
	Status            int
	Type, Param, Code string
	Message           string
}

func TestAssistantsList(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()

	empty, err := s.Client.Beta.Assistants.List(ctx, openai.BetaAssistantListParams{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(decode(t, `{"object":"list","data":[],"first_id":null,"last_id":null,"has_more":false}`), decode(t, empty.RawJSON())); diff != "" {
		t.Errorf("empty list (-want +got):\n%s", diff)
	}

	var ids []string // creation order
	for i := range 25 {
		a, err := s.Client.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{Model: "m", Name: openai.String(string(rune('a' + i)))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	rev := reversed(ids)

	t.Run("default is 20 newest first", func(t *testing.T) {
		page, err := s.Client.Beta.Assistants.List(ctx, openai.BetaAssistantListParams{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(rev[:20], assistantIDs(page.Data)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if !page.HasMore {
			t.Error("has_more = false, want true")
		}
		raw := decode(t, page.RawJSON()).(map[string]any)
		if raw["first_id"] != rev[0] || raw["last_id"] != rev[19] {
			t.Errorf("first_id, last_id = %v, %v; want %s, %s", raw["first_id"], raw["last_id"], rev[0], rev[19])
		}
	})

	tests := []struct {
		name        string
		params      openai.BetaAssistantListParams
		want        []string
		wantHasMore bool
	}{
		{"asc limit 5", openai.BetaAssistantListParams{Order: "asc", Limit: openai.Int(5)}, ids[:5], true},
		{"asc after", openai.BetaAssistantListParams{Order: "asc", After: openai.String(ids[4]), Limit: openai.Int(5)}, ids[5:10], true},
		{"asc after to the end", openai.BetaAssistantListParams{Order: "asc", After: openai.String(ids[19]), Limit: openai.Int(5)}, ids[20:], false},
		{"asc after last", openai.BetaAssistantListParams{Order: "asc", After: openai.String(ids[24])}, []string{}, false},
		{"desc after", openai.BetaAssistantListParams{After: openai.String(ids[10]), Limit: openai.Int(3)}, []string{ids[9], ids[8], ids[7]}, true},
		{"desc before", openai.BetaAssistantListParams{Before: openai.String(ids[10]), Limit: openai.Int(3)}, []string{ids[13], ids[12], ids[11]}, true},
		{"asc before", openai.BetaAssistantListParams{Order: "asc", Before: openai.String(ids[10]), Limit: openai.Int(3)}, []string{ids[7], ids[8], ids[9]}, true},
		{"asc before near start", openai.BetaAssistantListParams{Order: "asc", Before: openai.String(ids[2]), Limit: openai.Int(3)}, ids[:2], false},
		{"window", openai.BetaAssistantListParams{Order: "asc", After: openai.String(ids[3]), Before: openai.String(ids[8]), Limit: openai.Int(10)}, ids[4:8], false},
		{"window limited", openai.BetaAssistantListParams{Order: "asc", After: openai.String(ids[3]), Before: openai.String(ids[8]), Limit: openai.Int(2)}, ids[4:6], true},
		{"limit 100", openai.BetaAssistantListParams{Limit: openai.Int(100)}, rev, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page, err := s.Client.Beta.Assistants.List(ctx, tc.params)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, assistantIDs(page.Data)); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			if page.HasMore != tc.wantHasMore {
				t.Errorf("has_more = %v, want %v", page.HasMore, tc.wantHasMore)
			}
		})
	}

	t.Run("auto paging", func(t *testing.T) {
		for _, order := range []openai.BetaAssistantListParamsOrder{"asc", "desc"} {
			var got []string
			iter := s.Client.Beta.Assistants.ListAutoPaging(ctx, openai.BetaAssistantListParams{Order: order, Limit: openai.Int(7)})
			for iter.Next() {
				got = append(got, iter.Current().ID)
			}
			if err := iter.Err(); err != nil {
				t.Fatal(err)
			}
			want := ids
			if order == "desc" {
				want = rev
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("order %s (-want +got):\n%s", order, diff)
			}
		}
	})
}

func assistantIDs(as []openai.Assistant) []string {
	out := []string{}
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}

func reversed[T any](s []T) []T {
	out := make([]T, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}
