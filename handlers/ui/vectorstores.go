package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/agent/retrieval"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/validate"
	"github.com/assistantd/assistantd/views"
)

const storesPerPage = 50

// VectorStores is what the vector store pages need from the store.
type VectorStores interface {
	CreateVectorStore(ctx context.Context, v db.VectorStore, files []db.NewVectorStoreFile) (db.VectorStore, error)
	GetVectorStore(ctx context.Context, id string) (db.VectorStore, error)
	DeleteVectorStore(ctx context.Context, id string) error
	ListVectorStores(ctx context.Context, p db.ListParams) (db.Page[db.VectorStore], error)
	AddVectorStoreFiles(ctx context.Context, storeID string, files []db.NewVectorStoreFile) error
	DeleteVectorStoreFile(ctx context.Context, storeID, fileID string) error
	ListVectorStoreFiles(ctx context.Context, storeID, batchID, status string, p db.ListParams) (db.Page[db.VectorStoreFile], error)
}

// Retriever searches vector stores (the store page's test search) and
// hears of files added for ingestion.
type Retriever interface {
	Search(ctx context.Context, q retrieval.Query) ([]retrieval.Result, error)
	Wake()
}

// vectorsOn reports whether the web app serves vector stores.
func (u *UI) vectorsOn() error {
	if u.cfg.VectorStores == nil || u.cfg.Retriever == nil {
		return &respond.Error{Status: http.StatusNotFound, Message: "Vector stores are not available."}
	}
	return nil
}

// VectorStores handles GET /vector_stores.
func (u *UI) VectorStores(c *echo.Context) error {
	return u.renderVectorStores(c, http.StatusOK, "", "")
}

func (u *UI) renderVectorStores(c *echo.Context, status int, name, errMsg string) error {
	if err := u.vectorsOn(); err != nil {
		return err
	}
	p := db.ListParams{Limit: storesPerPage, Order: "desc", After: c.QueryParam("after"), Before: c.QueryParam("before")}
	page, err := u.cfg.VectorStores.ListVectorStores(c.Request().Context(), p)
	var ce *db.CursorError
	if errors.As(err, &ce) {
		page, err = u.cfg.VectorStores.ListVectorStores(c.Request().Context(), db.ListParams{Limit: storesPerPage, Order: "desc"})
	}
	if err != nil {
		return respond.Internal(err)
	}
	v := views.VectorStoresView{NameInput: name, Error: errMsg}
	for _, s := range page.Data {
		v.Stores = append(v.Stores, views.VectorStoreRow{ID: s.ID, Name: s.Name, Status: s.Status, Files: s.FileCounts.Total,
			InProgress: s.FileCounts.InProgress, Failed: s.FileCounts.Failed, UsageBytes: s.UsageBytes, CreatedAt: s.CreatedAt,
			ExpiresAt: s.ExpiresAt})
	}
	if n := len(page.Data); n > 0 {
		forward := p.Before == ""
		if (forward && page.HasMore) || !forward {
			v.NextPage = "/vector_stores?after=" + url.QueryEscape(page.Data[n-1].ID)
		}
		if p.After != "" || (!forward && page.HasMore) {
			v.PrevPage = "/vector_stores?before=" + url.QueryEscape(page.Data[0].ID)
		}
	}
	return render(c, status, views.VectorStoresPage(u.page(c, "Vector stores", "vector_stores"), v))
}

// CreateVectorStore handles POST /vector_stores; a rejected name is shown
// in place with the input kept.
func (u *UI) CreateVectorStore(c *echo.Context) error {
	if err := u.vectorsOn(); err != nil {
		return err
	}
	name := strings.TrimSpace(c.FormValue("name"))
	if hasNul(name) {
		return u.renderVectorStores(c, http.StatusBadRequest, name, "Name: "+nulRefusal)
	}
	if err := validate.Len(validate.P("name"), &name, validate.MaxName); err != nil {
		problems, _ := validate.List(err)
		return u.renderVectorStores(c, http.StatusBadRequest, name, problems[0].Text())
	}
	v, err := u.cfg.VectorStores.CreateVectorStore(c.Request().Context(), db.VectorStore{Name: name}, nil)
	if err != nil {
		return respond.Internal(err)
	}
	return u.flash(c, "/vector_stores/"+v.ID, "Vector store created.", false)
}

// ShowVectorStore handles GET /vector_stores/:vector_store_id (?q=
// searches; ?added= lists the files an upload just added, see
// AddVectorStoreFiles).
func (u *UI) ShowVectorStore(c *echo.Context) error {
	if err := u.vectorsOn(); err != nil {
		return err
	}
	ctx := c.Request().Context()
	id := c.Param("vector_store_id")
	s, err := u.cfg.VectorStores.GetVectorStore(ctx, id)
	if err != nil {
		return respond.StoreErr(err, "vector store", id)
	}
	uploads, err := u.uploadedResults(ctx, c.QueryParams()["added"])
	if err != nil {
		return respond.Internal(err)
	}
	v := views.VectorStoreView{ID: s.ID, Name: s.Name, Status: s.Status, UsageBytes: s.UsageBytes, Uploads: uploads,
		Pending: s.FileCounts.InProgress > 0, Query: c.QueryParam("q")}
	files, err := u.cfg.VectorStores.ListVectorStoreFiles(ctx, id, "", "", db.ListParams{Limit: 100, Order: "desc"})
	if err != nil {
		return respond.Internal(err)
	}
	for _, f := range files.Data {
		row := views.VectorStoreFileRow{ID: f.ID, Status: f.Status, Bytes: f.UsageBytes, Added: f.CreatedAt}
		if file, err := u.store.GetFile(ctx, f.ID); err == nil {
			row.Filename = file.Filename
		}
		if f.LastError != nil {
			row.Error = f.LastError.Code + ": " + f.LastError.Message
		}
		v.Files = append(v.Files, row)
	}
	if q := strings.TrimSpace(v.Query); q != "" && s.Status != db.VSExpired {
		hits, err := u.cfg.Retriever.Search(ctx, retrieval.Query{StoreIDs: []string{id}, Queries: []string{q}, MaxResults: 10})
		if err != nil {
			return respond.Internal(err)
		}
		v.Searched = true
		for _, h := range hits {
			v.Hits = append(v.Hits, views.SearchHit{FileID: h.FileID, Filename: h.Filename, Score: strconv.FormatFloat(h.Score, 'f', 3, 64), Text: h.Text})
		}
	}
	if v.Assistants, err = u.assistantChoices(ctx); err != nil {
		return respond.Internal(err)
	}
	all, err := u.store.AllAssistants(ctx)
	if err != nil {
		return respond.Internal(err)
	}
	for _, a := range all {
		if a.ToolResources != nil && a.ToolResources.FileSearch != nil && slices.Contains(a.ToolResources.FileSearch.VectorStoreIDs, id) {
			v.UsedBy = append(v.UsedBy, [2]string{a.ID, orName(deref(a.Name), a.ID)})
		}
	}
	return render(c, http.StatusOK, views.VectorStorePage(u.page(c, orName(s.Name, "Vector store"), "vector_stores"), v))
}

func orName(name, def string) string {
	if name == "" {
		return def
	}
	return name
}

// AddVectorStoreFiles handles POST /vector_stores/:vector_store_id/files:
// each uploaded file is stored (purpose assistants) and added. The answer
// is a redirect to the store's page (post/redirect/get: a reload there
// uploads nothing again), whose address names the files added
// (?added=…) and whose flash names those refused and why; ingestion
// status follows in the list.
func (u *UI) AddVectorStoreFiles(c *echo.Context) error {
	if err := u.vectorsOn(); err != nil {
		return err
	}
	ctx := c.Request().Context()
	id := c.Param("vector_store_id")
	if _, err := u.cfg.VectorStores.GetVectorStore(ctx, id); err != nil {
		return respond.StoreErr(err, "vector store", id)
	}
	r := c.Request()
	if err := r.ParseMultipartForm(8 << 20); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &respond.Error{Status: http.StatusRequestEntityTooLarge, Message: "The upload is too large."}
		}
		return &respond.Error{Status: http.StatusBadRequest, Message: "Choose one or more files to add."}
	}
	defer r.MultipartForm.RemoveAll()
	headers := r.MultipartForm.File["files"]
	if len(headers) == 0 || len(headers) > maxUploadFiles {
		return &respond.Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("Choose between 1 and %d files to add.", maxUploadFiles)}
	}
	var added []db.NewVectorStoreFile
	var ids, failed []string
	for _, fh := range headers {
		f, err := u.uploadOne(c, fh.Filename, fh.Header.Get("Content-Type"), "assistants", func() (io.ReadCloser, error) { return fh.Open() })
		if err != nil {
			failed = append(failed, filepath.Base(fh.Filename)+" ("+err.Error()+")")
			continue
		}
		ids = append(ids, f.ID)
		added = append(added, db.NewVectorStoreFile{FileID: f.ID, Chunking: db.AutoChunking()})
	}
	if len(added) > 0 {
		if err := u.cfg.VectorStores.AddVectorStoreFiles(ctx, id, added); err != nil {
			return respond.StoreErr(err, "vector store", id)
		}
		u.cfg.Retriever.Wake()
	}
	return u.afterUpload(c, "/vector_stores/"+id, "added", ids, failed)
}

// UseVectorStore handles POST /vector_stores/:vector_store_id/use: the
// assistant picked searches this store with file_search from now on
// (file_search is turned on if it was off; an assistant searches one
// store, so this one replaces any other).
func (u *UI) UseVectorStore(c *echo.Context) error {
	if err := u.vectorsOn(); err != nil {
		return err
	}
	ctx := c.Request().Context()
	id := c.Param("vector_store_id")
	if _, err := u.cfg.VectorStores.GetVectorStore(ctx, id); err != nil {
		return respond.StoreErr(err, "vector store", id)
	}
	back := "/vector_stores/" + id
	aid := c.FormValue("assistant_id")
	if aid == "" || len(aid) > maxIDLen {
		return u.flash(c, back, "Choose an assistant.", true)
	}
	a, err := u.store.UpdateAssistant(ctx, aid, func(a *db.Assistant) error {
		if a.ToolResources == nil {
			a.ToolResources = &db.ToolResources{}
		}
		a.ToolResources.FileSearch = &db.FileSearchResources{VectorStoreIDs: []string{id}}
		if !slices.ContainsFunc(a.Tools, func(t db.Tool) bool { return t.Type == "file_search" }) {
			a.Tools = append(a.Tools, db.Tool{Type: "file_search"})
		}
		return nil
	})
	if errors.Is(err, db.ErrNotFound) {
		return u.flash(c, back, "That assistant no longer exists.", true)
	}
	if err != nil {
		return respond.Internal(err)
	}
	return u.flash(c, back, "Assistant “"+orName(deref(a.Name), a.ID)+"” now searches this store with file_search.", false)
}

// RemoveVectorStoreFile handles POST /vector_stores/:id/files/:file_id/delete.
func (u *UI) RemoveVectorStoreFile(c *echo.Context) error {
	if err := u.vectorsOn(); err != nil {
		return err
	}
	id, fileID := c.Param("vector_store_id"), c.Param("file_id")
	if err := u.cfg.VectorStores.DeleteVectorStoreFile(c.Request().Context(), id, fileID); err != nil {
		return respond.StoreErr(err, "vector store file", fileID)
	}
	return u.flash(c, "/vector_stores/"+id, "File removed from the store (it is still in Files).", false)
}

// DeleteVectorStore handles POST /vector_stores/:vector_store_id/delete.
func (u *UI) DeleteVectorStore(c *echo.Context) error {
	if err := u.vectorsOn(); err != nil {
		return err
	}
	id := c.Param("vector_store_id")
	if err := u.cfg.VectorStores.DeleteVectorStore(c.Request().Context(), id); err != nil {
		return respond.StoreErr(err, "vector store", id)
	}
	return u.flash(c, "/vector_stores", "Vector store deleted.", false)
}
