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

// adminKeyStore is what the admin keys page needs.
type adminKeyStore interface {
	ListAdminKeys(ctx context.Context) ([]db.AdminKey, error)
	CreateAdminKey(ctx context.Context, name, userID string) (db.AdminKey, string, error)
	RevokeAdminKey(ctx context.Context, id string) error
}

// AdminKeys handles GET /settings/admin-keys (instance admins): the keys
// of the Admin API under /v1/organization.
func (u *UI) AdminKeys(c *echo.Context) error {
	return u.renderAdminKeys(c, "", "")
}

func (u *UI) renderAdminKeys(c *echo.Context, name, secret string) error {
	keys, err := u.store.ListAdminKeys(c.Request().Context())
	if err != nil {
		return respond.Internal(err)
	}
	v := views.AdminKeysView{NewName: name, NewSecret: secret}
	for _, k := range keys {
		v.Keys = append(v.Keys, views.KeyRow{ID: k.ID, Name: k.Name, Hint: k.Hint, CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, RevokedAt: k.RevokedAt})
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return render(c, http.StatusOK, views.AdminKeysPage(u.page(c, "Admin keys", "admin-keys"), v))
}

// CreateAdminKey handles POST /settings/admin-keys (instance admins). The
// secret is rendered in this response only (no redirect, no-store).
func (u *UI) CreateAdminKey(c *echo.Context) error {
	name := strings.TrimSpace(c.FormValue("name"))
	if name == "" || utf8.RuneCountInString(name) > 100 {
		return u.flash(c, "/settings/admin-keys", "Give the key a name of at most 100 characters.", true)
	}
	if hasNul(name) {
		return u.flash(c, "/settings/admin-keys", "Key name: "+nulRefusal, true)
	}
	_, secret, err := u.store.CreateAdminKey(c.Request().Context(), name, currentUser(c).ID)
	if err != nil {
		return respond.Internal(err)
	}
	return u.renderAdminKeys(c, name, secret)
}

// RevokeAdminKey handles POST /settings/admin-keys/:key_id/revoke
// (instance admins): the key stops working at once.
func (u *UI) RevokeAdminKey(c *echo.Context) error {
	id := c.Param("key_id")
	if err := u.store.RevokeAdminKey(c.Request().Context(), id); err != nil {
		return respond.StoreErr(err, "admin key", id)
	}
	return u.flash(c, "/settings/admin-keys", "Admin key revoked.", false)
}
