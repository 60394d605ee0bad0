package agent

import (
	"testing"

	"github.com/assistantd/assistantd/db"
)

func TestNeedsSettling(t *testing.T) {
	tests := []struct {
		status, from string
		want         bool
	}{
		{db.RunCancelling, db.RunCancelling, true},
		{db.RunInProgress, db.RunCancelling, false}, // a cancel that lost the race to nothing: leave it
		{db.RunCompleted, db.RunCancelling, false},
		{db.RunRequiresAction, db.RunExpired, true},
		{db.RunInProgress, db.RunExpired, true},
		{db.RunQueued, db.RunExpired, true},
		{db.RunExpired, db.RunExpired, false}, // already settled: never settled twice
		{db.RunCancelled, db.RunExpired, false},
	}
	for _, tt := range tests {
		if got := needsSettling(tt.status, tt.from); got != tt.want {
			t.Errorf("needsSettling(%s, from %s) = %v, want %v", tt.status, tt.from, got, tt.want)
		}
	}
}
