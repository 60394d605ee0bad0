package db

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestProjectSettings: a project without settings allows every model and
// tool; model permissions, tool switches and an upstream are kept per
// project; the upstream's key is stored sealed, not in clear, and opens
// only for its own project; an archived project's settings cannot change.
func TestProjectSettings(t *testing.T) { eachStore(t, testProjectSettings) }

func testProjectSettings(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	b, err := s.CreateProject(ctx, "B")
	if err != nil {
		t.Fatal(err)
	}
	def, err := s.ProjectSettings(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !def.AllowsModel("gpt-4o") || !def.AllowsTool("code_interpreter") || !def.AllowsTool("file_search") || def.UpstreamURL != "" {
		t.Fatalf("default settings: %+v", def)
	}

	allow := AllowList
	set, err := s.UpdateProjectSettings(ctx, b.ID, SettingsChange{ModelMode: &allow, ModelIDs: []string{"m2", "m1", "m2"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(set.ModelIDs, []string{"m1", "m2"}) || !set.AllowsModel("m1") || set.AllowsModel("gpt-4o") {
		t.Fatalf("allow list: %+v", set)
	}
	off := false
	secret := "sk-upstream-of-b-0123456789"
	set, err = s.UpdateProjectSettings(ctx, b.ID, SettingsChange{CodeInterpreter: &off,
		Upstream: &ProjectUpstream{URL: "http://b.example/v1", Key: secret}})
	if err != nil {
		t.Fatal(err)
	}
	if set.AllowsTool("code_interpreter") || !set.AllowsTool("file_search") || !set.AllowsTool("function") {
		t.Fatalf("tools: %+v", set)
	}
	if set.ModelMode != AllowList || set.UpstreamURL != "http://b.example/v1" || set.UpstreamKey != secret {
		t.Fatalf("settings after the second change: %+v", set)
	}
	var sealed []byte
	if err := s.r.QueryRowContext(ctx, `SELECT upstream_key FROM project_settings WHERE project_id = $1`, b.ID).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if len(sealed) == 0 || bytes.Contains(sealed, []byte(secret)) {
		t.Fatalf("the upstream key is stored as %q", sealed)
	}
	if _, err := s.openUpstreamKey(ctx, DefaultProjectID, sealed); err == nil {
		t.Fatal("project B's sealed key opened as the Default project's")
	}
	if d, err := s.ProjectSettings(ctx, DefaultProjectID); err != nil || !d.AllowsModel("gpt-4o") || d.UpstreamURL != "" {
		t.Fatalf("the Default project's settings changed with B's: %+v %v", d, err)
	}

	set, err = s.UpdateProjectSettings(ctx, b.ID, SettingsChange{Upstream: &ProjectUpstream{}})
	if err != nil || set.UpstreamURL != "" || set.UpstreamKey != "" || set.AllowsTool("code_interpreter") {
		t.Fatalf("upstream removed: %+v %v", set, err)
	}
	if _, err := s.ArchiveProject(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateProjectSettings(ctx, b.ID, SettingsChange{CodeInterpreter: &off}); !errors.Is(err, ErrArchived) {
		t.Fatalf("changing an archived project's settings: %v, want ErrArchived", err)
	}
	if _, err := s.UpdateProjectSettings(ctx, "proj_missing", SettingsChange{CodeInterpreter: &off}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("changing a missing project's settings: %v, want ErrNotFound", err)
	}
}

// TestRateLimits: requests are counted per project and model in windows;
// past the limit a request is refused (and not counted) until the next
// window; tokens counted after the fact refuse the next request; a model
// without limits is neither limited nor counted.
func TestRateLimits(t *testing.T) { eachStore(t, testRateLimits) }

func testRateLimits(t *testing.T) {
	ctx := context.Background()
	s, clk := openClocked(t)
	b, err := s.CreateProject(ctx, "B")
	if err != nil {
		t.Fatal(err)
	}
	two, hundred := int64(2), int64(100)
	l, err := s.SetRateLimit(ctx, b.ID, "m", RateLimitChange{MaxRequestsPer1Minute: &two})
	if err != nil || l.ID != "rl-m" || l.MaxRequestsPer1Minute != 2 || l.MaxTokensPer1Minute != 0 {
		t.Fatalf("set rate limit: %+v %v", l, err)
	}
	admit := func(project, model string) RateState {
		t.Helper()
		st, err := s.AdmitRequest(ctx, project, model, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	for i, want := range []int64{1, 0} {
		if st := admit(b.ID, "m"); st.Refused != "" || st.LimitRequests != 2 || st.RemainingRequests != want || st.Reset <= 0 || st.Reset > time.Minute {
			t.Fatalf("request %d: %+v", i+1, st)
		}
	}
	st := admit(b.ID, "m")
	if st.Refused != "requests" || st.Used != 2 || st.RemainingRequests != 0 {
		t.Fatalf("third request: %+v, want refused on requests", st)
	}
	if st := admit(DefaultProjectID, "m"); st.Refused != "" || st.LimitRequests != 0 {
		t.Fatalf("the Default project has B's limit: %+v", st)
	}
	if st := admit(b.ID, "other"); st.Refused != "" || st.LimitRequests != 0 {
		t.Fatalf("another model has m's limit: %+v", st)
	}
	clk.advance(time.Minute)
	if st := admit(b.ID, "m"); st.Refused != "" || st.RemainingRequests != 1 {
		t.Fatalf("first request of the next window: %+v", st)
	}

	if _, err := s.SetRateLimit(ctx, b.ID, "m", RateLimitChange{MaxTokensPer1Minute: &hundred}); err != nil {
		t.Fatal(err)
	}
	if err := s.CountTokens(ctx, b.ID, "m", 120, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.CountTokens(ctx, b.ID, "other", 120, time.Minute); err != nil {
		t.Fatal(err)
	}
	st = admit(b.ID, "m")
	if st.Refused != "tokens" || st.Used != 120 || st.LimitTokens != 100 || st.RemainingTokens != 0 || st.LimitRequests != 2 {
		t.Fatalf("after 120 tokens of 100: %+v, want refused on tokens", st)
	}
	var rows int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM rate_counters WHERE model = 'other'`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("a model without limits has %d counters (%v), want none", rows, err)
	}
	ls, err := s.ListRateLimits(ctx, b.ID)
	if err != nil || len(ls) != 1 || ls[0].MaxRequestsPer1Minute != 2 || ls[0].MaxTokensPer1Minute != 100 {
		t.Fatalf("list rate limits: %+v %v", ls, err)
	}

	clk.advance(2 * time.Hour)
	if n, err := s.PruneRateCounters(ctx); err != nil || n != 2 {
		t.Fatalf("prune: %d %v, want the 2 old windows", n, err)
	}
}

// TestAdminKeys: an admin key works until revoked; a client key is not an
// admin key, nor an admin key a client key.
func TestAdminKeys(t *testing.T) { eachStore(t, testAdminKeys) }

func testAdminKeys(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	k, secret, err := s.CreateAdminKey(ctx, " ops ", "")
	if err != nil {
		t.Fatal(err)
	}
	if k.Name != "ops" || len(secret) < 40 || k.Hint == "" {
		t.Fatalf("admin key: %+v %q", k, secret)
	}
	if ok, err := s.CheckAdminKey(ctx, secret); err != nil || !ok {
		t.Fatalf("check admin key: %v %v", ok, err)
	}
	if _, ok, _ := s.CheckAPIKey(ctx, secret); ok {
		t.Fatal("an admin key works as a client key")
	}
	_, client, err := s.CreateAPIKey(ctx, KeyOptions{Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.CheckAdminKey(ctx, client); ok {
		t.Fatal("a client key works as an admin key")
	}
	keys, err := s.ListAdminKeys(ctx)
	if err != nil || len(keys) != 1 || keys[0].LastUsedAt == nil {
		t.Fatalf("list admin keys: %+v %v", keys, err)
	}
	if err := s.RevokeAdminKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.CheckAdminKey(ctx, secret); ok {
		t.Fatal("a revoked admin key still works")
	}
	if err := s.RevokeAdminKey(ctx, k.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoking twice: %v, want ErrNotFound", err)
	}
}

// BenchmarkAdmitRequest: what run creation pays for rate limits on
// SQLite: a model without limits (one read) and one with a limit (a read
// and one upsert on the writer).
func BenchmarkAdmitRequest(b *testing.B) {
	ctx := context.Background()
	s := openTest(b)
	big := int64(1 << 40)
	if _, err := s.SetRateLimit(ctx, DefaultProjectID, "limited", RateLimitChange{MaxRequestsPer1Minute: &big}); err != nil {
		b.Fatal(err)
	}
	for _, model := range []string{"unlimited", "limited"} {
		b.Run(model, func(b *testing.B) {
			for b.Loop() {
				if st, err := s.AdmitRequest(ctx, DefaultProjectID, model, time.Minute); err != nil || st.Refused != "" {
					b.Fatal(st, err)
				}
			}
		})
	}
}
