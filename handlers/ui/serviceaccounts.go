package ui

import (
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/views"
)

// ServiceAccounts handles GET /settings/service_accounts: the current
// project's service accounts.
func (u *UI) ServiceAccounts(c *echo.Context) error {
	return u.renderServiceAccounts(c, http.StatusOK, views.ServiceAccountsView{})
}

func (u *UI) renderServiceAccounts(c *echo.Context, status int, v views.ServiceAccountsView) error {
	ctx := c.Request().Context()
	project := currentProject(c)
	sas, err := u.store.ListServiceAccounts(ctx, project)
	if err != nil {
		return respond.Internal(err)
	}
	keys, err := u.store.ListAPIKeys(ctx, project)
	if err != nil {
		return respond.Internal(err)
	}
	hint := map[string]string{}
	for _, k := range keys {
		if k.ServiceAccountID != "" && k.RevokedAt == nil {
			hint[k.ServiceAccountID] = k.Hint
		}
	}
	for _, sa := range sas {
		v.Accounts = append(v.Accounts, views.ServiceAccountRow{ID: sa.ID, Name: sa.Name, Role: sa.Role, CreatedAt: sa.CreatedAt, KeyHint: hint[sa.ID]})
	}
	w, err := u.workspaceOf(c)
	if err != nil {
		return err
	}
	v.Project = w.Name
	c.Response().Header().Set("Cache-Control", "no-store")
	return render(c, status, views.ServiceAccountsPage(u.page(c, "Service accounts", "keys"), v))
}

// CreateServiceAccount handles POST /settings/service_accounts (project
// owners). Its key is rendered in this response only (no redirect,
// no-store), never again.
func (u *UI) CreateServiceAccount(c *echo.Context) error {
	typed, role := c.FormValue("name"), c.FormValue("role")
	name := strings.TrimSpace(typed)
	var refused string
	switch {
	case name == "" || utf8.RuneCountInString(name) > maxKeyNameRunes:
		refused = "Give the service account a name of at most 100 characters."
	case hasNul(name):
		refused = "Service account name: " + nulRefusal
	case role != "member" && role != "owner":
		refused = "Pick a role: member or owner."
	}
	if refused != "" {
		return u.renderServiceAccounts(c, http.StatusUnprocessableEntity,
			views.ServiceAccountsView{FormName: typed, FormRole: role, Errors: []string{refused}})
	}
	sa, _, secret, err := u.store.CreateServiceAccount(c.Request().Context(), currentProject(c), name, role)
	if err != nil {
		return respond.Internal(err)
	}
	u.cfg.Log.Info("service account created", "project", sa.ProjectID, "service_account", sa.ID, "by", currentUser(c).Email)
	return u.renderServiceAccounts(c, http.StatusOK, views.ServiceAccountsView{NewName: sa.Name, NewSecret: secret})
}

// DeleteServiceAccount handles POST
// /settings/service_accounts/:service_account_id/delete (project owners):
// its key stops working at once. One of another project is not found.
func (u *UI) DeleteServiceAccount(c *echo.Context) error {
	id := c.Param("service_account_id")
	if err := u.store.DeleteServiceAccount(c.Request().Context(), currentProject(c), id); err != nil {
		return respond.StoreErr(err, "service account", clip(id, maxIDLen))
	}
	return u.flash(c, "/settings/service_accounts", "Service account deleted; its key no longer works.", false)
}
