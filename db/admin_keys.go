package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// AdminKey is a stored admin key: it manages projects through
// /v1/organization and opens nothing else. Only its hash is kept.
type AdminKey struct {
	ID         string
	Name       string
	Hint       string
	UserID     string // the instance admin who made it
	CreatedAt  int64
	LastUsedAt *int64
	RevokedAt  *int64
}

// NewAdminKeySecret returns a fresh admin key in OpenAI's "sk-admin-"
// style.
func NewAdminKeySecret() string { return "sk-admin-" + randomString(43) }

// CreateAdminKey generates and stores an admin key, returning the record
// and the secret, which is never retrievable again.
func (s *Store) CreateAdminKey(ctx context.Context, name, userID string) (AdminKey, string, error) {
	secret := NewAdminKeySecret()
	k := AdminKey{ID: NewID("key_"), Name: strings.TrimSpace(name), Hint: secret[:12] + "…" + secret[len(secret)-4:],
		UserID: userID, CreatedAt: s.now().Unix()}
	_, err := s.w.ExecContext(ctx, `INSERT INTO admin_keys (id, name, hash, hint, user_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		k.ID, k.Name, HashKey(secret), k.Hint, nullIfEmpty(userID), k.CreatedAt)
	if err != nil {
		return k, "", fmt.Errorf("create admin key: %w", err)
	}
	return k, secret, nil
}

// CheckAdminKey reports whether key is a stored admin key in force, and
// records its use (at most once a minute, as for client keys).
func (s *Store) CheckAdminKey(ctx context.Context, key string) (bool, error) {
	var id string
	var lastUsed sql.NullInt64
	now := s.now().Unix()
	err := s.r.QueryRowContext(ctx, `SELECT id, last_used_at FROM admin_keys WHERE hash = $1 AND revoked_at IS NULL`,
		HashKey(key)).Scan(&id, &lastUsed)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check admin key: %w", err)
	}
	if !lastUsed.Valid || now-lastUsed.Int64 >= 60 {
		if _, err := s.exec(ctx, `UPDATE admin_keys SET last_used_at = $1 WHERE id = $2`, now, id); err != nil {
			return true, fmt.Errorf("record admin key use: %w", err)
		}
	}
	return true, nil
}

// ListAdminKeys returns the admin keys, newest first, revoked ones
// included.
func (s *Store) ListAdminKeys(ctx context.Context) ([]AdminKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, name, hint, user_id, created_at, last_used_at, revoked_at FROM admin_keys ORDER BY seq DESC`)
	if err != nil {
		return nil, fmt.Errorf("list admin keys: %w", err)
	}
	defer rows.Close()
	var out []AdminKey
	for rows.Next() {
		var k AdminKey
		var user sql.NullString
		var last, revoked sql.NullInt64
		if err := rows.Scan(&k.ID, &k.Name, &k.Hint, &user, &k.CreatedAt, &last, &revoked); err != nil {
			return nil, fmt.Errorf("list admin keys: %w", err)
		}
		k.UserID, k.LastUsedAt, k.RevokedAt = user.String, nullInt(last), nullInt(revoked)
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeAdminKey revokes an admin key; it stops working at once.
// ErrNotFound when there is no such key in force.
func (s *Store) RevokeAdminKey(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE admin_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, s.now().Unix(), id)
	if err != nil {
		return fmt.Errorf("revoke admin key %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}
