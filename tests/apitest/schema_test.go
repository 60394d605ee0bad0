package apitest

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// specPath is OpenAI's OpenAPI document, copied into the repository (see
// ../testdata/SOURCE.md) so the tests depend on nothing outside it.
const (
	specPath = "../testdata/openai-openapi.yaml"
	specURL  = "https://assistantd.test/openai-openapi.json"
)

// route maps one API operation to the component schema of its 2xx body.
// Every non-2xx JSON body is checked against ErrorResponse instead. A later
// issue adds its endpoints (runs, steps, vector stores) by appending rows.
type route struct {
	method string
	path   *regexp.Regexp
	schema string // "" for a non-JSON body (file content), which is not validated
}

func r(method, pattern, schema string) route {
	// {id} matches one path segment.
	re := regexp.QuoteMeta(pattern)
	re = strings.ReplaceAll(re, `\{id\}`, `[^/]+`)
	return route{method: method, path: regexp.MustCompile("^/v1" + re + "$"), schema: schema}
}

var routes = []route{
	r("GET", "/assistants", "ListAssistantsResponse"),
	r("POST", "/assistants", "AssistantObject"),
	r("GET", "/assistants/{id}", "AssistantObject"),
	r("POST", "/assistants/{id}", "AssistantObject"),
	r("DELETE", "/assistants/{id}", "DeleteAssistantResponse"),

	r("POST", "/threads", "ThreadObject"),
	r("POST", "/threads/runs", "RunObject"), // before POST /threads/{id}, which it would match
	r("GET", "/threads/{id}", "ThreadObject"),
	r("POST", "/threads/{id}", "ThreadObject"),
	r("DELETE", "/threads/{id}", "DeleteThreadResponse"),

	r("GET", "/threads/{id}/messages", "ListMessagesResponse"),
	r("POST", "/threads/{id}/messages", "MessageObject"),
	r("GET", "/threads/{id}/messages/{id}", "MessageObject"),
	r("POST", "/threads/{id}/messages/{id}", "MessageObject"),
	r("DELETE", "/threads/{id}/messages/{id}", "DeleteMessageResponse"),

	r("GET", "/files", "ListFilesResponse"),
	r("POST", "/files", "OpenAIFile"),
	r("GET", "/files/{id}", "OpenAIFile"),
	r("DELETE", "/files/{id}", "DeleteFileResponse"),
	r("GET", "/files/{id}/content", ""),

	r("GET", "/threads/{id}/runs", "ListRunsResponse"),
	r("POST", "/threads/{id}/runs", "RunObject"),
	r("GET", "/threads/{id}/runs/{id}", "RunObject"),
	r("POST", "/threads/{id}/runs/{id}", "RunObject"),
	r("POST", "/threads/{id}/runs/{id}/cancel", "RunObject"),
	r("POST", "/threads/{id}/runs/{id}/submit_tool_outputs", "RunObject"),
	r("GET", "/threads/{id}/runs/{id}/steps", "ListRunStepsResponse"),
	r("GET", "/threads/{id}/runs/{id}/steps/{id}", "RunStepObject"),
	r("GET", "/models", "ListModelsResponse"),

	r("GET", "/vector_stores", "ListVectorStoresResponse"),
	r("POST", "/vector_stores", "VectorStoreObject"),
	r("GET", "/vector_stores/{id}", "VectorStoreObject"),
	r("POST", "/vector_stores/{id}", "VectorStoreObject"),
	r("DELETE", "/vector_stores/{id}", "DeleteVectorStoreResponse"),
	r("GET", "/vector_stores/{id}/files", "ListVectorStoreFilesResponse"),
	r("POST", "/vector_stores/{id}/files", "VectorStoreFileObject"),
	r("GET", "/vector_stores/{id}/files/{id}", "VectorStoreFileObject"),
	r("POST", "/vector_stores/{id}/files/{id}", "VectorStoreFileObject"),
	r("DELETE", "/vector_stores/{id}/files/{id}", "DeleteVectorStoreFileResponse"),
	r("GET", "/vector_stores/{id}/files/{id}/content", "VectorStoreFileContentResponse"),
	r("POST", "/vector_stores/{id}/file_batches", "VectorStoreFileBatchObject"),
	r("GET", "/vector_stores/{id}/file_batches/{id}", "VectorStoreFileBatchObject"),
	r("POST", "/vector_stores/{id}/file_batches/{id}/cancel", "VectorStoreFileBatchObject"),
	r("GET", "/vector_stores/{id}/file_batches/{id}/files", "ListVectorStoreFilesResponse"),
	r("POST", "/vector_stores/{id}/search", "VectorStoreSearchResultsPage"),
	r("POST", "/uploads", "Upload"),
	r("POST", "/uploads/{id}/parts", "UploadPart"),
	r("POST", "/uploads/{id}/complete", "Upload"),
	r("POST", "/uploads/{id}/cancel", "Upload"),
	r("POST", "/responses", "Response"),
	r("POST", "/responses/input_tokens", "TokenCountsResource"),
	r("POST", "/responses/compact", "CompactResource"),
	r("GET", "/responses/{id}", "Response"),
	r("DELETE", "/responses/{id}", ""), // 200 with no body schema in the spec
	r("POST", "/responses/{id}/cancel", "Response"),
	r("GET", "/responses/{id}/input_items", "ResponseItemList"),
	r("POST", "/conversations", "ConversationResource"),
	r("GET", "/conversations/{id}", "ConversationResource"),
	r("POST", "/conversations/{id}", "ConversationResource"),
	r("DELETE", "/conversations/{id}", "DeletedConversationResource"),
	r("GET", "/conversations/{id}/items", "ConversationItemList"),
	r("POST", "/conversations/{id}/items", "ConversationItemList"),
	r("GET", "/conversations/{id}/items/{id}", "ConversationItem"),
	r("DELETE", "/conversations/{id}/items/{id}", "ConversationResource"),
	r("POST", "/threads/{id}/conversation", "ConversationResource"), // extension
	r("GET", "/containers", "ContainerListResource"),
	r("POST", "/containers", "ContainerResource"),
	r("GET", "/containers/{id}", "ContainerResource"),
	r("DELETE", "/containers/{id}", ""), // 200 with no body schema in the spec
	r("GET", "/containers/{id}/files", "ContainerFileListResource"),
	r("POST", "/containers/{id}/files", "ContainerFileResource"),
	r("GET", "/containers/{id}/files/{id}", "ContainerFileResource"),
	r("DELETE", "/containers/{id}/files/{id}", ""),
	r("GET", "/containers/{id}/files/{id}/content", ""),
	// assistantd's webhook extension has no schema in OpenAI's document;
	// webhooks_test.go checks its shapes.
	r("GET", "/assistants/{id}/webhooks", ""),
	r("PUT", "/assistants/{id}/webhooks/{id}", ""),
	r("DELETE", "/assistants/{id}/webhooks/{id}", ""),
	// The assistant versions extension; versions_test.go checks its shapes.
	r("GET", "/assistants/{id}/versions", ""),
	r("GET", "/assistants/{id}/versions/{id}", ""),

	// The Admin API (organization_test.go).
	r("GET", "/organization/projects", "ProjectListResponse"),
	r("POST", "/organization/projects", "Project"),
	r("GET", "/organization/projects/{id}", "Project"),
	r("POST", "/organization/projects/{id}", "Project"),
	r("POST", "/organization/projects/{id}/archive", "Project"),
	r("GET", "/organization/projects/{id}/api_keys", "ProjectApiKeyListResponse"),
	r("GET", "/organization/projects/{id}/api_keys/{id}", "ProjectApiKey"),
	r("DELETE", "/organization/projects/{id}/api_keys/{id}", "ProjectApiKeyDeleteResponse"),
	r("GET", "/organization/projects/{id}/service_accounts", "ProjectServiceAccountListResponse"),
	r("POST", "/organization/projects/{id}/service_accounts", "ProjectServiceAccountCreateResponse"),
	r("GET", "/organization/projects/{id}/service_accounts/{id}", "ProjectServiceAccount"),
	r("DELETE", "/organization/projects/{id}/service_accounts/{id}", "ProjectServiceAccountDeleteResponse"),
	r("GET", "/organization/projects/{id}/users", "ProjectUserListResponse"),
	r("POST", "/organization/projects/{id}/users", "ProjectUser"),
	r("GET", "/organization/projects/{id}/users/{id}", "ProjectUser"),
	r("POST", "/organization/projects/{id}/users/{id}", "ProjectUser"),
	r("DELETE", "/organization/projects/{id}/users/{id}", "ProjectUserDeleteResponse"),
	r("GET", "/organization/projects/{id}/rate_limits", "ProjectRateLimitListResponse"),
	r("POST", "/organization/projects/{id}/rate_limits/{id}", "ProjectRateLimit"),
	r("GET", "/organization/projects/{id}/model_permissions", "ProjectModelPermissions"),
	r("POST", "/organization/projects/{id}/model_permissions", "ProjectModelPermissions"),
	r("DELETE", "/organization/projects/{id}/model_permissions", "ProjectModelPermissionsDeleteResponse"),
	r("GET", "/organization/projects/{id}/hosted_tool_permissions", "ProjectHostedToolPermissions"),
	r("POST", "/organization/projects/{id}/hosted_tool_permissions", "ProjectHostedToolPermissions"),
	// A project's own upstream: an assistantd extension.
	r("GET", "/organization/projects/{id}/upstream", ""),
	r("POST", "/organization/projects/{id}/upstream", ""),
	r("DELETE", "/organization/projects/{id}/upstream", ""),
}

// eventSchemas are the stream event payloads no route returns, compiled for
// the stream tests (validateJSON).
var eventSchemas = []string{"MessageDeltaObject", "RunStepDeltaObject", "ResponseStreamEvent"}

// errorSchema validates every non-2xx JSON body.
const errorSchema = "ErrorResponse"

// cursorListSchemas are the list responses whose first_id/last_id the spec
// types as required strings. OpenAI (and we, per the wire contract §3) send
// null for both when data is empty; see patchSpec.
var cursorListSchemas = []string{"ContainerListResource", "ContainerFileListResource",
	"ListAssistantsResponse", "ListMessagesResponse", "ListFilesResponse",
	"ListRunsResponse", "ListRunStepsResponse", "ListVectorStoresResponse", "ListVectorStoreFilesResponse"}

// routeFor returns the route serving method and path.
func routeFor(method, path string) (route, bool) {
	for _, rt := range routes {
		if rt.method == method && rt.path.MatchString(path) {
			return rt, true
		}
	}
	return route{}, false
}

// schemas are the compiled component schemas, by name. Compiling the 3 MB
// document takes a moment, so it happens once per test binary.
var schemas = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	start := time.Now()
	raw, err := os.ReadFile(specPath)
	if err != nil {
		return nil, err
	}
	var y any
	if err := yaml.Unmarshal(raw, &y); err != nil {
		return nil, fmt.Errorf("parse %s: %w", specPath, err)
	}
	doc, err := jsonValue(y)
	if err != nil {
		return nil, fmt.Errorf("convert %s: %w", specPath, err)
	}
	if err := patchSpec(doc); err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020) // OpenAPI 3.1 schemas are JSON Schema 2020-12
	if err := c.AddResource(specURL, doc); err != nil {
		return nil, err
	}
	names := append([]string{errorSchema}, eventSchemas...)
	for _, rt := range routes {
		if rt.schema != "" {
			names = append(names, rt.schema)
		}
	}
	out := map[string]*jsonschema.Schema{}
	for _, name := range names {
		if out[name] != nil {
			continue
		}
		s, err := c.Compile(specURL + "#/components/schemas/" + name)
		if err != nil {
			return nil, fmt.Errorf("compile %s: %w", name, err)
		}
		out[name] = s
	}
	if d := time.Since(start); d > 20*time.Second {
		fmt.Fprintf(os.Stderr, "apitest: loading the OpenAPI schemas took %v\n", d)
	}
	return out, nil
})

// jsonValue turns a decoded YAML value into the values encoding/json would
// produce (string map keys: YAML reads response codes such as 200 as ints).
func jsonValue(v any) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			c, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			c, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(k)] = c
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			c, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case time.Time:
		return v.Format(time.RFC3339), nil
	case nil, bool, string, int, int64, uint64, float64:
		return v, nil
	default:
		return nil, fmt.Errorf("unexpected YAML value %T", v)
	}
}

// patchSpec corrects, narrowly, the places where the spec's schemas
// disagree with the SDKs and with the API as it behaved. Each patch names
// its reason; nothing else is relaxed.
func patchSpec(doc any) error {
	comps, _ := doc.(map[string]any)["components"].(map[string]any)
	all, _ := comps["schemas"].(map[string]any)
	schema := func(name string) (map[string]any, error) {
		s, ok := all[name].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("spec has no schema %s", name)
		}
		return s, nil
	}

	// 1. Empty cursor lists. ListAssistantsResponse & co. declare first_id
	// and last_id as required strings, but for an empty page there is no id
	// to give: OpenAI sent null (the fine-tuning list schemas of the same
	// spec say anyOf string|null), the SDKs ignore both fields, and our wire
	// contract (§3) says null when empty. Allow null only when data is
	// empty; a non-empty page must still carry string ids.
	for _, name := range cursorListSchemas {
		s, err := schema(name)
		if err != nil {
			return err
		}
		props := s["properties"].(map[string]any)
		for _, f := range []string{"first_id", "last_id"} {
			props[f] = map[string]any{"anyOf": []any{props[f], map[string]any{"type": "null"}}}
		}
		s["if"] = map[string]any{"properties": map[string]any{"data": map[string]any{"minItems": 1}}}
		s["then"] = map[string]any{"properties": map[string]any{
			"first_id": map[string]any{"type": "string"},
			"last_id":  map[string]any{"type": "string"},
		}}
	}

	// 2. File purposes. CreateFileRequest accepts purpose "evals", but
	// OpenAIFile.purpose's enum omits it, so a file uploaded with a purpose
	// the spec allows could not be described. Add exactly that value (the
	// SDKs type purpose as an open string).
	f, err := schema("OpenAIFile")
	if err != nil {
		return err
	}
	purpose := f["properties"].(map[string]any)["purpose"].(map[string]any)
	purpose["enum"] = append(purpose["enum"].([]any), "evals")

	// 3. RunObject still marks its nullable fields (required_action,
	// last_error, started_at, temperature, …) with OpenAPI 3.0's
	// "nullable: true", which JSON Schema 2020-12 ignores, so every queued
	// run would fail. Translate exactly those marks to "or null".
	run, err := schema("RunObject")
	if err != nil {
		return err
	}
	translateNullable(run)

	// 4. A response shows "usage": null until it has finished and "user":
	// null when none was sent: the spec's own examples do (the streaming
	// example of POST /responses, GET /responses/{id}), OpenAI does, and the
	// Open Responses suite requires both keys present; yet the schemas type
	// them as an object and a string. Allow null for exactly these two.
	resp, err := schema("Response")
	if err != nil {
		return err
	}
	parts, _ := resp["allOf"].([]any)
	for _, p := range parts {
		if props, ok := p.(map[string]any)["properties"].(map[string]any); ok && props["usage"] != nil {
			props["usage"] = map[string]any{"anyOf": []any{props["usage"], map[string]any{"type": "null"}}}
		}
	}
	mrp, err := schema("ModelResponseProperties")
	if err != nil {
		return err
	}
	mprops := mrp["properties"].(map[string]any)
	mprops["user"] = map[string]any{"anyOf": []any{mprops["user"], map[string]any{"type": "null"}}}

	// 5. The filter schemas recurse with draft 2019-09's $recursiveAnchor
	// and $recursiveRef, which JSON Schema 2020-12 (OpenAPI 3.1) no
	// longer has; compiling any Responses schema fails on them. Point the
	// recursion at the schema itself, by name, which means the same.
	for name, v := range all {
		s, ok := v.(map[string]any)
		if !ok || s["$recursiveAnchor"] == nil {
			continue
		}
		delete(s, "$recursiveAnchor")
		replaceRecursiveRef(s, "#/components/schemas/"+name)
	}

	// 6. ContainerResource lists its required properties twice (id, name,
	// created_at and status), which the JSON Schema metaschema forbids
	// ("uniqueItems"), so the schema does not compile. Keep each once.
	cr, err := schema("ContainerResource")
	if err != nil {
		return err
	}
	var required []any
	for _, r := range cr["required"].([]any) {
		if !slices.Contains(required, r) {
			required = append(required, r)
		}
	}
	cr["required"] = required
	return nil
}

// replaceRecursiveRef rewrites, in place, every {"$recursiveRef": "#"}
// under v into {"$ref": ref}.
func replaceRecursiveRef(v any, ref string) {
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v["$recursiveRef"]; ok {
			delete(v, "$recursiveRef")
			v["$ref"] = ref
		}
		for _, e := range v {
			replaceRecursiveRef(e, ref)
		}
	case []any:
		for _, e := range v {
			replaceRecursiveRef(e, ref)
		}
	}
}

// translateNullable rewrites, in place, every sub-schema of s carrying
// "nullable: true" into anyOf [the schema, null].
func translateNullable(s map[string]any) {
	props, _ := s["properties"].(map[string]any)
	for name, p := range props {
		ps, ok := p.(map[string]any)
		if !ok {
			continue
		}
		translateNullable(ps)
		if ps["nullable"] == true {
			delete(ps, "nullable")
			props[name] = map[string]any{"anyOf": []any{ps, map[string]any{"type": "null"}}}
		}
	}
}

// checkResponse validates one response: x-request-id on everything; JSON
// bodies must say Content-Type: application/json and match the route's
// schema (ErrorResponse for non-2xx). Streams (text/event-stream) are left
// to the stream tests.
func checkResponse(method, path string, res *http.Response, body []byte) error {
	if res.Header.Get("X-Request-Id") == "" {
		return errors.New("no x-request-id header")
	}
	mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if mt == "text/event-stream" {
		return nil
	}
	name := errorSchema
	if res.StatusCode < 400 {
		rt, ok := routeFor(method, path)
		if !ok {
			return fmt.Errorf("no schema for %s %s: add the route to routes in schema_test.go", method, path)
		}
		if rt.schema == "" {
			return nil
		}
		name = rt.schema
	}
	if mt != "application/json" {
		return fmt.Errorf("Content-Type is %q, want application/json", res.Header.Get("Content-Type"))
	}
	return validateJSON(name, body)
}

// validateJSON checks body against the named component schema.
func validateJSON(name string, body []byte) error {
	all, err := schemas()
	if err != nil {
		return fmt.Errorf("load schemas: %w", err)
	}
	s := all[name]
	if s == nil {
		return fmt.Errorf("schema %s was not compiled", name)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("body is not JSON: %w", err)
	}
	if err := s.Validate(v); err != nil {
		return fmt.Errorf("body does not match %s: %w", name, err)
	}
	return nil
}
