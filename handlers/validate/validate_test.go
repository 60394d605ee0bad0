package validate

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/assistantd/assistantd/db"
)

// files knows a fixed set of file ids; fail makes every lookup fail.
type files struct {
	known map[string]bool
	fail  error
}

func (f files) MissingFiles(_ context.Context, ids []string) ([]string, error) {
	if f.fail != nil {
		return nil, f.fail
	}
	var missing []string
	for _, id := range ids {
		if !f.known[id] {
			missing = append(missing, id)
		}
	}
	return missing, nil
}

func TestPathString(t *testing.T) {
	tests := []struct {
		p    Path
		want string
	}{
		{Path{}, ""},
		{P("model"), "model"},
		{P("tools", 2, "function", "name"), "tools[2].function.name"},
		{P("messages", 0, "content", 1, "image_file", "file_id"), "messages[0].content[1].image_file.file_id"},
		{P("tool_outputs").Index(3).Key("output"), "tool_outputs[3].output"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.p, got, tt.want)
		}
	}
	// Extending a path never writes into the array of another extension.
	base := make(Path, 1, 8)
	base[0] = "tools"
	a, b := base.Index(0), base.Index(1)
	if a.String() != "tools[0]" || b.String() != "tools[1]" {
		t.Errorf("extensions share storage: %s, %s", a, b)
	}
}

// problems returns where and which each problem of err is.
func problems(t *testing.T, err error) []string {
	t.Helper()
	es, ok := List(err)
	if !ok {
		t.Fatalf("not validation problems: %v", err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Path.String()+" "+e.Code)
	}
	return out
}

// An assistant with several mistakes reports every one, in the order of
// the request's fields, so a form can mark them all at once; the API
// answers with the first.
func TestAssistantReportsEveryProblem(t *testing.T) {
	temp, topP := 3.0, -1.0
	r := AssistantRequest{
		Model:       Some(""),
		Name:        Some(strings.Repeat("n", MaxName+1)),
		Temperature: Some(temp),
		TopP:        Some(topP),
		Tools: Some([]db.Tool{
			{Type: "code_interpreter"},
			{Type: "function", Function: &db.FunctionDef{Name: "get weather"}},
			{Type: "function", Function: &db.FunctionDef{Name: "f", Parameters: json.RawMessage(`{"type":"string"}`)}},
			{Type: "function", Function: &db.FunctionDef{Name: "f"}},
		}),
		ToolResources: Some(NewToolResources([]string{"file-known", "file-gone"}, nil)),
		Metadata:      Some(db.Metadata{"k": strings.Repeat("v", MaxMetadataValue+1)}),
	}
	var a db.Assistant
	err := Assistant(context.Background(), files{known: map[string]bool{"file-known": true}}, r, &a)
	want := []string{
		"model invalid_value",
		"name string_above_max_length",
		"tools[1].function.name invalid_value",
		"tools[2].function.parameters invalid_function_parameters",
		"tools[3].function.name invalid_value",
		"tool_resources.code_interpreter.file_ids invalid_value",
		"metadata.k string_above_max_length",
		"temperature decimal_above_max_value",
		"top_p decimal_below_min_value",
	}
	if diff := cmp.Diff(want, problems(t, err)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	es, _ := List(err)
	if got := es[4].Text(); got != "Function 2 already uses this name." {
		t.Errorf("duplicate name hint = %q", got)
	}
}

// A failed lookup is not the client's mistake: it comes back as itself.
func TestLookupFailureIsNotAProblem(t *testing.T) {
	boom := errors.New("disk on fire")
	_, err := Message(context.Background(), files{fail: boom}, Path{}, MessageRequest{Role: "user", Content: TextContent("hi"),
		Attachments: Some([]AttachmentRequest{{FileID: "file-1"}})})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the lookup's", err)
	}
	if _, ok := List(err); ok {
		t.Error("a lookup failure reads as a validation problem")
	}
}

func TestFunctionSchemas(t *testing.T) {
	strict := true
	tests := []struct {
		name, params string
		strict       bool
		want         []string // hints, in order
	}{
		{"no parameters", ``, false, nil},
		{"null parameters", `null`, false, nil},
		{"empty schema", `{}`, false, nil},
		{"properties without type", `{"properties":{"city":{"type":"string"}}}`, false, nil},
		// What zod-to-json-schema and pydantic emit: a $schema of another
		// draft (known to the library, nothing fetched) and local refs.
		{"draft-07 with local refs", `{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"a":{"$ref":"#/definitions/A"}},"definitions":{"A":{"type":"string"}}}`, false, nil},
		{"pydantic $defs", `{"type":"object","properties":{"a":{"$ref":"#/$defs/A"}},"$defs":{"A":{"type":"object","properties":{"b":{"type":"integer"}},"required":["b"],"additionalProperties":false}},"required":["a"],"additionalProperties":false}`, true, nil},
		{"strict and complete", `{"type":"object","properties":{"a":{"type":"string"}},"required":["a"],"additionalProperties":false}`, true, nil},
		{"array", `[1]`, false, []string{"The schema must be a JSON object ({…}), not an array."}},
		{"bad keyword value", `{"type":"object","properties":{"a":{"type":"text"}}}`, false,
			[]string{"Not a valid JSON Schema (2020-12) at /properties/a/type: value must be one of 'array', 'boolean', 'integer', 'null', 'number', 'object', 'string'."}},
		{"string at the top", `{"type":"string"}`, false, []string{`The parameters must describe an object: set "type": "object" at the top level.`}},
		{"strict nested", `{"type":"object","properties":{"a":{"type":"object","properties":{"b":{"type":"string"}}}},"required":["a"],"additionalProperties":false}`, true,
			[]string{`Strict: at /properties/a, set "additionalProperties": false.`,
				`Strict: at /properties/a, every property must be required; add "b" to "required" (use a "null" type for optional values).`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := db.FunctionDef{Name: "f", Parameters: json.RawMessage(tt.params)}
			if tt.strict {
				f.Strict = &strict
			}
			var got []string
			for _, e := range Function(P("tools", 0, "function"), &f) {
				if e.Path.String() != "tools[0].function.parameters" {
					t.Errorf("problem at %s", e.Path)
				}
				got = append(got, e.Text())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("hints (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseJSON(t *testing.T) {
	raw, err := ParseJSON(P("schema"), "{\n  \"type\": \"object\"\n}")
	if err != nil || string(raw) != `{"type":"object"}` {
		t.Errorf("ParseJSON = %s, %v", raw, err)
	}
	_, err = ParseJSON(P("schema"), "{\n  \"type\": \"object\",,\n}")
	es, ok := List(err)
	if !ok || !strings.Contains(es[0].Text(), "line 2, column") || es[0].Path.String() != "schema" {
		t.Errorf("syntax error = %v", err)
	}
	if raw, err := ParseJSON(P("schema"), "  "); raw != nil || err != nil {
		t.Errorf("blank = %s, %v; want nothing", raw, err)
	}
}

// Run overrides replace the assistant's values only where given, and a
// tool_choice is checked against the run's tools, not the assistant's.
func TestRunOverrides(t *testing.T) {
	instr := "Be brief."
	temp := 0.2
	asst := db.Assistant{ID: "asst_1", Model: "m", Instructions: &instr, Temperature: &temp,
		Tools: []db.Tool{{Type: "function", Function: &db.FunctionDef{Name: "lookup"}}}, ResponseFormat: json.RawMessage(`"auto"`)}
	more := "Answer in French."
	r, err := Run(RunFields{AssistantID: Some("asst_1"), Model: Some("other"), TopP: Some(0.5)}, asst, &more)
	if err != nil {
		t.Fatal(err)
	}
	if r.Model != "other" || *r.Temperature != 0.2 || *r.TopP != 0.5 || r.Instructions != "Be brief.\n\nAnswer in French." ||
		!slices.EqualFunc(r.Tools, asst.Tools, func(a, b db.Tool) bool { return a.Function.Name == b.Function.Name }) {
		t.Errorf("run = %+v", r)
	}
	_, err = Run(RunFields{AssistantID: Some("asst_1"), Tools: Some([]db.Tool{{Type: "code_interpreter"}}),
		ToolChoice: Some(json.RawMessage(`{"type":"function","function":{"name":"lookup"}}`))}, asst, nil)
	if diff := cmp.Diff([]string{"tool_choice.function.name invalid_value"}, problems(t, err)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	// NaN passes every comparison; a form can send it, JSON cannot.
	_, err = Run(RunFields{AssistantID: Some("asst_1"), Temperature: Some(math.NaN())}, asst, nil)
	if diff := cmp.Diff([]string{"temperature invalid_value"}, problems(t, err)); diff != "" {
		t.Errorf("NaN temperature (-want +got):\n%s", diff)
	}
	if _, err := (RunFields{}).AssistantRef(); err == nil {
		t.Error("a run without an assistant passed")
	}
}

// BenchmarkAssistantWithFunctions measures validating an assistant of ten
// strict functions, each schema checked against the metaschema.
func BenchmarkAssistantWithFunctions(b *testing.B) {
	params := json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":["string","null"],"enum":["c","f",null]}},"required":["city","unit"],"additionalProperties":false}`)
	strict := true
	var tools []db.Tool
	for i := range 10 {
		tools = append(tools, db.Tool{Type: "function", Function: &db.FunctionDef{Name: "fn_" + string(rune('a'+i)), Parameters: params, Strict: &strict}})
	}
	r := AssistantRequest{Model: Some("m"), Tools: Some(tools)}
	for b.Loop() {
		var a db.Assistant
		if err := Assistant(context.Background(), files{}, r, &a); err != nil {
			b.Fatal(err)
		}
	}
}
