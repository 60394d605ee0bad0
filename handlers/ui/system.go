package ui

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/telemetry"
	"github.com/assistantd/assistantd/views"
)

// System handles GET /settings/system (admins): the server's figures over
// the last hour as small charts, from the metrics' history.
func (u *UI) System(c *echo.Context) error {
	if u.cfg.History == nil {
		return echo.ErrNotFound
	}
	samples := u.cfg.History.Samples()
	now := samples[len(samples)-1].At
	pick := func(f func(telemetry.Sample) float64) []point {
		pts := make([]point, 0, len(samples))
		for _, s := range samples {
			pts = append(pts, point{s.At, f(s)})
		}
		return pts
	}
	count := func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
	seconds := func(v float64) string {
		if v < 1 {
			return fmt.Sprintf("%.0f ms", v*1000)
		}
		return fmt.Sprintf("%.2f s", v)
	}
	percent := func(v float64) string { return fmt.Sprintf("%.0f%%", v*100) }
	var requests, errs float64
	for _, s := range samples {
		requests, errs = requests+s.Requests, errs+s.Errors
	}
	running := pick(func(s telemetry.Sample) float64 { return s.KernelsRunning })
	pooled := pick(func(s telemetry.Sample) float64 { return s.KernelsPooled })
	kernels := chart("kernels", "Python kernels", now, count, running, pooled)
	last := samples[len(samples)-1]
	kernels.Latest = fmt.Sprintf("%s running, %s pooled", count(last.KernelsRunning), count(last.KernelsPooled))
	charts := []views.Chart{
		chart("queued", "Runs queued", now, count, pick(func(s telemetry.Sample) float64 { return s.Queued })),
		chart("active", "Runs active", now, count, pick(func(s telemetry.Sample) float64 { return s.Active })),
		withNote(chart("latency", "Upstream latency (mean)", now, seconds, pick(func(s telemetry.Sample) float64 { return s.Latency })),
			fmt.Sprintf("%s upstream requests in the hour.", count(requests))),
		withNote(chart("errors", "Upstream error rate", now, percent, pick(telemetry.Sample.ErrorRate)),
			fmt.Sprintf("%s of %s requests failed.", count(errs), count(requests))),
		kernels,
		chart("backlog", "Vector store ingestion backlog", now, count, pick(func(s telemetry.Sample) float64 { return s.Backlog })),
	}
	every := u.cfg.History.Every().String()
	return render(c, http.StatusOK, views.SystemPage(u.page(c, "System", "system"), views.SystemView{Charts: charts, Every: every}))
}

type point struct {
	at time.Time
	v  float64
}

// chart draws series (NaN values leave gaps) over the hour up to now,
// scaled to the highest value of all of them; Latest is the first
// series' last value (its last one that is not NaN).
func chart(id, title string, now time.Time, format func(float64) string, series ...[]point) views.Chart {
	c := views.Chart{ID: id, Title: title, Latest: "—", Peak: "—"}
	peak := math.Inf(-1)
	for _, pts := range series {
		for _, p := range pts {
			if !math.IsNaN(p.v) {
				peak = max(peak, p.v)
			}
		}
	}
	if math.IsInf(peak, -1) {
		return c // nothing to draw
	}
	c.Peak = format(peak)
	for i := len(series[0]) - 1; i >= 0; i-- {
		if v := series[0][i].v; !math.IsNaN(v) {
			c.Latest = format(v)
			break
		}
	}
	scale := peak
	if scale <= 0 {
		scale = 1
	}
	start := now.Add(-telemetry.HistoryWindow)
	for _, pts := range series {
		var line [][2]float64
		flush := func() {
			if len(line) == 1 { // a lone point: a short dash ending at it
				line = [][2]float64{{max(line[0][0]-4, 0), line[0][1]}, line[0]}
			}
			if len(line) > 0 {
				xy := make([]string, len(line))
				for i, p := range line {
					xy[i] = fmt.Sprintf("%.1f,%.1f", p[0], p[1])
				}
				c.Lines = append(c.Lines, strings.Join(xy, " "))
			}
			line = nil
		}
		for _, p := range pts {
			if math.IsNaN(p.v) || p.at.Before(start) {
				flush()
				continue
			}
			x := float64(views.ChartWidth) * p.at.Sub(start).Seconds() / telemetry.HistoryWindow.Seconds()
			y := float64(views.ChartHeight) - 2 - (float64(views.ChartHeight)-6)*p.v/scale
			line = append(line, [2]float64{x, y})
		}
		flush()
	}
	return c
}

func withNote(c views.Chart, note string) views.Chart {
	c.Note = note
	return c
}
