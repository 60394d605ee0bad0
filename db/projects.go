package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultProjectID is the project that received everything stored before
// projects existed, and that keys configured on the command line use.
const DefaultProjectID = "proj_default"

// Project roles of people. An owner manages the project's members, keys
// and settings; an editor changes its objects; a viewer reads them.
const (
	ProjectOwner  = "owner"
	ProjectEditor = "editor"
	ProjectViewer = "viewer"
)

// ProjectRoles lists people's project roles from most to least privileged.
var ProjectRoles = []string{ProjectOwner, ProjectEditor, ProjectViewer}

// ErrNoProject is returned by a project-scoped query whose context carries
// no project: a caller that forgot to scope gets an error, never another
// project's data.
var ErrNoProject = errors.New("no project in context")

type projectKey struct{}

// WithProject scopes ctx to a project: every project-scoped query made
// with it reads and writes only that project's objects.
func WithProject(ctx context.Context, projectID string) context.Context {
	return context.WithValue(ctx, projectKey{}, projectID)
}

// ProjectFrom returns the project ctx is scoped to, or ErrNoProject.
func ProjectFrom(ctx context.Context) (string, error) {
	if p, ok := ctx.Value(projectKey{}).(string); ok && p != "" {
		return p, nil
	}
	return "", ErrNoProject
}

// Project is a team's space: its keys, people and objects.
type Project struct {
	ID         string
	Name       string
	CreatedAt  int64
	ArchivedAt *int64
}

// Active reports whether the project is not archived.
func (p Project) Active() bool { return p.ArchivedAt == nil }

const projectColumns = `id, name, created_at, archived_at`

func scanProject(row rowScanner) (Project, error) {
	var p Project
	var archived sql.NullInt64
	err := row.Scan(&p.ID, &p.Name, &p.CreatedAt, &archived)
	p.ArchivedAt = nullInt(archived)
	return p, err
}

// CreateProject stores a new, active project.
func (s *Store) CreateProject(ctx context.Context, name string) (Project, error) {
	p := Project{ID: NewID("proj_"), Name: strings.TrimSpace(name), CreatedAt: s.now().Unix()}
	_, err := s.w.ExecContext(ctx, `INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3)`, p.ID, p.Name, p.CreatedAt)
	if err != nil {
		return p, fmt.Errorf("create project: %w", err)
	}
	return p, nil
}

// GetProject returns a project, archived or not, or ErrNotFound.
func (s *Store) GetProject(ctx context.Context, id string) (Project, error) {
	p, err := scanProject(s.r.QueryRowContext(ctx, `SELECT `+projectColumns+` FROM projects WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return p, ErrNotFound
	}
	if err != nil {
		return p, fmt.Errorf("get project %s: %w", id, err)
	}
	return p, nil
}

// ListProjects returns projects oldest first (the Default project first),
// archived ones only when includeArchived.
func (s *Store) ListProjects(ctx context.Context, includeArchived bool) ([]Project, error) {
	q := `SELECT ` + projectColumns + ` FROM projects`
	if !includeArchived {
		q += ` WHERE archived_at IS NULL`
	}
	return s.queryProjects(ctx, q+` ORDER BY seq`)
}

// ListUserProjects returns the active projects userID is a member of,
// oldest first, with the user's role in each.
func (s *Store) ListUserProjects(ctx context.Context, userID string) ([]ProjectMembership, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT p.id, p.name, p.created_at, p.archived_at, m.role
		FROM project_members m JOIN projects p ON p.id = m.project_id
		WHERE m.user_id = $1 AND p.archived_at IS NULL ORDER BY p.seq`, userID)
	if err != nil {
		return nil, fmt.Errorf("list user projects: %w", err)
	}
	defer rows.Close()
	var out []ProjectMembership
	for rows.Next() {
		var m ProjectMembership
		var archived sql.NullInt64
		if err := rows.Scan(&m.Project.ID, &m.Project.Name, &m.Project.CreatedAt, &archived, &m.Role); err != nil {
			return nil, fmt.Errorf("list user projects: %w", err)
		}
		m.Project.ArchivedAt = nullInt(archived)
		out = append(out, m)
	}
	return out, rows.Err()
}

// ProjectMembership is a project with one person's role in it.
type ProjectMembership struct {
	Project Project
	Role    string
}

func (s *Store) queryProjects(ctx context.Context, q string, args ...any) ([]Project, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	defer rows.Close()
	var out []Project
	for rows.Next() {
		p, err := scanProject(rows)
		if err != nil {
			return nil, fmt.Errorf("list projects: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// RenameProject changes an active project's name.
func (s *Store) RenameProject(ctx context.Context, id, name string) (Project, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE projects SET name = $1 WHERE id = $2 AND archived_at IS NULL`, strings.TrimSpace(name), id)
	if err != nil {
		return Project{}, fmt.Errorf("rename project %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.GetProject(ctx, id); err != nil {
			return Project{}, err
		}
		return Project{}, ErrArchived
	}
	return s.GetProject(ctx, id)
}

// ErrArchived is returned for a change to an archived project.
var ErrArchived = errors.New("project is archived")

// ErrDefaultProject is returned for an attempt to archive the Default
// project, which keys configured on the command line use.
var ErrDefaultProject = errors.New("the Default project cannot be archived")

// ArchiveProject archives a project: its keys stop working at once and it
// leaves every list of active projects. Its objects are kept. Archiving an
// archived project returns it unchanged.
func (s *Store) ArchiveProject(ctx context.Context, id string) (Project, error) {
	if id == DefaultProjectID {
		return Project{}, ErrDefaultProject
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE projects SET archived_at = $1 WHERE id = $2 AND archived_at IS NULL`, s.now().Unix(), id); err != nil {
		return Project{}, fmt.Errorf("archive project %s: %w", id, err)
	}
	return s.GetProject(ctx, id)
}

// Member is a person's role in a project.
type Member struct {
	User      User
	Role      string
	AddedAt   int64
	ProjectID string
}

// ErrLastOwner is returned when a change would leave a project that has
// an owner with none.
var ErrLastOwner = errors.New("the project's last owner cannot be removed or demoted")

// SetMember adds userID to a project with role, or changes their role.
func (s *Store) SetMember(ctx context.Context, projectID, userID, role string) error {
	return s.setMember(ctx, projectID, userID, role, false)
}

// SetMemberKeepingOwner is SetMember refusing, with ErrLastOwner, to
// demote an active project's only owner: what an owner who is not an
// instance admin may do, so they cannot lock themselves and everyone else
// out of managing it.
func (s *Store) SetMemberKeepingOwner(ctx context.Context, projectID, userID, role string) error {
	return s.setMember(ctx, projectID, userID, role, true)
}

func (s *Store) setMember(ctx context.Context, projectID, userID, role string, keepOwner bool) error {
	if !validProjectRole(role) {
		return fmt.Errorf("set member: unknown role %q", role)
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if keepOwner && role != ProjectOwner {
			if err := s.keepOneOwner(ctx, tx, projectID, userID); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO project_members (project_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role`, projectID, userID, role, s.now().Unix())
		if err != nil {
			return fmt.Errorf("set member: %w", err)
		}
		return nil
	})
}

// RemoveMember takes userID out of a project; ErrNotFound if not in it.
func (s *Store) RemoveMember(ctx context.Context, projectID, userID string) error {
	return s.removeMember(ctx, projectID, userID, false)
}

// RemoveMemberKeepingOwner is RemoveMember refusing, with ErrLastOwner,
// to remove an active project's only owner (see SetMemberKeepingOwner).
func (s *Store) RemoveMemberKeepingOwner(ctx context.Context, projectID, userID string) error {
	return s.removeMember(ctx, projectID, userID, true)
}

func (s *Store) removeMember(ctx context.Context, projectID, userID string, keepOwner bool) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if keepOwner {
			if err := s.keepOneOwner(ctx, tx, projectID, userID); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM project_members WHERE project_id = $1 AND user_id = $2`, projectID, userID)
		if err != nil {
			return fmt.Errorf("remove member: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// keepOneOwner refuses, with ErrLastOwner, a change that takes userID's
// ownership of an active project away when nobody else owns it.
func (s *Store) keepOneOwner(ctx context.Context, tx *sql.Tx, projectID, userID string) error {
	// Two owners demoting each other at once must not both see the other
	// still an owner: the project's row is locked first.
	var archived sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT archived_at FROM projects WHERE id = $1`+s.forUpdate(), projectID).Scan(&archived)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // no such project: nothing to keep
	}
	if err != nil {
		return err
	}
	var owner, others int
	err = tx.QueryRowContext(ctx, `SELECT
		COALESCE(SUM(CASE WHEN user_id = $2 THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN user_id <> $2 THEN 1 ELSE 0 END), 0)
		FROM project_members WHERE project_id = $1 AND role = 'owner'`, projectID, userID).Scan(&owner, &others)
	if err != nil {
		return err
	}
	if !archived.Valid && owner > 0 && others == 0 {
		return ErrLastOwner
	}
	return nil
}

// GetMember returns userID's membership of a project, or ErrNotFound.
func (s *Store) GetMember(ctx context.Context, projectID, userID string) (Member, error) {
	ms, err := s.members(ctx, ` AND m.user_id = $2`, projectID, userID)
	if err != nil {
		return Member{}, err
	}
	if len(ms) == 0 {
		return Member{}, ErrNotFound
	}
	return ms[0], nil
}

// ListMembers returns a project's people in the order they were added.
func (s *Store) ListMembers(ctx context.Context, projectID string) ([]Member, error) {
	return s.members(ctx, ``, projectID)
}

func (s *Store) members(ctx context.Context, where string, args ...any) ([]Member, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT u.id, u.email, u.role, u.created_at, u.last_login_at, m.role, m.created_at, m.project_id
		FROM project_members m JOIN users u ON u.id = m.user_id WHERE m.project_id = $1`+where+` ORDER BY m.seq`, args...)
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		var m Member
		var last sql.NullInt64
		if err := rows.Scan(&m.User.ID, &m.User.Email, &m.User.Role, &m.User.CreatedAt, &last, &m.Role, &m.AddedAt, &m.ProjectID); err != nil {
			return nil, fmt.Errorf("list members: %w", err)
		}
		m.User.LastLoginAt = nullInt(last)
		out = append(out, m)
	}
	return out, rows.Err()
}

func validProjectRole(role string) bool {
	for _, r := range ProjectRoles {
		if r == role {
			return true
		}
	}
	return false
}

// ServiceAccount is a named, non-human member of a project; its key is
// made with it and shown once.
type ServiceAccount struct {
	ID        string
	ProjectID string
	Name      string
	Role      string // owner or member
	CreatedAt int64
}

// CreateServiceAccount stores a service account and a key for it,
// returning the key's secret, which is never retrievable again.
func (s *Store) CreateServiceAccount(ctx context.Context, projectID, name, role string) (ServiceAccount, APIKey, string, error) {
	if role == "" {
		role = "member"
	}
	if role != "owner" && role != "member" {
		return ServiceAccount{}, APIKey{}, "", fmt.Errorf("create service account: unknown role %q", role)
	}
	sa := ServiceAccount{ID: NewID("svc_acct_"), ProjectID: projectID, Name: strings.TrimSpace(name), Role: role, CreatedAt: s.now().Unix()}
	var key APIKey
	var secret string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := activeProject(ctx, tx, projectID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO service_accounts (id, project_id, name, role, created_at) VALUES ($1, $2, $3, $4, $5)`,
			sa.ID, sa.ProjectID, sa.Name, sa.Role, sa.CreatedAt); err != nil {
			return fmt.Errorf("create service account: %w", err)
		}
		var err error
		key, secret, err = insertAPIKey(ctx, tx, s.now(), KeyOptions{ProjectID: projectID, Name: sa.Name, ServiceAccountID: sa.ID})
		return err
	})
	if err != nil {
		return ServiceAccount{}, APIKey{}, "", err
	}
	return sa, key, secret, nil
}

// activeProject returns ErrNotFound for a missing project and ErrArchived
// for an archived one.
func activeProject(ctx context.Context, tx *sql.Tx, projectID string) error {
	var archived sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT archived_at FROM projects WHERE id = $1`, projectID).Scan(&archived)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("project %s: %w", projectID, err)
	}
	if archived.Valid {
		return ErrArchived
	}
	return nil
}

// ListServiceAccounts returns a project's service accounts, oldest first.
func (s *Store) ListServiceAccounts(ctx context.Context, projectID string) ([]ServiceAccount, error) {
	return s.serviceAccounts(ctx, `WHERE project_id = $1 ORDER BY seq`, projectID)
}

// GetServiceAccount returns one of a project's service accounts, or
// ErrNotFound.
func (s *Store) GetServiceAccount(ctx context.Context, projectID, id string) (ServiceAccount, error) {
	out, err := s.serviceAccounts(ctx, `WHERE project_id = $1 AND id = $2`, projectID, id)
	if err != nil {
		return ServiceAccount{}, err
	}
	if len(out) == 0 {
		return ServiceAccount{}, ErrNotFound
	}
	return out[0], nil
}

func (s *Store) serviceAccounts(ctx context.Context, where string, args ...any) ([]ServiceAccount, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, project_id, name, role, created_at FROM service_accounts `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("list service accounts: %w", err)
	}
	defer rows.Close()
	var out []ServiceAccount
	for rows.Next() {
		var sa ServiceAccount
		if err := rows.Scan(&sa.ID, &sa.ProjectID, &sa.Name, &sa.Role, &sa.CreatedAt); err != nil {
			return nil, fmt.Errorf("list service accounts: %w", err)
		}
		out = append(out, sa)
	}
	return out, rows.Err()
}

// DeleteServiceAccount deletes a service account and revokes its keys.
func (s *Store) DeleteServiceAccount(ctx context.Context, projectID, id string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM service_accounts WHERE project_id = $1 AND id = $2`, projectID, id)
		if err != nil {
			return fmt.Errorf("delete service account: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		_, err = tx.ExecContext(ctx, `UPDATE api_keys SET revoked_at = $1 WHERE service_account_id = $2 AND revoked_at IS NULL`, s.now().Unix(), id)
		if err != nil {
			return fmt.Errorf("delete service account: %w", err)
		}
		return nil
	})
}

// DailyUsage is one project's use of one model on one UTC day.
type DailyUsage struct {
	Day          time.Time // midnight UTC
	Model        string
	Requests     int64
	InputTokens  int64
	OutputTokens int64
}

// RecordUsage adds one upstream request and its tokens to a project's
// usage for today (UTC).
func (s *Store) RecordUsage(ctx context.Context, projectID, model string, inputTokens, outputTokens int64) error {
	return s.RecordUsages(ctx, []UsageRecord{{ProjectID: projectID, Model: model, At: s.now(),
		Requests: 1, InputTokens: inputTokens, OutputTokens: outputTokens}})
}

// UsageRecord is a project's use of one model: requests and their tokens,
// counted on the UTC day of At.
type UsageRecord struct {
	ProjectID, Model                    string
	At                                  time.Time
	Requests, InputTokens, OutputTokens int64
}

// usageRows bounds the rows of one usage statement (6 arguments each).
const usageRows = 200

// RecordUsages adds records to projects' daily usage in one transaction:
// records of one project, model and day are summed first, then written by
// one statement per usageRows of them, each adding to what is stored.
func (s *Store) RecordUsages(ctx context.Context, recs []UsageRecord) error {
	type key struct {
		project, model string
		day            int64
	}
	sums := make(map[key]int, len(recs))
	var rows []UsageRecord
	var days []int64
	for _, r := range recs {
		k := key{r.ProjectID, r.Model, r.At.UTC().Unix() / 86400}
		if i, ok := sums[k]; ok {
			rows[i].Requests += r.Requests
			rows[i].InputTokens += r.InputTokens
			rows[i].OutputTokens += r.OutputTokens
			continue
		}
		sums[k] = len(rows)
		rows, days = append(rows, r), append(days, k.day)
	}
	if len(rows) == 0 {
		return nil
	}
	ctx = Background(ctx) // the usage writer's
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for first := 0; first < len(rows); first += usageRows {
			chunk := rows[first:min(first+usageRows, len(rows))]
			var q strings.Builder
			q.WriteString(`INSERT INTO project_usage (project_id, day, model, requests, input_tokens, output_tokens) VALUES `)
			args := make([]any, 0, 6*len(chunk))
			for i, r := range chunk {
				if i > 0 {
					q.WriteString(", ")
				}
				n := len(args)
				fmt.Fprintf(&q, "($%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6)
				args = append(args, r.ProjectID, days[first+i], r.Model, r.Requests, r.InputTokens, r.OutputTokens)
			}
			q.WriteString(` ON CONFLICT (project_id, day, model) DO UPDATE SET requests = project_usage.requests + excluded.requests,
				input_tokens = project_usage.input_tokens + excluded.input_tokens,
				output_tokens = project_usage.output_tokens + excluded.output_tokens`)
			if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record usage: %w", err)
	}
	return nil
}

// ListUsage returns a project's usage from since (a UTC day) on, by day
// then model.
func (s *Store) ListUsage(ctx context.Context, projectID string, since time.Time) ([]DailyUsage, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT day, model, requests, input_tokens, output_tokens FROM project_usage
		WHERE project_id = $1 AND day >= $2 ORDER BY day, model`, projectID, since.UTC().Unix()/86400)
	if err != nil {
		return nil, fmt.Errorf("list usage: %w", err)
	}
	defer rows.Close()
	var out []DailyUsage
	for rows.Next() {
		var u DailyUsage
		var day int64
		if err := rows.Scan(&day, &u.Model, &u.Requests, &u.InputTokens, &u.OutputTokens); err != nil {
			return nil, fmt.Errorf("list usage: %w", err)
		}
		u.Day = time.Unix(day*86400, 0).UTC()
		out = append(out, u)
	}
	return out, rows.Err()
}

type principalKey struct{}

// WithPrincipal records who a request's key speaks for, and scopes ctx to
// the key's project.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return WithProject(context.WithValue(ctx, principalKey{}, p), p.ProjectID)
}

// PrincipalFrom returns the key a request came with, if it came with one.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
