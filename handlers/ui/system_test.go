package ui_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/ui"
	"github.com/assistantd/assistantd/telemetry"
)

// The System page is for admins (and linked for them only); it draws the
// metrics' history: the figures recorded since the last sample are its
// latest values.
func TestSystemPage(t *testing.T) {
	m := telemetry.NewMetrics()
	queued := 4.0
	m.Gauge("assistantd_runs_queued", "", func() float64 { return queued })
	h := telemetry.NewHistory(m, time.Minute)
	ctx, cancel := context.WithCancel(testCtx())
	t.Cleanup(cancel)
	h.Start(ctx)
	m.UpstreamRequest(telemetry.Upstream{Provider: "p", Model: "x", Outcome: "ok", Duration: 300 * time.Millisecond})
	m.UpstreamRequest(telemetry.Upstream{Provider: "p", Model: "x", Outcome: "rate_limited", Duration: 100 * time.Millisecond})
	a := newAppWith(t, func(cfg *ui.Config, _ *db.Store) { cfg.History = h }, nil)

	admin, editor := a.user(db.RoleAdmin), a.user(db.RoleEditor)
	if res := editor.get("/settings/system"); res.StatusCode != http.StatusForbidden {
		t.Errorf("an editor opened the System page: %d", res.StatusCode)
	}
	if testid(editor.page("/assistants", http.StatusOK), "nav-system").Length() != 0 {
		t.Error("the System link is shown to an editor")
	}
	if testid(admin.page("/assistants", http.StatusOK), "nav-system").Length() != 1 {
		t.Error("no System link for an admin")
	}
	doc := admin.page("/settings/system", http.StatusOK)
	want := map[string]string{"queued": "4", "active": "0", "latency": "200 ms", "errors": "50%", "backlog": "0",
		"kernels": "0 running, 0 pooled"}
	for id, latest := range want {
		c := testid(doc, "chart-"+id)
		if c.Length() != 1 {
			t.Errorf("no chart %s", id)
			continue
		}
		if got := strings.TrimSpace(c.Find(`[data-testid="latest"]`).Text()); got != latest {
			t.Errorf("chart %s shows %q, want %q", id, got, latest)
		}
	}
	lines := testid(doc, "chart-latency").Find(`[data-testid="line"]`)
	if lines.Length() != 1 {
		t.Fatalf("latency chart: %d lines, want 1", lines.Length())
	}
	// One point (now, at the right end), drawn as a dash ending there, at
	// the top (the hour's peak).
	if pts, _ := lines.Attr("points"); !strings.HasPrefix(pts, "296.0,4.0 300.0,4.0") {
		t.Errorf("latency line %q: want a dash at the top right", pts)
	}
	if note := testid(doc, "chart-errors").Find(".hint").Text(); !strings.Contains(note, "1 of 2 requests failed") {
		t.Errorf("error note %q", note)
	}
}
