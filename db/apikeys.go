package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// APIKey is a stored client key. Only its hash is kept; Hint shows enough
// of the key for a person to recognise it.
type APIKey struct {
	ID               string
	Name             string
	Hint             string
	ProjectID        string
	UserID           string // the person it was made for; "" if none
	ServiceAccountID string // the service account it belongs to; "" if none
	ReadOnly         bool
	CreatedAt        int64
	LastUsedAt       *int64
	ExpiresAt        *int64
	RevokedAt        *int64
}

// KeyOptions describe a key to make.
type KeyOptions struct {
	ProjectID        string // "" is the Default project
	Name             string
	UserID           string
	ServiceAccountID string
	ExpiresAt        *int64 // Unix seconds; nil never expires
	ReadOnly         bool
}

// Principal is who a request's key speaks for.
type Principal struct {
	KeyID     string // "" for the key configured on the command line
	ProjectID string
	ReadOnly  bool
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
// secret, which is never retrievable again. The project must be active.
func (s *Store) CreateAPIKey(ctx context.Context, o KeyOptions) (APIKey, string, error) {
	if o.ProjectID == "" {
		o.ProjectID = DefaultProjectID
	}
	var k APIKey
	var secret string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := activeProject(ctx, tx, o.ProjectID); err != nil {
			return err
		}
		var err error
		k, secret, err = insertAPIKey(ctx, tx, s.now(), o)
		return err
	})
	return k, secret, err
}

func insertAPIKey(ctx context.Context, tx *sql.Tx, now time.Time, o KeyOptions) (APIKey, string, error) {
	secret := NewKeySecret()
	k := APIKey{ID: NewID("key_"), Name: o.Name, Hint: secret[:9] + "…" + secret[len(secret)-4:], ProjectID: o.ProjectID,
		UserID: o.UserID, ServiceAccountID: o.ServiceAccountID, ReadOnly: o.ReadOnly, ExpiresAt: o.ExpiresAt, CreatedAt: now.Unix()}
	_, err := tx.ExecContext(ctx, `INSERT INTO api_keys (id, name, hash, hint, created_at, project_id, user_id, service_account_id, expires_at, read_only)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		k.ID, k.Name, HashKey(secret), k.Hint, k.CreatedAt, k.ProjectID, nullIfEmpty(k.UserID), nullIfEmpty(k.ServiceAccountID),
		k.ExpiresAt, boolInt(k.ReadOnly))
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

// CheckAPIKey returns who key speaks for, if it is a stored key that is
// not revoked or expired and whose project is active, and records its use.
// The last-used time is written at most once a minute per key so that
// authentication does not turn every read into a write.
func (s *Store) CheckAPIKey(ctx context.Context, key string) (Principal, bool, error) {
	var p Principal
	var lastUsed sql.NullInt64
	var readOnly int64
	now := s.now().Unix()
	err := s.r.QueryRowContext(ctx, `SELECT k.id, k.project_id, k.read_only, k.last_used_at FROM api_keys k JOIN projects p ON p.id = k.project_id
		WHERE k.hash = $1 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > $2) AND p.archived_at IS NULL`,
		HashKey(key), now).Scan(&p.KeyID, &p.ProjectID, &readOnly, &lastUsed)
	if errors.Is(err, sql.ErrNoRows) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("check api key: %w", err)
	}
	p.ReadOnly = readOnly != 0
	if !lastUsed.Valid || now-lastUsed.Int64 >= 60 {
		if _, err := s.exec(ctx, `UPDATE api_keys SET last_used_at = $1 WHERE id = $2`, now, p.KeyID); err != nil {
			return p, true, fmt.Errorf("record api key use: %w", err)
		}
	}
	return p, true, nil
}

const apiKeyColumns = `id, name, hint, project_id, user_id, service_account_id, read_only, created_at, last_used_at, expires_at, revoked_at`

func scanAPIKey(row rowScanner) (APIKey, error) {
	var k APIKey
	var user, sa sql.NullString
	var readOnly int64
	var last, expires, revoked sql.NullInt64
	err := row.Scan(&k.ID, &k.Name, &k.Hint, &k.ProjectID, &user, &sa, &readOnly, &k.CreatedAt, &last, &expires, &revoked)
	k.UserID, k.ServiceAccountID, k.ReadOnly = user.String, sa.String, readOnly != 0
	k.LastUsedAt, k.ExpiresAt, k.RevokedAt = nullInt(last), nullInt(expires), nullInt(revoked)
	return k, err
}

// ListAPIKeys returns a project's keys, newest first, revoked ones
// included.
func (s *Store) ListAPIKeys(ctx context.Context, projectID string) ([]APIKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE project_id = $1 ORDER BY seq DESC`, projectID)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	defer rows.Close()
	var out []APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list api keys: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// GetAPIKey returns one of a project's keys, or ErrNotFound.
func (s *Store) GetAPIKey(ctx context.Context, projectID, id string) (APIKey, error) {
	k, err := scanAPIKey(s.r.QueryRowContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE project_id = $1 AND id = $2`, projectID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return k, ErrNotFound
	}
	if err != nil {
		return k, fmt.Errorf("get api key %s: %w", id, err)
	}
	return k, nil
}

// RevokeAPIKey marks one of a project's keys revoked; it stops working at
// once.
func (s *Store) RevokeAPIKey(ctx context.Context, projectID, id string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND project_id = $3 AND revoked_at IS NULL`, s.now().Unix(), id, projectID)
	if err != nil {
		return fmt.Errorf("revoke api key %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}
