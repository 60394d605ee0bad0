package ui

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/views"
)

// TestUsageViewOverDays: one slot per day, oldest at the left; the chart's
// top is the busiest day's total; each day's segments stack in model
// order; the table runs newest day first.
func TestUsageViewOverDays(t *testing.T) {
	first := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	day := func(i int) time.Time { return first.AddDate(0, 0, i) }
	rows := []db.DailyUsage{ // as ListUsage returns them: by day, then model
		{Day: day(0), Model: "b", Requests: 1, InputTokens: 10, OutputTokens: 10},
		{Day: day(2), Model: "a", Requests: 3, InputTokens: 100, OutputTokens: 20},
		{Day: day(2), Model: "b", Requests: 1, InputTokens: 30, OutputTokens: 0},
		{Day: day(3), Model: "a", Requests: 2, InputTokens: 50, OutputTokens: 10},
	}
	v := usageView(rows, first, 4)
	if diff := cmp.Diff([]string{"a", "b"}, v.Models); diff != "" {
		t.Errorf("models (-want +got):\n%s", diff)
	}
	req := v.Charts[0]
	if req.Total != 7 || req.Peak != 4 {
		t.Errorf("requests total %d, peak %d; want 7 and 4", req.Total, req.Peak)
	}
	type bar struct {
		Day, Model string
		Series     int
		X, Y, H    float64
	}
	var got []bar
	for _, b := range req.Bars {
		got = append(got, bar{b.Day, b.Model, b.Series, b.X, b.Y, b.H})
	}
	// 600 units over 4 days: slots of 150, bars 148 wide from 1 in; 119
	// units tall for the busiest day's 4 requests.
	want := []bar{
		{"2026-03-01", "b", 1, 1, 119 - 29.75, 29.75},
		{"2026-03-03", "a", 0, 301, 119 - 89.25, 89.25},
		{"2026-03-03", "b", 1, 301, 0, 29.75},
		{"2026-03-04", "a", 0, 451, 119 - 59.5, 59.5},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request bars (-want +got):\n%s", diff)
	}
	if req.First != "2026-03-01" || req.Last != "2026-03-04" {
		t.Errorf("days %s to %s", req.First, req.Last)
	}
	tok := v.Charts[1]
	if tok.Total != 230 || tok.Peak != 150 {
		t.Errorf("tokens total %d, peak %d; want 230 and 150", tok.Total, tok.Peak)
	}
	var days []string
	for _, r := range v.Rows {
		days = append(days, r.Day+" "+r.Model)
	}
	if diff := cmp.Diff([]string{"2026-03-04 a", "2026-03-03 a", "2026-03-03 b", "2026-03-01 b"}, days); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(views.UsageRow{Requests: 7, InputTokens: 190, OutputTokens: 40}, v.Total); diff != "" {
		t.Errorf("total (-want +got):\n%s", diff)
	}
}
