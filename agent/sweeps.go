package agent

import (
	"context"
	"log/slog"
	"time"
)

// Sweep is periodic housekeeping: Run is called at start and then every
// Every until the engine stops. It returns how many objects it swept, for
// the log.
type Sweep struct {
	Name  string
	Every time.Duration
	Run   func(ctx context.Context) (int, error)
}

func (s Sweep) loop(ctx context.Context, log *slog.Logger) {
	t := time.NewTicker(s.Every)
	defer t.Stop()
	for {
		if n, err := s.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("sweep failed", "sweep", s.Name, "error", err)
		} else if n > 0 {
			log.Info("swept", "sweep", s.Name, "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
