package ui

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/views"
)

// userStore is what sign-in, setup and user management need.
type userStore interface {
	CountUsers(ctx context.Context) (int, error)
	GetUser(ctx context.Context, id string) (db.User, error)
	Authenticate(ctx context.Context, email, password string) (db.User, error)
	CreateUser(ctx context.Context, email, role, password string) (db.User, error)
	ListUsers(ctx context.Context) ([]db.User, error)
	SetUserRole(ctx context.Context, id, role string) error
	DeleteUser(ctx context.Context, id string) error
	SetPassword(ctx context.Context, id, password string) error
	CreateSession(ctx context.Context, userID string, now, expiresAt int64) (string, error)
	SessionUser(ctx context.Context, token string, now int64) (db.User, error)
	DeleteSession(ctx context.Context, token string) error
	DeleteUserSessions(ctx context.Context, userID string) (int, error)
	Setting(ctx context.Context, name, def string) (string, error)
	SetSetting(ctx context.Context, name, value string) error
}

// safeNext keeps a post-sign-in redirect on this site. Only a plain
// same-origin path is accepted; anything else becomes "/". Browsers drop
// tabs and newlines from URLs and read a backslash as a slash, so
// "/\t/evil.example" and "/\\evil.example" mean "//evil.example", another
// site: control characters, backslashes and a leading "//" are refused in
// the text as given and in every percent-decoded form of it (a later hop,
// such as a proxy or the router, may decode it again).
func safeNext(next string) string {
	const fallback = "/"
	s, settled := next, false
	for range 4 {
		if !sameOriginPath(s) {
			return fallback
		}
		d, err := url.PathUnescape(s)
		if err != nil {
			return fallback
		}
		if d == s {
			settled = true
			break
		}
		s = d
	}
	if !settled { // encoded four times over: nobody types that
		return fallback
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return fallback
	}
	return next
}

// sameOriginPath reports whether s is an absolute path on this site with
// nothing a browser would read as another origin.
func sameOriginPath(s string) bool {
	if len(s) == 0 || s[0] != '/' || len(s) > 2048 {
		return false
	}
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return false
	}
	for _, r := range s {
		if r == '\\' || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == utf8.RuneError {
			return false
		}
	}
	return true
}

// Home handles GET /.
func (u *UI) Home(c *echo.Context) error {
	if currentUser(c) == nil {
		n, err := u.store.CountUsers(c.Request().Context())
		if err != nil {
			return respond.Internal(err)
		}
		if n == 0 {
			return render(c, http.StatusOK, views.ErrorPage(u.page(c, "Set up", ""), views.ErrorView{Status: 200, Title: "Not set up yet",
				Message: "No user exists yet. Open the one-time setup link the server printed when it started, or start it with --admin-email and --admin-password."}))
		}
		return redirect(c, "/login")
	}
	return redirect(c, "/assistants")
}

// ShowLogin handles GET /login.
func (u *UI) ShowLogin(c *echo.Context) error {
	if currentUser(c) != nil {
		return redirect(c, safeNext(c.QueryParam("next")))
	}
	return render(c, http.StatusOK, views.LoginPage(u.page(c, "Sign in", ""), views.LoginForm{Next: c.QueryParam("next")}))
}

// Login handles POST /login. Repeated failures for one email from one
// address are refused for a while, which bounds online guessing.
func (u *UI) Login(c *echo.Context) error {
	email, password, next := c.FormValue("email"), c.FormValue("password"), c.FormValue("next")
	key := strings.ToLower(strings.TrimSpace(email)) + "|" + c.RealIP()
	if wait := u.failures.blocked(key, u.cfg.Now()); wait > 0 {
		return render(c, http.StatusTooManyRequests, views.LoginPage(u.page(c, "Sign in", ""), views.LoginForm{Email: email, Next: next,
			Error: fmt.Sprintf("Too many failed sign-ins. Try again in %d minutes.", int(wait.Minutes())+1)}))
	}
	usr, err := u.store.Authenticate(c.Request().Context(), email, password)
	if hasNul(email) && err != nil {
		err = db.ErrBadCredentials // no account has one (PostgreSQL refuses to even look it up)
	}
	if errors.Is(err, db.ErrBadCredentials) {
		u.failures.add(key, u.cfg.Now())
		u.cfg.Log.Info("sign-in refused", "email", email, "ip", c.RealIP())
		return render(c, http.StatusUnauthorized, views.LoginPage(u.page(c, "Sign in", ""),
			views.LoginForm{Email: email, Next: next, Error: "Wrong email or password."}))
	}
	if err != nil {
		return respond.Internal(err)
	}
	u.failures.reset(key)
	if err := u.signIn(c, usr); err != nil {
		return err
	}
	return redirect(c, safeNext(next))
}

// loginFailures counts recent failed sign-ins per email and address.
type loginFailures struct {
	mu   sync.Mutex
	seen map[string][]time.Time
}

const (
	maxLoginFailures = 10
	loginWindow      = 15 * time.Minute
)

func (l *loginFailures) recent(key string, now time.Time) []time.Time {
	var keep []time.Time
	for _, t := range l.seen[key] {
		if now.Sub(t) < loginWindow {
			keep = append(keep, t)
		}
	}
	if len(keep) == 0 {
		delete(l.seen, key)
	} else {
		l.seen[key] = keep
	}
	return keep
}

// blocked returns how long key must wait, or 0.
func (l *loginFailures) blocked(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.recent(key, now)
	if len(r) < maxLoginFailures {
		return 0
	}
	return loginWindow - now.Sub(r[0])
}

func (l *loginFailures) add(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string][]time.Time{}
	}
	if len(l.seen) > 100000 { // bound memory under a flood of distinct keys
		l.seen = map[string][]time.Time{}
	}
	l.seen[key] = append(l.recent(key, now), now)
}

func (l *loginFailures) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.seen, key)
}

// signIn starts a fresh session for usr: a new server-side session (whose
// row sets the absolute expiry) and a new CSRF token. A session the
// browser held before is ended.
func (u *UI) signIn(c *echo.Context, usr db.User) error {
	s, _ := c.Get(ctxSession).(*sessions.Session)
	if s == nil {
		return respond.Internal(errors.New("no session"))
	}
	ctx := c.Request().Context()
	if err := u.endSession(c, s); err != nil {
		return err
	}
	now := u.cfg.Now()
	sid, err := u.store.CreateSession(ctx, usr.ID, now.Unix(), now.Add(u.cfg.SessionTTL).Unix())
	if err != nil {
		return respond.Internal(err)
	}
	s.Values["sid"] = sid
	s.Values["csrf"] = randomToken()
	c.Set(ctxUser, &usr)
	c.Set(ctxCSRF, s.Values["csrf"])
	return u.saveSession(c, s)
}

// endSession deletes the browser's server-side session, if any, and
// empties the cookie's values.
func (u *UI) endSession(c *echo.Context, s *sessions.Session) error {
	if sid, _ := s.Values["sid"].(string); sid != "" {
		if err := u.store.DeleteSession(c.Request().Context(), sid); err != nil {
			return respond.Internal(err)
		}
	}
	for k := range s.Values {
		delete(s.Values, k)
	}
	return nil
}

// Logout handles POST /logout: the session ends on the server, so a copy
// of the cookie stops working too.
func (u *UI) Logout(c *echo.Context) error {
	if s, _ := c.Get(ctxSession).(*sessions.Session); s != nil {
		if err := u.endSession(c, s); err != nil {
			return err
		}
		s.Values["csrf"] = randomToken()
		if err := u.saveSession(c, s); err != nil {
			return err
		}
	}
	return redirect(c, "/login")
}

// RevokeMySessions handles POST /settings/account/sessions/revoke: "sign
// out everywhere" for the signed-in user, this browser included.
func (u *UI) RevokeMySessions(c *echo.Context) error {
	me := currentUser(c)
	if _, err := u.store.DeleteUserSessions(c.Request().Context(), me.ID); err != nil {
		return respond.Internal(err)
	}
	u.cfg.Log.Info("signed out everywhere", "user", me.Email)
	if s, _ := c.Get(ctxSession).(*sessions.Session); s != nil {
		for k := range s.Values {
			delete(s.Values, k)
		}
		s.Values["csrf"] = randomToken()
	}
	return u.flash(c, "/login", "You are signed out everywhere.", false)
}

// RevokeUserSessions handles POST /settings/users/:user_id/sessions/revoke
// (admins): signs that user out on every device at once.
func (u *UI) RevokeUserSessions(c *echo.Context) error {
	id := c.Param("user_id")
	if me := currentUser(c); me != nil && me.ID == id {
		return u.RevokeMySessions(c)
	}
	usr, err := u.store.GetUser(c.Request().Context(), id)
	if err != nil {
		return respond.StoreErr(err, "user", clip(id, maxIDLen))
	}
	n, err := u.store.DeleteUserSessions(c.Request().Context(), id)
	if err != nil {
		return respond.Internal(err)
	}
	u.cfg.Log.Info("user signed out everywhere by an admin", "user", usr.Email, "admin", currentUser(c).Email, "sessions", n)
	return u.flash(c, "/settings/users", fmt.Sprintf("%s is signed out everywhere (%d sessions ended).", usr.Email, n), false)
}

// setupAllowed reports whether token opens first-run setup: it must match
// the token printed at start, and no user may exist yet.
func (u *UI) setupAllowed(c *echo.Context, token string) (bool, error) {
	want := u.cfg.SetupToken
	if want == "" || subtle.ConstantTimeCompare([]byte(token), []byte(want)) != 1 {
		return false, nil
	}
	n, err := u.store.CountUsers(c.Request().Context())
	if err != nil {
		return false, respond.Internal(err)
	}
	return n == 0, nil
}

var errSetupClosed = &respond.Error{Status: http.StatusNotFound, Type: "invalid_request_error",
	Message: "This setup link is not valid: it was already used, or the server was restarted (a new link is printed at each start while no user exists)."}

// ShowSetup handles GET /setup?token=….
func (u *UI) ShowSetup(c *echo.Context) error {
	token := c.QueryParam("token")
	ok, err := u.setupAllowed(c, token)
	if err != nil {
		return err
	}
	if !ok {
		return errSetupClosed
	}
	return render(c, http.StatusOK, views.SetupPage(u.page(c, "Set up", ""), views.SetupForm{Token: token}))
}

// Setup handles POST /setup: creates the first admin and signs them in.
func (u *UI) Setup(c *echo.Context) error {
	token := c.FormValue("token")
	ok, err := u.setupAllowed(c, token)
	if err != nil {
		return err
	}
	if !ok {
		return errSetupClosed
	}
	email, password := strings.TrimSpace(c.FormValue("email")), c.FormValue("password")
	errs := checkNewUser(email, password)
	if password != c.FormValue("confirm") {
		errs = append(errs, "The passwords do not match.")
	}
	if len(errs) > 0 {
		return render(c, http.StatusUnprocessableEntity, views.SetupPage(u.page(c, "Set up", ""),
			views.SetupForm{Token: token, Email: email, Errors: errs}))
	}
	usr, err := u.store.CreateUser(c.Request().Context(), email, db.RoleAdmin, password)
	if err != nil {
		return respond.Internal(err)
	}
	// An admin acts as an owner everywhere; listed as the Default project's
	// owner too, as the projects migration listed every admin.
	if err := u.store.SetMember(c.Request().Context(), db.DefaultProjectID, usr.ID, db.ProjectOwner); err != nil {
		return respond.Internal(err)
	}
	u.cfg.Log.Info("first admin created", "email", usr.Email)
	if err := u.signIn(c, usr); err != nil {
		return err
	}
	return u.flash(c, "/assistants", "Welcome! You are the admin of this server.", false)
}

func checkNewUser(email, password string) []string {
	var errs []string
	if len(email) > maxEmailLen {
		errs = append(errs, fmt.Sprintf("An email address has at most %d characters.", maxEmailLen))
	} else if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
		errs = append(errs, "Enter a valid email address.")
	}
	return append(errs, checkPassword("The password", password)...)
}

// maxEmailLen is the longest email address that can be delivered (RFC
// 5321's limit on a forward path).
const maxEmailLen = 254

// checkPassword checks a new password's length: at least MinPasswordLen
// characters, and at most bcrypt's 72 bytes (longer ones are refused, not
// cut short).
func checkPassword(what, password string) []string {
	switch {
	case len(password) < db.MinPasswordLen:
		return []string{fmt.Sprintf("%s must be at least %d characters long.", what, db.MinPasswordLen)}
	case len(password) > db.MaxPasswordBytes:
		return []string{fmt.Sprintf("%s must be at most %d bytes long (%d is the most bcrypt reads; letters beyond ASCII take 2 to 4 bytes each).",
			what, db.MaxPasswordBytes, db.MaxPasswordBytes)}
	}
	return nil
}

// Users handles GET /settings/users (admins).
func (u *UI) Users(c *echo.Context) error {
	return u.renderUsers(c, http.StatusOK, views.UserForm{Role: db.ProjectViewer})
}

// instanceMember is the instance role shown for everyone who is not an
// admin. What such a person may do comes only from their project roles;
// they are stored with users.role viewer, which carries no power of its own.
const instanceMember = "member"

func (u *UI) renderUsers(c *echo.Context, status int, f views.UserForm) error {
	ctx := c.Request().Context()
	users, err := u.store.ListUsers(ctx)
	if err != nil {
		return respond.Internal(err)
	}
	members, err := u.store.ListMembers(ctx, currentProject(c))
	if err != nil {
		return respond.Internal(err)
	}
	roleIn := map[string]string{}
	for _, m := range members {
		roleIn[m.User.ID] = m.Role
	}
	me := currentUser(c)
	rows := make([]views.UserRow, 0, len(users))
	for _, usr := range users {
		role := instanceMember
		if usr.Role == db.RoleAdmin {
			role = db.RoleAdmin
		}
		rows = append(rows, views.UserRow{ID: usr.ID, Email: usr.Email, Role: role, ProjectRole: roleIn[usr.ID], CreatedAt: usr.CreatedAt,
			LastLoginAt: usr.LastLoginAt, IsMe: me != nil && me.ID == usr.ID})
	}
	remote, err := u.store.Setting(ctx, settingRemoteImages, "off")
	if err != nil {
		return respond.Internal(err)
	}
	w, err := u.workspaceOf(c)
	if err != nil {
		return err
	}
	return render(c, status, views.UsersPage(u.page(c, "Users", "users"), views.UsersView{Users: rows, Roles: []string{db.RoleAdmin, instanceMember},
		ProjectRoles: db.ProjectRoles, Project: w.Name, Form: f, RemoteImages: remote == "on"}))
}

// CreateUser handles POST /settings/users (admins): the new person joins
// the current project with the role chosen, and is an admin of the server
// only when that box is ticked.
func (u *UI) CreateUser(c *echo.Context) error {
	f := views.UserForm{Email: strings.TrimSpace(c.FormValue("email")), Role: c.FormValue("role"), Admin: c.FormValue("admin") == "on"}
	f.Errors = checkNewUser(f.Email, c.FormValue("password"))
	if !slices.Contains(db.ProjectRoles, f.Role) {
		f.Errors = append(f.Errors, "Pick a role in the project.")
	}
	if len(f.Errors) == 0 {
		ctx := c.Request().Context()
		role := db.RoleViewer
		if f.Admin {
			role = db.RoleAdmin
		}
		usr, err := u.store.CreateUser(ctx, f.Email, role, c.FormValue("password"))
		switch {
		case errors.Is(err, db.ErrDuplicate):
			f.Errors = append(f.Errors, "A user with this email already exists.")
		case err != nil:
			return respond.Internal(err)
		default:
			if err := u.store.SetMember(ctx, currentProject(c), usr.ID, f.Role); err != nil {
				// Not left half made: a user in no project who was meant to be in one.
				if derr := u.store.DeleteUser(ctx, usr.ID); derr != nil {
					u.cfg.Log.Error("remove a user whose membership failed", "user", usr.Email, "error", derr)
				}
				return respond.Internal(err)
			}
			return u.flash(c, "/settings/users", "User "+f.Email+" created.", false)
		}
	}
	return u.renderUsers(c, http.StatusUnprocessableEntity, f)
}

// SetUserRole handles POST /settings/users/:user_id/role (admins): makes a
// person an admin of the server, or a member (whose powers come from
// their project roles alone).
func (u *UI) SetUserRole(c *echo.Context) error {
	role := c.FormValue("role")
	switch role {
	case db.RoleAdmin:
	case instanceMember, db.RoleEditor, db.RoleViewer:
		role = db.RoleViewer
	default:
		return &respond.Error{Status: http.StatusBadRequest, Message: "Unknown role."}
	}
	err := u.store.SetUserRole(c.Request().Context(), c.Param("user_id"), role)
	if errors.Is(err, db.ErrLastAdmin) {
		return u.flash(c, "/settings/users", "The last admin cannot be demoted.", true)
	}
	if err != nil {
		return respond.StoreErr(err, "user", c.Param("user_id"))
	}
	return u.flash(c, "/settings/users", "Role changed.", false)
}

// DeleteUser handles POST /settings/users/:user_id/delete (admins).
func (u *UI) DeleteUser(c *echo.Context) error {
	err := u.store.DeleteUser(c.Request().Context(), c.Param("user_id"))
	if errors.Is(err, db.ErrLastAdmin) {
		return u.flash(c, "/settings/users", "The last admin cannot be removed.", true)
	}
	if err != nil {
		return respond.StoreErr(err, "user", c.Param("user_id"))
	}
	return u.flash(c, "/settings/users", "User removed.", false)
}

// Account handles GET /settings/account: the signed-in user's password.
func (u *UI) Account(c *echo.Context) error {
	return render(c, http.StatusOK, views.AccountPage(u.page(c, "Account", "account"), nil))
}

// ChangePassword handles POST /settings/account: any signed-in user may
// change their own password, given the current one.
func (u *UI) ChangePassword(c *echo.Context) error {
	me := currentUser(c)
	current, next := c.FormValue("current"), c.FormValue("password")
	var errs []string
	if _, err := u.store.Authenticate(c.Request().Context(), me.Email, current); errors.Is(err, db.ErrBadCredentials) {
		errs = append(errs, "The current password is wrong.")
	} else if err != nil {
		return respond.Internal(err)
	}
	errs = append(errs, checkPassword("The new password", next)...)
	if next != c.FormValue("confirm") {
		errs = append(errs, "The new passwords do not match.")
	}
	if len(errs) > 0 {
		return render(c, http.StatusUnprocessableEntity, views.AccountPage(u.page(c, "Account", "account"), errs))
	}
	if err := u.store.SetPassword(c.Request().Context(), me.ID, next); err != nil {
		return respond.Internal(err)
	}
	// SetPassword ended every session of the user; this browser signs in
	// afresh, the others (and any copied cookie) stay out.
	if err := u.signIn(c, *me); err != nil {
		return err
	}
	return u.flash(c, "/settings/account", "Password changed; you are signed out on every other device.", false)
}

// ResetPassword handles POST /settings/users/:user_id/password (admins).
func (u *UI) ResetPassword(c *echo.Context) error {
	pw := c.FormValue("password")
	if errs := checkPassword("A password", pw); len(errs) > 0 {
		return u.flash(c, "/settings/users", errs[0], true)
	}
	if err := u.store.SetPassword(c.Request().Context(), c.Param("user_id"), pw); err != nil {
		return respond.StoreErr(err, "user", c.Param("user_id"))
	}
	return u.flash(c, "/settings/users", "Password set.", false)
}
