package db

import (
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Upload statuses.
const (
	UploadPending   = "pending"
	UploadCompleted = "completed"
	UploadCancelled = "cancelled"
	UploadExpired   = "expired"
)

// uploadTTL is how long an upload accepts parts (OpenAI: one hour).
const uploadTTL = 3600

// Upload is a multi-part upload as the API shows it; File is set once it
// is completed.
type Upload struct {
	ID        string `json:"id"`
	Object    string `json:"object"`
	Bytes     int64  `json:"bytes"`
	CreatedAt int64  `json:"created_at"`
	Filename  string `json:"filename"`
	Purpose   string `json:"purpose"`
	Status    string `json:"status"`
	ExpiresAt int64  `json:"expires_at"`
	File      *File  `json:"file"`

	MimeType         string `json:"-"`
	FileExpiresAfter int64  `json:"-"`
}

// UploadPart is one part of an upload.
type UploadPart struct {
	ID        string `json:"id"`
	Object    string `json:"object"`
	CreatedAt int64  `json:"created_at"`
	UploadID  string `json:"upload_id"`
}

// UploadError is a request the upload's state refuses (adding to a
// completed upload, completing with too few bytes …); its message is for
// the client.
type UploadError struct{ Msg string }

func (e *UploadError) Error() string { return e.Msg }

const uploadColumns = `id, created_at, filename, bytes, purpose, mime_type, status, expires_at, file_expires_after, file_id`

func (s *Store) scanUpload(ctx context.Context, row rowScanner) (Upload, error) {
	var u Upload
	var fileID sql.NullString
	if err := row.Scan(&u.ID, &u.CreatedAt, &u.Filename, &u.Bytes, &u.Purpose, &u.MimeType, &u.Status, &u.ExpiresAt,
		&u.FileExpiresAfter, &fileID); err != nil {
		return u, err
	}
	u.Object = "upload"
	if u.Status == UploadPending && u.ExpiresAt <= s.now().Unix() {
		u.Status = UploadExpired
	}
	if fileID.Valid {
		f, err := s.GetFile(ctx, fileID.String)
		if err == nil {
			u.File = &f
		} else if !errors.Is(err, ErrNotFound) {
			return u, err
		}
	}
	return u, nil
}

func (s *Store) uploadDir(id string) string {
	return filepath.Join(s.dir, "uploads", filepath.Base(id))
}

// CreateUpload records a pending upload.
func (s *Store) CreateUpload(ctx context.Context, u Upload) (Upload, error) {
	u.ID, u.Object, u.CreatedAt, u.Status = NewID("upload_"), "upload", s.now().Unix(), UploadPending
	u.ExpiresAt = u.CreatedAt + uploadTTL
	project, err := ProjectFrom(ctx)
	if err != nil {
		return u, fmt.Errorf("create upload: %w", err)
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO uploads (id, created_at, filename, bytes, purpose, mime_type, status,
		expires_at, file_expires_after, project_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, u.ID, u.CreatedAt, u.Filename,
		u.Bytes, u.Purpose, u.MimeType, u.Status, u.ExpiresAt, u.FileExpiresAfter, project)
	if err != nil {
		return u, fmt.Errorf("create upload: %w", err)
	}
	return u, nil
}

// GetUpload returns the upload with id, or ErrNotFound.
func (s *Store) GetUpload(ctx context.Context, id string) (Upload, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return Upload{}, fmt.Errorf("get upload %s: %w", id, err)
	}
	u, err := s.scanUpload(ctx, s.r.QueryRowContext(ctx, `SELECT `+uploadColumns+` FROM uploads WHERE id = $1 AND project_id = $2`,
		id, project))
	if errors.Is(err, sql.ErrNoRows) {
		return u, ErrNotFound
	}
	if err != nil {
		return u, fmt.Errorf("get upload %s: %w", id, err)
	}
	return u, nil
}

// MaxUploadParts bounds the parts of one upload.
const MaxUploadParts = 10000

// AddUploadPart stores one part (at most limit bytes) of a pending upload.
// The parts together hold at most the upload's bytes, and number at most
// MaxUploadParts; both, and that the upload is still pending, are checked
// again in the statement that records the part, so a part racing a cancel
// (or other parts) either is recorded before it or fails.
func (s *Store) AddUploadPart(ctx context.Context, uploadID string, content io.Reader, limit int64) (UploadPart, error) {
	u, err := s.GetUpload(ctx, uploadID)
	if err != nil {
		return UploadPart{}, err
	}
	if u.Status != UploadPending {
		return UploadPart{}, &UploadError{Msg: fmt.Sprintf("Upload %s is %s and accepts no more parts.", u.ID, u.Status)}
	}
	var stored, count int64
	if err := s.r.QueryRowContext(ctx, `SELECT coalesce(sum(bytes), 0), count(*) FROM upload_parts WHERE upload_id = $1`,
		uploadID).Scan(&stored, &count); err != nil {
		return UploadPart{}, fmt.Errorf("add upload part: %w", err)
	}
	if count >= MaxUploadParts {
		return UploadPart{}, &UploadError{Msg: fmt.Sprintf("Upload %s already has %d parts, the most an upload may have.", u.ID, count)}
	}
	tooMuch := &UploadError{Msg: fmt.Sprintf("The parts of upload %s would hold more than the %d bytes it was created with.", u.ID, u.Bytes)}
	room := u.Bytes - stored
	if room < 0 {
		return UploadPart{}, tooMuch
	}
	overRoom := false
	if room < limit {
		limit, overRoom = room, true
	}
	p := UploadPart{ID: NewID("part_"), Object: "upload.part", CreatedAt: s.now().Unix(), UploadID: uploadID}
	dir := s.uploadDir(uploadID)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return p, fmt.Errorf("add upload part: %w", err)
	}
	path := filepath.Join(dir, p.ID)
	f, err := os.Create(path)
	if err != nil {
		return p, fmt.Errorf("add upload part: %w", err)
	}
	n, err := io.Copy(f, io.LimitReader(content, limit+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > limit {
		err = ErrTooLarge
		if overRoom {
			err = tooMuch
		}
	}
	if err == nil {
		var res sql.Result
		res, err = s.w.ExecContext(ctx, `INSERT INTO upload_parts (id, upload_id, created_at, bytes)
			SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS BIGINT), CAST($4 AS BIGINT) FROM uploads u
			WHERE u.id = $2 AND u.status = 'pending' AND u.expires_at > $5
			AND (SELECT coalesce(sum(bytes), 0) FROM upload_parts WHERE upload_id = u.id) + $4 <= u.bytes
			AND (SELECT count(*) FROM upload_parts WHERE upload_id = u.id) < $6`,
			p.ID, uploadID, p.CreatedAt, n, s.now().Unix(), MaxUploadParts)
		if k, _ := rowsAffected(res, err); err == nil && k == 0 {
			err = &UploadError{Msg: fmt.Sprintf("Upload %s was cancelled, completed or expired, or its parts would hold "+
				"more than its %d bytes; the part was not added.", u.ID, u.Bytes)}
		}
	}
	if err != nil {
		os.Remove(path)
		os.Remove(dir) // when empty: a cancel removed it while this part was written
		var ue *UploadError
		if errors.As(err, &ue) {
			return p, err
		}
		return p, fmt.Errorf("add upload part: %w", err)
	}
	return p, nil
}

func rowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// CompleteUpload joins the named parts, in order, into a new file. The
// total must equal the upload's bytes, and md5 (hex, optional) must match.
func (s *Store) CompleteUpload(ctx context.Context, id string, partIDs []string, wantMD5 string) (Upload, error) {
	u, err := s.GetUpload(ctx, id)
	if err != nil {
		return u, err
	}
	if u.Status != UploadPending {
		return u, &UploadError{Msg: fmt.Sprintf("Upload %s is %s and cannot be completed.", u.ID, u.Status)}
	}
	var readers []io.Reader
	var total int64
	seen := make(map[string]bool, len(partIDs))
	for _, pid := range partIDs {
		if seen[pid] {
			return u, &UploadError{Msg: fmt.Sprintf("Part %s is listed more than once in part_ids.", pid)}
		}
		seen[pid] = true
		var n int64
		err := s.r.QueryRowContext(ctx, `SELECT bytes FROM upload_parts WHERE id = $1 AND upload_id = $2`, pid, id).Scan(&n)
		if errors.Is(err, sql.ErrNoRows) {
			return u, &UploadError{Msg: fmt.Sprintf("Part %s does not belong to upload %s.", pid, id)}
		}
		if err != nil {
			return u, err
		}
		f, err := os.Open(filepath.Join(s.uploadDir(id), filepath.Base(pid)))
		if err != nil {
			return u, fmt.Errorf("complete upload: %w", err)
		}
		defer f.Close()
		readers, total = append(readers, f), total+n
	}
	if total != u.Bytes {
		return u, &UploadError{Msg: fmt.Sprintf("The parts hold %d bytes, but the upload was created with bytes=%d.", total, u.Bytes)}
	}
	h := md5.New()
	staged, err := s.StageFile(io.TeeReader(io.MultiReader(readers...), h), total)
	if err != nil {
		return u, err
	}
	defer staged.Discard()
	if wantMD5 != "" && !strings.EqualFold(hex.EncodeToString(h.Sum(nil)), wantMD5) {
		return u, &UploadError{Msg: "The md5 checksum does not match the uploaded parts."}
	}
	f, err := s.CommitFile(ctx, File{Filename: u.Filename, Purpose: u.Purpose, ContentType: u.MimeType}, staged, u.FileExpiresAfter)
	if err != nil {
		return u, err
	}
	res, err := s.w.ExecContext(ctx, `UPDATE uploads SET status = 'completed', file_id = $1 WHERE id = $2 AND status = 'pending'`, f.ID, id)
	if err == nil {
		if n, _ := res.RowsAffected(); n == 0 {
			err = &UploadError{Msg: fmt.Sprintf("Upload %s is no longer pending.", id)}
		}
	}
	if err != nil {
		_ = s.DeleteFile(ctx, f.ID)
		return u, err
	}
	s.removeParts(ctx, id)
	return s.GetUpload(ctx, id)
}

// CancelUpload cancels a pending upload and drops its parts.
func (s *Store) CancelUpload(ctx context.Context, id string) (Upload, error) {
	u, err := s.GetUpload(ctx, id)
	if err != nil {
		return u, err
	}
	if u.Status != UploadPending {
		return u, &UploadError{Msg: fmt.Sprintf("Upload %s is %s and cannot be cancelled.", u.ID, u.Status)}
	}
	// Only while still pending: a completion that got there first stays.
	res, err := s.w.ExecContext(ctx, `UPDATE uploads SET status = 'cancelled' WHERE id = $1 AND status = 'pending'`, id)
	if err != nil {
		return u, fmt.Errorf("cancel upload: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return u, &UploadError{Msg: fmt.Sprintf("Upload %s is no longer pending.", id)}
	}
	s.removeParts(ctx, id)
	return s.GetUpload(ctx, id)
}

// removeParts deletes an upload's parts, which are no longer needed.
func (s *Store) removeParts(ctx context.Context, id string) {
	_, _ = s.w.ExecContext(ctx, `DELETE FROM upload_parts WHERE upload_id = $1`, id)
	_ = os.RemoveAll(s.uploadDir(id))
}

// ExpireUploads marks pending uploads past their expiry as expired and
// deletes their parts, which can no longer be completed; it returns how
// many it expired. It sweeps every project.
func (s *Store) ExpireUploads(ctx context.Context) (int, error) {
	ids, err := s.queryStrings(ctx, "find expired uploads",
		`SELECT id FROM uploads WHERE status = 'pending' AND expires_at <= $1`, s.now().Unix())
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		// Only a still-pending upload expires: one completing right now
		// keeps its parts until CompleteUpload is done with them.
		res, err := s.w.ExecContext(ctx, `UPDATE uploads SET status = 'expired' WHERE id = $1 AND status = 'pending'`, id)
		if err != nil {
			return n, fmt.Errorf("expire upload %s: %w", id, err)
		}
		if k, _ := res.RowsAffected(); k == 1 {
			s.removeParts(ctx, id)
			n++
		}
	}
	return n, nil
}
