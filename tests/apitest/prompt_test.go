package apitest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"
)

// TestPromptAssistantVersions: an assistant serves as a prompt with its
// instructions ({{variables}} substituted), temperature, top_p, response
// format and tool resources (its vector store searched by file_search, its
// file in code_interpreter's container); request fields override them;
// prompt.version picks a recorded version; a missing variable is a 400
// naming it, an unknown version a 400 on prompt.version.
func TestPromptAssistantVersions(t *testing.T) {
	t.Parallel()
	s, up := startCodeServer(t)
	ctx := streamContext(t)
	doc := uploadText(t, s, "octopus.txt", "Octopuses have three hearts and blue blood.")
	data := uploadText(t, s, "numbers.csv", "n\n4\n5\n")
	vs, err := s.Client.VectorStores.New(ctx, openai.VectorStoreNewParams{Name: openai.String("sea"), FileIDs: []string{doc}})
	if err != nil {
		t.Fatal(err)
	}
	schema := map[string]any{"type": "object", "properties": map[string]any{"answer": map[string]any{"type": "string"}},
		"required": []string{"answer"}, "additionalProperties": false}
	a, err := s.Client.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{
		Model:        "fake-model",
		Instructions: openai.String("You help {{customer}} with {{ topic }}."),
		Temperature:  openai.Float(0.3),
		TopP:         openai.Float(0.8),
		ResponseFormat: openai.AssistantResponseFormatOptionUnionParam{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "reply", Schema: schema, Strict: openai.Bool(true)}}},
		Tools: []openai.AssistantToolUnionParam{{OfFileSearch: &openai.FileSearchToolParam{}}, {OfCodeInterpreter: &openai.CodeInterpreterToolParam{}}},
		ToolResources: openai.BetaAssistantNewParamsToolResources{
			FileSearch:      openai.BetaAssistantNewParamsToolResourcesFileSearch{VectorStoreIDs: []string{vs.ID}},
			CodeInterpreter: openai.BetaAssistantNewParamsToolResourcesCodeInterpreter{FileIDs: []string{data}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]responses.ResponsePromptVariableUnionParam{
		"customer": {OfString: openai.String("Ann")},
		"topic":    {OfInputText: &responses.ResponseInputTextParam{Text: "taxes"}},
	}
	prompt := func(version string, v map[string]responses.ResponsePromptVariableUnionParam) responses.ResponsePromptParam {
		p := responses.ResponsePromptParam{ID: a.ID, Variables: v}
		if version != "" {
			p.Version = openai.String(version)
		}
		return p
	}
	input := func(s string) responses.ResponseNewParamsInputUnion {
		return responses.ResponseNewParamsInputUnion{OfString: openai.String(s)}
	}

	// The assistant's configuration, variables substituted.
	r, err := s.Client.Responses.New(ctx, responses.ResponseNewParams{Prompt: prompt("", vars),
		Input: input(`p1 hearts? [[call file_search {"query":"octopus hearts"}]]`)})
	if err != nil {
		t.Fatal(err)
	}
	if r.Instructions.OfString != "You help Ann with taxes." || r.Temperature != 0.3 || r.TopP != 0.8 ||
		r.Text.Format.Type != "json_schema" || r.Text.Format.Name != "reply" || !r.Text.Format.Strict {
		t.Errorf("response = %s", r.RawJSON())
	}
	if len(r.Output) < 1 || r.Output[0].Type != "file_search_call" {
		t.Fatalf("output = %s", r.RawJSON())
	}
	if anns := r.Output[len(r.Output)-1].Content[0].Annotations; len(anns) == 0 || anns[0].FileID != doc {
		t.Errorf("the assistant's vector store was not searched: %s", r.RawJSON())
	}
	req := requestsWith(up, "p1 hearts?")[0]
	if req.Messages[0].Text() != "You help Ann with taxes." || req.Temperature == nil || *req.Temperature != 0.3 ||
		req.TopP == nil || *req.TopP != 0.8 || req.ResponseFormat["type"] != "json_schema" {
		t.Errorf("upstream request: system %q, temperature %v, top_p %v, response_format %v",
			req.Messages[0].Text(), req.Temperature, req.TopP, req.ResponseFormat)
	}

	// Its file is in code_interpreter's container.
	r, err = s.Client.Responses.New(ctx, responses.ResponseNewParams{Prompt: prompt("", vars),
		Input:   input("p2 sum " + callDirective("import pandas as pd\nprint(pd.read_csv('/mnt/data/numbers.csv').n.sum())")),
		Include: []responses.ResponseIncludable{responses.ResponseIncludableCodeInterpreterCallOutputs}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Output) < 1 || r.Output[0].Type != "code_interpreter_call" || len(r.Output[0].Outputs) == 0 ||
		!strings.Contains(r.Output[0].Outputs[0].Logs, "9") {
		t.Errorf("code with the assistant's file: %s", r.RawJSON())
	}

	// Request fields override the assistant's.
	r, err = s.Client.Responses.New(ctx, responses.ResponseNewParams{Prompt: prompt("", vars), Input: input("p3 override"),
		Instructions: openai.String("Be terse."), Temperature: openai.Float(1.5), TopP: openai.Float(0.5),
		Text: responses.ResponseTextConfigParam{Format: responses.ResponseFormatTextConfigUnionParam{OfText: &shared.ResponseFormatTextParam{}}}})
	if err != nil {
		t.Fatal(err)
	}
	req = requestsWith(up, "p3 override")[0]
	if r.Instructions.OfString != "Be terse." || req.Messages[0].Text() != "Be terse." || *req.Temperature != 1.5 ||
		*req.TopP != 0.5 || r.Text.Format.Type != "text" || req.ResponseFormat["type"] == "json_schema" {
		t.Errorf("overrides: response %s; upstream temperature %v top_p %v format %v", r.RawJSON(), *req.Temperature, *req.TopP, req.ResponseFormat)
	}

	// A new version; the old one stays selectable.
	if _, err := s.Client.Beta.Assistants.Update(ctx, a.ID, openai.BetaAssistantUpdateParams{
		Instructions: openai.String("Version two for {{customer}}."), Temperature: openai.Float(0.9)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ version, marker, instructions string }{
		{"", "p4 current", "Version two for Ann."},
		{"2", "p4 two", "Version two for Ann."},
		{"1", "p4 one", "You help Ann with taxes."},
	} {
		r, err := s.Client.Responses.New(ctx, responses.ResponseNewParams{Prompt: prompt(tc.version, vars), Input: input(tc.marker)})
		if err != nil {
			t.Fatalf("version %q: %v", tc.version, err)
		}
		req := requestsWith(up, tc.marker)[0]
		if got := req.Messages[0].Text(); got != tc.instructions || r.Instructions.OfString != tc.instructions {
			t.Errorf("version %q: the model read %q, the response shows %q; want %q", tc.version, got, r.Instructions.OfString, tc.instructions)
		}
		if wantTemp := map[string]float64{"": 0.9, "2": 0.9, "1": 0.3}[tc.version]; *req.Temperature != wantTemp {
			t.Errorf("version %q: temperature %v, want %v", tc.version, *req.Temperature, wantTemp)
		}
	}

	// Errors: a missing variable (named), an unknown or malformed version.
	for _, tc := range []struct {
		name, body, param, text string
	}{
		{"missing variable", `{"input":"x","prompt":{"id":"` + a.ID + `","version":"1","variables":{"customer":"Ann"}}}`, "prompt.variables", "'topic'"},
		{"no variables", `{"input":"x","prompt":{"id":"` + a.ID + `"}}`, "prompt.variables", "'customer'"},
		{"unknown version", `{"input":"x","prompt":{"id":"` + a.ID + `","version":"7","variables":{"customer":"A"}}}`, "prompt.version", "no version 7"},
		{"malformed version", `{"input":"x","prompt":{"id":"` + a.ID + `","version":"latest","variables":{"customer":"A"}}}`, "prompt.version", "latest"},
		{"variable of another type", `{"input":"x","prompt":{"id":"` + a.ID + `","variables":{"customer":{"type":"input_image","image_url":"https://x/y.png"}}}}`, "prompt.variables.customer", "customer"},
	} {
		res := s.do(t, "POST", "/v1/responses", strings.NewReader(tc.body), http.Header{"Content-Type": {"application/json"}})
		var e struct {
			Error struct{ Message, Param string } `json:"error"`
		}
		if err := json.Unmarshal(res.Body, &e); err != nil || res.Status != http.StatusBadRequest ||
			e.Error.Param != tc.param || !strings.Contains(e.Error.Message, tc.text) {
			t.Errorf("%s: %d %s, want 400 on %s mentioning %s", tc.name, res.Status, res.Body, tc.param, tc.text)
		}
	}
}
