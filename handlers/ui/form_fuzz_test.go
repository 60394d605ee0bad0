package ui_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/assistantd/assistantd/db"
)

// FuzzWebForms posts arbitrary form bodies to the web app's forms, signed
// in as an admin with a valid CSRF token: whatever the browser (or a
// person with curl) sends, the answer is a page or a redirect, never a
// 500. The seeds are the inputs of the issue-11 bugs.
func FuzzWebForms(f *testing.F) {
	seeds := []struct {
		route int
		body  string
	}{
		{0, "model=gpt-4o&name=x&action=save&temperature=NaN"},
		{0, "model=gpt-4o&action=save&top_p=-Inf&temperature=1e999"},
		{0, "model=gpt-4o&action=save&metadata=%7B%22a%22%3A1%7D&tools_json=%5B%7B%7D%5D&fn_count=99999999999"},
		{0, "model=gpt-4o&action=import&tools_json=%5B%7B%22type%22%3A%22function%22%7D%5D"},
		{0, "model=gpt-4o&action=example-0&fn_count=1&fn-0-example=nope&response_type=json_schema&schema=%5B"},
		{1, "content=hi&role=" + strings.Repeat("r", 5000) + "&action=run"},
		{1, "content=hi&role=user&action=run&assistant_id=asst_" + strings.Repeat("y", 5000)},
		{1, "content=%00&role=assistant&action=add"},
		{2, "email=" + strings.Repeat("e", 3000) + "%40example.com&role=viewer&password=a-good-password"},
		{2, "email=x%40example.com&role=viewer&password=" + strings.Repeat("p", 73)},
		{3, "current=a-good-password&password=" + strings.Repeat("p", 73) + "&confirm=" + strings.Repeat("p", 73)},
		{4, "role=" + strings.Repeat("x", 5000)},
		{5, "password=" + strings.Repeat("\xff", 80)},
		{6, "remote_images=on"},
		{7, "name=" + strings.Repeat("k", 5000)},
		{0, "%zz=%"},
		{1, "a=b;c=d&&&="},
	}
	for _, s := range seeds {
		f.Add(s.route, s.body)
	}
	a := newAppWith(f, withEngine, nil)
	ctx := testCtx()
	th, _, err := a.store.CreateThread(ctx, db.Thread{}, nil)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := a.store.CreateUser(ctx, "target@example.com", db.RoleViewer, password); err != nil {
		f.Fatal(err)
	}
	users, _ := a.store.ListUsers(ctx)
	admin := a.user(db.RoleAdmin)
	routes := []string{
		"/assistants/new",
		"/threads/" + th.ID + "/messages",
		"/settings/users",
		"/settings/account",
		"/settings/users/" + users[0].ID + "/role",
		"/settings/users/" + users[0].ID + "/password",
		"/settings/remote-images",
		"/settings/keys",
	}
	token := admin.token()
	f.Fuzz(func(t *testing.T, route int, body string) {
		path := routes[(route%len(routes)+len(routes))%len(routes)]
		if path == "/settings/account" {
			// A wrong current password first (FormValue takes the first
			// value): the admin's own password and session stay as they are.
			body = "current=not-the-password&" + body
		}
		req, _ := http.NewRequest(http.MethodPost, admin.base+path, strings.NewReader(body+"&csrf_token="+url.QueryEscape(token)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := admin.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode >= 500 {
			t.Fatalf("POST %s %.300q: status %d", path, body, res.StatusCode)
		}
	})
}
