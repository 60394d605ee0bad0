package apitest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
)

// webhookObj is the extension's assistant.webhook object.
type webhookObj struct {
	Object       string `json:"object"`
	FunctionName string `json:"function_name"`
	URL          string `json:"url"`
	Secret       string `json:"secret"`
	SecretHint   string `json:"secret_hint"`
	TimeoutMS    int    `json:"timeout_ms"`
	MaxRetries   int    `json:"max_retries"`
	OnFailure    string `json:"on_failure"`
	CreatedAt    int64  `json:"created_at"`
}

// putWebhook configures a webhook through openai-go's raw request support.
func putWebhook(s *server, assistantID, function, body string) (webhookObj, map[string]any, error) {
	var raw json.RawMessage
	err := s.Client.Put(context.Background(), "assistants/"+assistantID+"/webhooks/"+url.PathEscape(function),
		json.RawMessage(body), &raw)
	var obj webhookObj
	var keys map[string]any
	if err == nil {
		_ = json.Unmarshal(raw, &obj)
		_ = json.Unmarshal(raw, &keys)
	}
	return obj, keys, err
}

func mustPutWebhook(t testing.TB, s *server, assistantID, function, body string) webhookObj {
	t.Helper()
	obj, _, err := putWebhook(s, assistantID, function, body)
	if err != nil {
		t.Fatalf("PUT webhook %s: %v", function, err)
	}
	return obj
}

func listWebhooks(t testing.TB, s *server, assistantID string) []webhookObj {
	t.Helper()
	var out struct {
		Object string       `json:"object"`
		Data   []webhookObj `json:"data"`
	}
	if err := s.Client.Get(context.Background(), "assistants/"+assistantID+"/webhooks", nil, &out); err != nil {
		t.Fatalf("list webhooks: %v", err)
	}
	if out.Object != "list" {
		t.Fatalf("list object %q", out.Object)
	}
	return out.Data
}

// verifySignature checks a delivery as a receiver would, written here
// from the Standard Webhooks spec rather than with the server's own signer.
func verifySignature(secret string, h http.Header, body []byte) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}

func TestWebhookEndpoints(t *testing.T) {
	t.Parallel()
	s := startServer(t) // no --webhook-allow-networks: every refused network stays refused
	ctx := context.Background()
	asst := newAssistant(t, s)
	const hook = "https://hooks.example.com/weather"

	// Without a secret one is generated and shown this once.
	obj, keys, err := putWebhook(s, asst, "get_weather", `{"url":"`+hook+`"}`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(obj.Secret, "whsec_") || len(obj.Secret) != len("whsec_")+44 {
		t.Fatalf("generated secret %q: want whsec_ and the base64 of 32 bytes", obj.Secret)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(obj.Secret, "whsec_"))
	if err != nil || len(key) != 32 {
		t.Fatalf("secret key: %d bytes, %v", len(key), err)
	}
	generated := obj
	want := webhookObj{Object: "assistant.webhook", FunctionName: "get_weather", URL: hook, Secret: obj.Secret,
		SecretHint: obj.SecretHint, TimeoutMS: 10000, MaxRetries: 2, OnFailure: "error_output", CreatedAt: obj.CreatedAt}
	if diff := cmp.Diff(want, obj); diff != "" || obj.CreatedAt == 0 {
		t.Fatalf("PUT response (-want +got):\n%s", diff)
	}
	var gotKeys []string
	for k := range keys {
		gotKeys = append(gotKeys, k)
	}
	if len(gotKeys) != 9 {
		t.Fatalf("response keys %v: want the 8 documented ones plus secret", gotKeys)
	}
	if !strings.HasPrefix(obj.SecretHint, "whsec_") || strings.Contains(obj.SecretHint, obj.Secret[6:20]) ||
		!strings.HasSuffix(obj.SecretHint, obj.Secret[len(obj.Secret)-4:]) {
		t.Fatalf("secret_hint %q gives away too much or too little of %q", obj.SecretHint, obj.Secret)
	}
	// Afterwards only the hint.
	list := listWebhooks(t, s, asst)
	if len(list) != 1 || list[0].Secret != "" || list[0].SecretHint != obj.SecretHint || list[0].URL != hook {
		t.Fatalf("list = %+v", list)
	}

	// A given secret is kept and not echoed; every setting is kept.
	const mySecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	obj, keys, err = putWebhook(s, asst, "get_weather",
		`{"url":"http://8.8.8.8:8080/hook","secret":"`+mySecret+`","timeout_ms":2500,"max_retries":0,"on_failure":"requires_action"}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, shown := keys["secret"]; shown || obj.URL != "http://8.8.8.8:8080/hook" || obj.TimeoutMS != 2500 ||
		obj.MaxRetries != 0 || obj.OnFailure != "requires_action" || obj.SecretHint == generated.SecretHint ||
		obj.CreatedAt != generated.CreatedAt {
		t.Fatalf("replaced webhook = %+v (keys %v)", obj, keys)
	}
	// A literal address in another spelling is stored canonically.
	if obj := mustPutWebhook(t, s, asst, "get_time", `{"url":"http://134744072/t"}`); obj.URL != "http://8.8.8.8/t" {
		t.Fatalf("stored URL %q, want http://8.8.8.8/t", obj.URL)
	}
	if l := listWebhooks(t, s, asst); len(l) != 2 {
		t.Fatalf("list = %+v, want two", l)
	}

	// Errors, in OpenAI's envelope.
	bad := []struct {
		name, asst, fn, body string
		status               int
		param                string
	}{
		{"unknown assistant", "asst_doesnotexist", "get_weather", `{"url":"` + hook + `"}`, 404, ""},
		{"not an assistant id", "thread_abc", "get_weather", `{"url":"` + hook + `"}`, 400, "assistant_id"},
		{"function the assistant lacks", asst, "get_stock", `{"url":"` + hook + `"}`, 400, "function_name"},
		{"bad function name", asst, "get weather", `{"url":"` + hook + `"}`, 400, "function_name"},
		{"no url", asst, "get_weather", `{}`, 400, "url"},
		{"url null", asst, "get_weather", `{"url":null}`, 400, "url"},
		{"url not a string", asst, "get_weather", `{"url":5}`, 400, "url"},
		{"ftp url", asst, "get_weather", `{"url":"ftp://example.com/x"}`, 400, "url"},
		{"relative url", asst, "get_weather", `{"url":"/hook"}`, 400, "url"},
		{"url with credentials", asst, "get_weather", `{"url":"https://u:p@example.com/"}`, 400, "url"},
		{"invalid address", asst, "get_weather", `{"url":"http://1.2.3.256/"}`, 400, "url"},
		{"secret without prefix", asst, "get_weather", `{"url":"` + hook + `","secret":"abc"}`, 400, "secret"},
		{"secret too short", asst, "get_weather", `{"url":"` + hook + `","secret":"whsec_c2hvcnQ="}`, 400, "secret"},
		{"timeout 0", asst, "get_weather", `{"url":"` + hook + `","timeout_ms":0}`, 400, "timeout_ms"},
		{"timeout not an integer", asst, "get_weather", `{"url":"` + hook + `","timeout_ms":"fast"}`, 400, "timeout_ms"},
		{"retries negative", asst, "get_weather", `{"url":"` + hook + `","max_retries":-1}`, 400, "max_retries"},
		{"retries too many", asst, "get_weather", `{"url":"` + hook + `","max_retries":11}`, 400, "max_retries"},
		{"on_failure unknown", asst, "get_weather", `{"url":"` + hook + `","on_failure":"retry"}`, 400, "on_failure"},
		{"unknown parameter", asst, "get_weather", `{"url":"` + hook + `","events":["x"]}`, 400, "events"},
		{"not JSON", asst, "get_weather", `{"url":`, 400, ""},
	}
	for _, c := range bad {
		_, _, err := putWebhook(s, c.asst, c.fn, c.body)
		ae := apiError(t, err)
		if ae.StatusCode != c.status || ae.Param != c.param || ae.Type != "invalid_request_error" || ae.Message == "" {
			t.Errorf("%s: %d param %q type %q %q; want %d param %q", c.name, ae.StatusCode, ae.Param, ae.Type, ae.Message, c.status, c.param)
		}
	}

	// Every refused address, in every spelling, is refused when configured.
	refusedURLs := []string{
		"http://127.0.0.1/", "http://[::1]/", "http://0x7f000001/", "http://2130706433/", "http://017700000001/",
		"http://127.1/", "http://0177.0.0.1/", "http://0x7f.1/", "http://127.0.0.1.:8080/", "http://localhost/",
		"http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", "http://10.0.0.1/", "http://172.16.5.4/",
		"http://192.168.0.1/", "http://100.64.0.1/", "http://169.254.169.254/latest/meta-data/", "http://0xa9fea9fe/",
		"http://[fd00:ec2::254]/", "http://[fc00::1]/", "http://[fe80::1]/", "http://224.0.0.251/", "http://[ff02::1]/",
		"http://0.0.0.0/", "http://0/", "http://[::]/", "http://[::ffff:10.0.0.1]/", "http://100.100.100.200/",
		// Issue 21: documentation ranges, and hosts that IDNA mapping
		// turns into a refused address.
		"http://192.0.2.1/", "http://198.51.100.7/", "http://203.0.113.9/", "http://[2001:db8::1]/",
		"http://127。0。0。1/", "http://１２７.0.0.1:8080/", "http://169．254．169．254/",
	}
	// And this machine's own addresses, whatever their network.
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				refusedURLs = append(refusedURLs, "http://"+ipn.IP.String()+":8080/hook")
			}
		}
	}
	for _, u := range refusedURLs {
		_, _, err := putWebhook(s, asst, "get_weather", `{"url":"`+u+`"}`)
		ae := apiError(t, err)
		if ae.StatusCode != 400 || ae.Param != "url" || !strings.Contains(ae.Message, "--webhook-allow-networks") {
			t.Errorf("%s: %d param %q %q; want 400 naming --webhook-allow-networks", u, ae.StatusCode, ae.Param, ae.Message)
		}
	}
	// The refused attempts changed nothing.
	if l := listWebhooks(t, s, asst); len(l) != 2 || l[1].URL != "http://8.8.8.8:8080/hook" {
		t.Fatalf("after refused PUTs: %+v", l)
	}

	// Auth: the same key as /v1.
	for _, req := range []struct{ method, path, body string }{
		{"GET", "/v1/assistants/" + asst + "/webhooks", ""},
		{"PUT", "/v1/assistants/" + asst + "/webhooks/get_weather", `{"url":"` + hook + `"}`},
		{"DELETE", "/v1/assistants/" + asst + "/webhooks/get_weather", ""},
	} {
		for _, auth := range []string{"", "Bearer sk-wrong-key-0123456789"} {
			h := http.Header{"Authorization": {auth}}
			var body *strings.Reader
			if req.body != "" {
				body = strings.NewReader(req.body)
			}
			var res rawResponse
			if body != nil {
				res = s.do(t, req.method, req.path, body, h)
			} else {
				res = s.do(t, req.method, req.path, nil, h)
			}
			if res.Status != http.StatusUnauthorized {
				t.Errorf("%s %s with Authorization %q: %d, want 401", req.method, req.path, auth, res.Status)
			}
		}
	}

	// GET/DELETE of an unknown assistant, DELETE of a function without one.
	if err := s.Client.Get(ctx, "assistants/asst_doesnotexist/webhooks", nil, nil); apiError(t, err).StatusCode != 404 {
		t.Errorf("list of an unknown assistant: %v", err)
	}
	if err := s.Client.Delete(ctx, "assistants/asst_doesnotexist/webhooks/get_weather", nil, nil); apiError(t, err).StatusCode != 404 {
		t.Errorf("delete of an unknown assistant: %v", err)
	}
	var deleted map[string]any
	if err := s.Client.Delete(ctx, "assistants/"+asst+"/webhooks/get_time", nil, &deleted); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"object": "assistant.webhook.deleted", "function_name": "get_time", "deleted": true}, deleted); diff != "" {
		t.Fatalf("delete response (-want +got):\n%s", diff)
	}
	if err := s.Client.Delete(ctx, "assistants/"+asst+"/webhooks/get_time", nil, nil); apiError(t, err).StatusCode != 404 {
		t.Errorf("second delete: %v", err)
	}

	// Removing the function from the assistant removes its webhook;
	// deleting the assistant removes the rest.
	mustPutWebhook(t, s, asst, "get_time", `{"url":"`+hook+`"}`)
	if _, err := s.Client.Beta.Assistants.Update(ctx, asst, openai.BetaAssistantUpdateParams{
		Tools: []openai.AssistantToolUnionParam{timeTool}}); err != nil {
		t.Fatal(err)
	}
	if l := listWebhooks(t, s, asst); len(l) != 1 || l[0].FunctionName != "get_time" {
		t.Fatalf("after removing get_weather: %+v", l)
	}
	if _, err := s.Client.Beta.Assistants.Delete(ctx, asst); err != nil {
		t.Fatal(err)
	}
	if err := s.Client.Get(ctx, "assistants/"+asst+"/webhooks", nil, nil); apiError(t, err).StatusCode != 404 {
		t.Errorf("webhooks of a deleted assistant: %v", err)
	}
}
