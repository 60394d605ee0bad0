package ui

import (
	"context"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/views"
)

// keyStore is what the API keys page needs.
type keyStore interface {
	ListAPIKeys(ctx context.Context, projectID string) ([]db.APIKey, error)
	CreateAPIKey(ctx context.Context, o db.KeyOptions) (db.APIKey, string, error)
	RevokeAPIKey(ctx context.Context, projectID, id string) error
}

// Keys handles GET /settings/keys: the current project's keys.
func (u *UI) Keys(c *echo.Context) error {
	return u.renderKeys(c, http.StatusOK, views.KeysView{})
}

func (u *UI) renderKeys(c *echo.Context, status int, v views.KeysView) error {
	ctx := c.Request().Context()
	project := currentProject(c)
	keys, err := u.store.ListAPIKeys(ctx, project)
	if err != nil {
		return respond.Internal(err)
	}
	owners, err := u.keyOwners(ctx, project)
	if err != nil {
		return respond.Internal(err)
	}
	now := u.cfg.Now().Unix()
	for _, k := range keys {
		owner := owners[k.UserID]
		if k.ServiceAccountID != "" {
			owner = owners[k.ServiceAccountID]
		}
		v.Keys = append(v.Keys, views.KeyRow{ID: k.ID, Name: k.Name, Hint: k.Hint, Owner: owner, CreatedAt: k.CreatedAt,
			LastUsedAt: k.LastUsedAt, ExpiresAt: k.ExpiresAt, Expired: k.ExpiresAt != nil && *k.ExpiresAt <= now,
			ReadOnly: k.ReadOnly, RevokedAt: k.RevokedAt})
	}
	w, err := u.workspaceOf(c)
	if err != nil {
		return err
	}
	v.Project = w.Name
	v.MinDate = u.cfg.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
	c.Response().Header().Set("Cache-Control", "no-store")
	return render(c, status, views.KeysPage(u.page(c, "API keys", "keys"), v))
}

// keyOwners names who keys belong to: people by email (anyone, members or
// not: a key outlives its maker's membership) and service accounts by
// name ("service account …").
func (u *UI) keyOwners(ctx context.Context, project string) (map[string]string, error) {
	users, err := u.store.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	sas, err := u.store.ListServiceAccounts(ctx, project)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(users)+len(sas))
	for _, usr := range users {
		out[usr.ID] = usr.Email
	}
	for _, sa := range sas {
		out[sa.ID] = "service account " + sa.Name
	}
	return out, nil
}

// maxKeyNameRunes bounds a key's (and a service account's) name.
const maxKeyNameRunes = 100

// CreateKey handles POST /settings/keys (project owners): a key of the
// current project, made for the person creating it, with an optional
// expiry date and read-only access. The secret is rendered in this
// response only (no redirect, no-store), never again.
func (u *UI) CreateKey(c *echo.Context) error {
	// What was typed is shown again as typed when the form is refused.
	f := views.KeyForm{Name: c.FormValue("name"), Expires: strings.TrimSpace(c.FormValue("expires")),
		ReadOnly: c.FormValue("read_only") == "on"}
	name := strings.TrimSpace(f.Name)
	switch {
	case name == "" || utf8.RuneCountInString(name) > maxKeyNameRunes:
		f.Errors = append(f.Errors, "Give the key a name of at most 100 characters.")
	case hasNul(name):
		f.Errors = append(f.Errors, "Key name: "+nulRefusal)
	}
	opts := db.KeyOptions{ProjectID: currentProject(c), Name: name, UserID: currentUser(c).ID, ReadOnly: f.ReadOnly}
	if f.Expires != "" {
		day, err := time.Parse(time.DateOnly, f.Expires)
		switch {
		case err != nil:
			f.Errors = append(f.Errors, "The expiry is not a date (YYYY-MM-DD).")
			f.Expires = ""
		case !day.After(u.cfg.Now().UTC().Truncate(24 * time.Hour)):
			f.Errors = append(f.Errors, "The expiry date must be after today.")
		default:
			// The key works through the whole day chosen, in UTC.
			end := day.AddDate(0, 0, 1).Unix()
			opts.ExpiresAt = &end
		}
	}
	if len(f.Errors) > 0 {
		return u.renderKeys(c, http.StatusUnprocessableEntity, views.KeysView{Form: f})
	}
	_, secret, err := u.store.CreateAPIKey(c.Request().Context(), opts)
	if err != nil {
		return respond.Internal(err)
	}
	u.cfg.Log.Info("api key created", "project", opts.ProjectID, "name", name, "by", currentUser(c).Email)
	return u.renderKeys(c, http.StatusOK, views.KeysView{NewName: name, NewSecret: secret})
}

// RevokeKey handles POST /settings/keys/:key_id/revoke (project owners).
// A key of another project is not found.
func (u *UI) RevokeKey(c *echo.Context) error {
	id := c.Param("key_id")
	if err := u.store.RevokeAPIKey(c.Request().Context(), currentProject(c), id); err != nil {
		return respond.StoreErr(err, "API key", clip(id, maxIDLen))
	}
	return u.flash(c, "/settings/keys", "Key revoked.", false)
}
