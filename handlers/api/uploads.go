package api

import (
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/validate"
)

// maxPartBytes bounds one upload part (OpenAI: 64 MB).
const maxPartBytes = 64 << 20

// uploadErr maps the upload store's errors.
func uploadErr(err error, id string) error {
	var ue *db.UploadError
	if errors.As(err, &ue) {
		return respond.Invalid("", "", "%s", ue.Msg)
	}
	if errors.Is(err, db.ErrTooLarge) {
		return tooLarge(maxPartBytes)
	}
	return respond.StoreErr(err, "upload", id)
}

// CreateUpload handles POST /v1/uploads: an upload that parts are added to,
// then completed into a file.
func (h *API) CreateUpload(c *echo.Context) error {
	var r struct {
		Filename     *string `json:"filename"`
		Purpose      *string `json:"purpose"`
		Bytes        *int64  `json:"bytes"`
		MimeType     *string `json:"mime_type"`
		ExpiresAfter *struct {
			Anchor  string `json:"anchor"`
			Seconds int64  `json:"seconds"`
		} `json:"expires_after"`
	}
	if err := decodeBody(c.Request(), &r, false); err != nil {
		return err
	}
	for _, req := range []struct {
		name string
		ok   bool
	}{{"filename", r.Filename != nil}, {"purpose", r.Purpose != nil}, {"bytes", r.Bytes != nil}, {"mime_type", r.MimeType != nil}} {
		if !req.ok {
			return respond.Invalid(req.name, "missing_required_parameter", "Missing required parameter: '%s'.", req.name)
		}
	}
	if *r.Filename == "" {
		return respond.Invalid("filename", "invalid_value", "Invalid 'filename': expected a non-empty string.")
	}
	if err := validate.UploadPurpose(validate.P("purpose"), *r.Purpose); err != nil {
		return err
	}
	if *r.Bytes < 0 || *r.Bytes > h.maxUpload {
		return respond.Invalid("bytes", "invalid_value", "Invalid 'bytes': expected a value between 0 and %d, but got %d instead.", h.maxUpload, *r.Bytes)
	}
	if _, _, err := mime.ParseMediaType(*r.MimeType); err != nil {
		return respond.Invalid("mime_type", "invalid_value", "Invalid 'mime_type': '%s' is not a MIME type.", *r.MimeType)
	}
	u := db.Upload{Filename: *r.Filename, Purpose: *r.Purpose, Bytes: *r.Bytes, MimeType: *r.MimeType}
	if ea := r.ExpiresAfter; ea != nil {
		if ea.Anchor != "created_at" {
			return respond.Invalid("expires_after.anchor", "invalid_value", "Invalid value: '%s'. Supported values are: 'created_at'.", ea.Anchor)
		}
		if ea.Seconds < minFileExpiry || ea.Seconds > maxFileExpiry {
			return respond.Invalid("expires_after.seconds", "invalid_value",
				"Invalid 'expires_after.seconds': expected an integer between %d and %d, but got %d instead.", minFileExpiry, maxFileExpiry, ea.Seconds)
		}
		u.FileExpiresAfter = ea.Seconds
	}
	u, err := h.vectors.CreateUpload(c.Request().Context(), u)
	if err != nil {
		return respond.Internal(err)
	}
	return c.JSON(http.StatusOK, u)
}

func uploadPath(c *echo.Context) (string, error) {
	id := c.Param("upload_id")
	return id, checkID("upload_id", id, "upload_")
}

// AddUploadPart handles POST /v1/uploads/{upload_id}/parts (multipart
// field "data", at most 64 MB).
func (h *API) AddUploadPart(c *echo.Context) error {
	id, err := uploadPath(c)
	if err != nil {
		return err
	}
	req := c.Request()
	if mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type")); mt != "multipart/form-data" {
		return respond.Invalid("", "", "Invalid Content-Type header (%s), expected multipart/form-data.", req.Header.Get("Content-Type"))
	}
	req.Body = http.MaxBytesReader(c.Response(), req.Body, maxPartBytes+1<<20)
	mr, err := req.MultipartReader()
	if err != nil {
		return respond.Invalid("", "", "Could not read the multipart body: %v", err)
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return respond.Invalid("data", "missing_required_parameter", "Missing required parameter: 'data'.")
		}
		if err != nil {
			return uploadReadErr(err, maxPartBytes)
		}
		if part.FormName() != "data" {
			return respond.Invalid(part.FormName(), "unknown_parameter", "Unknown parameter: '%s'.", part.FormName())
		}
		p, err := h.vectors.AddUploadPart(req.Context(), id, part, maxPartBytes)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return tooLarge(maxPartBytes)
			}
			return uploadErr(err, id)
		}
		return c.JSON(http.StatusOK, p)
	}
}

// CompleteUpload handles POST /v1/uploads/{upload_id}/complete: the parts,
// in part_ids order, become a file.
func (h *API) CompleteUpload(c *echo.Context) error {
	id, err := uploadPath(c)
	if err != nil {
		return err
	}
	var r struct {
		PartIDs []string `json:"part_ids"`
		MD5     string   `json:"md5"`
	}
	if err := decodeBody(c.Request(), &r, false); err != nil {
		return err
	}
	if r.PartIDs == nil {
		return respond.Invalid("part_ids", "missing_required_parameter", "Missing required parameter: 'part_ids'.")
	}
	u, err := h.vectors.CompleteUpload(c.Request().Context(), id, r.PartIDs, r.MD5)
	if err != nil {
		return uploadErr(err, id)
	}
	return c.JSON(http.StatusOK, u)
}

// CancelUpload handles POST /v1/uploads/{upload_id}/cancel.
func (h *API) CancelUpload(c *echo.Context) error {
	id, err := uploadPath(c)
	if err != nil {
		return err
	}
	u, err := h.vectors.CancelUpload(c.Request().Context(), id)
	if err != nil {
		return uploadErr(err, id)
	}
	return c.JSON(http.StatusOK, u)
}
