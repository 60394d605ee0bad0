package ui

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/views"
)

// usageWindows are the day ranges the usage page offers; the first is
// the default.
var usageWindows = []int{30, 7, 90}

// Usage handles GET /usage: the current project's upstream requests and
// tokens by UTC day and model, charted and tabled.
func (u *UI) Usage(c *echo.Context) error {
	days := usageWindows[0]
	if d, err := strconv.Atoi(c.QueryParam("days")); err == nil && slices.Contains(usageWindows, d) {
		days = d
	}
	today := u.cfg.Now().UTC().Truncate(24 * time.Hour)
	first := today.AddDate(0, 0, 1-days)
	rows, err := u.store.ListUsage(c.Request().Context(), currentProject(c), first)
	if err != nil {
		return respond.Internal(err)
	}
	w, err := u.workspaceOf(c)
	if err != nil {
		return err
	}
	v := usageView(rows, first, days)
	v.Project, v.Windows = w.Name, usageWindows
	return render(c, http.StatusOK, views.UsagePage(u.page(c, "Usage", "usage"), v))
}

// usageView lays out usage from first over days: one stacked bar per day
// (a segment per model, models in name order) for requests and for
// tokens, and the table, newest day first.
func usageView(rows []db.DailyUsage, first time.Time, days int) views.UsageView {
	v := views.UsageView{Days: days}
	series := map[string]int{}
	for _, r := range rows {
		if _, ok := series[r.Model]; !ok {
			series[r.Model] = 0
			v.Models = append(v.Models, r.Model)
		}
	}
	slices.Sort(v.Models)
	for i, m := range v.Models {
		series[m] = i
	}
	requests := views.UsageChart{ID: "requests", Title: "Requests"}
	tokens := views.UsageChart{ID: "tokens", Title: "Tokens (input + output)"}
	perDay := map[int][]db.DailyUsage{}
	for _, r := range rows {
		i := int(r.Day.Sub(first).Hours() / 24)
		if i < 0 || i >= days {
			continue
		}
		perDay[i] = append(perDay[i], r)
		requests.Total += r.Requests
		tokens.Total += r.InputTokens + r.OutputTokens
		v.Total.Requests += r.Requests
		v.Total.InputTokens += r.InputTokens
		v.Total.OutputTokens += r.OutputTokens
	}
	for _, day := range perDay {
		var req, tok int64
		for _, r := range day {
			req, tok = req+r.Requests, tok+r.InputTokens+r.OutputTokens
		}
		requests.Peak, tokens.Peak = max(requests.Peak, req), max(tokens.Peak, tok)
	}
	barW := float64(views.UsageWidth) / float64(days)
	gap := min(barW*0.2, 2)
	stack := func(ch *views.UsageChart, value func(db.DailyUsage) int64) {
		if ch.Peak <= 0 {
			return
		}
		top := float64(views.UsageHeight - 1)
		for i := range days {
			y := top
			for _, r := range perDay[i] { // in model order: ListUsage sorts by day, then model
				n := value(r)
				if n <= 0 {
					continue
				}
				h := top * float64(n) / float64(ch.Peak)
				y -= h
				ch.Bars = append(ch.Bars, views.UsageBar{X: float64(i)*barW + gap/2, Y: y, W: barW - gap, H: h,
					Series: series[r.Model], Day: r.Day.Format(time.DateOnly), Model: r.Model, Value: n})
			}
		}
		ch.First, ch.Last = first.Format(time.DateOnly), first.AddDate(0, 0, days-1).Format(time.DateOnly)
	}
	stack(&requests, func(r db.DailyUsage) int64 { return r.Requests })
	stack(&tokens, func(r db.DailyUsage) int64 { return r.InputTokens + r.OutputTokens })
	v.Charts = []views.UsageChart{requests, tokens}
	for _, r := range rows {
		v.Rows = append(v.Rows, views.UsageRow{Day: r.Day.Format(time.DateOnly), Model: r.Model, Series: series[r.Model],
			Requests: r.Requests, InputTokens: r.InputTokens, OutputTokens: r.OutputTokens})
	}
	slices.SortStableFunc(v.Rows, func(a, b views.UsageRow) int { return strings.Compare(b.Day, a.Day) }) // newest day first
	return v
}
