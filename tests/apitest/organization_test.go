package apitest

// The Admin API (/v1/organization) through openai-go's admin client, and
// projects' settings as clients of a project meet them: model and tool
// permissions, rate limits, a project's own upstream, read-only keys.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/tests/upstream"
)

// adminArgs are the flags of a server with an admin key.
func adminArgs() (key string, args []string) {
	key = "sk-admin-test-" + randomHex(16)
	return key, []string{"--admin-key", key}
}

// adminClient is an openai-go client of s with admin key key (and no
// project key), validating every response as s.Client does.
func adminClient(s *server, key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(s.URL+"/v1/"), option.WithAdminAPIKey(key), option.WithAPIKey(""),
		option.WithMaxRetries(0), option.WithMiddleware(s.validate))
}

// keyClient is an openai-go client of s with a project's key.
func keyClient(s *server, key string, opts ...option.RequestOption) openai.Client {
	return openai.NewClient(append([]option.RequestOption{option.WithBaseURL(s.URL + "/v1/"), option.WithAPIKey(key),
		option.WithMaxRetries(0), option.WithMiddleware(s.validate)}, opts...)...)
}

// wantAPIError asserts err is an API error with status and code.
func wantAPIError(t *testing.T, what string, err error, status int, code string) *openai.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %d %s", what, status, code)
	}
	ae := apiError(t, err)
	if ae.StatusCode != status || ae.Code != code {
		t.Fatalf("%s: %d %q (%s), want %d %q", what, ae.StatusCode, ae.Code, ae.Message, status, code)
	}
	return ae
}

// TestAdminAPI: an admin key creates a project and a service account whose
// key works in that project only (OpenAI-Project must match); keys are
// listed, read and deleted; people are added, changed and removed;
// archiving the project stops its keys. Admin keys open only
// /v1/organization, and project keys are refused there.
func TestAdminAPI(t *testing.T) {
	adminKey, args := adminArgs()
	s := startServer(t, append(args, "--admin-email", "ada@example.com", "--admin-password", "correct horse battery")...)
	admin := adminClient(s, adminKey)
	orgs := admin.Admin.Organization.Projects
	ctx := context.Background()

	page, err := orgs.List(ctx, openai.AdminOrganizationProjectListParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 1 || page.Data[0].ID != db.DefaultProjectID || page.Data[0].Status != "active" {
		t.Fatalf("projects: %+v", page.Data)
	}
	b, err := orgs.New(ctx, openai.AdminOrganizationProjectNewParams{Name: "Team B"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.ID, "proj_") || b.Name != "Team B" || b.Status != "active" || b.ArchivedAt != 0 {
		t.Fatalf("created project: %+v", b)
	}
	if b, err = orgs.Update(ctx, b.ID, openai.AdminOrganizationProjectUpdateParams{Name: openai.String("Team Bee")}); err != nil || b.Name != "Team Bee" {
		t.Fatalf("renamed project: %+v %v", b, err)
	}
	first, err := orgs.List(ctx, openai.AdminOrganizationProjectListParams{Limit: openai.Int(1)})
	if err != nil || len(first.Data) != 1 || !first.HasMore || first.Data[0].ID != db.DefaultProjectID {
		t.Fatalf("first page: %+v %v", first, err)
	}
	second, err := orgs.List(ctx, openai.AdminOrganizationProjectListParams{Limit: openai.Int(1), After: openai.String(first.Data[0].ID)})
	if err != nil || len(second.Data) != 1 || second.HasMore || second.Data[0].ID != b.ID {
		t.Fatalf("second page: %+v %v", second, err)
	}

	// A service account and its key, shown once; the key works in B.
	sa, err := orgs.ServiceAccounts.New(ctx, b.ID, openai.AdminOrganizationProjectServiceAccountNewParams{Name: "deployer"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sa.ID, "svc_acct_") || sa.Name != "deployer" || sa.Role != "member" || !strings.HasPrefix(sa.APIKey.Value, "sk-") {
		t.Fatalf("service account: %+v", sa)
	}
	bc := keyClient(s, sa.APIKey.Value)
	if _, err := bc.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{Model: "gpt-4o"}); err != nil {
		t.Fatalf("project B's key: %v", err)
	}
	withB := keyClient(s, sa.APIKey.Value, option.WithProject(b.ID))
	if _, err := withB.Beta.Assistants.List(ctx, openai.BetaAssistantListParams{}); err != nil {
		t.Fatalf("project B's key with OpenAI-Project B: %v", err)
	}
	mismatched := keyClient(s, sa.APIKey.Value, option.WithProject(db.DefaultProjectID))
	_, err = mismatched.Beta.Assistants.List(ctx, openai.BetaAssistantListParams{})
	wantAPIError(t, "B's key with OpenAI-Project of the Default project", err, 401, "mismatched_project")
	if got, err := orgs.ServiceAccounts.Get(ctx, b.ID, sa.ID); err != nil || got.Name != "deployer" {
		t.Fatalf("get service account: %+v %v", got, err)
	}
	sas, err := orgs.ServiceAccounts.List(ctx, b.ID, openai.AdminOrganizationProjectServiceAccountListParams{})
	if err != nil || len(sas.Data) != 1 || sas.Data[0].ID != sa.ID {
		t.Fatalf("service accounts: %+v %v", sas, err)
	}

	// Keys: listed with their owner, read, deleted (then refused).
	keys, err := orgs.APIKeys.List(ctx, b.ID, openai.AdminOrganizationProjectAPIKeyListParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys.Data) != 1 || keys.Data[0].ID != sa.APIKey.ID || keys.Data[0].Owner.Type != "service_account" ||
		keys.Data[0].Owner.ServiceAccount.ID != sa.ID || keys.Data[0].LastUsedAt == 0 ||
		strings.Contains(keys.Data[0].RedactedValue, sa.APIKey.Value[9:len(sa.APIKey.Value)-4]) {
		t.Fatalf("B's keys: %+v", keys.Data)
	}
	sa2, err := orgs.ServiceAccounts.New(ctx, b.ID, openai.AdminOrganizationProjectServiceAccountNewParams{Name: "second"})
	if err != nil {
		t.Fatal(err)
	}
	if k, err := orgs.APIKeys.Get(ctx, b.ID, sa2.APIKey.ID); err != nil || k.Owner.ServiceAccount.Name != "second" {
		t.Fatalf("get key: %+v %v", k, err)
	}
	if d, err := orgs.APIKeys.Delete(ctx, b.ID, sa2.APIKey.ID); err != nil || !d.Deleted || d.ID != sa2.APIKey.ID {
		t.Fatalf("delete key: %+v %v", d, err)
	}
	deletedKey := keyClient(s, sa2.APIKey.Value)
	_, err = deletedKey.Beta.Assistants.List(ctx, openai.BetaAssistantListParams{})
	wantAPIError(t, "a deleted key", err, 401, "invalid_api_key")
	_, err = orgs.APIKeys.Get(ctx, b.ID, sa2.APIKey.ID)
	wantAPIError(t, "get a deleted key", err, 404, "")
	if _, err := orgs.APIKeys.Get(ctx, db.DefaultProjectID, sa.APIKey.ID); err == nil {
		t.Fatal("B's key read through the Default project")
	}
	if d, err := orgs.ServiceAccounts.Delete(ctx, b.ID, sa2.ID); err != nil || !d.Deleted {
		t.Fatalf("delete service account: %+v %v", d, err)
	}

	// People: the web app's users, by email or id.
	if users, err := orgs.Users.List(ctx, b.ID, openai.AdminOrganizationProjectUserListParams{}); err != nil || len(users.Data) != 0 {
		t.Fatalf("a new project's people: %+v %v", users, err)
	}
	u, err := orgs.Users.New(ctx, b.ID, openai.AdminOrganizationProjectUserNewParams{Email: openai.String("ADA@example.com"), Role: "member"})
	if err != nil || u.Email != "ada@example.com" || u.Role != "editor" || !strings.HasPrefix(u.ID, "user") {
		t.Fatalf("add by email: %+v %v", u, err)
	}
	ada := u.ID
	if users, err := orgs.Users.List(ctx, b.ID, openai.AdminOrganizationProjectUserListParams{}); err != nil || len(users.Data) != 1 || users.Data[0].ID != ada {
		t.Fatalf("B's people: %+v %v", users, err)
	}
	if u, err = orgs.Users.New(ctx, b.ID, openai.AdminOrganizationProjectUserNewParams{UserID: openai.String(ada), Role: "owner"}); err != nil || u.Role != "owner" {
		t.Fatalf("add by id: %+v %v", u, err)
	}
	if u, err = orgs.Users.Update(ctx, b.ID, ada, openai.AdminOrganizationProjectUserUpdateParams{Role: openai.String("viewer")}); err != nil || u.Role != "viewer" {
		t.Fatalf("change role: %+v %v", u, err)
	}
	if u, err = orgs.Users.Get(ctx, b.ID, ada); err != nil || u.Role != "viewer" {
		t.Fatalf("get person: %+v %v", u, err)
	}
	_, err = orgs.Users.Update(ctx, b.ID, ada, openai.AdminOrganizationProjectUserUpdateParams{Role: openai.String("king")})
	wantAPIError(t, "an unknown role", err, 400, "invalid_value")
	_, err = orgs.Users.New(ctx, b.ID, openai.AdminOrganizationProjectUserNewParams{UserID: openai.String("user_nobody"), Role: "owner"})
	wantAPIError(t, "adding a missing user", err, 404, "")
	if d, err := orgs.Users.Delete(ctx, b.ID, ada); err != nil || !d.Deleted {
		t.Fatalf("remove person: %+v %v", d, err)
	}
	_, err = orgs.Users.Get(ctx, b.ID, ada)
	wantAPIError(t, "a removed person", err, 404, "")

	// Admin keys open only /v1/organization; project keys are refused there.
	adminAsClient := keyClient(s, adminKey)
	_, err = adminAsClient.Beta.Assistants.List(ctx, openai.BetaAssistantListParams{})
	wantAPIError(t, "the admin key on /v1/assistants", err, 401, "invalid_api_key")
	// (openai-go sends only an admin key to the Admin API: raw HTTP.)
	for _, m := range []string{"GET", "POST"} {
		res := s.do(t, m, "/v1/organization/projects", strings.NewReader(`{"name": "x"}`), http.Header{"Authorization": {"Bearer " + sa.APIKey.Value}})
		if res.Status != 401 || !strings.Contains(string(res.Body), "insufficient permissions") {
			t.Fatalf("a project key on %s /v1/organization/projects: %d %s", m, res.Status, res.Body)
		}
	}
	wrong := adminClient(s, "sk-admin-wrong-"+randomHex(8))
	_, err = wrong.Admin.Organization.Projects.List(ctx, openai.AdminOrganizationProjectListParams{})
	wantAPIError(t, "a wrong admin key", err, 401, "invalid_api_key")

	// Bad requests get OpenAI's envelope.
	for _, c := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/v1/organization/projects", `{}`, 400, "missing_required_parameter"},
		{"POST", "/v1/organization/projects", `{"name": "x", "colour": "red"}`, 400, "unknown_parameter"},
		{"POST", "/v1/organization/projects", `{"name": 7}`, 400, "invalid_type"},
		{"POST", "/v1/organization/projects", `{"name": "  "}`, 400, "invalid_value"},
		{"POST", "/v1/organization/projects", `[1]`, 400, "invalid_type"},
		{"GET", "/v1/organization/projects?limit=0", "", 400, "integer_below_min_value"},
		{"GET", "/v1/organization/projects?after=proj_nope", "", 400, "invalid_value"},
		{"GET", "/v1/organization/projects/proj_nope", "", 404, ""},
		{"GET", "/v1/organization/projects/nope", "", 400, "invalid_value"},
		{"POST", "/v1/organization/projects/proj_default/archive", "", 400, "invalid_value"},
		{"POST", "/v1/organization/projects/" + b.ID + "/model_permissions", `{"mode": "maybe", "model_ids": []}`, 400, "invalid_value"},
		{"POST", "/v1/organization/projects/" + b.ID + "/model_permissions", `{"mode": "allow_list"}`, 400, "missing_required_parameter"},
		{"POST", "/v1/organization/projects/" + b.ID + "/rate_limits/rl-m", `{"max_requests_per_1_minute": -1}`, 400, "integer_below_min_value"},
		{"POST", "/v1/organization/projects/" + b.ID + "/rate_limits/rl-m", `{"max_images_per_1_minute": 5}`, 400, "unsupported_parameter"},
		{"POST", "/v1/organization/projects/" + b.ID + "/rate_limits/nope", `{}`, 404, ""},
		{"POST", "/v1/organization/projects/" + b.ID + "/hosted_tool_permissions", `{"web_search": {"enabled": true}}`, 400, "unsupported_value"},
		{"POST", "/v1/organization/projects/" + b.ID + "/upstream", `{"base_url": "ftp://x"}`, 400, "invalid_url"},
		{"GET", "/v1/organization/projects/" + b.ID + "/service_accounts/svc_acct_nope", "", 404, ""},
	} {
		var body *strings.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		var res rawResponse
		if body != nil {
			res = s.do(t, c.method, c.path, body, http.Header{"Authorization": {"Bearer " + adminKey}})
		} else {
			res = s.do(t, c.method, c.path, nil, http.Header{"Authorization": {"Bearer " + adminKey}})
		}
		if res.Status != c.status || !strings.Contains(string(res.Body), `"code":`+codeJSON(c.code)) {
			t.Errorf("%s %s %s: %d %s, want %d code %q", c.method, c.path, c.body, res.Status, res.Body, c.status, c.code)
		}
	}

	// Archiving stops the project's keys and changes.
	archived, err := orgs.Archive(ctx, b.ID)
	if err != nil || archived.Status != "archived" || archived.ArchivedAt == 0 {
		t.Fatalf("archive: %+v %v", archived, err)
	}
	_, err = bc.Beta.Assistants.List(ctx, openai.BetaAssistantListParams{})
	wantAPIError(t, "a key of an archived project", err, 401, "invalid_api_key")
	_, err = orgs.ServiceAccounts.New(ctx, b.ID, openai.AdminOrganizationProjectServiceAccountNewParams{Name: "late"})
	wantAPIError(t, "a service account in an archived project", err, 400, "project_archived")
	active, err := orgs.List(ctx, openai.AdminOrganizationProjectListParams{})
	if err != nil || len(active.Data) != 1 {
		t.Fatalf("active projects after archiving B: %+v %v", active, err)
	}
	all, err := orgs.List(ctx, openai.AdminOrganizationProjectListParams{IncludeArchived: openai.Bool(true)})
	if err != nil || len(all.Data) != 2 || all.Data[1].Status != "archived" {
		t.Fatalf("all projects: %+v %v", all, err)
	}
}

// hello is a new thread's one message (the scripted upstream needs one).
var hello = openai.BetaThreadNewAndRunParamsThread{Messages: []openai.BetaThreadNewAndRunParamsThreadMessage{{Role: "user",
	Content: openai.BetaThreadNewAndRunParamsThreadMessageContentUnion{OfString: openai.String("hello")}}}}

// codeJSON is code as the error envelope writes it.
func codeJSON(code string) string {
	if code == "" {
		return "null"
	}
	return strconv.Quote(code)
}

// TestProjectPermissions: a model outside the project's allow list (or on
// its deny list) is refused with a 400 naming it when an assistant, a run
// (also with its thread) or a response is created; a server-side tool the
// project turned off is refused too. Another project is not affected.
func TestProjectPermissions(t *testing.T) {
	adminKey, args := adminArgs()
	s, _ := startRunServer(t, args...)
	orgs := adminClient(s, adminKey).Admin.Organization.Projects
	ctx := context.Background()
	b, err := orgs.New(ctx, openai.AdminOrganizationProjectNewParams{Name: "B"})
	if err != nil {
		t.Fatal(err)
	}
	sa, err := orgs.ServiceAccounts.New(ctx, b.ID, openai.AdminOrganizationProjectServiceAccountNewParams{Name: "app"})
	if err != nil {
		t.Fatal(err)
	}
	bc := keyClient(s, sa.APIKey.Value)

	perms, err := orgs.ModelPermissions.Get(ctx, b.ID)
	if err != nil || perms.Mode != "deny_list" || len(perms.ModelIDs) != 0 {
		t.Fatalf("default model permissions: %+v %v", perms, err)
	}
	perms, err = orgs.ModelPermissions.Update(ctx, b.ID, openai.AdminOrganizationProjectModelPermissionUpdateParams{
		Mode: "allow_list", ModelIDs: []string{"fake-model"}})
	if err != nil || perms.Mode != "allow_list" || len(perms.ModelIDs) != 1 {
		t.Fatalf("allow list: %+v %v", perms, err)
	}
	models, err := bc.Models.List(ctx)
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != "fake-model" {
		t.Fatalf("B's models under an allow list of fake-model: %+v %v", models, err)
	}
	if all, err := s.Client.Models.List(ctx); err != nil || len(all.Data) < 2 {
		t.Fatalf("the Default project's models: %+v %v", all, err)
	}
	_, err = bc.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{Model: "gpt-other"})
	if ae := wantAPIError(t, "an assistant on a model outside the allow list", err, 400, "model_not_allowed"); ae.Param != "model" || !strings.Contains(ae.Message, "gpt-other") {
		t.Fatalf("refusal: param %q message %q", ae.Param, ae.Message)
	}
	asst, err := bc.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{Model: "fake-model"})
	if err != nil {
		t.Fatalf("an assistant on an allowed model: %v", err)
	}
	_, err = bc.Beta.Assistants.Update(ctx, asst.ID, openai.BetaAssistantUpdateParams{Model: "gpt-other"})
	wantAPIError(t, "an assistant moved to a model outside the allow list", err, 400, "model_not_allowed")
	if _, err := s.Client.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{Model: "gpt-other"}); err != nil {
		t.Fatalf("the Default project is limited by B's allow list: %v", err)
	}

	// Deny the assistant's model: its runs are refused, naming it.
	if _, err := orgs.ModelPermissions.Update(ctx, b.ID, openai.AdminOrganizationProjectModelPermissionUpdateParams{
		Mode: "deny_list", ModelIDs: []string{"fake-model"}}); err != nil {
		t.Fatal(err)
	}
	th, err := bc.Beta.Threads.New(ctx, openai.BetaThreadNewParams{Messages: []openai.BetaThreadNewParamsMessage{{Role: "user",
		Content: openai.BetaThreadNewParamsMessageContentUnion{OfString: openai.String("hello")}}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bc.Beta.Threads.Runs.New(ctx, th.ID, openai.BetaThreadRunNewParams{AssistantID: asst.ID})
	if ae := wantAPIError(t, "a run on a denied model", err, 400, "model_not_allowed"); !strings.Contains(ae.Message, "fake-model") {
		t.Fatalf("refusal does not name the model: %q", ae.Message)
	}
	_, err = bc.Beta.Threads.NewAndRun(ctx, openai.BetaThreadNewAndRunParams{AssistantID: asst.ID, Thread: hello})
	wantAPIError(t, "create-and-run on a denied model", err, 400, "model_not_allowed")
	_, err = bc.Beta.Threads.Runs.New(ctx, th.ID, openai.BetaThreadRunNewParams{AssistantID: asst.ID, Model: "other-model"})
	if err != nil {
		t.Fatalf("a run overriding the model with an allowed one: %v", err)
	}
	_, err = bc.Responses.New(ctx, responses.ResponseNewParams{Model: "fake-model", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}})
	if ae := wantAPIError(t, "a response on a denied model", err, 400, "model_not_allowed"); !strings.Contains(ae.Message, "fake-model") {
		t.Fatalf("refusal does not name the model: %q", ae.Message)
	}
	if d, err := orgs.ModelPermissions.Delete(ctx, b.ID); err != nil || !d.Deleted {
		t.Fatalf("delete model permissions: %+v %v", d, err)
	}
	if _, err := bc.Beta.Threads.NewAndRun(ctx, openai.BetaThreadNewAndRunParams{AssistantID: asst.ID, Thread: hello}); err != nil {
		t.Fatalf("create-and-run once every model is allowed again: %v", err)
	}

	// Server-side tools.
	// (openai-go leaves out a tool whose fields are all zero: set it.)
	tools, err := orgs.HostedToolPermissions.Update(ctx, b.ID, openai.AdminOrganizationProjectHostedToolPermissionUpdateParams{},
		option.WithJSONSet("code_interpreter", map[string]bool{"enabled": false}))
	if err != nil || tools.CodeInterpreter.Enabled || !tools.FileSearch.Enabled {
		t.Fatalf("hosted tool permissions: %+v %v", tools, err)
	}
	code := []openai.AssistantToolUnionParam{{OfCodeInterpreter: &openai.CodeInterpreterToolParam{}}}
	_, err = bc.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{Model: "fake-model", Tools: code})
	if ae := wantAPIError(t, "an assistant with a disabled tool", err, 400, "tool_not_allowed"); ae.Param != "tools[0].type" {
		t.Fatalf("refusal param %q", ae.Param)
	}
	_, err = bc.Beta.Threads.NewAndRun(ctx, openai.BetaThreadNewAndRunParams{AssistantID: asst.ID, Thread: hello,
		Tools: code})
	wantAPIError(t, "a run with a disabled tool", err, 400, "tool_not_allowed")
	if got, err := orgs.HostedToolPermissions.Get(ctx, b.ID); err != nil || got.CodeInterpreter.Enabled {
		t.Fatalf("get hosted tool permissions: %+v %v", got, err)
	}
	if _, err := s.Client.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{Model: "fake-model", Tools: code}); err != nil {
		t.Fatalf("the Default project has B's tools off: %v", err)
	}
}

// TestProjectRateLimits: past a project's requests per window the next
// run is refused with 429 and the x-ratelimit-* headers, and succeeds
// again in the next window (2 s long here); tokens used by finished runs
// count against a token limit.
func TestProjectRateLimits(t *testing.T) {
	adminKey, args := adminArgs()
	s, _ := startRunServer(t, append(args, "--rate-limit-window", "2s")...)
	orgs := adminClient(s, adminKey).Admin.Organization.Projects
	ctx := context.Background()

	l, err := orgs.RateLimits.UpdateRateLimit(ctx, db.DefaultProjectID, "rl-fake-model",
		openai.AdminOrganizationProjectRateLimitUpdateRateLimitParams{MaxRequestsPer1Minute: openai.Int(2)})
	if err != nil || l.Model != "fake-model" || l.MaxRequestsPer1Minute != 2 || l.MaxTokensPer1Minute != 0 {
		t.Fatalf("update rate limit: %+v %v", l, err)
	}
	limits, err := orgs.RateLimits.ListRateLimits(ctx, db.DefaultProjectID, openai.AdminOrganizationProjectRateLimitListRateLimitsParams{})
	if err != nil || len(limits.Data) == 0 || limits.Data[0].ID != "rl-fake-model" || limits.Data[0].MaxRequestsPer1Minute != 2 {
		t.Fatalf("rate limits: %+v %v", limits, err) // fake-model first, then the upstream's other models
	}
	asst := newAssistant(t, s)
	run := func() (*http.Response, error) {
		var raw *http.Response
		_, err := s.Client.Beta.Threads.NewAndRun(ctx, openai.BetaThreadNewAndRunParams{AssistantID: asst, Thread: hello}, option.WithResponseInto(&raw))
		return raw, err
	}

	// Two requests are admitted, the third refused, all in one window: a
	// window that ends before the third is tried again from the next.
	var refused *openai.Error
	deadline := time.Now().Add(20 * time.Second)
	for refused == nil {
		if time.Now().After(deadline) {
			t.Fatal("no three requests fitted in one window before the deadline")
		}
		res, err := run()
		if err != nil {
			wantAPIError(t, "a first request", err, 429, "rate_limit_exceeded")
			continue // the window of an earlier attempt: wait for the next
		}
		if res.Header.Get("X-Ratelimit-Limit-Requests") != "2" || res.Header.Get("X-Ratelimit-Remaining-Requests") != "1" {
			t.Fatalf("first request's headers: %v", res.Header)
		}
		reset, err := time.ParseDuration(res.Header.Get("X-Ratelimit-Reset-Requests"))
		if err != nil || reset <= 0 || reset > 2*time.Second {
			t.Fatalf("x-ratelimit-reset-requests %q", res.Header.Get("X-Ratelimit-Reset-Requests"))
		}
		started := time.Now()
		res2, err2 := run()
		_, err3 := run()
		if time.Since(started) >= reset {
			continue // the window ended meanwhile
		}
		if err2 != nil || res2.Header.Get("X-Ratelimit-Remaining-Requests") != "0" {
			t.Fatalf("second request: %v %v", err2, res2.Header)
		}
		refused = wantAPIError(t, "a third request in the window", err3, 429, "rate_limit_exceeded")
	}
	if refused.Type != "requests" || !strings.Contains(refused.Message, "fake-model") {
		t.Fatalf("429: type %q message %q", refused.Type, refused.Message)
	}
	h := refused.Response.Header
	if h.Get("X-Ratelimit-Limit-Requests") != "2" || h.Get("X-Ratelimit-Remaining-Requests") != "0" || h.Get("X-Ratelimit-Reset-Requests") == "" || h.Get("Retry-After") == "" {
		t.Fatalf("429 headers: %v", h)
	}
	// Success again once the window has passed.
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, err := run()
		if err == nil {
			break
		}
		wantAPIError(t, "a request while limited", err, 429, "rate_limit_exceeded")
		if time.Now().After(deadline) {
			t.Fatal("still limited 10 s after a 2 s window")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Tokens: the upstream's usage of a finished run counts.
	if _, err := orgs.RateLimits.UpdateRateLimit(ctx, db.DefaultProjectID, "rl-token-model",
		openai.AdminOrganizationProjectRateLimitUpdateRateLimitParams{MaxTokensPer1Minute: openai.Int(1)}); err != nil {
		t.Fatal(err)
	}
	tokAsst := newAssistant(t, s, openai.BetaAssistantNewParams{Model: "token-model"})
	deadline = time.Now().Add(20 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatal("no token refusal before the deadline")
		}
		r, err := s.Client.Beta.Threads.NewAndRun(ctx, openai.BetaThreadNewAndRunParams{AssistantID: tokAsst, Thread: hello})
		if err != nil {
			wantAPIError(t, "a run on the token-limited model", err, 429, "rate_limit_exceeded")
			continue // an earlier run's tokens: wait for the next window
		}
		waitRun(t, s, r.ThreadID, r.ID, openai.RunStatusCompleted)
		_, err = s.Client.Beta.Threads.NewAndRun(ctx, openai.BetaThreadNewAndRunParams{AssistantID: tokAsst, Thread: hello})
		if err == nil {
			continue // the window ended meanwhile
		}
		ae := wantAPIError(t, "a run after the tokens ran out", err, 429, "rate_limit_exceeded")
		if ae.Type != "tokens" || ae.Response.Header.Get("X-Ratelimit-Remaining-Tokens") != "0" || ae.Response.Header.Get("X-Ratelimit-Limit-Tokens") != "1" {
			t.Fatalf("token refusal: type %q headers %v", ae.Type, ae.Response.Header)
		}
		break
	}
}

// recordingUpstream is a scripted upstream that also records the
// Authorization header of every request.
type recordingUpstream struct {
	*upstream.Server
	mu    sync.Mutex
	auths []string
}

func (u *recordingUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.auths = append(u.auths, r.Header.Get("Authorization"))
	u.mu.Unlock()
	u.Server.ServeHTTP(w, r)
}

func (u *recordingUpstream) authorizations() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.auths...)
}

// TestProjectUpstream: a project with an upstream of its own runs on it
// (with its key), not on the server's; without it, on the server's again.
// The key is never shown back.
func TestProjectUpstream(t *testing.T) {
	adminKey, args := adminArgs()
	s, serverUp := startRunServer(t, args...)
	own := &recordingUpstream{Server: upstream.New()}
	ownSrv := httptest.NewServer(own)
	t.Cleanup(ownSrv.Close)
	admin := http.Header{"Authorization": {"Bearer " + adminKey}}
	path := "/v1/organization/projects/" + db.DefaultProjectID + "/upstream"

	res := s.do(t, "POST", path, strings.NewReader(`{"base_url": "`+ownSrv.URL+`/v1", "api_key": "sk-own-upstream-key"}`), admin)
	if res.Status != 200 || !strings.Contains(string(res.Body), `"api_key_set":true`) || strings.Contains(string(res.Body), "sk-own-upstream-key") {
		t.Fatalf("set upstream: %d %s", res.Status, res.Body)
	}
	if res = s.do(t, "GET", path, nil, admin); !strings.Contains(string(res.Body), ownSrv.URL) || strings.Contains(string(res.Body), "sk-own-upstream-key") {
		t.Fatalf("get upstream: %s", res.Body)
	}
	// Setting the URL again without api_key keeps the saved key (as the
	// web app's blank key field does); "" removes it.
	for _, c := range []struct{ body, set string }{
		{`{"base_url": "` + ownSrv.URL + `/v1"}`, `"api_key_set":true`},
		{`{"base_url": "` + ownSrv.URL + `/v1", "api_key": ""}`, `"api_key_set":false`},
		{`{"base_url": "` + ownSrv.URL + `/v1", "api_key": "sk-own-upstream-key"}`, `"api_key_set":true`},
	} {
		if res = s.do(t, "POST", path, strings.NewReader(c.body), admin); res.Status != 200 || !strings.Contains(string(res.Body), c.set) {
			t.Fatalf("set upstream %s: %d %s", c.body, res.Status, res.Body)
		}
	}
	asst := newAssistant(t, s)
	r, err := s.Client.Beta.Threads.NewAndRun(context.Background(), openai.BetaThreadNewAndRunParams{AssistantID: asst,
		Thread: openai.BetaThreadNewAndRunParamsThread{Messages: []openai.BetaThreadNewAndRunParamsThreadMessage{{Role: "user",
			Content: openai.BetaThreadNewAndRunParamsThreadMessageContentUnion{OfString: openai.String("to my own upstream")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	waitRun(t, s, r.ThreadID, r.ID, openai.RunStatusCompleted)
	if n := len(serverUp.Requests()); n != 0 {
		t.Fatalf("the server's upstream got %d requests of a project with its own", n)
	}
	reqs := own.Requests()
	if len(reqs) == 0 || reqs[len(reqs)-1].Messages[len(reqs[len(reqs)-1].Messages)-1].Text() != "to my own upstream" {
		t.Fatalf("the project's upstream got %+v", reqs)
	}
	for _, a := range own.authorizations() {
		if a != "Bearer sk-own-upstream-key" {
			t.Fatalf("the project's upstream was called with %q", a)
		}
	}

	// Its usage is recorded for the project (just after the run ends).
	st := openStore(t, s)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		usage, err := st.ListUsage(context.Background(), db.DefaultProjectID, time.Now().Add(-24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(usage) == 1 && usage[0].Model == "fake-model" && usage[0].Requests >= 1 && usage[0].InputTokens >= 1 && usage[0].OutputTokens >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage 10 s after the run: %+v", usage)
		}
	}

	if res = s.do(t, "DELETE", path, nil, admin); res.Status != 200 {
		t.Fatalf("delete upstream: %d %s", res.Status, res.Body)
	}
	before := len(own.Requests())
	r, err = s.Client.Beta.Threads.NewAndRun(context.Background(), openai.BetaThreadNewAndRunParams{AssistantID: asst, Thread: hello})
	if err != nil {
		t.Fatal(err)
	}
	waitRun(t, s, r.ThreadID, r.ID, openai.RunStatusCompleted)
	if len(serverUp.Requests()) == 0 || len(own.Requests()) != before {
		t.Fatalf("after removing the project's upstream: server's %d requests, project's %d (was %d)",
			len(serverUp.Requests()), len(own.Requests()), before)
	}
}

// TestGuardedProjectUpstream: an upstream an owner who is not an admin of
// the server set (guarded) is dialed only where the webhook guard allows:
// a host name that resolves to loopback fails the run without a request
// reaching it, unless --webhook-allow-networks lists the network.
func TestGuardedProjectUpstream(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprintf("allowed=%v", allow), func(t *testing.T) {
			var args []string
			if allow {
				args = []string{"--webhook-allow-networks", "127.0.0.0/8,::1/128"}
			}
			s, serverUp := startRunServer(t, args...)
			own := &recordingUpstream{Server: upstream.New()}
			ownSrv := httptest.NewServer(own)
			t.Cleanup(ownSrv.Close)
			_, port, _ := net.SplitHostPort(strings.TrimPrefix(ownSrv.URL, "http://"))
			st := openStore(t, s)
			if _, err := st.UpdateProjectSettings(context.Background(), db.DefaultProjectID, db.SettingsChange{
				Upstream: &db.ProjectUpstream{URL: "http://localhost:" + port + "/v1", Key: "sk-owner", Guarded: true}}); err != nil {
				t.Fatal(err)
			}
			asst := newAssistant(t, s)
			r, err := s.Client.Beta.Threads.NewAndRun(context.Background(), openai.BetaThreadNewAndRunParams{AssistantID: asst, Thread: hello})
			if err != nil {
				t.Fatal(err)
			}
			if !allow {
				run := waitRun(t, s, r.ThreadID, r.ID, openai.RunStatusFailed)
				if !strings.Contains(run.LastError.Message, "refused network") {
					t.Errorf("last_error: %+v", run.LastError)
				}
				if n := len(own.Requests()); n != 0 {
					t.Errorf("the guarded upstream on loopback got %d requests", n)
				}
			} else {
				waitRun(t, s, r.ThreadID, r.ID, openai.RunStatusCompleted)
				if len(own.Requests()) == 0 {
					t.Error("the allow-listed upstream got no request")
				}
			}
			if n := len(serverUp.Requests()); n != 0 {
				t.Errorf("the server's upstream got %d requests", n)
			}
		})
	}
}

// TestReadOnlyKey: a read-only key reads, and is refused anything else
// with OpenAI's 401 for missing permissions.
func TestReadOnlyKey(t *testing.T) {
	s := startServer(t)
	secret := storeKey(t, s, db.KeyOptions{Name: "reader", ReadOnly: true})
	ctx := context.Background()
	asst, err := s.Client.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{Model: "gpt-4o"})
	if err != nil {
		t.Fatal(err)
	}
	ro := keyClient(s, secret)
	if got, err := ro.Beta.Assistants.Get(ctx, asst.ID); err != nil || got.ID != asst.ID {
		t.Fatalf("read with a read-only key: %v", err)
	}
	_, err = ro.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{Model: "gpt-4o"})
	if ae := wantAPIError(t, "POST with a read-only key", err, 401, ""); !strings.Contains(ae.Message, "insufficient permissions") {
		t.Fatalf("message %q", ae.Message)
	}
	_, err = ro.Beta.Assistants.Delete(ctx, asst.ID)
	wantAPIError(t, "DELETE with a read-only key", err, 401, "")
	if _, err := s.Client.Beta.Assistants.Get(ctx, asst.ID); err != nil {
		t.Fatalf("the assistant is gone after a refused delete: %v", err)
	}
	// The Responses API's WebSocket mode creates responses over a GET.
	res := s.do(t, "GET", "/v1/responses", nil, http.Header{"Authorization": {"Bearer " + secret}, "Upgrade": {"websocket"},
		"Connection": {"Upgrade"}, "Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}})
	if res.Status != 401 || !strings.Contains(string(res.Body), "insufficient permissions") {
		t.Fatalf("a read-only key opening the responses WebSocket: %d %s", res.Status, res.Body)
	}
}

// storeKey makes a key in s's store directly (the web app's keys page
// makes such keys; the Admin API, like OpenAI's, does not) and returns its
// secret.
func storeKey(t *testing.T, s *server, o db.KeyOptions) string {
	t.Helper()
	st := openStore(t, s)
	_, secret, err := st.CreateAPIKey(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// openStore opens s's store beside the running server (SQLite's WAL and
// PostgreSQL both allow it), closed when the test ends.
func openStore(t *testing.T, s *server) *db.Store {
	t.Helper()
	var opts []db.Option
	if s.DatabaseURL != "" {
		opts = append(opts, db.WithDatabaseURL(s.DatabaseURL))
	}
	st, err := db.Open(context.Background(), s.Data, opts...)
	if err != nil {
		t.Fatal(err)
	}
	st.StartupDone()
	t.Cleanup(func() { st.Close() })
	return st
}
