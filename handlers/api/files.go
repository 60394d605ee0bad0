package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/validate"
)

// listPurposes are those of uploads and of the files the server produces.
var (
	listPurposes = append(slices.Clone(validate.UploadPurposes), "assistants_output", "batch_output", "fine-tune-results")
)

const (
	minFileExpiry = 3600
	maxFileExpiry = 2592000
)

func tooLarge(limit int64) *respond.Error {
	return &respond.Error{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Param: "file", Code: "file_too_large",
		Message: fmt.Sprintf("File is too large: the maximum upload size is %d bytes.", limit)}
}

// UploadFile handles POST /v1/files (multipart/form-data: file, purpose,
// expires_after[anchor], expires_after[seconds]). The parts are read as a
// stream, so a large upload is never held in memory; the content is staged
// on disk and recorded only once every field has been validated.
func (h *API) UploadFile(c *echo.Context) error {
	req := c.Request()
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		return respond.Invalid("", "", "Invalid Content-Type header (%s), expected multipart/form-data.", req.Header.Get("Content-Type"))
	}
	// Room for the other form fields and part headers beyond the file.
	req.Body = http.MaxBytesReader(c.Response(), req.Body, h.maxUpload+1<<20)
	mr, err := req.MultipartReader()
	if err != nil {
		return respond.Invalid("", "", "Could not read the multipart body: %v", err)
	}
	var (
		staged             *db.StagedFile
		filename, ctype    string
		purpose            string
		anchor, seconds    string
		gotPurpose, gotExp bool
	)
	defer func() { staged.Discard() }()
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return uploadReadErr(err, h.maxUpload)
		}
		switch name := part.FormName(); name {
		case "file":
			if staged != nil {
				return respond.Invalid("file", "invalid_value", "Only one 'file' may be uploaded per request.")
			}
			if staged, filename, ctype, err = stageFilePart(part, h.store.StageFile, h.maxUpload); err != nil {
				return err
			}
		case "purpose", "expires_after[anchor]", "expires_after[seconds]":
			b, err := io.ReadAll(io.LimitReader(part, 256))
			if err != nil {
				return uploadReadErr(err, h.maxUpload)
			}
			v := strings.TrimSpace(string(b))
			switch name {
			case "purpose":
				purpose, gotPurpose = v, true
			case "expires_after[anchor]":
				anchor, gotExp = v, true
			default:
				seconds, gotExp = v, true
			}
		default:
			return respond.Invalid(name, "unknown_parameter", "Unknown parameter: '%s'.", name)
		}
	}
	if !gotPurpose {
		return respond.Invalid("purpose", "missing_required_parameter", "Missing required parameter: 'purpose'.")
	}
	if err := validate.UploadPurpose(validate.P("purpose"), purpose); err != nil {
		return err
	}
	if staged == nil {
		return respond.Invalid("file", "missing_required_parameter", "Missing required parameter: 'file'.")
	}
	var expiresAfter int64
	if gotExp {
		if anchor != "created_at" {
			return respond.Invalid("expires_after.anchor", "invalid_value", "Invalid value: '%s'. Supported values are: 'created_at'.", anchor)
		}
		n, err := strconv.ParseInt(seconds, 10, 64)
		if err != nil || n < minFileExpiry || n > maxFileExpiry {
			return respond.Invalid("expires_after.seconds", "invalid_value",
				"Invalid 'expires_after.seconds': expected an integer between %d and %d, but got '%s' instead.", minFileExpiry, maxFileExpiry, seconds)
		}
		expiresAfter = n
	}
	f, err := h.store.CommitFile(req.Context(), db.File{Filename: filename, Purpose: purpose, ContentType: ctype}, staged, expiresAfter)
	if err != nil {
		return respond.Internal(err)
	}
	return c.JSON(http.StatusOK, f)
}

// stageFilePart stages the content of a multipart "file" part, with the
// part's file name (its base name; "upload" when it has none that can be
// kept) and content type (application/octet-stream when none is given).
func stageFilePart(part *multipart.Part, stage func(io.Reader, int64) (*db.StagedFile, error), limit int64) (staged *db.StagedFile, filename, ctype string, err error) {
	filename = filepath.Base(part.FileName())
	if filename == "." || filename == ".." || filename == "/" || filename == "" {
		filename = "upload"
	}
	ctype = part.Header.Get("Content-Type")
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	staged, err = stage(part, limit)
	if errors.Is(err, db.ErrTooLarge) {
		return nil, "", "", tooLarge(limit)
	}
	if err != nil {
		return nil, "", "", uploadReadErr(err, limit)
	}
	return staged, filename, ctype, nil
}

func uploadReadErr(err error, limit int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge(limit)
	}
	return respond.Invalid("", "", "Could not read the multipart body: %v", err)
}

// GetFile handles GET /v1/files/{file_id}.
func (h *API) GetFile(c *echo.Context) error {
	id := c.Param("file_id")
	f, err := h.store.GetFile(c.Request().Context(), id)
	if err != nil {
		return respond.StoreErr(err, "file", id)
	}
	return c.JSON(http.StatusOK, f)
}

// FileContent handles GET /v1/files/{file_id}/content: the raw bytes.
func (h *API) FileContent(c *echo.Context) error {
	id := c.Param("file_id")
	f, r, err := h.store.OpenFile(c.Request().Context(), id)
	if err != nil {
		return respond.StoreErr(err, "file", id)
	}
	defer r.Close()
	w := c.Response()
	w.Header().Set("Content-Type", f.ContentType)
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": f.Filename}))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, c.Request(), "", timeOf(f.CreatedAt), r)
	return nil
}

// DeleteFile handles DELETE /v1/files/{file_id}.
func (h *API) DeleteFile(c *echo.Context) error {
	id := c.Param("file_id")
	if err := h.store.DeleteFile(c.Request().Context(), id); err != nil {
		return respond.StoreErr(err, "file", id)
	}
	return c.JSON(http.StatusOK, db.Deleted{ID: id, Object: "file", Deleted: true})
}

// ListFiles handles GET /v1/files (purpose, limit ≤ 10000, order, after).
func (h *API) ListFiles(c *echo.Context) error {
	p, err := listParams(c, 10000, 10000, false)
	if err != nil {
		return err
	}
	purpose := c.QueryParam("purpose")
	if purpose != "" && !slices.Contains(listPurposes, purpose) {
		return respond.Invalid("purpose", "invalid_value", "Invalid value for 'purpose': '%s'.", purpose)
	}
	page, err := h.store.ListFiles(c.Request().Context(), purpose, p)
	if err != nil {
		return respond.StoreErr(err, "", "")
	}
	return c.JSON(http.StatusOK, newList(page, func(f db.File) string { return f.ID }))
}
