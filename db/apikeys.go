package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
)

// APIKey is a stored client key. Only its hash is kept; Hint shows enough
// of the key for a person to recognise it.
type APIKey struct {
	ID         string
	Name       string
	Hint       string
	CreatedAt  int64
	LastUsedAt *int64
	RevokedAt  *int64
}

// HashKey is the one-way form in which keys are stored and compared. Keys
// are 256-bit random strings, so a fast hash is enough: there is nothing
// to brute-force.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// NewKeySecret returns a fresh client key in OpenAI's "sk-" style.
func NewKeySecret() string { return "sk-ad-" + randomString(43) }

// CreateAPIKey generates and stores a new key, returning the record and the
// secret, which is never retrievable again.
func (s *Store) CreateAPIKey(ctx context.Context, name string) (APIKey, string, error) {
	secret := NewKeySecret()
	k := APIKey{ID: NewID("key_"), Name: name, Hint: secret[:9] + "…" + secret[len(secret)-4:], CreatedAt: s.now().Unix()}
	_, err := s.w.ExecContext(ctx, `INSERT INTO api_keys (id, name, hash, hint, created_at) VALUES ($1, $2, $3, $4, $5)`,
		k.ID, k.Name, HashKey(secret), k.Hint, k.CreatedAt)
	if err != nil {
		return k, "", fmt.Errorf("create api key: %w", err)
	}
	return k, secret, nil
}

// CountAPIKeys returns how many keys are stored, revoked ones included.
func (s *Store) CountAPIKeys(ctx context.Context) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_keys`).Scan(&n)
	return n, err
}

// CheckAPIKey reports whether key is a stored, unrevoked key, and records
// its use. The last-used time is written at most once a minute per key so
// that authentication does not turn every read into a write.
func (s *Store) CheckAPIKey(ctx context.Context, key string) (bool, error) {
	var id string
	var lastUsed sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT id, last_used_at FROM api_keys WHERE hash = $1 AND revoked_at IS NULL`,
		HashKey(key)).Scan(&id, &lastUsed)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check api key: %w", err)
	}
	now := s.now().Unix()
	if !lastUsed.Valid || now-lastUsed.Int64 >= 60 {
		if _, err := s.w.ExecContext(ctx, `UPDATE api_keys SET last_used_at = $1 WHERE id = $2`, now, id); err != nil {
			return true, fmt.Errorf("record api key use: %w", err)
		}
	}
	return true, nil
}

// ListAPIKeys returns every key, newest first.
func (s *Store) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, name, hint, created_at, last_used_at, revoked_at FROM api_keys ORDER BY seq DESC`)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	defer rows.Close()
	var out []APIKey
	for rows.Next() {
		var k APIKey
		var last, revoked sql.NullInt64
		if err := rows.Scan(&k.ID, &k.Name, &k.Hint, &k.CreatedAt, &last, &revoked); err != nil {
			return nil, fmt.Errorf("list api keys: %w", err)
		}
		k.LastUsedAt, k.RevokedAt = nullInt(last), nullInt(revoked)
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeAPIKey marks a key revoked; it stops working at once.
func (s *Store) RevokeAPIKey(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, s.now().Unix(), id)
	if err != nil {
		return fmt.Errorf("revoke api key %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}
