package ui

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/views"
)

// maxProjectNameRunes bounds a project's name.
const maxProjectNameRunes = 100

// checkProjectName returns what is wrong with a project name, or "".
func checkProjectName(name string) string {
	switch {
	case name == "" || utf8.RuneCountInString(name) > maxProjectNameRunes:
		return "Give the project a name of at most 100 characters."
	case hasNul(name):
		return "Project name: " + nulRefusal
	}
	return ""
}

// Projects handles GET /settings/projects (admins): every project,
// archived ones too.
func (u *UI) Projects(c *echo.Context) error {
	return u.renderProjects(c, http.StatusOK, views.ProjectsView{})
}

func (u *UI) renderProjects(c *echo.Context, status int, v views.ProjectsView) error {
	ctx := c.Request().Context()
	ps, err := u.store.ListProjects(ctx, true)
	if err != nil {
		return respond.Internal(err)
	}
	current := currentProject(c)
	for _, p := range ps {
		ms, err := u.store.ListMembers(ctx, p.ID)
		if err != nil {
			return respond.Internal(err)
		}
		v.Projects = append(v.Projects, views.ProjectRow{ID: p.ID, Name: p.Name, CreatedAt: p.CreatedAt, ArchivedAt: p.ArchivedAt,
			Members: len(ms), Current: p.ID == current})
	}
	v.Default = db.DefaultProjectID
	return render(c, status, views.ProjectsPage(u.page(c, "Projects", "projects"), v))
}

// CreateProject handles POST /settings/projects (admins).
func (u *UI) CreateProject(c *echo.Context) error {
	typed := c.FormValue("name")
	name := strings.TrimSpace(typed)
	if msg := checkProjectName(name); msg != "" {
		return u.renderProjects(c, http.StatusUnprocessableEntity, views.ProjectsView{NewName: typed, Errors: []string{msg}})
	}
	p, err := u.store.CreateProject(c.Request().Context(), name)
	if err != nil {
		return respond.Internal(err)
	}
	u.cfg.Log.Info("project created", "project", p.ID, "name", p.Name, "admin", currentUser(c).Email)
	return u.flash(c, "/settings/projects", "Project "+p.Name+" created.", false)
}

// RenameProject handles POST /settings/projects/:project_id/rename (admins).
func (u *UI) RenameProject(c *echo.Context) error {
	id, name := c.Param("project_id"), strings.TrimSpace(c.FormValue("name"))
	if msg := checkProjectName(name); msg != "" {
		return u.flash(c, "/settings/projects", msg, true)
	}
	_, err := u.store.RenameProject(c.Request().Context(), id, name)
	if errors.Is(err, db.ErrArchived) {
		return u.flash(c, "/settings/projects", "An archived project cannot be renamed.", true)
	}
	if err != nil {
		return respond.StoreErr(err, "project", clip(id, maxIDLen))
	}
	return u.flash(c, "/settings/projects", "Project renamed to "+name+".", false)
}

// ArchiveProject handles POST /settings/projects/:project_id/archive
// (admins): its keys stop working at once and it leaves the switcher; its
// objects are kept. The Default project cannot be archived.
func (u *UI) ArchiveProject(c *echo.Context) error {
	id := c.Param("project_id")
	p, err := u.store.ArchiveProject(c.Request().Context(), id)
	if errors.Is(err, db.ErrDefaultProject) {
		return u.flash(c, "/settings/projects", "The Default project cannot be archived.", true)
	}
	if err != nil {
		return respond.StoreErr(err, "project", clip(id, maxIDLen))
	}
	u.cfg.Log.Info("project archived", "project", p.ID, "admin", currentUser(c).Email)
	return u.flash(c, "/settings/projects", "Project "+p.Name+" archived; its keys no longer work.", false)
}

// Members handles GET /settings/members: the current project's people.
// Everyone in it may look; owners change it.
func (u *UI) Members(c *echo.Context) error {
	return u.renderMembers(c, http.StatusOK, views.MembersView{})
}

// renderMembers renders the members page with v's add form (what was
// typed, why it was refused) and status.
func (u *UI) renderMembers(c *echo.Context, status int, v views.MembersView) error {
	ctx := c.Request().Context()
	project := currentProject(c)
	ms, err := u.store.ListMembers(ctx, project)
	if err != nil {
		return respond.Internal(err)
	}
	w, err := u.workspaceOf(c)
	if err != nil {
		return err
	}
	me := currentUser(c)
	v.Project, v.Roles = w.Name, db.ProjectRoles
	in := map[string]bool{}
	for _, m := range ms {
		in[m.User.ID] = true
		v.Members = append(v.Members, views.MemberRow{UserID: m.User.ID, Email: m.User.Email, Role: m.Role, AddedAt: m.AddedAt,
			IsAdmin: m.User.Role == db.RoleAdmin, IsMe: m.User.ID == me.ID})
	}
	if isAdmin(c) { // the list of every account is for admins; owners type an address
		users, err := u.store.ListUsers(ctx)
		if err != nil {
			return respond.Internal(err)
		}
		for _, usr := range users {
			if !in[usr.ID] {
				v.Candidates = append(v.Candidates, views.MemberCandidate{ID: usr.ID, Email: usr.Email})
			}
		}
	}
	return render(c, status, views.MembersPage(u.page(c, "Members", "members"), v))
}

// AddMember handles POST /settings/members (project owners): adds the
// user with the email address given to the current project with a role.
// Owners who are not admins of the server do not see the list of every
// account; they name the person.
func (u *UI) AddMember(c *echo.Context) error {
	typed, role := c.FormValue("email"), c.FormValue("role")
	email := strings.TrimSpace(typed)
	refuse := func(msg string) error {
		return u.renderMembers(c, http.StatusUnprocessableEntity, views.MembersView{Email: typed, Role: role, Errors: []string{msg}})
	}
	if !slices.Contains(db.ProjectRoles, role) {
		return refuse("Pick a role: owner, editor or viewer.")
	}
	if email == "" {
		return refuse("Type the e-mail address of the person to add.")
	}
	users, err := u.store.ListUsers(c.Request().Context())
	if err != nil {
		return respond.Internal(err)
	}
	for _, usr := range users {
		if strings.EqualFold(usr.Email, email) {
			return u.setMember(c, usr.ID, "added")
		}
	}
	return refuse("No account has the address " + strings.ToValidUTF8(clip(email, 320), "") + ". Admins of the server add accounts on the Users page.")
}

// SetMemberRole handles POST /settings/members/:user_id/role (project
// owners).
func (u *UI) SetMemberRole(c *echo.Context) error {
	id := c.Param("user_id")
	if _, err := u.store.GetMember(c.Request().Context(), currentProject(c), id); err != nil {
		return respond.StoreErr(err, "member", clip(id, maxIDLen))
	}
	return u.setMember(c, id, "changed")
}

func (u *UI) setMember(c *echo.Context, userID, done string) error {
	ctx := c.Request().Context()
	role := c.FormValue("role")
	if !slices.Contains(db.ProjectRoles, role) {
		return &respond.Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Message: "Pick a role: owner, editor or viewer."}
	}
	usr, err := u.store.GetUser(ctx, userID)
	if err != nil {
		return respond.StoreErr(err, "user", clip(userID, maxIDLen))
	}
	// An owner who is not an instance admin cannot leave the project
	// without an owner (themselves included): nobody else could then
	// manage it.
	set := u.store.SetMember
	if !isAdmin(c) {
		set = u.store.SetMemberKeepingOwner
	}
	err = set(ctx, currentProject(c), usr.ID, role)
	if errors.Is(err, db.ErrLastOwner) {
		return u.flash(c, "/settings/members", usr.Email+" is the project's only owner: make someone else an owner first.", true)
	}
	if err != nil {
		return respond.Internal(err)
	}
	u.cfg.Log.Info("project member "+done, "project", currentProject(c), "user", usr.Email, "role", role, "by", currentUser(c).Email)
	return u.flash(c, "/settings/members", usr.Email+" is now "+role+".", false)
}

// RemoveMember handles POST /settings/members/:user_id/remove (project
// owners). The person's sign-in stays; they no longer see the project.
func (u *UI) RemoveMember(c *echo.Context) error {
	id := c.Param("user_id")
	ctx := c.Request().Context()
	m, err := u.store.GetMember(ctx, currentProject(c), id)
	if err != nil {
		return respond.StoreErr(err, "member", clip(id, maxIDLen))
	}
	remove := u.store.RemoveMember
	if !isAdmin(c) {
		remove = u.store.RemoveMemberKeepingOwner
	}
	err = remove(ctx, currentProject(c), id)
	if errors.Is(err, db.ErrLastOwner) {
		return u.flash(c, "/settings/members", m.User.Email+" is the project's only owner: make someone else an owner first.", true)
	}
	if err != nil {
		return respond.StoreErr(err, "member", clip(id, maxIDLen))
	}
	u.cfg.Log.Info("project member removed", "project", currentProject(c), "user", m.User.Email, "by", currentUser(c).Email)
	return u.flash(c, "/settings/members", m.User.Email+" removed from the project.", false)
}
