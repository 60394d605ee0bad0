package db

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
)

// Web app sessions live on the server (table web_sessions): the cookie
// carries only a random token, and a sign-in lasts exactly as long as its
// row. Deleting rows ends sign-ins at once, wherever the cookie went.

func tokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// CreateSession starts a sign-in for userID that ends at expiresAt (Unix
// seconds) and returns the token for the cookie. Expired rows of every
// user are cleared on the way, which keeps the table small.
func (s *Store) CreateSession(ctx context.Context, userID string, now, expiresAt int64) (string, error) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	token := base64.RawURLEncoding.EncodeToString(b)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM web_sessions WHERE expires_at <= $1`, now); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO web_sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
			tokenHash(token), userID, now, expiresAt)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("create session: %w", err)
	}
	return token, nil
}

// SessionUser returns the user signed in with token, or ErrNotFound when
// the session has ended (signed out, revoked, expired at now, or the user
// was removed).
func (s *Store) SessionUser(ctx context.Context, token string, now int64) (User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT u.id, u.email, u.role, u.created_at, u.last_login_at
		FROM web_sessions ws JOIN users u ON u.id = ws.user_id WHERE ws.token_hash = $1 AND ws.expires_at > $2`, tokenHash(token), now))
	if errors.Is(err, sql.ErrNoRows) {
		return u, ErrNotFound
	}
	if err != nil {
		return u, fmt.Errorf("session user: %w", err)
	}
	return u, nil
}

// DeleteSession ends one sign-in (sign-out).
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM web_sessions WHERE token_hash = $1`, tokenHash(token)); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteUserSessions ends every sign-in of userID ("sign out everywhere")
// and returns how many there were.
func (s *Store) DeleteUserSessions(ctx context.Context, userID string) (int, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM web_sessions WHERE user_id = $1`, userID)
	if err != nil {
		return 0, fmt.Errorf("delete sessions of %s: %w", userID, err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// Setting returns a server-wide setting's value, or def when unset.
func (s *Store) Setting(ctx context.Context, name, def string) (string, error) {
	var v string
	err := s.r.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return def, nil
	}
	if err != nil {
		return "", fmt.Errorf("setting %s: %w", name, err)
	}
	return v, nil
}

// SetSetting stores a server-wide setting.
func (s *Store) SetSetting(ctx context.Context, name, value string) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, name, value, s.now().Unix())
	if err != nil {
		return fmt.Errorf("set setting %s: %w", name, err)
	}
	return nil
}
