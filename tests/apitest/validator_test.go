package apitest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// TestSchemaValidator checks that the validator every test relies on is
// not vacuous: it accepts well-formed bodies and rejects broken ones.
func TestSchemaValidator(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		schema  string
		body    string
		wantErr string // substring; "" = valid
	}{
		{"assistant ok", "AssistantObject", `{"id":"asst_1","object":"assistant","created_at":1,"name":null,"description":null,"model":"m","instructions":null,"tools":[],"metadata":{},"response_format":"auto","tool_resources":{}}`, ""},
		{"assistant missing name", "AssistantObject", `{"id":"asst_1","object":"assistant","created_at":1,"description":null,"model":"m","instructions":null,"tools":[],"metadata":{}}`, "name"},
		{"assistant wrong object", "AssistantObject", `{"id":"asst_1","object":"thread","created_at":1,"name":null,"description":null,"model":"m","instructions":null,"tools":[],"metadata":{}}`, "object"},
		{"assistant bad tool", "AssistantObject", `{"id":"asst_1","object":"assistant","created_at":1,"name":null,"description":null,"model":"m","instructions":null,"tools":[{"type":"nope"}],"metadata":{}}`, "tools"},
		{"error ok", "ErrorResponse", `{"error":{"message":"m","type":"invalid_request_error","param":null,"code":null}}`, ""},
		{"error missing param", "ErrorResponse", `{"error":{"message":"m","type":"invalid_request_error","code":null}}`, "param"},
		{"empty list null cursors", "ListAssistantsResponse", `{"object":"list","data":[],"first_id":null,"last_id":null,"has_more":false}`, ""},
		{"non-empty list null cursors", "ListFilesResponse", `{"object":"list","data":[{"id":"file-1","object":"file","bytes":1,"created_at":1,"filename":"a","purpose":"assistants","status":"processed"}],"first_id":null,"last_id":null,"has_more":false}`, "first_id"},
		{"list missing has_more", "ListMessagesResponse", `{"object":"list","data":[],"first_id":null,"last_id":null}`, "has_more"},
		{"file purpose evals", "OpenAIFile", `{"id":"file-1","object":"file","bytes":1,"created_at":1,"filename":"a","purpose":"evals","status":"processed"}`, ""},
		{"file purpose unknown", "OpenAIFile", `{"id":"file-1","object":"file","bytes":1,"created_at":1,"filename":"a","purpose":"nope","status":"processed"}`, "purpose"},
		{"response in progress", "Response", `{"id":"resp_1","object":"response","created_at":1,"status":"in_progress","background":false,"completed_at":null,"conversation":null,"error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"max_tool_calls":null,"model":"m","output":[],"parallel_tool_calls":true,"previous_response_id":null,"prompt":null,"prompt_cache_key":null,"reasoning":null,"safety_identifier":null,"service_tier":"default","store":true,"temperature":1,"text":{"format":{"type":"text"},"verbosity":"medium"},"tool_choice":"auto","tools":[],"top_logprobs":0,"top_p":1,"truncation":"disabled","presence_penalty":0,"frequency_penalty":0,"usage":null,"user":null,"metadata":{}}`, ""},
		{"response bad usage", "Response", `{"id":"resp_1","object":"response","created_at":1,"status":"in_progress","background":false,"completed_at":null,"conversation":null,"error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"max_tool_calls":null,"model":"m","output":[],"parallel_tool_calls":true,"previous_response_id":null,"prompt":null,"prompt_cache_key":null,"reasoning":null,"safety_identifier":null,"service_tier":"default","store":true,"temperature":1,"text":{"format":{"type":"text"},"verbosity":"medium"},"tool_choice":"auto","tools":[],"top_logprobs":0,"top_p":1,"truncation":"disabled","presence_penalty":0,"frequency_penalty":0,"usage":"none","user":null,"metadata":{}}`, "usage"},
		{"response bad status", "Response", `{"id":"resp_1","object":"response","created_at":1,"status":"requires_action","background":false,"completed_at":null,"conversation":null,"error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"max_tool_calls":null,"model":"m","output":[],"parallel_tool_calls":true,"previous_response_id":null,"prompt":null,"prompt_cache_key":null,"reasoning":null,"safety_identifier":null,"service_tier":"default","store":true,"temperature":1,"text":{"format":{"type":"text"},"verbosity":"medium"},"tool_choice":"auto","tools":[],"top_logprobs":0,"top_p":1,"truncation":"disabled","presence_penalty":0,"frequency_penalty":0,"usage":null,"user":null,"metadata":{}}`, "status"},
		{"message bad content part", "MessageObject", `{"id":"msg_1","object":"thread.message","created_at":1,"thread_id":"thread_1","status":"completed","role":"user","content":[{"type":"text","text":"plain"}],"metadata":{}}`, "content"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := validateJSON(tc.schema, []byte(tc.body))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("validateJSON(%s) = %v, want valid", tc.schema, err)
			case tc.wantErr != "" && err == nil:
				t.Errorf("validateJSON(%s) = nil, want an error about %q", tc.schema, tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("validateJSON(%s) = %v, want an error about %q", tc.schema, err, tc.wantErr)
			}
		})
	}
}

func TestRouteTable(t *testing.T) {
	t.Parallel()
	tests := []struct{ method, path, want string }{
		{"GET", "/v1/assistants", "ListAssistantsResponse"},
		{"GET", "/v1/assistants/asst_1", "AssistantObject"},
		{"POST", "/v1/threads/thread_1/messages/msg_1", "MessageObject"},
		{"GET", "/v1/files/file-1/content", ""},
		{"GET", "/v1/threads/thread_1/runs", "ListRunsResponse"},
		{"POST", "/v1/threads/runs", "RunObject"},
		{"POST", "/v1/threads/thread_1", "ThreadObject"},
		{"GET", "/v1/threads/thread_1/runs/run_1/steps/step_1", "RunStepObject"},
		{"GET", "/v1/threads/thread_1/runs/run_1/events", "-"},
	}
	for _, tc := range tests {
		rt, ok := routeFor(tc.method, tc.path)
		got := rt.schema
		if !ok {
			got = "-"
		}
		if got != tc.want {
			t.Errorf("routeFor(%s %s) = %q, want %q", tc.method, tc.path, got, tc.want)
		}
	}
}

// recordingTB captures Errorf calls so the middleware's own failures can be
// asserted.
type recordingTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestMiddlewareRejects checks that the client middleware fails a call whose
// response breaks the contract, using a fake server.
func TestMiddlewareRejects(t *testing.T) {
	t.Parallel()
	valid := `{"id":"asst_1","object":"assistant","created_at":1,"name":null,"description":null,"model":"m","instructions":null,"tools":[],"metadata":{}}`
	tests := []struct {
		name, body, ctype, reqID string
		wantErr                  string
	}{
		{"valid", valid, "application/json", "req_1", ""},
		{"schema mismatch", `{"id":"asst_1","object":"assistant"}`, "application/json", "req_1", "AssistantObject"},
		{"no request id", valid, "application/json", "", "x-request-id"},
		{"wrong content type", valid, "text/plain", "req_1", "Content-Type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.ctype)
				if tc.reqID != "" {
					w.Header().Set("X-Request-Id", tc.reqID)
				}
				io.WriteString(w, tc.body)
			}))
			defer fake.Close()
			rec := &recordingTB{TB: t}
			s := &server{t: rec}
			client := openai.NewClient(option.WithBaseURL(fake.URL+"/v1/"), option.WithAPIKey("k"),
				option.WithMaxRetries(0), option.WithMiddleware(s.validate))
			_, err := client.Beta.Assistants.Get(context.Background(), "asst_1")
			if tc.wantErr == "" {
				if err != nil || len(rec.errs) > 0 {
					t.Errorf("err = %v, reported %q; want neither", err, rec.errs)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want one about %q", err, tc.wantErr)
			}
			if len(rec.errs) != 1 || !strings.Contains(rec.errs[0], tc.wantErr) {
				t.Errorf("reported %q, want one failure about %q", rec.errs, tc.wantErr)
			}
		})
	}
}
