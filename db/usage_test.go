package db

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestRecordUsages: one call writes many records in one transaction,
// summing those of one project, model and day, and adds to what is
// stored; more rows than one statement takes are all written.
func TestRecordUsages(t *testing.T) {
	eachStore(t, func(t *testing.T) {
		ctx := context.Background()
		day := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
		s := openTest(t, WithClock(func() time.Time { return day }))
		// Already stored: one request of m0 today.
		if err := s.RecordUsage(ctx, DefaultProjectID, "m0", 1, 1); err != nil {
			t.Fatal(err)
		}
		var recs []UsageRecord
		for i := range 3 * usageRows {
			// m0 to m(usageRows+9) on day, each model once or more;
			// and one record on the next day.
			recs = append(recs, UsageRecord{ProjectID: DefaultProjectID, Model: fmt.Sprintf("m%d", i%(usageRows+10)), At: day,
				Requests: 1, InputTokens: 10, OutputTokens: 2})
		}
		recs = append(recs, UsageRecord{ProjectID: DefaultProjectID, Model: "m0", At: day.Add(24 * time.Hour), Requests: 2, InputTokens: 7, OutputTokens: 3})
		before := s.GroupCommitStats()
		if err := s.RecordUsages(ctx, recs); err != nil {
			t.Fatal(err)
		}
		if after := s.GroupCommitStats(); !s.pg && after.Writes-before.Writes != 1 {
			t.Errorf("%d write transactions, want 1", after.Writes-before.Writes)
		}
		got, err := s.ListUsage(ctx, DefaultProjectID, day)
		if err != nil {
			t.Fatal(err)
		}
		var requests, in, out int64
		rows := map[string]int64{}
		for _, u := range got {
			requests, in, out = requests+u.Requests, in+u.InputTokens, out+u.OutputTokens
			rows[u.Day.Format("01-02")+" "+u.Model] = u.Requests
		}
		if want := int64(3*usageRows + 3); requests != want || in != 10*3*usageRows+8 || out != 2*3*usageRows+4 {
			t.Errorf("usage from %v: %d requests, %d in, %d out; want %d, %d, %d", day, requests, in, out,
				want, 10*3*usageRows+8, 2*3*usageRows+4)
		}
		if len(rows) != usageRows+11 || rows["12-06 m0"] != 2 || rows["12-05 m0"] != 4 || rows["12-05 m1"] != 3 || rows[fmt.Sprintf("12-05 m%d", usageRows+9)] != 2 {
			t.Errorf("%d rows: %v", len(rows), rows)
		}
	})
}
