package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Notifications between replicas on PostgreSQL (LISTEN/NOTIFY). They only
// make things faster: every replica also polls (the sweeper's claims, the
// lease renewal's status read), so a notification lost while a listener
// reconnects costs at most one poll. On SQLite, one process owns the
// database and both are no-ops.

// Notification channels.
const (
	ChannelQueue   = "assistantd_queue"   // payload: a run id that may be claimed
	ChannelControl = "assistantd_control" // payload: "<verb>:<run id>" for the run's lease holder
)

// Notify sends payload on channel to every listening replica (PostgreSQL
// delivers it when the sending transaction, here a statement of its own,
// commits). Payloads must stay under 8,000 bytes: ids, never data.
func (s *Store) Notify(ctx context.Context, channel, payload string) error {
	if !s.pg {
		return nil
	}
	if _, err := s.w.ExecContext(ctx, `SELECT pg_notify($1, $2)`, channel, payload); err != nil {
		return fmt.Errorf("notify %s: %w", channel, err)
	}
	return nil
}

// Listen calls handle for every notification on channels until ctx is
// done, on a connection of its own (never a pooled one: a pooler in
// transaction mode would lose the LISTEN). After a lost connection it
// connects again with a 1 s pause. It calls listening each time it has
// started listening: first with nil, then, after a reconnect, with the
// error that ended the previous connection (notifications sent meanwhile
// are gone, and the caller polls for what it missed). On SQLite it
// returns at once.
func (s *Store) Listen(ctx context.Context, channels []string, handle func(channel, payload string), listening func(lost error)) {
	if !s.pg {
		return
	}
	var lost error
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, channels, handle, func() {
			if listening != nil {
				listening(lost)
			}
		})
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("listening connection ended")
		}
		lost = err // the caller's polls cover the gap; try again shortly
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (s *Store) listenOnce(ctx context.Context, channels []string, handle func(channel, payload string), listening func()) error {
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, ch := range channels {
		if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{ch}.Sanitize()); err != nil {
			return err
		}
	}
	listening()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		handle(n.Channel, n.Payload)
	}
}
