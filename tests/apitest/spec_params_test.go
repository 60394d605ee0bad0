package apitest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

// specDoc is the OpenAPI document as JSON values (parsed apart from the
// compiled schemas, which do not expose it).
var specDoc = sync.OnceValues(func() (map[string]any, error) {
	raw, err := os.ReadFile(specPath)
	if err != nil {
		return nil, err
	}
	var y any
	if err := yaml.Unmarshal(raw, &y); err != nil {
		return nil, err
	}
	v, err := jsonValue(y)
	if err != nil {
		return nil, err
	}
	return v.(map[string]any), nil
})

// specProperties lists the properties of a component schema.
func specProperties(t testing.TB, name string) []string {
	t.Helper()
	doc, err := specDoc()
	if err != nil {
		t.Fatal(err)
	}
	s, ok := doc["components"].(map[string]any)["schemas"].(map[string]any)[name].(map[string]any)
	if !ok {
		t.Fatalf("no schema %s", name)
	}
	var out []string
	for p := range s["properties"].(map[string]any) {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// TestSpecParametersAccepted sends every property of the spec's request
// schemas (as null, on top of a valid body) and checks that none is refused
// as unknown: current SDKs may send any of them.
func TestSpecParametersAccepted(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	thread := newThread(t, s)
	asst := s.doJSON(t, "POST", "/v1/assistants", `{"model":"m"}`)
	var a struct{ ID string }
	json.Unmarshal(asst.Body, &a)
	msg := s.doJSON(t, "POST", "/v1/threads/"+thread+"/messages", `{"role":"user","content":"x"}`)
	var m struct{ ID string }
	json.Unmarshal(msg.Body, &m)

	tests := []struct {
		schema, method, path string
		base                 map[string]any
	}{
		{"CreateAssistantRequest", "POST", "/v1/assistants", map[string]any{"model": "m"}},
		{"ModifyAssistantRequest", "POST", "/v1/assistants/" + a.ID, map[string]any{}},
		{"CreateThreadRequest", "POST", "/v1/threads", map[string]any{}},
		{"ModifyThreadRequest", "POST", "/v1/threads/" + thread, map[string]any{}},
		{"CreateMessageRequest", "POST", "/v1/threads/" + thread + "/messages", map[string]any{"role": "user", "content": "x"}},
		{"ModifyMessageRequest", "POST", "/v1/threads/" + thread + "/messages/" + m.ID, map[string]any{}},
	}
	for _, tc := range tests {
		props := specProperties(t, tc.schema)
		if len(props) == 0 {
			t.Fatalf("%s has no properties", tc.schema)
		}
		for _, p := range props {
			t.Run(fmt.Sprintf("%s.%s", tc.schema, p), func(t *testing.T) {
				body := map[string]any{}
				for k, v := range tc.base {
					body[k] = v
				}
				body[p] = nil
				b, _ := json.Marshal(body)
				res := s.doJSON(t, tc.method, tc.path, string(b))
				if res.Status == http.StatusOK {
					return
				}
				var env struct{ Error envelope }
				json.Unmarshal(res.Body, &env)
				if res.Status != http.StatusBadRequest || (env.Error.Code != nil && *env.Error.Code == "unknown_parameter") {
					t.Errorf("%s with %s: null: %d %s", tc.path, p, res.Status, res.Body)
				}
			})
		}
	}
}
