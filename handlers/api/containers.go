package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/validate"
)

// ContainerStore is what the containers endpoints need from the store.
type ContainerStore interface {
	CreateContainer(ctx context.Context, c db.Container, fileIDs []string) (db.Container, error)
	GetContainer(ctx context.Context, id string) (db.Container, error)
	ListContainers(ctx context.Context, name string, p db.ListParams) (db.Page[db.Container], error)
	DeleteContainer(ctx context.Context, id string) error
	AddContainerFile(ctx context.Context, f db.ContainerFile) (db.ContainerFile, error)
	GetContainerFile(ctx context.Context, containerID, id string) (db.ContainerFile, error)
	ListContainerFiles(ctx context.Context, containerID string, p db.ListParams) (db.Page[db.ContainerFile], error)
	DeleteContainerFile(ctx context.Context, containerID, id string) error

	GetFile(ctx context.Context, id string) (db.File, error)
	MissingFiles(ctx context.Context, ids []string) ([]string, error)
	OpenFile(ctx context.Context, id string) (db.File, io.ReadSeekCloser, error)
	StageFile(content io.Reader, limit int64) (*db.StagedFile, error)
	CommitFile(ctx context.Context, f db.File, sf *db.StagedFile, expiresAfter int64) (db.File, error)
}

// Kernels stops a container's code_interpreter kernel (and drops its
// /mnt/data) when the container is deleted, and takes a deleted file out
// of its /mnt/data.
type Kernels interface {
	Forget(key string) error
	RemoveFile(container, path string) error
}

// Containers serves /v1/containers: code_interpreter sandboxes of their
// own, with files, that responses name in their code_interpreter tool.
type Containers struct {
	store     ContainerStore
	kernels   Kernels
	maxUpload int64
	log       *slog.Logger
}

// NewContainers returns the containers handlers. maxUpload bounds one
// uploaded file.
func NewContainers(store ContainerStore, kernels Kernels, maxUpload int64, log *slog.Logger) *Containers {
	return &Containers{store: store, kernels: kernels, maxUpload: maxUpload, log: log}
}

// Container limits: OpenAI's default idle expiry and the bounds of
// expires_after.minutes.
const (
	defaultContainerMinutes = 20
	maxContainerMinutes     = 7 * 24 * 60
)

var memoryLimits = []string{"1g", "4g", "16g", "64g"}

// CreateContainer handles POST /v1/containers.
func (h *Containers) CreateContainer(c *echo.Context) error {
	fields, err := readObject(c.Request(), []string{"name", "file_ids", "expires_after", "memory_limit", "skills", "network_policy"}, false)
	if err != nil {
		return err
	}
	ct := db.Container{ExpiresAfter: db.ContainerExpiresAfter{Minutes: defaultContainerMinutes}, MemoryLimit: "1g"}
	if set, err := field(fields, "name", &ct.Name, "a string"); err != nil {
		return err
	} else if !set {
		return respond.Invalid("name", "missing_required_parameter", "Missing required parameter: 'name'.")
	}
	var fileIDs []string
	if _, err := field(fields, "file_ids", &fileIDs, "an array of strings"); err != nil {
		return err
	}
	if err := validate.FileIDs(c.Request().Context(), h.store, validate.Path{"file_ids"}, fileIDs); err != nil {
		return err
	}
	var exp struct {
		Anchor  string `json:"anchor"`
		Minutes *int64 `json:"minutes"`
	}
	if set, err := field(fields, "expires_after", &exp, "an object"); err != nil {
		return err
	} else if set {
		if exp.Anchor != "last_active_at" {
			return respond.Invalid("expires_after.anchor", "invalid_value", "Invalid value: '%s'. Supported values are: 'last_active_at'.", exp.Anchor)
		}
		if exp.Minutes == nil || *exp.Minutes < 1 || *exp.Minutes > maxContainerMinutes {
			return respond.Invalid("expires_after.minutes", "invalid_value",
				"Invalid 'expires_after.minutes': expected an integer between 1 and %d.", maxContainerMinutes)
		}
		ct.ExpiresAfter.Minutes = *exp.Minutes
	}
	if set, err := field(fields, "memory_limit", &ct.MemoryLimit, "a string"); err != nil {
		return err
	} else if set && !slices.Contains(memoryLimits, ct.MemoryLimit) {
		return respond.Invalid("memory_limit", "invalid_value", "Invalid value: '%s'. Supported values are: '1g', '4g', '16g' and '64g'.", ct.MemoryLimit)
	}
	// The sandbox has no network at all; skills are not served.
	if raw, ok := fields["skills"]; ok && string(raw) != "[]" {
		return respond.Invalid("skills", "unsupported_value", "Skills are not supported by this server.")
	}
	if raw, ok := fields["network_policy"]; ok {
		var np struct {
			Type string `json:"type"`
		}
		if _, err := field(fields, "network_policy", &np, "an object"); err != nil {
			return err
		}
		if np.Type != "disabled" {
			return respond.Invalid("network_policy.type", "unsupported_value",
				"Invalid 'network_policy' %s: the sandbox has no network, so only {\"type\": \"disabled\"} is supported.", raw)
		}
	}
	ct, err = h.store.CreateContainer(c.Request().Context(), ct, fileIDs)
	if err != nil {
		return respond.StoreErr(err, "file", "")
	}
	return c.JSON(http.StatusOK, ct)
}

// ListContainers handles GET /v1/containers (limit, order, after, name).
func (h *Containers) ListContainers(c *echo.Context) error {
	p, err := listParams(c, 100, 20, false)
	if err != nil {
		return err
	}
	page, err := h.store.ListContainers(c.Request().Context(), c.QueryParam("name"), p)
	if err != nil {
		return respond.StoreErr(err, "", "")
	}
	return c.JSON(http.StatusOK, newList(page, func(ct db.Container) string { return ct.ID }))
}

// GetContainer handles GET /v1/containers/{container_id}.
func (h *Containers) GetContainer(c *echo.Context) error {
	ct, err := h.container(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ct)
}

func (h *Containers) container(c *echo.Context) (db.Container, error) {
	id := c.Param("container_id")
	ct, err := h.store.GetContainer(c.Request().Context(), id)
	if err != nil {
		return ct, respond.StoreErr(err, "container", id)
	}
	return ct, nil
}

// DeleteContainer handles DELETE /v1/containers/{container_id}: the
// container, its kernel and the files it made go.
func (h *Containers) DeleteContainer(c *echo.Context) error {
	id := c.Param("container_id")
	if err := h.store.DeleteContainer(c.Request().Context(), id); err != nil {
		return respond.StoreErr(err, "container", id)
	}
	if err := h.kernels.Forget(id); err != nil {
		h.log.Warn("stop container kernel", "container", id, "error", err)
	}
	return c.JSON(http.StatusOK, db.Deleted{ID: id, Object: "container.deleted", Deleted: true})
}

// CreateContainerFile handles POST /v1/containers/{container_id}/files:
// JSON {"file_id"} names a stored file; multipart/form-data uploads one
// ("file"). Either lands in /mnt/data under the file's name, replacing a
// file of that name.
func (h *Containers) CreateContainerFile(c *echo.Context) error {
	ct, err := h.container(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	cf := db.ContainerFile{ContainerID: ct.ID, Source: "user"}
	mt, _, _ := mime.ParseMediaType(c.Request().Header.Get("Content-Type"))
	var id string
	if mt == "multipart/form-data" {
		f, fileID, err := h.upload(c)
		if err != nil {
			return err
		}
		id = fileID
		if f != nil {
			cf.FileID, cf.Bytes, cf.Path, cf.Owned = f.ID, f.Bytes, "/mnt/data/"+f.Filename, true
		}
	} else {
		fields, err := readObject(c.Request(), []string{"file_id"}, false)
		if err != nil {
			return err
		}
		if _, err := field(fields, "file_id", &id, "a string"); err != nil {
			return err
		}
	}
	if cf.FileID == "" {
		if id == "" {
			return respond.Invalid("file_id", "missing_required_parameter", "Missing required parameter: 'file_id' (or upload a 'file' as multipart/form-data).")
		}
		f, err := h.store.GetFile(ctx, id)
		if err != nil {
			return respond.StoreErr(err, "file", id)
		}
		cf.FileID, cf.Bytes, cf.Path = f.ID, f.Bytes, "/mnt/data/"+path.Base(f.Filename)
	}
	cf, err = h.store.AddContainerFile(ctx, cf)
	if err != nil {
		return respond.StoreErr(err, "container", ct.ID)
	}
	return c.JSON(http.StatusOK, cf)
}

// upload reads a multipart body: its one "file" part, stored (nil if
// there is none), or its "file_id" field.
func (h *Containers) upload(c *echo.Context) (*db.File, string, error) {
	req := c.Request()
	req.Body = http.MaxBytesReader(c.Response(), req.Body, h.maxUpload+1<<20)
	mr, err := req.MultipartReader()
	if err != nil {
		return nil, "", respond.Invalid("", "", "Could not read the multipart body: %v", err)
	}
	var staged *db.StagedFile
	defer func() { staged.Discard() }()
	var filename, ctype, fileID string
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, "", uploadReadErr(err, h.maxUpload)
		}
		switch part.FormName() {
		case "file_id":
			b, err := io.ReadAll(io.LimitReader(part, 256))
			if err != nil {
				return nil, "", uploadReadErr(err, h.maxUpload)
			}
			fileID = strings.TrimSpace(string(b))
			continue
		case "file":
		default:
			return nil, "", respond.Invalid(part.FormName(), "unknown_parameter", "Unknown parameter: '%s'.", part.FormName())
		}
		if staged != nil {
			return nil, "", respond.Invalid("file", "invalid_value", "Only one 'file' may be uploaded per request.")
		}
		if staged, filename, ctype, err = stageFilePart(part, h.store.StageFile, h.maxUpload); err != nil {
			return nil, "", err
		}
	}
	if staged == nil {
		return nil, fileID, nil
	}
	if fileID != "" {
		return nil, "", respond.Invalid("file_id", "invalid_value", "Give either 'file' or 'file_id', not both.")
	}
	f, err := h.store.CommitFile(req.Context(), db.File{Filename: filename, Purpose: "user_data", ContentType: ctype}, staged, 0)
	if err != nil {
		return nil, "", respond.Internal(err)
	}
	staged = nil // committed: nothing to discard
	return &f, "", nil
}

// ListContainerFiles handles GET /v1/containers/{container_id}/files.
func (h *Containers) ListContainerFiles(c *echo.Context) error {
	ct, err := h.container(c)
	if err != nil {
		return err
	}
	p, err := listParams(c, 100, 20, false)
	if err != nil {
		return err
	}
	page, err := h.store.ListContainerFiles(c.Request().Context(), ct.ID, p)
	if err != nil {
		return respond.StoreErr(err, "", "")
	}
	return c.JSON(http.StatusOK, newList(page, func(f db.ContainerFile) string { return f.ID }))
}

func (h *Containers) containerFile(c *echo.Context) (db.ContainerFile, error) {
	cid, id := c.Param("container_id"), c.Param("file_id")
	if _, err := h.container(c); err != nil {
		return db.ContainerFile{}, err
	}
	f, err := h.store.GetContainerFile(c.Request().Context(), cid, id)
	if err != nil {
		return f, respond.StoreErr(err, "container file", id)
	}
	return f, nil
}

// GetContainerFile handles GET /v1/containers/{container_id}/files/{file_id}.
func (h *Containers) GetContainerFile(c *echo.Context) error {
	f, err := h.containerFile(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, f)
}

// ContainerFileContent handles GET
// /v1/containers/{container_id}/files/{file_id}/content: the bytes, also
// once the container has expired.
func (h *Containers) ContainerFileContent(c *echo.Context) error {
	cf, err := h.containerFile(c)
	if err != nil {
		return err
	}
	f, r, err := h.store.OpenFile(c.Request().Context(), cf.FileID)
	if err != nil {
		return respond.StoreErr(err, "container file", cf.ID)
	}
	defer r.Close()
	w := c.Response()
	w.Header().Set("Content-Type", f.ContentType)
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(cf.Path)}))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, c.Request(), "", timeOf(cf.CreatedAt), r)
	return nil
}

// DeleteContainerFile handles DELETE
// /v1/containers/{container_id}/files/{file_id}.
func (h *Containers) DeleteContainerFile(c *echo.Context) error {
	cf, err := h.containerFile(c)
	if err != nil {
		return err
	}
	if err := h.store.DeleteContainerFile(c.Request().Context(), cf.ContainerID, cf.ID); err != nil {
		return respond.StoreErr(err, "container file", cf.ID)
	}
	if err := h.kernels.RemoveFile(cf.ContainerID, cf.Path); err != nil {
		h.log.Warn("remove container file from its kernel", "container", cf.ContainerID, "path", cf.Path, "error", err)
	}
	return c.JSON(http.StatusOK, db.Deleted{ID: cf.ID, Object: "container.file.deleted", Deleted: true})
}

// checkContainer refuses a response's code_interpreter naming a container
// that does not exist or has expired.
func (h *Responses) checkContainer(ctx context.Context, param, id string) error {
	ct, err := h.store.GetContainer(ctx, id)
	if errors.Is(err, db.ErrNotFound) {
		return respond.Invalid(param, "invalid_value", "Container '%s' not found.", id)
	}
	if err != nil {
		return respond.Internal(err)
	}
	if ct.Status != "running" {
		return respond.Invalid(param, "invalid_value", "Container '%s' has expired. Create a new container to run code.", id)
	}
	return nil
}
