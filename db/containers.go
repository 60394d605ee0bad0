package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path"
)

// ErrContainerExpired is returned for work asked of an expired container.
var ErrContainerExpired = errors.New("the container has expired")

// Container is a container as the API shows it.
type Container struct {
	ID           string                `json:"id"`
	Object       string                `json:"object"`
	Name         string                `json:"name"`
	CreatedAt    int64                 `json:"created_at"`
	Status       string                `json:"status"` // running or expired
	LastActiveAt int64                 `json:"last_active_at"`
	ExpiresAfter ContainerExpiresAfter `json:"expires_after"`
	MemoryLimit  string                `json:"memory_limit"`

	// RunID is the response run whose code_interpreter {"type": "auto"}
	// made the container; "" for one made through the API.
	RunID string `json:"-"`
}

// ContainerExpiresAfter is a container's expiry: Minutes after it was last
// active (the only anchor).
type ContainerExpiresAfter struct {
	Anchor  string `json:"anchor"`
	Minutes int64  `json:"minutes"`
}

// ContainerFile is a file in a container's /mnt/data.
type ContainerFile struct {
	ID          string `json:"id"`
	Object      string `json:"object"`
	ContainerID string `json:"container_id"`
	CreatedAt   int64  `json:"created_at"`
	Bytes       int64  `json:"bytes"`
	Path        string `json:"path"`
	Source      string `json:"source"` // user or assistant

	// FileID is the stored file holding the content; Owned says the
	// container made it and deletes it with itself.
	FileID string `json:"-"`
	Owned  bool   `json:"-"`
}

const containerColumns = `id, created_at, name, status, last_active_at, expires_minutes, memory_limit`

// scanContainer reads a container; one whose time has come shows as
// expired even before the sweep marks it.
func (s *Store) scanContainer(row rowScanner) (Container, error) {
	var c Container
	if err := row.Scan(&c.ID, &c.CreatedAt, &c.Name, &c.Status, &c.LastActiveAt, &c.ExpiresAfter.Minutes, &c.MemoryLimit); err != nil {
		return c, err
	}
	c.Object, c.ExpiresAfter.Anchor = "container", "last_active_at"
	if c.Status == "running" && s.containerDue(c) {
		c.Status = "expired"
	}
	return c, nil
}

func (s *Store) containerDue(c Container) bool {
	return s.now().Unix() >= c.LastActiveAt+c.ExpiresAfter.Minutes*60
}

const containerFileColumns = `id, container_id, created_at, bytes, path, source, file_id, owned`

func scanContainerFile(row rowScanner) (ContainerFile, error) {
	var f ContainerFile
	var owned int
	err := row.Scan(&f.ID, &f.ContainerID, &f.CreatedAt, &f.Bytes, &f.Path, &f.Source, &f.FileID, &owned)
	f.Object, f.Owned = "container.file", owned == 1
	return f, err
}

// CreateContainer stores a new container holding copies of the named
// files (which must exist) at /mnt/data/<filename>.
func (s *Store) CreateContainer(ctx context.Context, c Container, fileIDs []string) (Container, error) {
	now := s.now().Unix()
	c.ID, c.Object, c.CreatedAt, c.Status, c.LastActiveAt = NewID("cntr_"), "container", now, "running", now
	c.ExpiresAfter.Anchor = "last_active_at"
	project, err := ProjectFrom(ctx)
	if err != nil {
		return c, fmt.Errorf("create container: %w", err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var runID sql.NullString
		if c.RunID != "" {
			runID = sql.NullString{String: c.RunID, Valid: true}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO containers (id, created_at, name, status, last_active_at,
			expires_minutes, memory_limit, run_id, project_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			c.ID, c.CreatedAt, c.Name, c.Status, c.LastActiveAt, c.ExpiresAfter.Minutes, c.MemoryLimit, runID, project); err != nil {
			return err
		}
		for _, id := range fileIDs {
			var name string
			var size int64
			if err := tx.QueryRowContext(ctx, `SELECT filename, bytes FROM files WHERE id = $1 AND project_id = $2`,
				id, project).Scan(&name, &size); err != nil {
				if errors.Is(err, sql.ErrNoRows) {
					return fmt.Errorf("file %s: %w", id, ErrNotFound)
				}
				return err
			}
			if err := s.insertContainerFile(ctx, tx, &ContainerFile{ContainerID: c.ID, FileID: id, Bytes: size,
				Path: "/mnt/data/" + path.Base(name), Source: "user"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("create container: %w", err)
	}
	return c, nil
}

// insertContainerFile adds f to its container, which the caller found (or
// made) in ctx's project: the file is that project's.
func (s *Store) insertContainerFile(ctx context.Context, tx *sql.Tx, f *ContainerFile) error {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return err
	}
	f.ID, f.Object, f.CreatedAt = NewID("cfile_"), "container.file", s.now().Unix()
	owned := 0
	if f.Owned {
		owned = 1
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO container_files (id, container_id, created_at, file_id, path, source, bytes, owned,
		project_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, f.ID, f.ContainerID, f.CreatedAt, f.FileID, f.Path, f.Source,
		f.Bytes, owned, project)
	return err
}

// GetContainer returns the container with id, or ErrNotFound.
func (s *Store) GetContainer(ctx context.Context, id string) (Container, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return Container{}, fmt.Errorf("get container %s: %w", id, err)
	}
	c, err := s.scanContainer(s.r.QueryRowContext(ctx, `SELECT `+containerColumns+` FROM containers WHERE id = $1 AND project_id = $2`,
		id, project))
	if errors.Is(err, sql.ErrNoRows) {
		return c, ErrNotFound
	}
	if err != nil {
		return c, fmt.Errorf("get container %s: %w", id, err)
	}
	return c, nil
}

// RunContainer returns the container a response run's code_interpreter
// {"type": "auto"} made, or ErrNotFound.
func (s *Store) RunContainer(ctx context.Context, runID string) (Container, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return Container{}, fmt.Errorf("container of run %s: %w", runID, err)
	}
	c, err := s.scanContainer(s.r.QueryRowContext(ctx, `SELECT `+containerColumns+` FROM containers WHERE run_id = $1 AND project_id = $2`,
		runID, project))
	if errors.Is(err, sql.ErrNoRows) {
		return c, ErrNotFound
	}
	if err != nil {
		return c, fmt.Errorf("container of run %s: %w", runID, err)
	}
	c.RunID = runID
	return c, nil
}

// ListContainers returns one page of containers, those named name only
// when name is set.
func (s *Store) ListContainers(ctx context.Context, name string, p ListParams) (Page[Container], error) {
	where, args := "", []any(nil)
	if name != "" {
		where, args = "name = $1", []any{name}
	}
	return listQuery(ctx, s.r, "containers", containerColumns, where, args, p, s.scanContainer)
}

// DeleteContainer removes a container, its file list and the stored files
// it made itself. The caller stops its kernel.
func (s *Store) DeleteContainer(ctx context.Context, id string) error {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	owned, err := s.queryStrings(ctx, "container files", `SELECT file_id FROM container_files WHERE container_id = $1 AND owned = 1
		AND project_id = $2`, id, project)
	if err != nil {
		return err
	}
	if err := s.deleteByID(ctx, "containers", id); err != nil {
		return err
	}
	for _, f := range owned {
		if err := s.DeleteFile(ctx, f); err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("delete container %s: %w", id, err)
		}
	}
	return nil
}

// TouchContainer records that the container is in use now (its expiry
// counts from here). An expired container is ErrContainerExpired.
func (s *Store) TouchContainer(ctx context.Context, id string) error {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return fmt.Errorf("touch container %s: %w", id, err)
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		c, err := s.scanContainer(tx.QueryRowContext(ctx, `SELECT `+containerColumns+` FROM containers WHERE id = $1 AND project_id = $2`+
			s.forUpdate(), id, project))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if c.Status != "running" {
			return ErrContainerExpired
		}
		_, err = tx.ExecContext(ctx, `UPDATE containers SET last_active_at = $1 WHERE id = $2`, s.now().Unix(), id)
		return err
	})
}

// ExpireContainers marks the running containers whose time has come
// expired and returns their ids (their kernels are to be stopped), in every
// project (the housekeeper's sweep).
func (s *Store) ExpireContainers(ctx context.Context) ([]string, error) {
	var ids []string
	ctx = Background(ctx) // a sweep
	err := s.tx(ctx, func(tx *sql.Tx) error {
		ids = nil
		rows, err := tx.QueryContext(ctx, `UPDATE containers SET status = 'expired'
			WHERE status = 'running' AND last_active_at + expires_minutes * 60 <= $1 RETURNING id`, s.now().Unix())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("expire containers: %w", err)
	}
	return ids, nil
}

// AddContainerFile adds a file to a container. A file at the same path
// replaces the one there (deleting it if the container made it).
func (s *Store) AddContainerFile(ctx context.Context, f ContainerFile) (ContainerFile, error) {
	var replaced []string
	project, err := ProjectFrom(ctx)
	if err != nil {
		return f, fmt.Errorf("add container file: %w", err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		replaced = nil
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM containers WHERE id = $1 AND project_id = $2`,
			f.ContainerID, project).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		rows, err := tx.QueryContext(ctx, `DELETE FROM container_files WHERE container_id = $1 AND path = $2 RETURNING file_id, owned`,
			f.ContainerID, f.Path)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			var owned int
			if err := rows.Scan(&id, &owned); err != nil {
				rows.Close()
				return err
			}
			if owned == 1 && id != f.FileID {
				replaced = append(replaced, id)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		return s.insertContainerFile(ctx, tx, &f)
	})
	if err != nil {
		return f, fmt.Errorf("add container file: %w", err)
	}
	for _, id := range replaced {
		if err := s.DeleteFile(ctx, id); err != nil && !errors.Is(err, ErrNotFound) {
			return f, err
		}
	}
	return f, nil
}

// GetContainerFile returns a container's file, or ErrNotFound.
func (s *Store) GetContainerFile(ctx context.Context, containerID, id string) (ContainerFile, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return ContainerFile{}, fmt.Errorf("get container file %s: %w", id, err)
	}
	f, err := scanContainerFile(s.r.QueryRowContext(ctx, `SELECT `+containerFileColumns+` FROM container_files
		WHERE id = $1 AND container_id = $2 AND project_id = $3`, id, containerID, project))
	if errors.Is(err, sql.ErrNoRows) {
		return f, ErrNotFound
	}
	if err != nil {
		return f, fmt.Errorf("get container file %s: %w", id, err)
	}
	return f, nil
}

// ListContainerFiles returns one page of a container's files.
func (s *Store) ListContainerFiles(ctx context.Context, containerID string, p ListParams) (Page[ContainerFile], error) {
	return listQuery(ctx, s.r, "container_files", containerFileColumns, "container_id = $1", []any{containerID}, p, scanContainerFile)
}

// AllContainerFiles returns every file of a container, oldest first.
func (s *Store) AllContainerFiles(ctx context.Context, containerID string) ([]ContainerFile, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("container files: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+containerFileColumns+` FROM container_files WHERE container_id = $1 AND project_id = $2
		ORDER BY seq`, containerID, project)
	if err != nil {
		return nil, fmt.Errorf("container files: %w", err)
	}
	return collect(rows, scanContainerFile)
}

// DeleteContainerFile removes a file from a container (and the stored file,
// if the container made it).
func (s *Store) DeleteContainerFile(ctx context.Context, containerID, id string) error {
	f, err := s.GetContainerFile(ctx, containerID, id)
	if err != nil {
		return err
	}
	if err := s.deleteByID(ctx, "container_files", id, `container_id = $2`, containerID); err != nil {
		return err
	}
	if f.Owned {
		if err := s.DeleteFile(ctx, f.FileID); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}
