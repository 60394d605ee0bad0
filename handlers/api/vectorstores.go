package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/agent/retrieval"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/validate"
)

// VectorStores is what the vector store and upload endpoints need from
// the store.
type VectorStores interface {
	CreateVectorStore(ctx context.Context, v db.VectorStore, files []db.NewVectorStoreFile) (db.VectorStore, error)
	GetVectorStore(ctx context.Context, id string) (db.VectorStore, error)
	UpdateVectorStore(ctx context.Context, id string, fn func(*db.VectorStore) error) (db.VectorStore, error)
	DeleteVectorStore(ctx context.Context, id string) error
	ListVectorStores(ctx context.Context, p db.ListParams) (db.Page[db.VectorStore], error)
	AddVectorStoreFiles(ctx context.Context, storeID string, files []db.NewVectorStoreFile) error
	GetVectorStoreFile(ctx context.Context, storeID, fileID string) (db.VectorStoreFile, error)
	UpdateVectorStoreFileAttributes(ctx context.Context, storeID, fileID string, attrs db.Attributes) (db.VectorStoreFile, error)
	DeleteVectorStoreFile(ctx context.Context, storeID, fileID string) error
	ListVectorStoreFiles(ctx context.Context, storeID, batchID, status string, p db.ListParams) (db.Page[db.VectorStoreFile], error)
	CreateFileBatch(ctx context.Context, storeID string, files []db.NewVectorStoreFile) (db.FileBatch, error)
	GetFileBatch(ctx context.Context, storeID, id string) (db.FileBatch, error)
	CancelFileBatch(ctx context.Context, storeID, id string) (db.FileBatch, error)
	FileChunks(ctx context.Context, storeID, fileID string) ([]string, error)

	CreateUpload(ctx context.Context, u db.Upload) (db.Upload, error)
	AddUploadPart(ctx context.Context, uploadID string, content io.Reader, limit int64) (db.UploadPart, error)
	CompleteUpload(ctx context.Context, id string, partIDs []string, md5 string) (db.Upload, error)
	CancelUpload(ctx context.Context, id string) (db.Upload, error)
}

// Retriever searches vector stores and ingests their files.
type Retriever interface {
	Search(ctx context.Context, q retrieval.Query) ([]retrieval.Result, error)
	// Wake tells ingestion that files were added.
	Wake()
	// RewriteQueries returns the queries a search with rewrite_query
	// searches: rewritten by the configured model, or as given when there
	// is none or it fails. It never fails the search.
	RewriteQueries(ctx context.Context, queries []string) []string
}

// APIOption configures optional parts of the API.
type APIOption func(*API)

// WithVectorStores serves vector stores, file search and uploads.
func WithVectorStores(vs VectorStores, r Retriever) APIOption {
	return func(h *API) { h.vectors, h.retriever = vs, r }
}

// Limits of the vector store API, as OpenAI documented them.
const (
	maxStoreFiles   = 500
	maxBatchFiles   = 2000
	maxAttributes   = 16
	maxAttrKey      = 64
	maxAttrValue    = 512
	maxSearchResult = 50
)

// chunkingRequest is a chunking_strategy as clients send it.
type chunkingRequest struct {
	Type   string `json:"type"`
	Static *struct {
		MaxChunkSizeTokens *int `json:"max_chunk_size_tokens"`
		ChunkOverlapTokens *int `json:"chunk_overlap_tokens"`
	} `json:"static"`
}

// chunking validates a chunking strategy (nil: auto) and resolves it.
func chunking(param string, r *chunkingRequest) (db.ChunkingStrategy, error) {
	if r == nil {
		return db.AutoChunking(), nil
	}
	switch r.Type {
	case "auto":
		if r.Static != nil {
			return db.ChunkingStrategy{}, respond.Invalid(param+".static", "unknown_parameter", "Unknown parameter: '%s.static'.", param)
		}
		return db.AutoChunking(), nil
	case "static":
		if r.Static == nil {
			return db.ChunkingStrategy{}, respond.Invalid(param+".static", "missing_required_parameter", "Missing required parameter: '%s.static'.", param)
		}
		p := param + ".static"
		if r.Static.MaxChunkSizeTokens == nil {
			return db.ChunkingStrategy{}, respond.Invalid(p+".max_chunk_size_tokens", "missing_required_parameter",
				"Missing required parameter: '%s.max_chunk_size_tokens'.", p)
		}
		if r.Static.ChunkOverlapTokens == nil {
			return db.ChunkingStrategy{}, respond.Invalid(p+".chunk_overlap_tokens", "missing_required_parameter",
				"Missing required parameter: '%s.chunk_overlap_tokens'.", p)
		}
		size, overlap := *r.Static.MaxChunkSizeTokens, *r.Static.ChunkOverlapTokens
		if size < 100 || size > 4096 {
			return db.ChunkingStrategy{}, respond.Invalid(p+".max_chunk_size_tokens", "invalid_value",
				"Invalid '%s.max_chunk_size_tokens': expected a value between 100 and 4096, but got %d instead.", p, size)
		}
		if overlap < 0 || overlap > size/2 {
			return db.ChunkingStrategy{}, respond.Invalid(p+".chunk_overlap_tokens", "invalid_value",
				"Invalid '%s.chunk_overlap_tokens': the overlap must be between 0 and half of max_chunk_size_tokens (%d), but got %d instead.",
				p, size/2, overlap)
		}
		return db.ChunkingStrategy{Type: "static", Static: &db.StaticChunking{MaxChunkSizeTokens: size, ChunkOverlapTokens: overlap}}, nil
	case "":
		return db.ChunkingStrategy{}, respond.Invalid(param+".type", "missing_required_parameter", "Missing required parameter: '%s.type'.", param)
	}
	return db.ChunkingStrategy{}, respond.Invalid(param+".type", "invalid_value", "Invalid value: '%s'. Supported values are: 'auto' and 'static'.", r.Type)
}

// checkAttributes validates file attributes: up to 16 keys of up to 64
// characters; values strings (up to 512), numbers or booleans.
func checkAttributes(param string, raw json.RawMessage) (db.Attributes, error) {
	if len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	var attrs map[string]any
	if err := dec.Decode(&attrs); err != nil {
		return nil, respond.Invalid(param, "invalid_type", "Invalid type for '%s': expected an object.", param)
	}
	if len(attrs) > maxAttributes {
		return nil, respond.Invalid(param, "object_above_max_properties",
			"Invalid '%s': too many properties. Expected an object with at most %d properties, but got %d instead.", param, maxAttributes, len(attrs))
	}
	for k, v := range attrs {
		if len([]rune(k)) > maxAttrKey {
			return nil, respond.Invalid(param, "invalid_value", "Invalid '%s': key '%s' is longer than %d characters.", param, k, maxAttrKey)
		}
		switch v := v.(type) {
		case string:
			if len([]rune(v)) > maxAttrValue {
				return nil, respond.Invalid(param+"."+k, "string_above_max_length",
					"Invalid '%s.%s': string too long. Expected a string with maximum length %d.", param, k, maxAttrValue)
			}
		case float64, bool:
		default:
			return nil, respond.Invalid(param+"."+k, "invalid_type",
				"Invalid type for '%s.%s': expected a string, number or boolean.", param, k)
		}
	}
	return db.Attributes(attrs), nil
}

// expiresAfterRequest is a vector store's expires_after.
type expiresAfterRequest struct {
	Anchor string `json:"anchor"`
	Days   *int64 `json:"days"`
}

func expiresAfter(param string, r *expiresAfterRequest) (*db.ExpiresAfter, error) {
	if r == nil {
		return nil, nil
	}
	if r.Anchor != "last_active_at" {
		return nil, respond.Invalid(param+".anchor", "invalid_value", "Invalid value: '%s'. Supported values are: 'last_active_at'.", r.Anchor)
	}
	if r.Days == nil {
		return nil, respond.Invalid(param+".days", "missing_required_parameter", "Missing required parameter: '%s.days'.", param)
	}
	if *r.Days < 1 || *r.Days > 365 {
		return nil, respond.Invalid(param+".days", "invalid_value",
			"Invalid '%s.days': expected a value between 1 and 365, but got %d instead.", param, *r.Days)
	}
	return &db.ExpiresAfter{Anchor: r.Anchor, Days: *r.Days}, nil
}

// vectorStoreRequest is the body of create vector store (and each entry
// of the vector_stores helper, which has only file_ids, chunking_strategy
// and metadata).
type vectorStoreRequest struct {
	FileIDs          []string                  `json:"file_ids"`
	Name             *string                   `json:"name"`
	Description      *string                   `json:"description"`
	ExpiresAfter     *expiresAfterRequest      `json:"expires_after"`
	ChunkingStrategy *chunkingRequest          `json:"chunking_strategy"`
	Metadata         validate.Opt[db.Metadata] `json:"metadata"`
}

// buildVectorStore validates a create request.
func (h *API) buildVectorStore(c *echo.Context, param string, r vectorStoreRequest) (db.VectorStore, []db.NewVectorStoreFile, error) {
	p := func(f string) string {
		if param == "" {
			return f
		}
		return param + "." + f
	}
	var v db.VectorStore
	if err := checkArrayLen(p("file_ids"), len(r.FileIDs), maxStoreFiles); err != nil {
		return v, nil, err
	}
	if err := h.checkFiles(c, p("file_ids"), r.FileIDs); err != nil {
		return v, nil, err
	}
	if r.Name != nil {
		if err := checkLen(p("name"), r.Name, validate.MaxName); err != nil {
			return v, nil, err
		}
		v.Name = *r.Name
	}
	if err := checkLen(p("description"), r.Description, validate.MaxDescription); err != nil {
		return v, nil, err
	}
	v.Description = r.Description
	ea, err := expiresAfter(p("expires_after"), r.ExpiresAfter)
	if err != nil {
		return v, nil, err
	}
	v.ExpiresAfter = ea
	cs, err := chunking(p("chunking_strategy"), r.ChunkingStrategy)
	if err != nil {
		return v, nil, err
	}
	if err := checkMetadata(p("metadata"), r.Metadata.V); err != nil {
		return v, nil, err
	}
	v.Metadata = r.Metadata.V
	files := make([]db.NewVectorStoreFile, 0, len(r.FileIDs))
	for _, id := range validate.Dedupe(r.FileIDs) {
		files = append(files, db.NewVectorStoreFile{FileID: id, Chunking: cs})
	}
	return v, files, nil
}

// createVectorStore stores a validated store and starts ingesting its files.
func (h *API) createVectorStore(ctx context.Context, v db.VectorStore, files []db.NewVectorStoreFile) (db.VectorStore, error) {
	v, err := h.vectors.CreateVectorStore(ctx, v, files)
	if err != nil {
		return v, respond.Internal(err)
	}
	if len(files) > 0 {
		h.retriever.Wake()
	}
	return v, nil
}

// CreateVectorStore handles POST /v1/vector_stores.
func (h *API) CreateVectorStore(c *echo.Context) error {
	var r vectorStoreRequest
	if err := decodeBody(c.Request(), &r, true); err != nil {
		return err
	}
	v, files, err := h.buildVectorStore(c, "", r)
	if err != nil {
		return err
	}
	v, err = h.createVectorStore(c.Request().Context(), v, files)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func storePath(c *echo.Context) (string, error) {
	id := c.Param("vector_store_id")
	return id, checkID("vector_store_id", id, "vs_")
}

// GetVectorStore handles GET /v1/vector_stores/{vector_store_id}.
func (h *API) GetVectorStore(c *echo.Context) error {
	id, err := storePath(c)
	if err != nil {
		return err
	}
	v, err := h.vectors.GetVectorStore(c.Request().Context(), id)
	if err != nil {
		return respond.StoreErr(err, "vector store", id)
	}
	return c.JSON(http.StatusOK, v)
}

// ModifyVectorStore handles POST /v1/vector_stores/{vector_store_id}:
// name, expires_after and metadata (null clears each).
func (h *API) ModifyVectorStore(c *echo.Context) error {
	id, err := storePath(c)
	if err != nil {
		return err
	}
	var r struct {
		Name         validate.Opt[string]              `json:"name"`
		ExpiresAfter validate.Opt[expiresAfterRequest] `json:"expires_after"`
		Metadata     validate.Opt[db.Metadata]         `json:"metadata"`
	}
	if err := decodeBody(c.Request(), &r, true); err != nil {
		return err
	}
	if err := checkLen("name", r.Name.Ptr(), validate.MaxName); err != nil {
		return err
	}
	ea, err := expiresAfter("expires_after", r.ExpiresAfter.Ptr())
	if err != nil {
		return err
	}
	if err := checkMetadata("metadata", r.Metadata.V); err != nil {
		return err
	}
	v, err := h.vectors.UpdateVectorStore(c.Request().Context(), id, func(v *db.VectorStore) error {
		if r.Name.Set {
			v.Name = r.Name.V
		}
		if r.ExpiresAfter.Set {
			v.ExpiresAfter = ea
		}
		if r.Metadata.Set {
			v.Metadata = r.Metadata.V
		}
		return nil
	})
	if err != nil {
		return respond.StoreErr(err, "vector store", id)
	}
	return c.JSON(http.StatusOK, v)
}

// DeleteVectorStore handles DELETE /v1/vector_stores/{vector_store_id}.
func (h *API) DeleteVectorStore(c *echo.Context) error {
	id, err := storePath(c)
	if err != nil {
		return err
	}
	if err := h.vectors.DeleteVectorStore(c.Request().Context(), id); err != nil {
		return respond.StoreErr(err, "vector store", id)
	}
	return c.JSON(http.StatusOK, db.Deleted{ID: id, Object: "vector_store.deleted", Deleted: true})
}

// ListVectorStores handles GET /v1/vector_stores.
func (h *API) ListVectorStores(c *echo.Context) error {
	p, err := listParams(c, 100, 20, true)
	if err != nil {
		return err
	}
	page, err := h.vectors.ListVectorStores(c.Request().Context(), p)
	if err != nil {
		return respond.StoreErr(err, "", "")
	}
	return c.JSON(http.StatusOK, newList(page, func(v db.VectorStore) string { return v.ID }))
}

// activeStore returns a store that can take files and be searched: it
// exists and has not expired.
func (h *API) activeStore(ctx context.Context, id string) (db.VectorStore, error) {
	v, err := h.vectors.GetVectorStore(ctx, id)
	if err != nil {
		return v, respond.StoreErr(err, "vector store", id)
	}
	if v.Status == db.VSExpired {
		return v, respond.Invalid("vector_store_id", "vector_store_expired", "Vector store %s is expired.", id)
	}
	return v, nil
}

// fileRequest is the body of create vector store file and each entry of a
// batch's files.
type fileRequest struct {
	FileID           string           `json:"file_id"`
	ChunkingStrategy *chunkingRequest `json:"chunking_strategy"`
	Attributes       json.RawMessage  `json:"attributes"`
}

func (h *API) buildFile(c *echo.Context, param string, r fileRequest) (db.NewVectorStoreFile, error) {
	p := func(f string) string {
		if param == "" {
			return f
		}
		return param + "." + f
	}
	f := db.NewVectorStoreFile{FileID: r.FileID}
	if r.FileID == "" {
		return f, respond.Invalid(p("file_id"), "missing_required_parameter", "Missing required parameter: '%s'.", p("file_id"))
	}
	if err := h.checkFile(c, p("file_id"), r.FileID); err != nil {
		return f, err
	}
	var err error
	if f.Chunking, err = chunking(p("chunking_strategy"), r.ChunkingStrategy); err != nil {
		return f, err
	}
	f.Attributes, err = checkAttributes(p("attributes"), r.Attributes)
	return f, err
}

// CreateVectorStoreFile handles POST /v1/vector_stores/{id}/files.
func (h *API) CreateVectorStoreFile(c *echo.Context) error {
	id, err := storePath(c)
	if err != nil {
		return err
	}
	var r fileRequest
	if err := decodeBody(c.Request(), &r, false); err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := h.activeStore(ctx, id); err != nil {
		return err
	}
	f, err := h.buildFile(c, "", r)
	if err != nil {
		return err
	}
	if err := h.vectors.AddVectorStoreFiles(ctx, id, []db.NewVectorStoreFile{f}); err != nil {
		return respond.StoreErr(err, "vector store", id)
	}
	h.retriever.Wake()
	vf, err := h.vectors.GetVectorStoreFile(ctx, id, f.FileID)
	if err != nil {
		return respond.StoreErr(err, "vector store file", f.FileID)
	}
	return c.JSON(http.StatusOK, vf)
}

func storeFilePath(c *echo.Context) (string, string, error) {
	id, err := storePath(c)
	if err != nil {
		return "", "", err
	}
	fileID := c.Param("file_id")
	return id, fileID, checkID("file_id", fileID, "file-")
}

// GetVectorStoreFile handles GET /v1/vector_stores/{id}/files/{file_id}.
func (h *API) GetVectorStoreFile(c *echo.Context) error {
	id, fileID, err := storeFilePath(c)
	if err != nil {
		return err
	}
	vf, err := h.vectors.GetVectorStoreFile(c.Request().Context(), id, fileID)
	if err != nil {
		return respond.StoreErr(err, "vector store file", fileID)
	}
	return c.JSON(http.StatusOK, vf)
}

// UpdateVectorStoreFile handles POST /v1/vector_stores/{id}/files/{file_id}:
// replaces the file's attributes.
func (h *API) UpdateVectorStoreFile(c *echo.Context) error {
	id, fileID, err := storeFilePath(c)
	if err != nil {
		return err
	}
	var r struct {
		Attributes *json.RawMessage `json:"attributes"`
	}
	if err := decodeBody(c.Request(), &r, false); err != nil {
		return err
	}
	if r.Attributes == nil {
		return respond.Invalid("attributes", "missing_required_parameter", "Missing required parameter: 'attributes'.")
	}
	attrs, err := checkAttributes("attributes", *r.Attributes)
	if err != nil {
		return err
	}
	vf, err := h.vectors.UpdateVectorStoreFileAttributes(c.Request().Context(), id, fileID, attrs)
	if err != nil {
		return respond.StoreErr(err, "vector store file", fileID)
	}
	return c.JSON(http.StatusOK, vf)
}

// DeleteVectorStoreFile handles DELETE /v1/vector_stores/{id}/files/{file_id};
// the file itself is kept.
func (h *API) DeleteVectorStoreFile(c *echo.Context) error {
	id, fileID, err := storeFilePath(c)
	if err != nil {
		return err
	}
	if err := h.vectors.DeleteVectorStoreFile(c.Request().Context(), id, fileID); err != nil {
		return respond.StoreErr(err, "vector store file", fileID)
	}
	return c.JSON(http.StatusOK, db.Deleted{ID: fileID, Object: "vector_store.file.deleted", Deleted: true})
}

// VectorStoreFileContent handles GET /v1/vector_stores/{id}/files/{file_id}/content:
// the file's parsed text, one item per chunk.
func (h *API) VectorStoreFileContent(c *echo.Context) error {
	id, fileID, err := storeFilePath(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := h.vectors.GetVectorStoreFile(ctx, id, fileID); err != nil {
		return respond.StoreErr(err, "vector store file", fileID)
	}
	chunks, err := h.vectors.FileChunks(ctx, id, fileID)
	if err != nil {
		return respond.Internal(err)
	}
	data := make([]searchContent, len(chunks))
	for i, t := range chunks {
		data[i] = searchContent{Type: "text", Text: t}
	}
	return c.JSON(http.StatusOK, map[string]any{"object": "vector_store.file_content.page", "data": data,
		"has_more": false, "next_page": nil})
}

var fileStatuses = []string{"in_progress", "completed", "failed", "cancelled"}

// listStoreFiles serves both file lists (of a store, of a batch).
func (h *API) listStoreFiles(c *echo.Context, storeID, batchID string) error {
	p, err := listParams(c, 100, 20, true)
	if err != nil {
		return err
	}
	status := c.QueryParam("filter")
	if status != "" && !slices.Contains(fileStatuses, status) {
		return respond.Invalid("filter", "invalid_value",
			"Invalid value: '%s'. Supported values are: 'in_progress', 'completed', 'failed', and 'cancelled'.", status)
	}
	page, err := h.vectors.ListVectorStoreFiles(c.Request().Context(), storeID, batchID, status, p)
	if err != nil {
		return respond.StoreErr(err, "", "")
	}
	return c.JSON(http.StatusOK, newList(page, func(f db.VectorStoreFile) string { return f.ID }))
}

// ListVectorStoreFiles handles GET /v1/vector_stores/{id}/files.
func (h *API) ListVectorStoreFiles(c *echo.Context) error {
	id, err := storePath(c)
	if err != nil {
		return err
	}
	if _, err := h.vectors.GetVectorStore(c.Request().Context(), id); err != nil {
		return respond.StoreErr(err, "vector store", id)
	}
	return h.listStoreFiles(c, id, "")
}

// CreateFileBatch handles POST /v1/vector_stores/{id}/file_batches:
// file_ids (with shared chunking_strategy and attributes) or files (each
// with its own), not both.
func (h *API) CreateFileBatch(c *echo.Context) error {
	id, err := storePath(c)
	if err != nil {
		return err
	}
	var r struct {
		FileIDs          []string         `json:"file_ids"`
		Files            []fileRequest    `json:"files"`
		ChunkingStrategy *chunkingRequest `json:"chunking_strategy"`
		Attributes       json.RawMessage  `json:"attributes"`
	}
	if err := decodeBody(c.Request(), &r, false); err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := h.activeStore(ctx, id); err != nil {
		return err
	}
	var files []db.NewVectorStoreFile
	switch {
	case r.FileIDs != nil && r.Files != nil:
		return respond.Invalid("files", "invalid_value", "'file_ids' and 'files' are mutually exclusive: pass one of them.")
	case r.FileIDs != nil:
		if len(r.FileIDs) == 0 {
			return respond.Invalid("file_ids", "empty_array", "Invalid 'file_ids': empty array. Expected an array with minimum length 1, but got an empty array instead.")
		}
		if err := checkArrayLen("file_ids", len(r.FileIDs), maxBatchFiles); err != nil {
			return err
		}
		if err := h.checkFiles(c, "file_ids", r.FileIDs); err != nil {
			return err
		}
		cs, err := chunking("chunking_strategy", r.ChunkingStrategy)
		if err != nil {
			return err
		}
		attrs, err := checkAttributes("attributes", r.Attributes)
		if err != nil {
			return err
		}
		for _, fid := range validate.Dedupe(r.FileIDs) {
			files = append(files, db.NewVectorStoreFile{FileID: fid, Chunking: cs, Attributes: attrs})
		}
	case r.Files != nil:
		if len(r.Files) == 0 {
			return respond.Invalid("files", "empty_array", "Invalid 'files': empty array. Expected an array with minimum length 1, but got an empty array instead.")
		}
		if err := checkArrayLen("files", len(r.Files), maxBatchFiles); err != nil {
			return err
		}
		for i, fr := range r.Files {
			f, err := h.buildFile(c, fmt.Sprintf("files[%d]", i), fr)
			if err != nil {
				return err
			}
			files = append(files, f)
		}
	default:
		return respond.Invalid("file_ids", "missing_required_parameter", "Missing required parameter: 'file_ids' (or 'files').")
	}
	b, err := h.vectors.CreateFileBatch(ctx, id, files)
	if err != nil {
		return respond.StoreErr(err, "vector store", id)
	}
	h.retriever.Wake()
	return c.JSON(http.StatusOK, b)
}

func batchPath(c *echo.Context) (string, string, error) {
	id, err := storePath(c)
	if err != nil {
		return "", "", err
	}
	batchID := c.Param("batch_id")
	return id, batchID, checkID("batch_id", batchID, "vsfb_")
}

// GetFileBatch handles GET /v1/vector_stores/{id}/file_batches/{batch_id}.
func (h *API) GetFileBatch(c *echo.Context) error {
	id, batchID, err := batchPath(c)
	if err != nil {
		return err
	}
	b, err := h.vectors.GetFileBatch(c.Request().Context(), id, batchID)
	if err != nil {
		return respond.StoreErr(err, "vector store file batch", batchID)
	}
	return c.JSON(http.StatusOK, b)
}

// CancelFileBatch handles POST .../file_batches/{batch_id}/cancel: files
// still in progress are cancelled.
func (h *API) CancelFileBatch(c *echo.Context) error {
	id, batchID, err := batchPath(c)
	if err != nil {
		return err
	}
	b, err := h.vectors.CancelFileBatch(c.Request().Context(), id, batchID)
	if err != nil {
		return respond.StoreErr(err, "vector store file batch", batchID)
	}
	return c.JSON(http.StatusOK, b)
}

// ListBatchFiles handles GET .../file_batches/{batch_id}/files.
func (h *API) ListBatchFiles(c *echo.Context) error {
	id, batchID, err := batchPath(c)
	if err != nil {
		return err
	}
	if _, err := h.vectors.GetFileBatch(c.Request().Context(), id, batchID); err != nil {
		return respond.StoreErr(err, "vector store file batch", batchID)
	}
	return h.listStoreFiles(c, id, batchID)
}

// searchQuery is a search's query: a string or an array of strings.
type searchQuery []string

func (q *searchQuery) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*q = searchQuery{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return respond.Invalid("query", "invalid_type", "Invalid type for 'query': expected a string or an array of strings.")
	}
	*q = ss
	return nil
}

type searchContent struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type searchResult struct {
	FileID     string          `json:"file_id"`
	Filename   string          `json:"filename"`
	Score      float64         `json:"score"`
	Attributes db.Attributes   `json:"attributes"`
	Content    []searchContent `json:"content"`
}

// SearchVectorStore handles POST /v1/vector_stores/{id}/search. With
// rewrite_query the queries are rewritten for search first (see
// Retriever.RewriteQueries); search_query shows the queries searched.
func (h *API) SearchVectorStore(c *echo.Context) error {
	id, err := storePath(c)
	if err != nil {
		return err
	}
	var r struct {
		Query          *searchQuery     `json:"query"`
		MaxNumResults  *int             `json:"max_num_results"`
		Filters        *json.RawMessage `json:"filters"`
		RankingOptions *struct {
			Ranker         *string  `json:"ranker"`
			ScoreThreshold *float64 `json:"score_threshold"`
		} `json:"ranking_options"`
		RewriteQuery *bool `json:"rewrite_query"`
	}
	if err := decodeBody(c.Request(), &r, false); err != nil {
		return err
	}
	if r.Query == nil {
		return respond.Invalid("query", "missing_required_parameter", "Missing required parameter: 'query'.")
	}
	queries := slices.DeleteFunc(slices.Clone(*r.Query), func(s string) bool { return s == "" })
	if len(queries) == 0 {
		return respond.Invalid("query", "invalid_value", "Invalid 'query': expected a non-empty string or array of strings.")
	}
	q := retrieval.Query{StoreIDs: []string{id}, Queries: queries, MaxResults: 10}
	if r.MaxNumResults != nil {
		if n := *r.MaxNumResults; n < 1 || n > maxSearchResult {
			return respond.Invalid("max_num_results", "invalid_value",
				"Invalid 'max_num_results': expected a value between 1 and %d, but got %d instead.", maxSearchResult, n)
		}
		q.MaxResults = *r.MaxNumResults
	}
	if ro := r.RankingOptions; ro != nil {
		if ro.Ranker != nil && !slices.Contains([]string{"none", "auto", "default-2024-11-15"}, *ro.Ranker) {
			return respond.Invalid("ranking_options.ranker", "invalid_value",
				"Invalid value: '%s'. Supported values are: 'none', 'auto', and 'default-2024-11-15'.", *ro.Ranker)
		}
		if t := ro.ScoreThreshold; t != nil {
			if *t < 0 || *t > 1 || math.IsNaN(*t) {
				return respond.Invalid("ranking_options.score_threshold", "invalid_value",
					"Invalid 'ranking_options.score_threshold': expected a value between 0 and 1.")
			}
			q.ScoreThreshold = *t
		}
	}
	if r.Filters != nil && string(bytes.TrimSpace(*r.Filters)) != "null" {
		var f retrieval.Filter
		if err := json.Unmarshal(*r.Filters, &f); err != nil {
			return respond.Invalid("filters", "invalid_value", "Invalid 'filters': %v.", err)
		}
		if err := f.Check(); err != nil {
			return respond.Invalid("filters", "invalid_value", "Invalid 'filters': %v.", err)
		}
		q.Filter = &f
	}
	ctx := c.Request().Context()
	if _, err := h.activeStore(ctx, id); err != nil {
		return err
	}
	// Rewritten only once the request is known good, so that a bad
	// request costs no upstream call.
	if r.RewriteQuery != nil && *r.RewriteQuery {
		q.Queries = h.retriever.RewriteQueries(ctx, q.Queries)
	}
	results, err := h.retriever.Search(ctx, q)
	if err != nil {
		return respond.Internal(err)
	}
	data := make([]searchResult, len(results))
	for i, res := range results {
		data[i] = searchResult{FileID: res.FileID, Filename: res.Filename, Score: res.Score, Attributes: res.Attributes,
			Content: []searchContent{{Type: "text", Text: res.Text}}}
	}
	return c.JSON(http.StatusOK, map[string]any{"object": "vector_store.search_results.page", "search_query": q.Queries,
		"data": data, "has_more": false, "next_page": nil})
}

// helperVectorStore creates the vector store of a tool_resources
// vector_stores helper entry ({file_ids, chunking_strategy, metadata}) and
// returns its id.
func (h *API) helperVectorStore(c *echo.Context, param string, raw json.RawMessage) (string, error) {
	var r struct {
		FileIDs          []string                  `json:"file_ids"`
		ChunkingStrategy *chunkingRequest          `json:"chunking_strategy"`
		Metadata         validate.Opt[db.Metadata] `json:"metadata"`
	}
	if err := validate.Strict(raw, &r); err != nil {
		return "", withPath(decodeError(err), raw)
	}
	v, files, err := h.buildVectorStore(c, param, vectorStoreRequest{FileIDs: r.FileIDs, ChunkingStrategy: r.ChunkingStrategy,
		Metadata: r.Metadata})
	if err != nil {
		return "", err
	}
	v, err = h.createVectorStore(c.Request().Context(), v, files)
	return v.ID, err
}

// threadVectorStore returns the vector store of a thread's file_search
// resources, creating and attaching one when it has none.
func (h *API) threadVectorStore(ctx context.Context, threadID string) (string, error) {
	t, err := h.store.GetThread(ctx, threadID)
	if err != nil {
		return "", err
	}
	if fs := t.ToolResources; fs != nil && fs.FileSearch != nil && len(fs.FileSearch.VectorStoreIDs) > 0 {
		return fs.FileSearch.VectorStoreIDs[0], nil
	}
	v, err := h.vectors.CreateVectorStore(ctx, db.VectorStore{}, nil)
	if err != nil {
		return "", err
	}
	var id string
	_, err = h.store.UpdateThread(ctx, threadID, func(t *db.Thread) error {
		if t.ToolResources == nil {
			t.ToolResources = &db.ToolResources{}
		}
		fs := t.ToolResources.FileSearch
		if fs != nil && len(fs.VectorStoreIDs) > 0 { // attached meanwhile
			id = fs.VectorStoreIDs[0]
			return nil
		}
		t.ToolResources.FileSearch = &db.FileSearchResources{VectorStoreIDs: []string{v.ID}}
		id = v.ID
		return nil
	})
	if err == nil && id != v.ID {
		err = h.vectors.DeleteVectorStore(ctx, v.ID)
	}
	return id, err
}

// attachForSearch adds the messages' file_search attachments to their
// thread's vector store (created when the thread has none).
func (h *API) attachForSearch(ctx context.Context, threadID string, msgs ...db.Message) error {
	if h.vectors == nil {
		return nil
	}
	var files []db.NewVectorStoreFile
	for _, m := range msgs {
		for _, a := range m.Attachments {
			if slices.ContainsFunc(a.Tools, func(t db.AttachmentTool) bool { return t.Type == "file_search" }) &&
				!slices.ContainsFunc(files, func(f db.NewVectorStoreFile) bool { return f.FileID == a.FileID }) {
				files = append(files, db.NewVectorStoreFile{FileID: a.FileID, Chunking: db.AutoChunking()})
			}
		}
	}
	if len(files) == 0 {
		return nil
	}
	id, err := h.threadVectorStore(ctx, threadID)
	if err != nil {
		return err
	}
	// A file already in the store keeps its chunks.
	files = slices.DeleteFunc(files, func(f db.NewVectorStoreFile) bool {
		_, err := h.vectors.GetVectorStoreFile(ctx, id, f.FileID)
		return err == nil
	})
	if len(files) == 0 {
		return nil
	}
	if err := h.vectors.AddVectorStoreFiles(ctx, id, files); err != nil {
		return err
	}
	h.retriever.Wake()
	return nil
}
