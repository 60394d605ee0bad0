package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/validate"
	"github.com/assistantd/assistantd/views"
)

// fileStore is what the files page needs.
type fileStore interface {
	ListFiles(ctx context.Context, purpose string, p db.ListParams) (db.Page[db.File], error)
	GetFile(ctx context.Context, id string) (db.File, error)
	OpenFile(ctx context.Context, id string) (db.File, io.ReadSeekCloser, error)
	DeleteFile(ctx context.Context, id string) error
	StageFile(content io.Reader, limit int64) (*db.StagedFile, error)
	CommitFile(ctx context.Context, f db.File, sf *db.StagedFile, expiresAfter int64) (db.File, error)
	FileUses(ctx context.Context, ids []string) (map[string]db.FileUse, error)
}

// maxUploadFiles bounds how many files one upload form may carry.
const maxUploadFiles = 20

// uiPurposes are the purposes offered on the files page, most used first.
var uiPurposes = []string{"assistants", "vision", "user_data", "batch", "fine-tune"}

const filesPerPage = 50

// Files handles GET /files (?uploaded= lists the files an upload just
// stored, see UploadFiles).
func (u *UI) Files(c *echo.Context) error {
	uploads, err := u.uploadedResults(c.Request().Context(), c.QueryParams()["uploaded"])
	if err != nil {
		return respond.Internal(err)
	}
	p := db.ListParams{Limit: filesPerPage, Order: "desc", After: c.QueryParam("after"), Before: c.QueryParam("before")}
	page, err := u.store.ListFiles(c.Request().Context(), "", p)
	var ce *db.CursorError
	if errors.As(err, &ce) {
		page, err = u.store.ListFiles(c.Request().Context(), "", db.ListParams{Limit: filesPerPage, Order: "desc"})
	}
	if err != nil {
		return respond.Internal(err)
	}
	v := views.FilesView{Uploads: uploads, Purposes: uiPurposes}
	ids := make([]string, 0, len(page.Data))
	for _, f := range page.Data {
		ids = append(ids, f.ID)
	}
	uses, err := u.store.FileUses(c.Request().Context(), ids)
	if err != nil {
		return respond.Internal(err)
	}
	for _, f := range page.Data {
		row := views.FileRow{ID: f.ID, Filename: f.Filename, Purpose: f.Purpose, Bytes: f.Bytes, CreatedAt: f.CreatedAt, Status: f.Status,
			Threads: uses[f.ID].Threads}
		for _, a := range uses[f.ID].Assistants {
			row.Assistants = append(row.Assistants, [2]string{a.ID, a.Name})
		}
		for _, vs := range uses[f.ID].VectorStores {
			row.VectorStores = append(row.VectorStores, [2]string{vs.ID, vs.Name})
		}
		v.Files = append(v.Files, row)
	}
	if n := len(page.Data); n > 0 {
		// has_more is about the direction of travel.
		forward := p.Before == ""
		if (forward && page.HasMore) || !forward {
			v.NextPage = "/files?after=" + url.QueryEscape(page.Data[n-1].ID)
		}
		if p.After != "" || (!forward && page.HasMore) {
			v.PrevPage = "/files?before=" + url.QueryEscape(page.Data[0].ID)
		}
	}
	return render(c, http.StatusOK, views.FilesPage(u.page(c, "Files", "files"), v))
}

// UploadFiles handles POST /files: every file of the form is stored on its
// own, and the answer redirects to the files page (post/redirect/get),
// which reports each one's outcome.
func (u *UI) UploadFiles(c *echo.Context) error {
	r := c.Request()
	if err := r.ParseMultipartForm(8 << 20); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &respond.Error{Status: http.StatusRequestEntityTooLarge, Message: "The upload is too large."}
		}
		return &respond.Error{Status: http.StatusBadRequest, Message: "Choose one or more files to upload."}
	}
	defer r.MultipartForm.RemoveAll()
	purpose := r.FormValue("purpose")
	if problems, ok := validate.List(validate.UploadPurpose(validate.P("purpose"), purpose)); ok {
		return &respond.Error{Status: http.StatusBadRequest, Message: problems[0].Text()}
	}
	headers := r.MultipartForm.File["files"]
	if len(headers) == 0 {
		return &respond.Error{Status: http.StatusBadRequest, Message: "Choose one or more files to upload."}
	}
	if len(headers) > maxUploadFiles {
		return &respond.Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("Upload at most %d files at once.", maxUploadFiles)}
	}
	var ids, failed []string
	for _, fh := range headers {
		f, err := u.uploadOne(c, fh.Filename, fh.Header.Get("Content-Type"), purpose, func() (io.ReadCloser, error) { return fh.Open() })
		if err != nil {
			failed = append(failed, filepath.Base(fh.Filename)+" ("+err.Error()+")")
			continue
		}
		ids = append(ids, f.ID)
	}
	return u.afterUpload(c, "/files", "uploaded", ids, failed)
}

// afterUpload answers an upload form with a redirect to target (the
// post/redirect/get pattern: a reload of the page shown afterwards
// uploads nothing again). The address names the files stored (key=id,
// repeated), which the page lists as uploaded; the files refused are
// named, with the reason, in a flash. Only ids go into the address, so a
// crafted link can make the page show nothing but real files' names.
func (u *UI) afterUpload(c *echo.Context, target, key string, ids, failed []string) error {
	if len(ids) > 0 {
		q := url.Values{key: ids}
		target += "?" + q.Encode()
	}
	msg := fmt.Sprintf("%d %s stored.", len(ids), plural(len(ids), "file", "files"))
	if len(failed) > 0 {
		msg += " Refused: " + strings.Join(failed, "; ") + "."
	}
	if err := u.setFlash(c, msg, len(failed) > 0); err != nil {
		return err
	}
	// A 303 for htmx too (not HX-Redirect): its request follows it and
	// swaps in the page, so the page that showed the upload's progress
	// stays.
	return c.Redirect(http.StatusSeeOther, target)
}

// uploadedResults lists the files named in an address after an upload
// (see afterUpload), skipping ids that name no file.
func (u *UI) uploadedResults(ctx context.Context, ids []string) ([]views.UploadResult, error) {
	var out []views.UploadResult
	for i, id := range ids {
		if i == maxUploadFiles {
			break
		}
		if len(id) > maxIDLen {
			continue
		}
		f, err := u.store.GetFile(ctx, id)
		if errors.Is(err, db.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, views.UploadResult{Filename: f.Filename, OK: true, FileID: f.ID})
	}
	return out, nil
}

// plural picks the word for n.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// uploadOne stores one file, returning a person-readable error.
func (u *UI) uploadOne(c *echo.Context, name, ctype, purpose string, open func() (io.ReadCloser, error)) (db.File, error) {
	if name == "" {
		return db.File{}, errors.New("the file has no name")
	}
	if hasNul(name) {
		return db.File{}, errors.New("the file name holds a NUL character (\\0), which cannot be stored")
	}
	rc, err := open()
	if err != nil {
		return db.File{}, errors.New("could not read the upload")
	}
	defer rc.Close()
	sf, err := u.store.StageFile(rc, u.cfg.MaxUpload)
	if errors.Is(err, db.ErrTooLarge) {
		return db.File{}, fmt.Errorf("larger than the limit of %s", views.Bytes(u.cfg.MaxUpload))
	}
	if err != nil {
		u.cfg.Log.Error("stage upload", "error", err)
		return db.File{}, errors.New("could not store the file")
	}
	defer sf.Discard()
	if sf.Bytes == 0 {
		return db.File{}, errors.New("the file is empty")
	}
	if ctype == "" || ctype == "application/octet-stream" {
		if t := mime.TypeByExtension(filepath.Ext(name)); t != "" {
			ctype = t
		}
	}
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	f, err := u.store.CommitFile(c.Request().Context(), db.File{Filename: filepath.Base(name), Purpose: purpose, ContentType: ctype}, sf, 0)
	if err != nil {
		u.cfg.Log.Error("commit upload", "error", err)
		return db.File{}, errors.New("could not store the file")
	}
	return f, nil
}

// DownloadFile handles GET /files/:file_id/download (as an attachment) and
// GET /files/:file_id/content (inline, for images in messages). Content is
// served with nosniff and a sandboxing CSP, so an uploaded HTML or SVG file
// cannot run script in the app's origin.
func (u *UI) DownloadFile(c *echo.Context) error {
	id := c.Param("file_id")
	f, rc, err := u.store.OpenFile(c.Request().Context(), id)
	if err != nil {
		return respond.StoreErr(err, "file", id)
	}
	defer rc.Close()
	h := c.Response().Header()
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'")
	h.Set("X-Content-Type-Options", "nosniff")
	disposition := "attachment"
	ctype := f.ContentType
	if c.Path() == "/files/:file_id/content" && isImageType(ctype) {
		disposition = "inline"
	} else {
		ctype = "application/octet-stream"
	}
	h.Set("Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": f.Filename}))
	return c.Stream(http.StatusOK, ctype, rc)
}

func isImageType(t string) bool {
	switch t {
	case "image/png", "image/jpeg", "image/gif", "image/webp":
		return true
	}
	return false
}

// DeleteFile handles POST /files/:file_id/delete.
func (u *UI) DeleteFile(c *echo.Context) error {
	id := c.Param("file_id")
	if err := u.store.DeleteFile(c.Request().Context(), id); err != nil {
		return respond.StoreErr(err, "file", id)
	}
	return u.flash(c, "/files", "File deleted.", false)
}
