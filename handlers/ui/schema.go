package ui

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/views"
)

// functionExamples are the editor's Examples picker: a weather lookup,
// a lookup by id, and a function without parameters. All follow the strict
// rules, so they work with Strict on.
var functionExamples = []struct {
	key, label string
	fn         db.FunctionDef
}{
	{"weather", "Weather (location + unit)", db.FunctionDef{Name: "get_weather",
		Description: "Get the current weather for a location.",
		Parameters: json.RawMessage(`{"type":"object","properties":{"location":{"type":"string","description":"City and country, e.g. Paris, France"},` +
			`"unit":{"type":"string","enum":["celsius","fahrenheit"],"description":"Temperature unit"}},"required":["location","unit"],"additionalProperties":false}`)}},
	{"lookup", "Lookup by id", db.FunctionDef{Name: "get_order",
		Description: "Look up an order by its id.",
		Parameters: json.RawMessage(`{"type":"object","properties":{"order_id":{"type":"string","description":"The order id, e.g. ord_123","pattern":"^ord_[A-Za-z0-9]+$"}},` +
			`"required":["order_id"],"additionalProperties":false}`)}},
	{"none", "No parameters", db.FunctionDef{Name: "get_current_time",
		Description: "Get the current date and time.",
		Parameters:  json.RawMessage(`{"type":"object","properties":{},"required":[],"additionalProperties":false}`)}},
}

func exampleOptions() []views.Example {
	out := make([]views.Example, 0, len(functionExamples))
	for _, e := range functionExamples {
		out = append(out, views.Example{Key: e.key, Label: e.label})
	}
	return out
}

// prettyJSON indents raw JSON with two spaces; invalid JSON is returned
// unchanged (the validation says what is wrong with it).
func prettyJSON(raw string) string {
	var buf bytes.Buffer
	if err := json.Indent(&buf, []byte(strings.TrimSpace(raw)), "", "  "); err != nil {
		return raw
	}
	return buf.String()
}
