package ui

import (
	"context"
	"net/http"
	"strings"
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

// Keys handles GET /settings/keys.
func (u *UI) Keys(c *echo.Context) error {
	return u.renderKeys(c, "", "")
}

func (u *UI) renderKeys(c *echo.Context, name, secret string) error {
	keys, err := u.store.ListAPIKeys(c.Request().Context(), currentProject(c))
	if err != nil {
		return respond.Internal(err)
	}
	v := views.KeysView{NewName: name, NewSecret: secret}
	for _, k := range keys {
		v.Keys = append(v.Keys, views.KeyRow{ID: k.ID, Name: k.Name, Hint: k.Hint, CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, RevokedAt: k.RevokedAt})
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return render(c, http.StatusOK, views.KeysPage(u.page(c, "API keys", "keys"), v))
}

// CreateKey handles POST /settings/keys (admins). The secret is rendered
// in this response only (no redirect, no-store), never again.
func (u *UI) CreateKey(c *echo.Context) error {
	name := strings.TrimSpace(c.FormValue("name"))
	if name == "" || utf8.RuneCountInString(name) > 100 {
		return u.flash(c, "/settings/keys", "Give the key a name of at most 100 characters.", true)
	}
	if hasNul(name) {
		return u.flash(c, "/settings/keys", "Key name: "+nulRefusal, true)
	}
	_, secret, err := u.store.CreateAPIKey(c.Request().Context(), db.KeyOptions{ProjectID: currentProject(c), Name: name, UserID: currentUser(c).ID})
	if err != nil {
		return respond.Internal(err)
	}
	return u.renderKeys(c, name, secret)
}

// RevokeKey handles POST /settings/keys/:key_id/revoke (admins).
func (u *UI) RevokeKey(c *echo.Context) error {
	id := c.Param("key_id")
	if err := u.store.RevokeAPIKey(c.Request().Context(), currentProject(c), id); err != nil {
		return respond.StoreErr(err, "API key", id)
	}
	return u.flash(c, "/settings/keys", "Key revoked.", false)
}
