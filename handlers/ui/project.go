package ui

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/views"
)

// projectStore is what the project switcher, the project pages and the
// role checks need.
type projectStore interface {
	ListProjects(ctx context.Context, includeArchived bool) ([]db.Project, error)
	ListUserProjects(ctx context.Context, userID string) ([]db.ProjectMembership, error)
	GetProject(ctx context.Context, id string) (db.Project, error)
	CreateProject(ctx context.Context, name string) (db.Project, error)
	RenameProject(ctx context.Context, id, name string) (db.Project, error)
	ArchiveProject(ctx context.Context, id string) (db.Project, error)
	SetMember(ctx context.Context, projectID, userID, role string) error
	RemoveMember(ctx context.Context, projectID, userID string) error
	SetMemberKeepingOwner(ctx context.Context, projectID, userID, role string) error
	RemoveMemberKeepingOwner(ctx context.Context, projectID, userID string) error
	GetMember(ctx context.Context, projectID, userID string) (db.Member, error)
	ListMembers(ctx context.Context, projectID string) ([]db.Member, error)
	CreateServiceAccount(ctx context.Context, projectID, name, role string) (db.ServiceAccount, db.APIKey, string, error)
	ListServiceAccounts(ctx context.Context, projectID string) ([]db.ServiceAccount, error)
	DeleteServiceAccount(ctx context.Context, projectID, id string) error
	ListUsage(ctx context.Context, projectID string, since time.Time) ([]db.DailyUsage, error)
}

// workspace is the project a signed-in person works in on this request,
// their role there and the projects they may switch to. It is worked out
// afresh on every request from the store: the session only names the
// project last chosen, and a choice that is no longer allowed (the person
// was removed, the project archived) falls back to their first project.
type workspace struct {
	ID, Name string
	Role     string // owner, editor or viewer; instance admins act as owners
	Choices  []views.ProjectChoice
}

const (
	ctxWorkspace   = "ui_workspace"
	sessionProject = "project"
)

// projectRank orders project roles; an instance admin counts as an owner.
var projectRank = map[string]int{db.ProjectViewer: 1, db.ProjectEditor: 2, db.ProjectOwner: 3}

// isAdmin reports whether the signed-in person is an instance admin
// (users.role admin): they manage users and projects, and act as an owner
// in every project.
func isAdmin(c *echo.Context) bool {
	usr := currentUser(c)
	return usr != nil && usr.Role == db.RoleAdmin
}

// workspaceOf returns the signed-in person's workspace (ID "" when they
// belong to no project), worked out once per request.
func (u *UI) workspaceOf(c *echo.Context) (*workspace, error) {
	if w, ok := c.Get(ctxWorkspace).(*workspace); ok {
		return w, nil
	}
	usr := currentUser(c)
	if usr == nil {
		return &workspace{}, nil
	}
	ctx := c.Request().Context()
	var choices []views.ProjectChoice
	roles := map[string]string{}
	if usr.Role == db.RoleAdmin {
		ps, err := u.store.ListProjects(ctx, false)
		if err != nil {
			return nil, respond.Internal(err)
		}
		for _, p := range ps {
			choices = append(choices, views.ProjectChoice{ID: p.ID, Name: p.Name})
			roles[p.ID] = db.ProjectOwner
		}
	} else {
		ms, err := u.store.ListUserProjects(ctx, usr.ID)
		if err != nil {
			return nil, respond.Internal(err)
		}
		for _, m := range ms {
			choices = append(choices, views.ProjectChoice{ID: m.Project.ID, Name: m.Project.Name})
			roles[m.Project.ID] = m.Role
		}
	}
	w := &workspace{Choices: choices}
	if len(choices) > 0 {
		pick := choices[0]
		if s, ok := c.Get(ctxSession).(*sessions.Session); ok {
			if want, _ := s.Values[sessionProject].(string); want != "" {
				for _, ch := range choices {
					if ch.ID == want {
						pick = ch
					}
				}
			}
		}
		w.ID, w.Name, w.Role = pick.ID, pick.Name, roles[pick.ID]
	}
	c.Set(ctxWorkspace, w)
	return w, nil
}

// currentProject is the project the signed-in person is working in: the
// one chosen in the switcher if they may still enter it, else their first
// project. "" when they belong to none (project pages are refused then,
// see RequireMember).
func currentProject(c *echo.Context) string {
	if w, ok := c.Get(ctxWorkspace).(*workspace); ok {
		return w.ID
	}
	return ""
}

// projectRole is the signed-in person's role in the current project ("" if
// none).
func projectRole(c *echo.Context) string {
	if w, ok := c.Get(ctxWorkspace).(*workspace); ok {
		return w.Role
	}
	return ""
}

// canEdit reports whether the signed-in person may change the current
// project's objects (editors and owners).
func canEdit(c *echo.Context) bool {
	return projectRank[projectRole(c)] >= projectRank[db.ProjectEditor]
}

// RequireMember lets through signed-in people who work in a project (every
// instance admin does); anyone else gets a page saying they belong to no
// project. Every project page carries it (or RequireRole).
func (u *UI) RequireMember(next echo.HandlerFunc) echo.HandlerFunc {
	return u.RequireUser(func(c *echo.Context) error {
		if currentProject(c) == "" {
			return &respond.Error{Status: http.StatusForbidden, Type: "invalid_request_error",
				Message: "You are not a member of any project yet, so there is nothing to show. Ask an admin of this server to add you to a project."}
		}
		return next(c)
	})
}

// RequireRole refuses requests from people whose role in the current
// project is below role (db.ProjectEditor or db.ProjectOwner); instance
// admins act as owners. Every state-changing project route carries it:
// hiding buttons is not enough. A role that is not a project role (such
// as db.RoleAdmin: use RequireAdmin) is a mistake in the route table, and
// panics when the routes are built rather than let anyone through.
func (u *UI) RequireRole(role string) echo.MiddlewareFunc {
	if projectRank[role] == 0 {
		panic("ui.RequireRole: " + role + " is not a project role")
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return u.RequireMember(func(c *echo.Context) error {
			if have := projectRole(c); projectRank[have] < projectRank[role] {
				w, _ := c.Get(ctxWorkspace).(*workspace)
				return &respond.Error{Status: http.StatusForbidden, Type: "invalid_request_error",
					Message: "Your role in " + w.Name + " (" + have + ") may not do this; it needs " + role + " access."}
			}
			return next(c)
		})
	}
}

// RequireAdmin refuses requests from people who are not instance admins:
// users, projects and the server's own settings.
func (u *UI) RequireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return u.RequireUser(func(c *echo.Context) error {
		if !isAdmin(c) {
			return &respond.Error{Status: http.StatusForbidden, Type: "invalid_request_error",
				Message: "Only admins of this server may do this."}
		}
		return next(c)
	})
}

// SwitchProject handles POST /projects/switch: remembers the chosen
// project in the session, if the person may enter it, and goes back to the
// section they were in (its list, since an object of one project is not
// found in another).
func (u *UI) SwitchProject(c *echo.Context) error {
	id := c.FormValue("project_id")
	w, err := u.workspaceOf(c)
	if err != nil {
		return err
	}
	var name string
	for _, ch := range w.Choices {
		if ch.ID == id {
			name = ch.Name
		}
	}
	if name == "" {
		// Not one of theirs (or archived, or made up): as if it did not exist.
		return &respond.Error{Status: http.StatusNotFound, Type: "invalid_request_error", Message: "No such project."}
	}
	s, _ := c.Get(ctxSession).(*sessions.Session)
	if s == nil {
		return respond.Internal(errNoSession)
	}
	s.Values[sessionProject] = id
	return u.flash(c, safeNext(c.FormValue("next")), "You are now working in "+name+".", false)
}

// sectionOf returns the list page of the section path belongs to
// ("/threads/thread_1" → "/threads", "/settings/keys/x" → "/settings/keys"):
// where the switcher returns to, since an object of one project is not
// found in another.
func sectionOf(path string) string {
	parts := strings.SplitN(strings.TrimPrefix(path, "/"), "/", 3)
	switch {
	case parts[0] == "":
		return "/"
	case parts[0] == "settings" && len(parts) > 1:
		return "/settings/" + url.PathEscape(parts[1])
	}
	return "/" + url.PathEscape(parts[0])
}

var errNoSession = errors.New("no session")
