package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// envelope is the error body with every key's presence kept: a nil pointer
// means JSON null.
type envelope struct {
	Message *string `json:"message"`
	Type    *string `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// wantErr describes an expected error response; "" for Param or Code means
// JSON null. Message, if set, must be contained in the message.
type wantErr struct {
	Status  int
	Type    string
	Param   string
	Code    string
	Message string
}

// checkError asserts that res is the error want, in the full envelope.
func checkError(t testing.TB, res rawResponse, want wantErr) {
	t.Helper()
	var body struct {
		Error map[string]json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(res.Body, &body); err != nil || body.Error == nil {
		t.Fatalf("status %d, body %s: not an error envelope (%v)", res.Status, truncate(res.Body, 500), err)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := body.Error[k]; !ok {
			t.Errorf("error envelope lacks %q: %s", k, res.Body)
		}
	}
	var env struct{ Error envelope }
	if err := json.Unmarshal(res.Body, &env); err != nil {
		t.Fatal(err)
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		if *p == "" {
			return "<empty string>" // never valid: absent values are null
		}
		return *p
	}
	got := wantErr{Status: res.Status, Type: str(env.Error.Type), Param: str(env.Error.Param), Code: str(env.Error.Code)}
	wantCmp := want
	wantCmp.Message = ""
	if diff := cmp.Diff(wantCmp, got); diff != "" {
		t.Errorf("error mismatch (-want +got):\n%s\nmessage: %s", diff, str(env.Error.Message))
	}
	if env.Error.Message == nil || *env.Error.Message == "" {
		t.Errorf("empty error message")
	} else if !strings.Contains(*env.Error.Message, want.Message) {
		t.Errorf("message %q does not contain %q", *env.Error.Message, want.Message)
	}
}

// snapshot is what a failed request must leave unchanged: every object's
// JSON and the file contents on disk.
func snapshot(t testing.TB, s *server, paths []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range paths {
		res := s.do(t, "GET", p, nil, http.Header{"Openai-Beta": {"assistants=v2"}})
		if res.Status != http.StatusOK {
			t.Fatalf("snapshot GET %s: %d %s", p, res.Status, res.Body)
		}
		out[p] = string(res.Body)
	}
	out["<data>/files"] = strings.Join(storedFiles(t, s), ",")
	return out
}

// multipartBody builds a multipart/form-data body. Fields are written in
// order; a field named "file" (or "file2", sent as a second "file") is a
// file part.
func multipartBody(t testing.TB, fields [][2]string) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, f := range fields {
		var err error
		switch f[0] {
		case "file", "file2":
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", `form-data; name="file"; filename="upload.txt"`)
			h.Set("Content-Type", "text/plain")
			var pw interface{ Write([]byte) (int, error) }
			pw, err = w.CreatePart(h)
			if err == nil {
				_, err = pw.Write([]byte(f[1]))
			}
		default:
			err = w.WriteField(f[0], f[1])
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w.FormDataContentType(), &buf
}

func metadataN(n int) string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprintf("k%02d", i)] = "v"
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// TestBadInput sends requests the API must refuse and checks the status,
// the whole error envelope, and that nothing in the store changed.
func TestBadInput(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--max-upload-bytes", "1024")
	ctx := context.Background()
	asst, err := s.Client.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{Model: "m", Name: openai.String("keep"), Metadata: shared.Metadata{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	thread := newThread(t, s)
	msg, err := s.Client.Beta.Threads.Messages.New(ctx, thread, textMessage("keep me"))
	if err != nil {
		t.Fatal(err)
	}
	file := uploadFile(t, s, "keep.txt", "keep", openai.FilePurposeAssistants)
	watched := []string{
		"/v1/assistants?limit=100", "/v1/assistants/" + asst.ID,
		"/v1/threads/" + thread, "/v1/threads/" + thread + "/messages?limit=100", "/v1/threads/" + thread + "/messages/" + msg.ID,
		"/v1/files", "/v1/files/" + file.ID,
	}

	long := func(n int) string { return strings.Repeat("x", n) }
	key65, val513 := long(65), long(513)
	bad400 := func(param, code, msg string) wantErr {
		return wantErr{http.StatusBadRequest, "invalid_request_error", param, code, msg}
	}
	notFound := func(msg string) wantErr {
		return wantErr{http.StatusNotFound, "invalid_request_error", "", "", msg}
	}
	const parseErr = "We could not parse the JSON body of your request."
	A, T, M := "/v1/assistants", "/v1/threads/"+thread, "/v1/threads/"+thread+"/messages"

	type jsonCase struct {
		name, method, path, body string
		want                     wantErr
	}
	jsonCases := []jsonCase{
		// Malformed bodies.
		{"malformed", "POST", A, `{"model":`, bad400("", "", parseErr)},
		{"trailing garbage", "POST", A, `{"model":"m"} x`, bad400("", "", parseErr)},
		{"two objects", "POST", A, `{"model":"m"}{"model":"n"}`, bad400("", "", parseErr)},
		{"not an object", "POST", A, `["model"]`, bad400("", "invalid_type", "expected a JSON object")},
		{"empty body", "POST", A, ``, bad400("", "", parseErr)},
		{"modify malformed", "POST", A + "/" + asst.ID, `{"name":}`, bad400("", "", parseErr)},
		{"message malformed", "POST", M, `{"role":"user",`, bad400("", "", parseErr)},
		{"thread malformed", "POST", "/v1/threads", `{`, bad400("", "", parseErr)},

		// Wrong types.
		{"model number", "POST", A, `{"model":5}`, bad400("model", "invalid_type", "Invalid type for 'model'")},
		{"name number", "POST", A, `{"model":"m","name":5}`, bad400("name", "invalid_type", "")},
		{"temperature string", "POST", A, `{"model":"m","temperature":"hot"}`, bad400("temperature", "invalid_type", "")},
		{"tools object", "POST", A, `{"model":"m","tools":{}}`, bad400("tools", "invalid_type", "")},
		{"metadata array", "POST", A, `{"model":"m","metadata":[]}`, bad400("metadata", "invalid_type", "")},
		{"metadata value number", "POST", A, `{"model":"m","metadata":{"a":1}}`, bad400("metadata", "invalid_type", "")},
		{"modify name number", "POST", A + "/" + asst.ID, `{"name":false}`, bad400("name", "invalid_type", "")},
		{"thread metadata string", "POST", T, `{"metadata":"x"}`, bad400("metadata", "invalid_type", "")},
		{"message role number", "POST", M, `{"role":5,"content":"x"}`, bad400("role", "invalid_type", "")},
		{"message content object", "POST", M, `{"role":"user","content":{"a":1}}`, bad400("content", "invalid_type", "")},
		{"message content number", "POST", M, `{"role":"user","content":5}`, bad400("content", "invalid_type", "")},

		// Nested paths name array elements as OpenAI does.
		{"nested wrong type", "POST", A, `{"model":"m","tools":[{"type":"code_interpreter"},{"type":"function","function":{"name":5}}]}`,
			bad400("tools[1].function.name", "invalid_type", "Invalid type for 'tools[1].function.name': expected a string, but got a number instead.")},
		{"nested unknown", "POST", A, `{"model":"m","tools":[{"type":"function","function":{"name":"f","bogus":1}}]}`,
			bad400("tools[0].function.bogus", "unknown_parameter", "Unknown parameter: 'tools[0].function.bogus'.")},
		{"part text number", "POST", M, `{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":5}]}`,
			bad400("content[1].text", "invalid_type", "'content[1].text'")},
		{"part unknown key", "POST", M, `{"role":"user","content":[{"type":"text","text":"a","extra":1}]}`,
			bad400("content[0].extra", "unknown_parameter", "Unknown parameter: 'content[0].extra'.")},
		{"attachment tool unknown key", "POST", M, `{"role":"user","content":"x","attachments":[{"file_id":"` + file.ID + `","tools":[{"type":"code_interpreter","x":1}]}]}`,
			bad400("attachments[0].tools[0].x", "unknown_parameter", "")},
		{"initial message metadata value", "POST", "/v1/threads", `{"messages":[{"role":"user","content":"x"},{"role":"user","content":"y","metadata":{"k":5}}]}`,
			bad400("messages[1].metadata", "invalid_type", "")},
		{"code file ids string", "POST", A, `{"model":"m","tool_resources":{"code_interpreter":{"file_ids":"x"}}}`,
			bad400("tool_resources.code_interpreter.file_ids", "invalid_type", "")},

		// Unknown parameters.
		{"unknown parameter", "POST", A, `{"model":"m","colour":"red"}`, bad400("colour", "unknown_parameter", "Unknown parameter: 'colour'.")},
		{"modify unknown", "POST", A + "/" + asst.ID, `{"nom":"x"}`, bad400("nom", "unknown_parameter", "")},
		{"thread unknown", "POST", "/v1/threads", `{"title":"x"}`, bad400("title", "unknown_parameter", "")},
		{"thread modify messages", "POST", T, `{"messages":[]}`, bad400("messages", "unknown_parameter", "")},
		{"message modify content", "POST", M + "/" + msg.ID, `{"content":"changed"}`, bad400("content", "unknown_parameter", "")},
		{"message unknown", "POST", M, `{"role":"user","content":"x","stream":true}`, bad400("stream", "unknown_parameter", "")},

		// Missing or invalid required values.
		{"missing model", "POST", A, `{}`, bad400("model", "missing_required_parameter", "Missing required parameter: 'model'.")},
		{"empty model", "POST", A, `{"model":""}`, bad400("model", "invalid_value", "")},
		{"missing role", "POST", M, `{"content":"x"}`, bad400("role", "missing_required_parameter", "")},
		{"bad role", "POST", M, `{"role":"system","content":"x"}`, bad400("role", "invalid_value", "")},
		{"missing content", "POST", M, `{"role":"user"}`, bad400("content", "missing_required_parameter", "")},
		{"empty content", "POST", M, `{"role":"user","content":""}`, bad400("content", "empty_string", "")},
		{"empty parts", "POST", M, `{"role":"user","content":[]}`, bad400("content", "empty_array", "")},
		{"bad part type", "POST", M, `{"role":"user","content":[{"type":"audio"}]}`, bad400("content[0].type", "invalid_value", "")},
		{"text part without text", "POST", M, `{"role":"user","content":[{"type":"text"}]}`, bad400("content[0].text", "missing_required_parameter", "")},
		{"image_file unknown file", "POST", M, `{"role":"user","content":[{"type":"image_file","image_file":{"file_id":"file-nope"}}]}`,
			bad400("content[0].image_file.file_id", "invalid_value", "file-nope")},
		{"image_file wrong prefix", "POST", M, `{"role":"user","content":[{"type":"image_file","image_file":{"file_id":"img_1"}}]}`,
			bad400("content[0].image_file.file_id", "invalid_value", "Expected an ID that begins with 'file'.")},
		{"image_url not a url", "POST", M, `{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x/y.png"}}]}`,
			bad400("content[0].image_url.url", "invalid_value", "")},
		{"image_url bad detail", "POST", M, `{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png","detail":"ultra"}}]}`,
			bad400("content[0].image_url.detail", "invalid_value", "")},
		{"attachment unknown file", "POST", M, `{"role":"user","content":"x","attachments":[{"file_id":"file-nope","tools":[{"type":"code_interpreter"}]}]}`,
			bad400("attachments[0].file_id", "invalid_value", "file-nope")},
		{"attachment wrong prefix", "POST", M, `{"role":"user","content":"x","attachments":[{"file_id":"` + asst.ID + `","tools":[]}]}`,
			bad400("attachments[0].file_id", "invalid_value", "Expected an ID that begins with 'file'.")},
		{"attachment bad tool", "POST", M, `{"role":"user","content":"x","attachments":[{"file_id":"` + file.ID + `","tools":[{"type":"web"}]}]}`,
			bad400("attachments[0].tools[0].type", "invalid_value", "")},
		{"thread bad initial message", "POST", "/v1/threads", `{"messages":[{"role":"user","content":"ok"},{"role":"robot","content":"x"}]}`,
			bad400("messages[1].role", "invalid_value", "")},

		// Limits.
		{"metadata 17 pairs", "POST", A, `{"model":"m","metadata":` + metadataN(17) + `}`, bad400("metadata", "object_above_max_properties", "")},
		{"metadata key 65", "POST", A, `{"model":"m","metadata":{"` + key65 + `":"v"}}`, bad400("metadata", "string_above_max_length", "")},
		{"metadata value 513", "POST", A, `{"model":"m","metadata":{"k":"` + val513 + `"}}`, bad400("metadata.k", "string_above_max_length", "")},
		{"modify metadata 17", "POST", A + "/" + asst.ID, `{"metadata":` + metadataN(17) + `}`, bad400("metadata", "object_above_max_properties", "")},
		{"thread metadata 17", "POST", "/v1/threads", `{"metadata":` + metadataN(17) + `}`, bad400("metadata", "object_above_max_properties", "")},
		{"thread modify metadata key", "POST", T, `{"metadata":{"` + key65 + `":"v"}}`, bad400("metadata", "string_above_max_length", "")},
		{"message metadata value", "POST", M, `{"role":"user","content":"x","metadata":{"k":"` + val513 + `"}}`, bad400("metadata.k", "string_above_max_length", "")},
		{"message modify metadata", "POST", M + "/" + msg.ID, `{"metadata":` + metadataN(17) + `}`, bad400("metadata", "object_above_max_properties", "")},
		{"name 257", "POST", A, `{"model":"m","name":"` + long(257) + `"}`, bad400("name", "string_above_max_length", "maximum length 256")},
		{"description 513", "POST", A, `{"model":"m","description":"` + long(513) + `"}`, bad400("description", "string_above_max_length", "")},
		{"instructions 256001", "POST", A, `{"model":"m","instructions":"` + long(256001) + `"}`, bad400("instructions", "string_above_max_length", "")},
		{"modify name 257", "POST", A + "/" + asst.ID, `{"name":"` + long(257) + `"}`, bad400("name", "string_above_max_length", "")},
		{"temperature 2.01", "POST", A, `{"model":"m","temperature":2.01}`, bad400("temperature", "decimal_above_max_value", "")},
		{"temperature -0.5", "POST", A, `{"model":"m","temperature":-0.5}`, bad400("temperature", "decimal_below_min_value", "")},
		{"top_p 1.5", "POST", A, `{"model":"m","top_p":1.5}`, bad400("top_p", "decimal_above_max_value", "")},
		{"top_p -1", "POST", A, `{"model":"m","top_p":-1}`, bad400("top_p", "decimal_below_min_value", "")},
		{"modify temperature", "POST", A + "/" + asst.ID, `{"temperature":3}`, bad400("temperature", "decimal_above_max_value", "")},
		{"129 tools", "POST", A, `{"model":"m","tools":[` + strings.TrimSuffix(strings.Repeat(`{"type":"code_interpreter"},`, 129), ",") + `]}`,
			bad400("tools", "array_above_max_length", "")},
		{"thread 33 messages", "POST", "/v1/threads", `{"messages":[` + strings.TrimSuffix(strings.Repeat(`{"role":"user","content":"x"},`, 33), ",") + `]}`,
			bad400("messages", "array_above_max_length", "")},
		{"11 attachments", "POST", M, `{"role":"user","content":"x","attachments":[` +
			strings.TrimSuffix(strings.Repeat(`{"file_id":"`+file.ID+`","tools":[{"type":"code_interpreter"}]},`, 11), ",") + `]}`,
			bad400("attachments", "array_above_max_length", "")},
		// Just over the limit: the few unread bytes are drained, so the
		// client reads the answer instead of a reset connection.
		{"body over 32 MiB", "POST", A, `{"model":"m","instructions":"` + long(32<<20) + `"}`,
			wantErr{http.StatusRequestEntityTooLarge, "invalid_request_error", "", "", ""}},
		{"message content too long", "POST", M, `{"role":"user","content":"` + long(256001) + `"}`, bad400("content", "string_above_max_length", "")},

		// Tools and response_format.
		{"function name with space", "POST", A, `{"model":"m","tools":[{"type":"function","function":{"name":"get weather"}}]}`,
			bad400("tools[0].function.name", "invalid_value", "")},
		{"function name 65", "POST", A, `{"model":"m","tools":[{"type":"function","function":{"name":"` + long(65) + `"}}]}`,
			bad400("tools[0].function.name", "invalid_value", "")},
		{"function name missing", "POST", A, `{"model":"m","tools":[{"type":"code_interpreter"},{"type":"function","function":{"description":"d"}}]}`,
			bad400("tools[1].function.name", "missing_required_parameter", "")},
		{"function without function", "POST", A, `{"model":"m","tools":[{"type":"function"}]}`, bad400("tools[0].function", "missing_required_parameter", "")},
		{"duplicate function", "POST", A, `{"model":"m","tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"f"}}]}`,
			bad400("tools[1].function.name", "invalid_value", "")},
		{"function parameters not object", "POST", A, `{"model":"m","tools":[{"type":"function","function":{"name":"f","parameters":[1]}}]}`,
			bad400("tools[0].function.parameters", "invalid_type", "")},
		// Parameters are a JSON Schema (checked against the 2020-12
		// metaschema), and a strict function follows the strict rules, as
		// OpenAI checked them when the assistant was created.
		{"function parameters not a schema", "POST", A, `{"model":"m","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"text"}}}}}]}`,
			bad400("tools[0].function.parameters", "invalid_function_parameters", "Invalid schema for function 'f': Not a valid JSON Schema (2020-12) at /properties/a/type")},
		{"function parameters not an object schema", "POST", A, `{"model":"m","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"string"}}}]}`,
			bad400("tools[0].function.parameters", "invalid_function_parameters", `"type": "object"`)},
		{"function parameters remote reference", "POST", A, `{"model":"m","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"$ref":"http://127.0.0.1:1/s.json"}}}}}]}`,
			bad400("tools[0].function.parameters", "invalid_function_parameters", "not allowed")},
		{"strict function loose schema", "POST", A, `{"model":"m","tools":[{"type":"code_interpreter"},{"type":"function","function":{"name":"f","strict":true,"parameters":{"type":"object","properties":{"a":{"type":"string"}}}}}]}`,
			bad400("tools[1].function.parameters", "invalid_function_parameters", `Strict: at the top level, set "additionalProperties": false.`)},
		{"strict json_schema loose schema", "POST", A, `{"model":"m","response_format":{"type":"json_schema","json_schema":{"name":"a","strict":true,"schema":{"type":"object","properties":{"n":{"type":"number"}},"additionalProperties":false}}}}`,
			bad400("response_format.json_schema.schema", "invalid_value", `add "n" to "required"`)},
		{"run tools strict loose schema", "POST", T + "/runs", `{"assistant_id":"` + asst.ID + `","tools":[{"type":"function","function":{"name":"f","strict":true,"parameters":{"type":"object","properties":{},"additionalProperties":true}}}]}`,
			bad400("tools[0].function.parameters", "invalid_function_parameters", "additionalProperties")},
		{"unknown tool type", "POST", A, `{"model":"m","tools":[{"type":"browser"}]}`, bad400("tools[0].type", "invalid_value", "")},
		{"tool without type", "POST", A, `{"model":"m","tools":[{}]}`, bad400("tools[0].type", "missing_required_parameter", "")},
		{"file_search max results", "POST", A, `{"model":"m","tools":[{"type":"file_search","file_search":{"max_num_results":51}}]}`,
			bad400("tools[0].file_search.max_num_results", "invalid_value", "")},
		{"response_format string", "POST", A, `{"model":"m","response_format":"json"}`, bad400("response_format", "invalid_value", "")},
		{"response_format number", "POST", A, `{"model":"m","response_format":5}`, bad400("response_format", "invalid_type", "")},
		{"response_format type", "POST", A, `{"model":"m","response_format":{"type":"xml"}}`, bad400("response_format.type", "invalid_value", "")},
		{"response_format no type", "POST", A, `{"model":"m","response_format":{}}`, bad400("response_format.type", "missing_required_parameter", "")},
		{"json_schema missing", "POST", A, `{"model":"m","response_format":{"type":"json_schema"}}`,
			bad400("response_format.json_schema", "missing_required_parameter", "")},
		{"json_schema bad name", "POST", A, `{"model":"m","response_format":{"type":"json_schema","json_schema":{"name":"a b"}}}`,
			bad400("response_format.json_schema.name", "invalid_value", "")},
		{"response_format unknown key", "POST", A, `{"model":"m","response_format":{"type":"text","x":1}}`,
			bad400("response_format.x", "unknown_parameter", "")},
		{"reasoning_effort", "POST", A, `{"model":"m","reasoning_effort":"extreme"}`, bad400("reasoning_effort", "invalid_value", "")},
		{"code files unknown", "POST", A, `{"model":"m","tool_resources":{"code_interpreter":{"file_ids":["file-nope"]}}}`,
			bad400("tool_resources.code_interpreter.file_ids", "invalid_value", "file-nope")},
		{"code files 21", "POST", A, `{"model":"m","tool_resources":{"code_interpreter":{"file_ids":[` +
			strings.TrimSuffix(strings.Repeat(`"`+file.ID+`",`, 21), ",") + `]}}}`,
			bad400("tool_resources.code_interpreter.file_ids", "array_above_max_length", "")},
		{"two vector stores", "POST", A, `{"model":"m","tool_resources":{"file_search":{"vector_store_ids":["vs_a","vs_b"]}}}`,
			bad400("tool_resources.file_search.vector_store_ids", "array_above_max_length", "")},
		{"vector store prefix", "POST", A, `{"model":"m","tool_resources":{"file_search":{"vector_store_ids":["store_a"]}}}`,
			bad400("tool_resources.file_search.vector_store_ids[0]", "invalid_value", "")},

		// Unknown and wrongly prefixed ids.
		{"unknown assistant", "GET", A + "/asst_nope", ``, notFound("No assistant found with id 'asst_nope'.")},
		{"modify unknown assistant", "POST", A + "/asst_nope", `{"name":"x"}`, notFound("No assistant found with id 'asst_nope'.")},
		{"delete unknown assistant", "DELETE", A + "/asst_nope", ``, notFound("No assistant found with id 'asst_nope'.")},
		{"assistant wrong prefix", "GET", A + "/" + thread, ``,
			bad400("assistant_id", "invalid_value", "Invalid 'assistant_id': '"+thread+"'. Expected an ID that begins with 'asst'.")},
		{"delete assistant wrong prefix", "DELETE", A + "/msg_1", ``, bad400("assistant_id", "invalid_value", "")},
		{"unknown thread", "GET", "/v1/threads/thread_nope", ``, notFound("No thread found with id 'thread_nope'.")},
		{"thread wrong prefix", "GET", "/v1/threads/" + asst.ID, ``,
			bad400("thread_id", "invalid_value", "Expected an ID that begins with 'thread'.")},
		{"modify thread wrong prefix", "POST", "/v1/threads/asst_1", `{}`, bad400("thread_id", "invalid_value", "")},
		{"delete unknown thread", "DELETE", "/v1/threads/thread_nope", ``, notFound("No thread found with id 'thread_nope'.")},
		{"messages of unknown thread", "GET", "/v1/threads/thread_nope/messages", ``, notFound("No thread found with id 'thread_nope'.")},
		{"message in unknown thread", "POST", "/v1/threads/thread_nope/messages", `{"role":"user","content":"x"}`, notFound("No thread found with id 'thread_nope'.")},
		{"messages wrong thread prefix", "GET", "/v1/threads/th_1/messages", ``, bad400("thread_id", "invalid_value", "")},
		{"unknown message", "GET", M + "/msg_nope", ``, notFound("No message found with id 'msg_nope'.")},
		{"message wrong prefix", "GET", M + "/" + thread, ``, bad400("message_id", "invalid_value", "Expected an ID that begins with 'msg'.")},
		{"delete unknown message", "DELETE", M + "/msg_nope", ``, notFound("No message found with id 'msg_nope'.")},
		{"unknown file", "GET", "/v1/files/file-nope", ``, wantErr{http.StatusNotFound, "invalid_request_error", "id", "", "No such File object: file-nope"}},
		{"delete unknown file", "DELETE", "/v1/files/file-nope", ``, wantErr{http.StatusNotFound, "invalid_request_error", "id", "", "No such File object: file-nope"}},
		{"content of unknown file", "GET", "/v1/files/file-nope/content", ``, wantErr{http.StatusNotFound, "invalid_request_error", "id", "", "No such File object: file-nope"}},

		// List parameters.
		{"limit 0", "GET", A + "?limit=0", ``, bad400("limit", "integer_below_min_value", "")},
		{"limit 101", "GET", A + "?limit=101", ``, bad400("limit", "integer_above_max_value", "")},
		{"limit text", "GET", M + "?limit=ten", ``, bad400("limit", "invalid_type", "")},
		{"files limit 10001", "GET", "/v1/files?limit=10001", ``, bad400("limit", "integer_above_max_value", "")},
		{"order", "GET", A + "?order=sideways", ``, bad400("order", "invalid_value", "")},
		{"after unknown", "GET", A + "?after=asst_nope", ``, bad400("after", "invalid_value", "asst_nope")},
		{"before unknown", "GET", M + "?before=msg_nope", ``, bad400("before", "invalid_value", "msg_nope")},
		{"files before", "GET", "/v1/files?before=" + file.ID, ``, bad400("before", "unknown_parameter", "")},
		{"files purpose", "GET", "/v1/files?purpose=bogus", ``, bad400("purpose", "invalid_value", "")},
		{"run_id prefix", "GET", M + "?run_id=thread_x", ``, bad400("run_id", "invalid_value", "")},

		// The v1 beta is gone.
		{"unknown route", "GET", "/v1/nope", ``, notFound("Invalid URL (GET /v1/nope)")},
		{"unknown nested route", "POST", T + "/nope", `{}`, notFound("Invalid URL (POST " + T + "/nope)")},
		{"unknown method", "PATCH", A + "/" + asst.ID, `{}`, notFound("Invalid URL (PATCH /v1/assistants/" + asst.ID + ")")},
		{"delete on a collection", "DELETE", "/v1/files", ``, notFound("Invalid URL (DELETE /v1/files)")},
		{"list threads does not exist", "GET", "/v1/threads", ``, notFound("Invalid URL (GET /v1/threads)")},
	}

	check := func(t *testing.T, before map[string]string) {
		t.Helper()
		if diff := cmp.Diff(before, snapshot(t, s, watched)); diff != "" {
			t.Errorf("store changed (-before +after):\n%s", diff)
		}
	}

	t.Run("json", func(t *testing.T) {
		for _, tc := range jsonCases {
			t.Run(tc.name, func(t *testing.T) {
				before := snapshot(t, s, watched)
				checkError(t, s.doJSON(t, tc.method, tc.path, tc.body), tc.want)
				check(t, before)
			})
		}
	})

	t.Run("auth", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			header http.Header
			want   string
		}{
			{"no key", http.Header{"Authorization": nil}, "You didn't provide an API key."},
			{"wrong key", http.Header{"Authorization": {"Bearer sk-wrong-0123456789abcdef"}}, "Incorrect API key provided"},
			{"not bearer", http.Header{"Authorization": {"Basic " + s.Key}}, ""},
			{"empty bearer", http.Header{"Authorization": {"Bearer "}}, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				for _, path := range []string{A, "/v1/files", "/v1/nope"} {
					before := snapshot(t, s, watched)
					req := s.do(t, "POST", path, strings.NewReader(`{"model":"m"}`), tc.header)
					checkError(t, req, wantErr{http.StatusUnauthorized, "invalid_request_error", "", "invalid_api_key", tc.want})
					if strings.Contains(string(req.Body), s.Key) {
						t.Errorf("error echoes the key: %s", req.Body)
					}
					check(t, before)
				}
			})
		}
	})

	t.Run("beta header", func(t *testing.T) {
		before := snapshot(t, s, watched)
		res := s.do(t, "POST", A, strings.NewReader(`{"model":"m"}`), http.Header{"Openai-Beta": {"assistants=v1"}})
		checkError(t, res, bad400("", "invalid_beta", "assistants=v2"))
		check(t, before)
	})

	t.Run("upload", func(t *testing.T) {
		kib2 := strings.Repeat("z", 2048)
		tests := []struct {
			name   string
			fields [][2]string
			ctype  string // overrides the multipart content type
			want   wantErr
		}{
			{"too large", [][2]string{{"purpose", "assistants"}, {"file", kib2}}, "",
				wantErr{http.StatusRequestEntityTooLarge, "invalid_request_error", "file", "file_too_large", "1024"}},
			{"too large before purpose", [][2]string{{"file", kib2}, {"purpose", "assistants"}}, "",
				wantErr{http.StatusRequestEntityTooLarge, "invalid_request_error", "file", "file_too_large", ""}},
			{"one byte over", [][2]string{{"purpose", "assistants"}, {"file", strings.Repeat("z", 1025)}}, "",
				wantErr{http.StatusRequestEntityTooLarge, "invalid_request_error", "file", "file_too_large", ""}},
			{"bad purpose", [][2]string{{"purpose", "training"}, {"file", "x"}}, "", bad400("purpose", "invalid_value", "training")},
			{"bad purpose after file", [][2]string{{"file", "x"}, {"purpose", "assistants_output"}}, "", bad400("purpose", "invalid_value", "")},
			{"missing purpose", [][2]string{{"file", "x"}}, "", bad400("purpose", "missing_required_parameter", "")},
			{"missing file", [][2]string{{"purpose", "assistants"}}, "", bad400("file", "missing_required_parameter", "")},
			{"two files", [][2]string{{"purpose", "assistants"}, {"file", "x"}, {"file2", "y"}}, "", bad400("file", "invalid_value", "")},
			{"unknown field", [][2]string{{"purpose", "assistants"}, {"file", "x"}, {"name", "n"}}, "", bad400("name", "unknown_parameter", "")},
			{"bad expiry anchor", [][2]string{{"purpose", "assistants"}, {"file", "x"}, {"expires_after[anchor]", "now"}, {"expires_after[seconds]", "3600"}}, "",
				bad400("expires_after.anchor", "invalid_value", "")},
			{"expiry too short", [][2]string{{"purpose", "assistants"}, {"file", "x"}, {"expires_after[anchor]", "created_at"}, {"expires_after[seconds]", "60"}}, "",
				bad400("expires_after.seconds", "invalid_value", "")},
			{"json body", nil, "application/json", bad400("", "", "multipart/form-data")},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				before := snapshot(t, s, watched)
				ctype, body := multipartBody(t, tc.fields)
				if tc.ctype != "" {
					ctype = tc.ctype
				}
				checkError(t, s.do(t, "POST", "/v1/files", body, http.Header{"Content-Type": {ctype}}), tc.want)
				check(t, before)
			})
		}
	})

	t.Run("limits are inclusive", func(t *testing.T) {
		// The largest accepted values: 16 pairs, 64-character keys,
		// 512-character values, 256-character names (characters, not
		// bytes), an upload of exactly --max-upload-bytes.
		a, err := s.Client.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{Model: "m", Name: openai.String(strings.Repeat("é", 256)),
			Description: openai.String(long(512)), Temperature: openai.Float(2), TopP: openai.Float(0), Metadata: shared.Metadata{long(64): long(512)}})
		if err != nil {
			t.Fatal(err)
		}
		meta := map[string]string{}
		json.Unmarshal([]byte(metadataN(16)), &meta)
		if _, err := s.Client.Beta.Assistants.Update(ctx, a.ID, openai.BetaAssistantUpdateParams{Metadata: meta}); err != nil {
			t.Fatal(err)
		}
		f, err := s.Client.Files.New(ctx, openai.FileNewParams{File: openai.File(strings.NewReader(long(1024)), "max.txt", "text/plain"),
			Purpose: openai.FilePurposeAssistants})
		if err != nil {
			t.Fatal(err)
		}
		if f.Bytes != 1024 {
			t.Errorf("bytes = %d, want 1024", f.Bytes)
		}
	})
}

// TestErrorsThroughSDK checks that errors surface from openai-go as
// *openai.Error with the status, type, param and code.
func TestErrorsThroughSDK(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()
	thread := newThread(t, s)
	wrongKey := openai.NewClient(option.WithBaseURL(s.URL+"/v1/"), option.WithAPIKey("sk-wrong-0123456789abcdef"),
		option.WithMaxRetries(0), option.WithMiddleware(s.validate))

	tests := []struct {
		name string
		call func() error
		want apiErr
	}{
		{"wrong key", func() error {
			_, err := wrongKey.Beta.Assistants.List(ctx, openai.BetaAssistantListParams{})
			return err
		},
			apiErr{401, "invalid_request_error", "", "invalid_api_key", "Incorrect API key provided: sk-******************cdef."}},
		{"wrong key on files", func() error { _, err := wrongKey.Files.List(ctx, openai.FileListParams{}); return err },
			apiErr{401, "invalid_request_error", "", "invalid_api_key", "Incorrect API key provided: sk-******************cdef."}},
		{"unknown assistant", func() error { _, err := s.Client.Beta.Assistants.Get(ctx, "asst_missing"); return err },
			apiErr{404, "invalid_request_error", "", "", "No assistant found with id 'asst_missing'."}},
		{"unknown thread", func() error { _, err := s.Client.Beta.Threads.Get(ctx, "thread_missing"); return err },
			apiErr{404, "invalid_request_error", "", "", "No thread found with id 'thread_missing'."}},
		{"unknown message", func() error { _, err := s.Client.Beta.Threads.Messages.Get(ctx, thread, "msg_missing"); return err },
			apiErr{404, "invalid_request_error", "", "", "No message found with id 'msg_missing'."}},
		{"unknown file", func() error { _, err := s.Client.Files.Get(ctx, "file-missing"); return err },
			apiErr{404, "invalid_request_error", "id", "", "No such File object: file-missing"}},
		{"assistant id with thread prefix", func() error { _, err := s.Client.Beta.Assistants.Get(ctx, thread); return err },
			apiErr{400, "invalid_request_error", "assistant_id", "invalid_value", "Invalid 'assistant_id': '" + thread + "'. Expected an ID that begins with 'asst'."}},
		{"thread id with assistant prefix", func() error { _, err := s.Client.Beta.Threads.Delete(ctx, "asst_abc"); return err },
			apiErr{400, "invalid_request_error", "thread_id", "invalid_value", "Invalid 'thread_id': 'asst_abc'. Expected an ID that begins with 'thread'."}},
		{"temperature too high", func() error {
			_, err := s.Client.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{Model: "m", Temperature: openai.Float(2.5)})
			return err
		}, apiErr{400, "invalid_request_error", "temperature", "decimal_above_max_value",
			"Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 2.5 instead."}},
		{"bad role", func() error {
			_, err := s.Client.Beta.Threads.Messages.New(ctx, thread, openai.BetaThreadMessageNewParams{Role: "system",
				Content: openai.BetaThreadMessageNewParamsContentUnion{OfString: openai.String("x")}})
			return err
		}, apiErr{400, "invalid_request_error", "role", "invalid_value", "Invalid value: 'system'. Supported values are: 'user' and 'assistant'."}},
		{"bad limit", func() error {
			_, err := s.Client.Beta.Threads.Messages.List(ctx, thread, openai.BetaThreadMessageListParams{Limit: openai.Int(1000)})
			return err
		}, apiErr{400, "invalid_request_error", "limit", "integer_above_max_value",
			"Invalid 'limit': integer above maximum value. Expected a value <= 100, but got 1000 instead."}},
		{"bad purpose", func() error {
			_, err := s.Client.Files.New(ctx, openai.FileNewParams{File: openai.File(strings.NewReader("x"), "x.txt", "text/plain"), Purpose: "training"})
			return err
		}, apiErr{400, "invalid_request_error", "purpose", "invalid_value",
			"Invalid value for 'purpose': 'training'. Supported values are: 'assistants', 'batch', 'fine-tune', 'vision', 'user_data', and 'evals'."}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ae := apiError(t, tc.call())
			if diff := cmp.Diff(tc.want, toAPIErr(ae)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if ae.Response == nil || ae.Response.Header.Get("X-Request-Id") == "" {
				t.Error("no x-request-id on the error response")
			}
		})
	}
}

// TestHealthz checks that GET /healthz answers without a key.
func TestHealthz(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	res, err := http.Get(s.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || body["status"] != "ok" {
		t.Errorf("GET /healthz = %d %v, want 200 {status: ok}", res.StatusCode, body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
	if res.Header.Get("X-Request-Id") == "" {
		t.Error("no x-request-id")
	}
}
