package db

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Roles a user may have. Admins manage users and API keys; editors change
// assistants, threads and files; viewers read everything and change nothing.
const (
	RoleAdmin  = "admin"
	RoleEditor = "editor"
	RoleViewer = "viewer"
)

// Roles lists the roles from most to least privileged.
var Roles = []string{RoleAdmin, RoleEditor, RoleViewer}

// ErrBadCredentials is returned by Authenticate for an unknown email or a
// wrong password; which one is deliberately not said.
var ErrBadCredentials = errors.New("wrong email or password")

// ErrDuplicate is returned when a unique value (an email) is taken.
var ErrDuplicate = errors.New("already exists")

// MinPasswordLen is the shortest accepted password.
const MinPasswordLen = 10

// MaxPasswordBytes is the longest accepted password, in bytes: bcrypt
// reads no further (and refuses longer input), so a longer one would be
// silently shortened or fail.
const MaxPasswordBytes = 72

// ErrPasswordLength is returned for a password outside MinPasswordLen and
// MaxPasswordBytes; callers validate first and show their own message.
var ErrPasswordLength = fmt.Errorf("a password must be %d characters to %d bytes long", MinPasswordLen, MaxPasswordBytes)

// User is a person who signs in to the web app.
type User struct {
	ID          string
	Email       string
	Role        string
	CreatedAt   int64
	LastLoginAt *int64
}

// defaultPasswordCost is bcrypt's work factor: a few hundred milliseconds
// a hash on current hardware, slow enough to make offline guessing
// expensive.
const defaultPasswordCost = 12

// WithPasswordCost sets bcrypt's work factor; tests lower it to
// bcrypt.MinCost to stay fast.
func WithPasswordCost(cost int) Option { return func(s *Store) { s.passwordCost = cost } }

const userColumns = `id, email, role, created_at, last_login_at`

func scanUser(row rowScanner) (User, error) {
	var u User
	var last sql.NullInt64
	err := row.Scan(&u.ID, &u.Email, &u.Role, &u.CreatedAt, &last)
	u.LastLoginAt = nullInt(last)
	return u, err
}

// CreateUser stores a user with a bcrypt hash of password. The email is
// compared case-insensitively; a taken one returns ErrDuplicate.
func (s *Store) CreateUser(ctx context.Context, email, role, password string) (User, error) {
	email = strings.TrimSpace(email)
	if len(password) < MinPasswordLen || len(password) > MaxPasswordBytes {
		return User{}, fmt.Errorf("create user: %w", ErrPasswordLength)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.passwordCost)
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	u := User{ID: NewID("user_"), Email: email, Role: role, CreatedAt: s.now().Unix()}
	_, err = s.w.ExecContext(ctx, `INSERT INTO users (id, email, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)`,
		u.ID, u.Email, u.Role, string(hash), u.CreatedAt)
	if isUnique(err) {
		return u, ErrDuplicate
	}
	if err != nil {
		return u, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// CountUsers returns how many users exist; zero means first-run setup.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// GetUser returns the user with id, or ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id string) (User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return u, ErrNotFound
	}
	if err != nil {
		return u, fmt.Errorf("get user %s: %w", id, err)
	}
	return u, nil
}

// Authenticate checks an email and password and records the sign-in.
func (s *Store) Authenticate(ctx context.Context, email, password string) (User, error) {
	if len(password) > MaxPasswordBytes {
		// No stored password is this long; spend the time a check takes.
		password = password[:MaxPasswordBytes]
		_, _ = bcrypt.GenerateFromPassword([]byte(password), s.passwordCost)
		return User{}, ErrBadCredentials
	}
	var hash string
	row := s.r.QueryRowContext(ctx, `SELECT `+userColumns+`, password_hash FROM users WHERE lower(email) = lower($1)`, strings.TrimSpace(email))
	var u User
	var last sql.NullInt64
	err := row.Scan(&u.ID, &u.Email, &u.Role, &u.CreatedAt, &last, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		// Spend as long as a wrong password would, so that response
		// times do not tell which emails exist.
		_, _ = bcrypt.GenerateFromPassword([]byte(password), s.passwordCost)
		return User{}, ErrBadCredentials
	}
	if err != nil {
		return User{}, fmt.Errorf("authenticate: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return User{}, ErrBadCredentials
	}
	now := s.now().Unix()
	u.LastLoginAt = &now
	if _, err := s.w.ExecContext(ctx, `UPDATE users SET last_login_at = $1 WHERE id = $2`, now, u.ID); err != nil {
		return u, fmt.Errorf("record sign-in: %w", err)
	}
	return u, nil
}

// ListUsers returns every user, oldest first.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// SetUserRole changes a user's role and ends all their sessions. It refuses to demote the last admin,
// which would leave nobody able to manage users.
func (s *Store) SetUserRole(ctx context.Context, id, role string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if role != RoleAdmin {
			if err := s.keepOneAdmin(ctx, tx, id); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `UPDATE users SET role = $1 WHERE id = $2`, role, id)
		if err != nil {
			return fmt.Errorf("set role of %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		// The user signs in again to work with the new role.
		if _, err := tx.ExecContext(ctx, `DELETE FROM web_sessions WHERE user_id = $1`, id); err != nil {
			return fmt.Errorf("end sessions of %s: %w", id, err)
		}
		return nil
	})
}

// DeleteUser removes a user, refusing to remove the last admin.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.keepOneAdmin(ctx, tx, id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = $1`, id)
		if err != nil {
			return fmt.Errorf("delete user %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// ErrLastAdmin is returned when a change would leave no admin.
var ErrLastAdmin = errors.New("the last admin cannot be removed or demoted")

func (s *Store) keepOneAdmin(ctx context.Context, tx *sql.Tx, id string) error {
	if s.pg {
		// Two admins demoting each other at once must not both see the
		// other still an admin.
		rows, err := tx.QueryContext(ctx, `SELECT id FROM users WHERE role = 'admin'`+s.forUpdate())
		if err != nil {
			return err
		}
		rows.Close()
	}
	var others int
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE role = 'admin' AND id <> $1`, id).Scan(&others)
	if err != nil {
		return err
	}
	var isAdmin int
	_ = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE role = 'admin' AND id = $1`, id).Scan(&isAdmin)
	if isAdmin > 0 && others == 0 {
		return ErrLastAdmin
	}
	return nil
}

// Secret returns the named secret of n random bytes, generating and
// storing it the first time. Session cookie keys live here so that
// sessions survive restarts.
func (s *Store) Secret(ctx context.Context, name string, n int) ([]byte, error) {
	var v []byte
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// Processes starting at once on one PostgreSQL database may both
		// generate one: the first insert wins and both read it back.
		v = make([]byte, n)
		_, _ = rand.Read(v)
		if _, err := tx.ExecContext(ctx, `INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO NOTHING`, name, v, s.now().Unix()); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT value FROM secrets WHERE name = $1`, name).Scan(&v)
	})
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	return v, nil
}

// SetPassword replaces a user's password and ends all their sessions.
func (s *Store) SetPassword(ctx context.Context, id, password string) error {
	if len(password) < MinPasswordLen || len(password) > MaxPasswordBytes {
		return fmt.Errorf("set password: %w", ErrPasswordLength)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.passwordCost)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = $1 WHERE id = $2`, string(hash), id)
		if err != nil {
			return fmt.Errorf("set password of %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		// Whoever knew the old password is signed out everywhere (the
		// web app signs the person who changed it in again).
		if _, err := tx.ExecContext(ctx, `DELETE FROM web_sessions WHERE user_id = $1`, id); err != nil {
			return fmt.Errorf("end sessions of %s: %w", id, err)
		}
		return nil
	})
}
