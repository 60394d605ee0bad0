package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v5"
	"github.com/openai/openai-go/v3"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/db/dbtest"
	"github.com/assistantd/assistantd/handlers/api"
	"github.com/assistantd/assistantd/tests/upstream"
	"github.com/assistantd/assistantd/web"
)

// Projects isolate: with project B's key, every route of the API answers
// for project A's objects exactly as for objects that do not exist (the
// same status, the same error with the id in it), B's lists never show A's
// objects, and A's ids inside B's request bodies (assistant_id, file_ids,
// attachments, vector_store_ids, previous_response_id, conversation,
// prompt …) are refused as missing ids are. The cases are checked against
// the route table itself, so a route added without a case fails the test.

// isoFixture is a server with project A's objects (made with the server's
// own key, which speaks for the Default project) and project B's key.
type isoFixture struct {
	s    *server
	keyB string
	// a names A's objects by path parameter (and a few more by role).
	a map[string]string
	// b holds B's own objects, for request bodies that must otherwise be
	// valid (a run of B's assistant on A's thread).
	b map[string]string
}

// isoCase checks one route.
type isoCase struct {
	method, path string
	check        func(t *testing.T, f *isoFixture)
}

// startTwoProjects starts a server whose store already holds project B
// with a key; the server's own key speaks for the Default project (A).
func startTwoProjects(t *testing.T) (*server, *upstream.Server, string) {
	t.Helper()
	up := upstream.New()
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	data := t.TempDir()
	var opts []db.Option
	args := []string{"--upstream-url", srv.URL + "/v1"}
	if onPostgres {
		url := dbtest.Database(t, migrateTemplate)
		opts = append(opts, db.WithDatabaseURL(url))
		args = append(args, "--database-url", url, "--run-lease", "2s")
	}
	ctx := context.Background()
	store, err := db.Open(ctx, data, opts...)
	if err != nil {
		t.Fatal(err)
	}
	p, err := store.CreateProject(ctx, "B")
	if err != nil {
		t.Fatal(err)
	}
	_, keyB, err := store.CreateAPIKey(ctx, db.KeyOptions{ProjectID: p.ID, Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, Key: "sk-test-" + randomHex(16), Data: data, args: args}
	if onPostgres {
		s.DatabaseURL = args[len(args)-3]
	}
	s.start(t)
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("server stderr (last lines):\n%s", lastLines(s.errBuf.String(), 60))
		}
	})
	return s, up, keyB
}

// call sends a request with key (JSON body unless contentType says
// otherwise); the response is checked against the spec like every other.
func (f *isoFixture) call(t *testing.T, key, method, path string, body []byte, contentType string) rawResponse {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + key}, "Openai-Beta": {"assistants=v2"}}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
		if contentType == "" {
			contentType = "application/json"
		}
		h.Set("Content-Type", contentType)
	}
	return f.s.do(t, method, path, r, h)
}

// create makes an object of A (key "") or B and returns the id.
func (f *isoFixture) create(t *testing.T, key, method, path, body string) string {
	t.Helper()
	if key == "" {
		key = f.s.Key
	}
	res := f.call(t, key, method, path, []byte(body), "")
	if res.Status != http.StatusOK {
		t.Fatalf("%s %s → %d %s", method, path, res.Status, res.Body)
	}
	var v struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(res.Body, &v); err != nil || v.ID == "" {
		t.Fatalf("%s %s: no id in %s", method, path, res.Body)
	}
	return v.ID
}

// formWithFile is a form with one file field and the given fields.
func formWithFile(fileField, name, content string, fields map[string]string) ([]byte, string) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, v := range fields {
		_ = w.WriteField(k, v)
	}
	fw, _ := w.CreateFormFile(fileField, name)
	_, _ = io.WriteString(fw, content)
	_ = w.Close()
	return buf.Bytes(), w.FormDataContentType()
}

// missingLike is an id of the same kind as id that names nothing.
func missingLike(id string) string {
	i := strings.IndexAny(id, "_-")
	return id[:i+1] + "missing" + randomHex(8)
}

// envelopeError is the error envelope's fields.
type envelopeError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func errorOf(body []byte) envelopeError {
	var v struct {
		Error envelopeError `json:"error"`
	}
	_ = json.Unmarshal(body, &v)
	return v.Error
}

// sameAsMissing checks that got (naming A's ids) answers as missing does
// (naming ids that exist nowhere): the same status, the same error once the
// ids are swapped, and the status wantStatus.
func sameAsMissing(t *testing.T, what string, got, missing rawResponse, swap map[string]string, wantStatus int) {
	t.Helper()
	if got.Status != missing.Status {
		t.Errorf("%s: another project's id → %d %s; a missing one → %d %s", what, got.Status, truncate(got.Body, 300),
			missing.Status, truncate(missing.Body, 300))
		return
	}
	if got.Status != wantStatus {
		t.Errorf("%s: → %d %s, want %d", what, got.Status, truncate(got.Body, 300), wantStatus)
	}
	g, m := errorOf(got.Body), errorOf(missing.Body)
	for real, fake := range swap {
		g.Message = strings.ReplaceAll(g.Message, real, fake)
		if g.Param != nil {
			p := strings.ReplaceAll(*g.Param, real, fake)
			g.Param = &p
		}
	}
	gj, _ := json.Marshal(g)
	mj, _ := json.Marshal(m)
	if string(gj) != string(mj) {
		t.Errorf("%s: another project's id answers %s; a missing one %s", what, gj, mj)
	}
}

// fill replaces path's parameters by ids.
func fill(path string, ids map[string]string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if name, ok := strings.CutPrefix(p, ":"); ok {
			parts[i] = ids[name]
		}
	}
	return strings.Join(parts, "/")
}

// objectIDs names A's object for each parameter of path (file_id is a
// container's file under /containers).
func (f *isoFixture) objectIDs(path string) map[string]string {
	ids := map[string]string{}
	for k, v := range f.a {
		ids[k] = v
	}
	if strings.HasPrefix(path, "/v1/containers/") {
		ids["file_id"] = f.a["container_file_id"]
	}
	return ids
}

// onObject is the case of a route naming A's objects in its path: with
// B's key it answers as for missing ones, 404.
func onObject(method, path string, body func(f *isoFixture) ([]byte, string)) isoCase {
	return isoCase{method, path, func(t *testing.T, f *isoFixture) {
		ids := f.objectIDs(path)
		fake, swap := map[string]string{}, map[string]string{}
		for k, v := range ids {
			fake[k] = v
		}
		for _, seg := range strings.Split(path, "/") {
			k, ok := strings.CutPrefix(seg, ":")
			if ok && k != "version" && k != "function_name" {
				fake[k] = missingLike(ids[k])
				swap[ids[k]] = fake[k]
			}
		}
		var b []byte
		var ct string
		if body != nil {
			b, ct = body(f)
		}
		got := f.call(t, f.keyB, method, fill(path, ids), b, ct)
		if body != nil {
			b, ct = body(f) // a fresh multipart boundary is harmless; bodies are re-made
		}
		missing := f.call(t, f.keyB, method, fill(path, fake), b, ct)
		sameAsMissing(t, method+" "+path, got, missing, swap, http.StatusNotFound)
	}}
}

func jsonBody(s string) func(*isoFixture) ([]byte, string) {
	return func(*isoFixture) ([]byte, string) { return []byte(s), "" }
}

// withB is a JSON body naming B's own objects (by %[1]s… placeholders).
func withB(format string, keys ...string) func(*isoFixture) ([]byte, string) {
	return func(f *isoFixture) ([]byte, string) {
		args := make([]any, len(keys))
		for i, k := range keys {
			args[i] = f.b[k]
		}
		return []byte(fmt.Sprintf(format, args...)), ""
	}
}

// listing is the case of a top-level list: B's list holds none of A's
// objects (and answers 200).
func listing(path string) isoCase {
	return isoCase{"GET", path, func(t *testing.T, f *isoFixture) {
		res := f.call(t, f.keyB, "GET", path+"?limit=100", nil, "")
		if res.Status != http.StatusOK {
			t.Fatalf("GET %s → %d %s", path, res.Status, res.Body)
		}
		for _, id := range f.a {
			if len(id) > 8 && bytes.Contains(res.Body, []byte(id)) {
				t.Errorf("GET %s with B's key shows A's %s: %s", path, id, truncate(res.Body, 500))
			}
		}
		var page struct {
			Data []json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(res.Body, &page); err != nil || len(page.Data) == 0 {
			t.Errorf("GET %s with B's key: %v, %d items; want B's own objects listed", path, err, len(page.Data))
		}
	}}
}

// refInBody is the case of a create naming an object of A in its body:
// refused exactly as naming a missing object is. body formats the request
// with the referenced id; wantStatus is what a missing id answers (unless
// the ref says otherwise).
func refInBody(method, path string, wantStatus int, refs ...ref) isoCase {
	return isoCase{method, path, func(t *testing.T, f *isoFixture) {
		for _, r := range refs {
			wantStatus := wantStatus
			if r.status != 0 {
				wantStatus = r.status
			}
			real := f.a[r.key]
			fake := missingLike(real)
			got := f.call(t, f.keyB, method, path, []byte(r.body(f, real)), "")
			missing := f.call(t, f.keyB, method, path, []byte(r.body(f, fake)), "")
			sameAsMissing(t, method+" "+path+" naming A's "+r.key, got, missing, map[string]string{real: fake}, wantStatus)
			if got.Status == http.StatusOK && bytes.Contains(got.Body, []byte("A's words")) {
				t.Errorf("%s %s naming A's %s reads A's content: %s", method, path, r.key, truncate(got.Body, 300))
			}
		}
	}}
}

// ref is one body naming A's object key; status, when set, is what a
// missing id answers there.
type ref struct {
	key    string
	body   func(f *isoFixture, id string) string
	status int
}

func withStatus(r ref, status int) ref { r.status = status; return r }

func refJSON(key, format string) ref {
	return ref{key, func(_ *isoFixture, id string) string { return fmt.Sprintf(format, id) }, 0}
}

// createdInB is the case of a create that names nothing of A: what B
// makes is B's, and A's key cannot see it at getPath.
func createdInB(method, path string, body func(f *isoFixture) ([]byte, string), getPath string) isoCase {
	return isoCase{method, path, func(t *testing.T, f *isoFixture) {
		b, ct := body(f)
		res := f.call(t, f.keyB, method, path, b, ct)
		if res.Status != http.StatusOK {
			t.Fatalf("%s %s with B's key → %d %s", method, path, res.Status, res.Body)
		}
		var v struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(res.Body, &v)
		if v.ID == "" {
			t.Fatalf("%s %s: no id in %s", method, path, res.Body)
		}
		seen := f.call(t, f.s.Key, getPath[:strings.IndexByte(getPath, ' ')], fmt.Sprintf(getPath[strings.IndexByte(getPath, ' ')+1:], v.ID), nil, "")
		if seen.Status != http.StatusNotFound {
			t.Errorf("B's new %s, read with A's key → %d %s, want 404", v.ID, seen.Status, truncate(seen.Body, 300))
		}
	}}
}

func isolationCases() []isoCase {
	meta := jsonBody(`{"metadata":{"k":"v"}}`)
	return []isoCase{
		listing("/v1/assistants"),
		refInBody("POST", "/v1/assistants", http.StatusBadRequest,
			refJSON("file", `{"model":"fake-model","tools":[{"type":"code_interpreter"}],"tool_resources":{"code_interpreter":{"file_ids":[%q]}}}`)),
		onObject("GET", "/v1/assistants/:assistant_id", nil),
		onObject("POST", "/v1/assistants/:assistant_id", jsonBody(`{"name":"taken"}`)),
		onObject("DELETE", "/v1/assistants/:assistant_id", nil),
		onObject("GET", "/v1/assistants/:assistant_id/versions", nil),
		onObject("GET", "/v1/assistants/:assistant_id/versions/:version", nil),
		onObject("GET", "/v1/assistants/:assistant_id/webhooks", nil),
		onObject("PUT", "/v1/assistants/:assistant_id/webhooks/:function_name", jsonBody(`{"url":"https://example.com/hook"}`)),
		onObject("DELETE", "/v1/assistants/:assistant_id/webhooks/:function_name", nil),

		refInBody("POST", "/v1/threads", http.StatusBadRequest,
			refJSON("file", `{"messages":[{"role":"user","content":"hi","attachments":[{"file_id":%q,"tools":[{"type":"code_interpreter"}]}]}]}`),
			refJSON("file", `{"tool_resources":{"code_interpreter":{"file_ids":[%q]}}}`)),
		onObject("GET", "/v1/threads/:thread_id", nil),
		onObject("POST", "/v1/threads/:thread_id", meta),
		onObject("DELETE", "/v1/threads/:thread_id", nil),
		onObject("GET", "/v1/threads/:thread_id/messages", nil),
		onObject("POST", "/v1/threads/:thread_id/messages", jsonBody(`{"role":"user","content":"hi"}`)),
		onObject("GET", "/v1/threads/:thread_id/messages/:message_id", nil),
		onObject("POST", "/v1/threads/:thread_id/messages/:message_id", meta),
		onObject("DELETE", "/v1/threads/:thread_id/messages/:message_id", nil),
		refInBody("POST", "/v1/threads/runs", http.StatusNotFound,
			refJSON("assistant_id", `{"assistant_id":%q}`)),
		onObject("GET", "/v1/threads/:thread_id/runs", nil),
		onObject("POST", "/v1/threads/:thread_id/runs", withB(`{"assistant_id":%q}`, "assistant_id")),
		onObject("GET", "/v1/threads/:thread_id/runs/:run_id", nil),
		onObject("POST", "/v1/threads/:thread_id/runs/:run_id", meta),
		onObject("POST", "/v1/threads/:thread_id/runs/:run_id/cancel", jsonBody(`{}`)),
		onObject("POST", "/v1/threads/:thread_id/runs/:run_id/submit_tool_outputs",
			jsonBody(`{"tool_outputs":[{"tool_call_id":"call_1","output":"x"}]}`)),
		onObject("GET", "/v1/threads/:thread_id/runs/:run_id/steps", nil),
		onObject("GET", "/v1/threads/:thread_id/runs/:run_id/steps/:step_id", nil),

		{"GET", "/v1/models", func(t *testing.T, f *isoFixture) {
			// Not a project's object: B lists the models the server serves.
			if res := f.call(t, f.keyB, "GET", "/v1/models", nil, ""); res.Status != http.StatusOK {
				t.Errorf("GET /v1/models with B's key → %d", res.Status)
			}
		}},

		listing("/v1/files"),
		createdInB("POST", "/v1/files", func(*isoFixture) ([]byte, string) {
			return formWithFile("file", "b.txt", "B's words", map[string]string{"purpose": "assistants"})
		}, "GET /v1/files/%s"),
		onObject("GET", "/v1/files/:file_id", nil),
		onObject("DELETE", "/v1/files/:file_id", nil),
		onObject("GET", "/v1/files/:file_id/content", nil),

		listing("/v1/vector_stores"),
		refInBody("POST", "/v1/vector_stores", http.StatusBadRequest,
			refJSON("file", `{"name":"x","file_ids":[%q]}`)),
		onObject("GET", "/v1/vector_stores/:vector_store_id", nil),
		onObject("POST", "/v1/vector_stores/:vector_store_id", jsonBody(`{"name":"taken"}`)),
		onObject("DELETE", "/v1/vector_stores/:vector_store_id", nil),
		onObject("GET", "/v1/vector_stores/:vector_store_id/files", nil),
		onObject("POST", "/v1/vector_stores/:vector_store_id/files", withB(`{"file_id":%q}`, "file")),
		onObject("GET", "/v1/vector_stores/:vector_store_id/files/:file_id", nil),
		onObject("POST", "/v1/vector_stores/:vector_store_id/files/:file_id", jsonBody(`{"attributes":{"k":"v"}}`)),
		onObject("DELETE", "/v1/vector_stores/:vector_store_id/files/:file_id", nil),
		onObject("GET", "/v1/vector_stores/:vector_store_id/files/:file_id/content", nil),
		onObject("POST", "/v1/vector_stores/:vector_store_id/file_batches", withB(`{"file_ids":[%q]}`, "file")),
		onObject("GET", "/v1/vector_stores/:vector_store_id/file_batches/:batch_id", nil),
		onObject("POST", "/v1/vector_stores/:vector_store_id/file_batches/:batch_id/cancel", jsonBody(`{}`)),
		onObject("GET", "/v1/vector_stores/:vector_store_id/file_batches/:batch_id/files", nil),
		onObject("POST", "/v1/vector_stores/:vector_store_id/search", jsonBody(`{"query":"words"}`)),

		createdInB("POST", "/v1/uploads", func(*isoFixture) ([]byte, string) {
			return []byte(`{"filename":"u.txt","purpose":"assistants","bytes":5,"mime_type":"text/plain"}`), ""
		}, "POST /v1/uploads/%s/cancel"),
		onObject("POST", "/v1/uploads/:upload_id/parts", func(*isoFixture) ([]byte, string) {
			return formWithFile("data", "part", "hello", nil)
		}),
		onObject("POST", "/v1/uploads/:upload_id/complete", func(f *isoFixture) ([]byte, string) {
			return []byte(fmt.Sprintf(`{"part_ids":[%q]}`, f.a["part_id"])), ""
		}),
		onObject("POST", "/v1/uploads/:upload_id/cancel", jsonBody(`{}`)),

		refInBody("POST", "/v1/responses", http.StatusBadRequest,
			refJSON("response_id", `{"model":"fake-model","input":"hi","previous_response_id":%q}`),
			withStatus(refJSON("conversation_id", `{"model":"fake-model","input":"hi","conversation":%q}`), http.StatusNotFound),
			refJSON("vector_store_id", `{"model":"fake-model","input":"hi","tools":[{"type":"file_search","vector_store_ids":[%q]}]}`),
			// A missing input file is answered without it (as before
			// projects); another project's is too, its content unread.
			withStatus(refJSON("file", `{"model":"fake-model","input":[{"role":"user","content":[{"type":"input_file","file_id":%q}]}]}`), http.StatusOK),
			refJSON("container_id", `{"model":"fake-model","input":"hi","tools":[{"type":"code_interpreter","container":%q}]}`),
			refJSON("assistant_id", `{"input":"hi","prompt":{"id":%q}}`)),
		{"GET", "/v1/responses", func(t *testing.T, f *isoFixture) {
			// WebSocket mode: response.create continuing A's response is
			// refused as continuing a missing one is.
			turn := func(prev string) map[string]any {
				url := "ws" + strings.TrimPrefix(f.s.URL, "http") + "/v1/responses"
				ctx := streamContext(t)
				conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + f.keyB}}})
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				defer conn.CloseNow()
				body := fmt.Sprintf(`{"type":"response.create","model":"fake-model","input":"hi","previous_response_id":%q}`, prev)
				if err := conn.Write(ctx, websocket.MessageText, []byte(body)); err != nil {
					t.Fatal(err)
				}
				for {
					_, data, err := conn.Read(ctx)
					if err != nil {
						t.Fatalf("read: %v", err)
					}
					var ev map[string]any
					_ = json.Unmarshal(data, &ev)
					if ev["type"] == "error" || ev["type"] == "response.completed" || ev["type"] == "response.failed" {
						return ev
					}
				}
			}
			real := f.a["response_id"]
			fake := missingLike(real)
			got, missing := turn(real), turn(fake)
			gj, _ := json.Marshal(got)
			mj, _ := json.Marshal(missing)
			if got["type"] != "error" || strings.ReplaceAll(string(gj), real, fake) != string(mj) {
				t.Errorf("socket continuing A's response: %s; a missing one: %s", gj, mj)
			}
		}},
		refInBody("POST", "/v1/responses/input_tokens", http.StatusBadRequest,
			refJSON("response_id", `{"model":"fake-model","input":"hi","previous_response_id":%q}`),
			withStatus(refJSON("conversation_id", `{"model":"fake-model","input":"hi","conversation":%q}`), http.StatusNotFound)),
		refInBody("POST", "/v1/responses/compact", http.StatusBadRequest,
			refJSON("response_id", `{"model":"fake-model","previous_response_id":%q}`)),
		onObject("GET", "/v1/responses/:response_id", nil),
		onObject("DELETE", "/v1/responses/:response_id", nil),
		onObject("POST", "/v1/responses/:response_id/cancel", jsonBody(`{}`)),
		onObject("GET", "/v1/responses/:response_id/input_items", nil),

		createdInB("POST", "/v1/conversations", jsonBody(`{"items":[{"type":"message","role":"user","content":"B's"}]}`),
			"GET /v1/conversations/%s"),
		onObject("GET", "/v1/conversations/:conversation_id", nil),
		onObject("POST", "/v1/conversations/:conversation_id", meta),
		onObject("DELETE", "/v1/conversations/:conversation_id", nil),
		onObject("GET", "/v1/conversations/:conversation_id/items", nil),
		onObject("POST", "/v1/conversations/:conversation_id/items",
			jsonBody(`{"items":[{"type":"message","role":"user","content":"hi"}]}`)),
		onObject("GET", "/v1/conversations/:conversation_id/items/:item_id", nil),
		onObject("DELETE", "/v1/conversations/:conversation_id/items/:item_id", nil),
		onObject("POST", "/v1/threads/:thread_id/conversation", jsonBody(`{}`)),

		listing("/v1/containers"),
		refInBody("POST", "/v1/containers", http.StatusBadRequest,
			refJSON("file", `{"name":"c","file_ids":[%q]}`)),
		onObject("GET", "/v1/containers/:container_id", nil),
		onObject("DELETE", "/v1/containers/:container_id", nil),
		onObject("GET", "/v1/containers/:container_id/files", nil),
		onObject("POST", "/v1/containers/:container_id/files", func(*isoFixture) ([]byte, string) {
			return formWithFile("file", "c.txt", "words", nil)
		}),
		onObject("GET", "/v1/containers/:container_id/files/:file_id", nil),
		onObject("DELETE", "/v1/containers/:container_id/files/:file_id", nil),
		onObject("GET", "/v1/containers/:container_id/files/:file_id/content", nil),
	}
}

// apiRoutes lists the /v1 routes of the server's route table, as
// "METHOD /path".
func apiRoutes(t *testing.T) []string {
	h := web.New(web.Config{API: &api.API{}, Webhooks: &api.Webhooks{}, Responses: &api.Responses{},
		Containers: &api.Containers{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	e, ok := h.(*echo.Echo)
	if !ok {
		t.Fatalf("web.New returned %T, want *echo.Echo", h)
	}
	var out []string
	for _, r := range e.Router().Routes() {
		switch r.Method {
		case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		default:
			continue // RouteNotFound and the like
		}
		if strings.HasPrefix(r.Path, "/v1/") {
			out = append(out, r.Method+" "+r.Path)
		}
	}
	slices.Sort(out)
	return out
}

// TestIsolationCoversEveryRoute: every /v1 route of the route table has an
// isolation case, and every case a route.
func TestIsolationCoversEveryRoute(t *testing.T) {
	t.Parallel()
	routes := apiRoutes(t)
	if len(routes) < 50 {
		t.Fatalf("the route table has %d /v1 routes; the walk is broken", len(routes))
	}
	cases := map[string]bool{}
	for _, c := range isolationCases() {
		key := c.method + " " + c.path
		if cases[key] {
			t.Errorf("two isolation cases for %s", key)
		}
		cases[key] = true
	}
	for _, r := range routes {
		if !cases[r] {
			t.Errorf("route %s has no project isolation case in isolationCases", r)
		}
		delete(cases, r)
	}
	for c := range cases {
		t.Errorf("isolation case %s names no route", c)
	}
}

// TestProjectIsolation runs every isolation case against a server holding
// project A's objects of every kind, with project B's key.
func TestProjectIsolation(t *testing.T) {
	t.Parallel()
	s, _, keyB := startTwoProjects(t)
	f := &isoFixture{s: s, keyB: keyB, a: map[string]string{}, b: map[string]string{}}
	ctx := context.Background()

	// Project A (the server's key: the Default project).
	f.a["assistant_id"] = newAssistant(t, s)
	f.a["version"] = "1"
	f.a["function_name"] = "get_weather"
	if res := f.call(t, s.Key, "PUT", "/v1/assistants/"+f.a["assistant_id"]+"/webhooks/get_weather",
		[]byte(`{"url":"https://example.com/hook"}`), ""); res.Status != http.StatusOK {
		t.Fatalf("webhook: %d %s", res.Status, res.Body)
	}
	f.a["file"] = uploadText(t, s, "a.txt", "A's words")
	f.a["file_id"] = f.a["file"]
	f.a["thread_id"] = threadWith(t, s, "hello from A")
	msgs, err := s.Client.Beta.Threads.Messages.List(ctx, f.a["thread_id"], openai.BetaThreadMessageListParams{})
	if err != nil || len(msgs.Data) == 0 {
		t.Fatalf("messages: %v", err)
	}
	f.a["message_id"] = msgs.Data[0].ID
	run := startRun(t, s, f.a["thread_id"], f.a["assistant_id"])
	waitRun(t, s, f.a["thread_id"], run.ID, openai.RunStatusCompleted)
	f.a["run_id"] = run.ID
	steps, err := s.Client.Beta.Threads.Runs.Steps.List(ctx, f.a["thread_id"], run.ID, openai.BetaThreadRunStepListParams{})
	if err != nil || len(steps.Data) == 0 {
		t.Fatalf("steps: %v", err)
	}
	f.a["step_id"] = steps.Data[0].ID
	f.a["vector_store_id"] = f.create(t, "", "POST", "/v1/vector_stores", fmt.Sprintf(`{"name":"A","file_ids":[%q]}`, f.a["file"]))
	f.a["batch_id"] = f.create(t, "", "POST", "/v1/vector_stores/"+f.a["vector_store_id"]+"/file_batches",
		fmt.Sprintf(`{"file_ids":[%q]}`, f.a["file"]))
	f.a["upload_id"] = f.create(t, "", "POST", "/v1/uploads", `{"filename":"a.txt","purpose":"assistants","bytes":10,"mime_type":"text/plain"}`)
	part, ct := formWithFile("data", "part", "hello", nil)
	res := f.call(t, s.Key, "POST", "/v1/uploads/"+f.a["upload_id"]+"/parts", part, ct)
	var p struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(res.Body, &p); res.Status != http.StatusOK || p.ID == "" {
		t.Fatalf("upload part: %d %s", res.Status, res.Body)
	}
	f.a["part_id"] = p.ID
	f.a["response_id"] = f.create(t, "", "POST", "/v1/responses", `{"model":"fake-model","input":"hi from A"}`)
	f.a["conversation_id"] = f.create(t, "", "POST", "/v1/conversations", `{"items":[{"type":"message","role":"user","content":"A's"}]}`)
	items := f.call(t, s.Key, "GET", "/v1/conversations/"+f.a["conversation_id"]+"/items", nil, "")
	var page struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if json.Unmarshal(items.Body, &page); len(page.Data) == 0 {
		t.Fatalf("conversation items: %s", items.Body)
	}
	f.a["item_id"] = page.Data[0].ID
	f.a["container_id"] = f.create(t, "", "POST", "/v1/containers", fmt.Sprintf(`{"name":"A","file_ids":[%q]}`, f.a["file"]))
	cfiles := f.call(t, s.Key, "GET", "/v1/containers/"+f.a["container_id"]+"/files", nil, "")
	if json.Unmarshal(cfiles.Body, &page); len(page.Data) == 0 {
		t.Fatalf("container files: %s", cfiles.Body)
	}
	f.a["container_file_id"] = page.Data[0].ID

	// Project B's own objects: its lists are not empty, and requests that
	// name B's objects besides A's are otherwise valid.
	f.b["assistant_id"] = f.create(t, keyB, "POST", "/v1/assistants", `{"model":"fake-model","name":"B"}`)
	body, ct := formWithFile("file", "b.txt", "B's words", map[string]string{"purpose": "assistants"})
	res = f.call(t, keyB, "POST", "/v1/files", body, ct)
	var bf struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(res.Body, &bf); bf.ID == "" {
		t.Fatalf("B's file: %d %s", res.Status, res.Body)
	}
	f.b["file"] = bf.ID
	f.create(t, keyB, "POST", "/v1/vector_stores", `{"name":"B"}`)
	f.create(t, keyB, "POST", "/v1/containers", `{"name":"B"}`)

	// B's own run and response execute in B's project: the engine reads
	// B's thread and assistant, and answers.
	var br struct {
		ID       string `json:"id"`
		ThreadID string `json:"thread_id"`
		Status   string `json:"status"`
	}
	res = f.call(t, keyB, "POST", "/v1/threads/runs", []byte(fmt.Sprintf(
		`{"assistant_id":%q,"thread":{"messages":[{"role":"user","content":"hello from B"}]}}`, f.b["assistant_id"])), "")
	if json.Unmarshal(res.Body, &br); res.Status != http.StatusOK || br.ID == "" {
		t.Fatalf("B's run: %d %s", res.Status, res.Body)
	}
	for deadline := time.Now().Add(runDeadline); br.Status != "completed"; {
		if time.Now().After(deadline) || br.Status == "failed" || br.Status == "expired" || br.Status == "cancelled" {
			t.Fatalf("B's run is %s, want completed: %s", br.Status, res.Body)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
		res = f.call(t, keyB, "GET", "/v1/threads/"+br.ThreadID+"/runs/"+br.ID, nil, "")
		_ = json.Unmarshal(res.Body, &br)
	}
	res = f.call(t, keyB, "POST", "/v1/responses", []byte(`{"model":"fake-model","input":"hi from B"}`), "")
	if res.Status != http.StatusOK || !bytes.Contains(res.Body, []byte(`"status":"completed"`)) {
		t.Fatalf("B's response: %d %s", res.Status, truncate(res.Body, 500))
	}
	if seen := f.call(t, s.Key, "GET", "/v1/threads/"+br.ThreadID+"/runs/"+br.ID, nil, ""); seen.Status != http.StatusNotFound {
		t.Errorf("B's run read with A's key → %d, want 404", seen.Status)
	}

	for _, c := range isolationCases() {
		t.Run(c.method+" "+c.path, func(t *testing.T) { c.check(t, f) })
	}

	// Nothing B asked for changed A's objects.
	for _, path := range []string{"/v1/assistants/" + f.a["assistant_id"], "/v1/threads/" + f.a["thread_id"],
		"/v1/threads/" + f.a["thread_id"] + "/messages/" + f.a["message_id"], "/v1/files/" + f.a["file"],
		"/v1/vector_stores/" + f.a["vector_store_id"], "/v1/responses/" + f.a["response_id"],
		"/v1/conversations/" + f.a["conversation_id"], "/v1/containers/" + f.a["container_id"],
		"/v1/containers/" + f.a["container_id"] + "/files/" + f.a["container_file_id"]} {
		if res := f.call(t, s.Key, "GET", path, nil, ""); res.Status != http.StatusOK {
			t.Errorf("A's GET %s after B's requests → %d %s", path, res.Status, truncate(res.Body, 300))
		}
	}
	if a, err := s.Client.Beta.Assistants.Get(ctx, f.a["assistant_id"]); err != nil || a.Name == "taken" {
		t.Errorf("A's assistant after B's requests: %+v %v", a, err)
	}
}
