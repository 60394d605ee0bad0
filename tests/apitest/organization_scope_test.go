package apitest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/assistantd/assistantd/tests/upstream"
)

// TestProjectUpstreamOfB: runs of project B reach B's own upstream (with
// B's key), seen in that upstream's request log; the Default project's
// runs stay on the server's upstream; usage is recorded per project.
func TestProjectUpstreamOfB(t *testing.T) {
	adminKey, args := adminArgs()
	s, serverUp := startRunServer(t, args...)
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
	bUp := &recordingUpstream{Server: upstream.New()}
	bSrv := httptest.NewServer(bUp)
	t.Cleanup(bSrv.Close)
	res := s.do(t, "POST", "/v1/organization/projects/"+b.ID+"/upstream", strings.NewReader(`{"base_url": "`+bSrv.URL+`/v1", "api_key": "sk-b-upstream"}`),
		http.Header{"Authorization": {"Bearer " + adminKey}})
	if res.Status != 200 {
		t.Fatalf("set B's upstream: %d %s", res.Status, res.Body)
	}

	bc := keyClient(s, sa.APIKey.Value)
	bs := &server{URL: s.URL, Key: sa.APIKey.Value, Client: bc, t: t}
	asstB := newAssistant(t, bs)
	thread := openai.BetaThreadNewAndRunParamsThread{Messages: []openai.BetaThreadNewAndRunParamsThreadMessage{{Role: "user",
		Content: openai.BetaThreadNewAndRunParamsThreadMessageContentUnion{OfString: openai.String("from project B")}}}}
	r, err := bc.Beta.Threads.NewAndRun(ctx, openai.BetaThreadNewAndRunParams{AssistantID: asstB, Thread: thread})
	if err != nil {
		t.Fatal(err)
	}
	waitRun(t, bs, r.ThreadID, r.ID, openai.RunStatusCompleted)
	if len(serverUp.Requests()) != 0 {
		t.Fatalf("the server's upstream got project B's run: %+v", serverUp.Requests())
	}
	reqs := bUp.Requests()
	if len(reqs) == 0 || reqs[0].Messages[len(reqs[0].Messages)-1].Text() != "from project B" {
		t.Fatalf("B's upstream got %+v", reqs)
	}
	for _, a := range bUp.authorizations() {
		if a != "Bearer sk-b-upstream" {
			t.Fatalf("B's upstream was called with %q", a)
		}
	}

	asstA := newAssistant(t, s)
	r, err = s.Client.Beta.Threads.NewAndRun(ctx, openai.BetaThreadNewAndRunParams{AssistantID: asstA, Thread: hello})
	if err != nil {
		t.Fatal(err)
	}
	waitRun(t, s, r.ThreadID, r.ID, openai.RunStatusCompleted)
	if len(serverUp.Requests()) == 0 || len(bUp.Requests()) != len(reqs) {
		t.Fatalf("the Default project's run: server's upstream %d requests, B's %d (was %d)", len(serverUp.Requests()), len(bUp.Requests()), len(reqs))
	}

	st := openStore(t, s)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ub, err := st.ListUsage(ctx, b.ID, time.Now().Add(-24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		ua, err := st.ListUsage(ctx, "proj_default", time.Now().Add(-24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(ub) == 1 && ub[0].Requests == int64(len(reqs)) && len(ua) == 1 && ua[0].Requests == int64(len(serverUp.Requests())) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage: B %+v, Default %+v", ub, ua)
		}
	}
}
