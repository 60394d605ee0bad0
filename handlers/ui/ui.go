// Package ui serves assistantd's web app: server-rendered pages to manage
// assistants, files and vector stores, browse threads, and the playground
// that follows runs live. It is a sibling of package api, sharing with it
// only package validate (the rules of every request object) and package
// respond (errors and the SSE writer); it declares the small interfaces it
// needs from the store and the run engine.
package ui

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/a-h/templ"
	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/agent/webhook"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/validate"
	"github.com/assistantd/assistantd/telemetry"
	"github.com/assistantd/assistantd/views"
)

// Store is everything the web app's handlers need from the store; each
// file declares its own part.
type Store interface {
	// validate.Files: the forms validate with package validate, whose
	// checks look up files.
	validate.Files
	userStore
	assistantStore
	versionStore
	threadStore
	messageStore
	fileStore
	keyStore
	projectStore
	settingsStore
	runStore
	webhookStore
	conversationStore
	adminKeyStore
}

// Engine is what the web app needs from the run engine: start runs, answer
// and cancel them, stop a thread's runs before it is deleted, follow a
// thread live, and list the models the upstreams serve.
type Engine interface {
	CreateRun(ctx context.Context, r db.Run, extra []db.Message) (db.Run, error)
	CreateThreadAndRun(ctx context.Context, t db.Thread, msgs []db.Message, r db.Run) (db.Thread, db.Run, error)
	SubmitToolOutputs(ctx context.Context, threadID, runID string, outputs []agent.ToolOutput) (db.Run, int64, error)
	Cancel(ctx context.Context, threadID, runID string) (db.Run, error)
	StopThread(ctx context.Context, threadID string) error
	FollowThread(threadID, cursor string) *agent.ThreadFollower
	Models(ctx context.Context) []agent.Model
}

// Config holds what the web app is built from.
type Config struct {
	Store Store
	// VectorStores and Retriever serve the vector stores pages (and the
	// assistant form's vector store helper); nil leaves them out.
	VectorStores VectorStores
	Retriever    Retriever
	// SessionKeys are the cookie HMAC key (32 or 64 bytes) and encryption
	// key (32 bytes), kept in the database so sessions survive restarts.
	HashKey, BlockKey []byte
	// SessionTTL is the absolute lifetime of a sign-in, checked on the
	// server whatever the cookie says.
	SessionTTL time.Duration
	// TrustProxy makes X-Forwarded-Proto: https count as TLS (for the
	// cookie's Secure flag) behind a reverse proxy.
	TrustProxy bool
	// SetupToken, when set, lets /setup?token=… create the first admin;
	// it works only while no user exists.
	SetupToken string
	// Engine runs assistants for the thread page's composer and the
	// playground, and lists models for the assistant form; nil hides "Add
	// and run" and the run controls, and leaves the model a free-text
	// field.
	Engine Engine
	// Responses starts responses for the playground's Responses API
	// mode; nil leaves the playground to runs.
	Responses ResponseStarter
	// Webhooks is the runs' webhook delivery client (its guard checks
	// URLs; test calls go through it); nil hides the function editor's
	// webhook sections.
	Webhooks *webhook.Client
	// CodeProblem says why code_interpreter cannot run on this server
	// ("" when it can); the assistant editor shows it. nil: no sandbox.
	CodeProblem func() string
	// History is the metrics' last hour, for the System page (admins);
	// nil leaves the page out.
	History *telemetry.History
	// MaxUpload bounds one uploaded file.
	MaxUpload    int64
	AssetVersion string
	HTMX         bool
	Log          *slog.Logger
	Now          func() time.Time
}

// UI serves the web app's pages.
type UI struct {
	cfg      Config
	store    Store
	streams  *respond.Streams // the live pages' event streams, ended at shutdown
	sessions *sessions.CookieStore
	xorigin  *http.CrossOriginProtection
	failures loginFailures
}

const (
	sessionName  = "assistantd_session"
	ctxUser      = "ui_user"
	ctxSession   = "ui_session"
	ctxCSRF      = "ui_csrf"
	csrfField    = "csrf_token"
	csrfHeader   = "X-CSRF-Token"
	defaultTTL   = 12 * time.Hour
	maxFormBytes = 8 << 20
)

// New returns the web app's handlers.
func New(cfg Config) *UI {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = defaultTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	cs := sessions.NewCookieStore(cfg.HashKey, cfg.BlockKey)
	cs.MaxAge(int(cfg.SessionTTL.Seconds()))
	streams := respond.NewStreams(cfg.Log)
	streams.KeepInline(respond.InlineStreams)
	return &UI{cfg: cfg, store: cfg.Store, streams: streams, sessions: cs, xorigin: http.NewCrossOriginProtection()}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// isTLS reports whether the browser reached us over TLS.
func (u *UI) isTLS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	return u.cfg.TrustProxy && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// saveSession writes the session cookie with the security flags.
func (u *UI) saveSession(c *echo.Context, s *sessions.Session) error {
	s.Options = &sessions.Options{
		Path:     "/",
		MaxAge:   int(u.cfg.SessionTTL.Seconds()),
		HttpOnly: true,
		Secure:   u.isTLS(c.Request()),
		SameSite: http.SameSiteLaxMode,
	}
	if err := s.Save(c.Request(), c.Response()); err != nil {
		return respond.Internal(err)
	}
	return nil
}

// Session loads the session of every web-app request: the signed-in user
// and the CSRF token, created on first visit. The cookie names a session
// kept on the server (db.SessionUser), checked on every request, so a
// sign-in ends at once when its row goes: at sign-out, on a password or
// role change, "sign out everywhere", or at the absolute expiry. It
// refuses state-changing requests that come from another origin or lack
// the session's CSRF token.
func (u *UI) Session(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		r := c.Request()
		s, err := u.sessions.Get(r, sessionName)
		if err != nil {
			// A cookie from old keys or tampered with: start afresh.
			s, _ = u.sessions.New(r, sessionName)
		}
		dirty := false
		token, _ := s.Values["csrf"].(string)
		if token == "" {
			token = randomToken()
			s.Values["csrf"] = token
			dirty = true
		}
		// Cookies from before sessions were kept on the server carry a
		// user id: they no longer sign anyone in.
		if _, old := s.Values["uid"]; old {
			delete(s.Values, "uid")
			delete(s.Values, "iat")
			dirty = true
		}
		if sid, _ := s.Values["sid"].(string); sid != "" {
			user, err := u.store.SessionUser(r.Context(), sid, u.cfg.Now().Unix())
			switch {
			case errors.Is(err, db.ErrNotFound): // signed out, revoked, expired or removed
				delete(s.Values, "sid")
				dirty = true
			case err != nil:
				return respond.Internal(err)
			default:
				c.Set(ctxUser, &user)
			}
		}
		c.Set(ctxSession, s)
		c.Set(ctxCSRF, token)
		if dirty {
			if err := u.saveSession(c, s); err != nil {
				return err
			}
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			return next(c)
		}
		if err := u.xorigin.Check(r); err != nil {
			return &respond.Error{Status: http.StatusForbidden, Type: "invalid_request_error",
				Message: "Cross-origin request refused: state-changing requests must come from this site's own pages."}
		}
		got := r.Header.Get(csrfHeader)
		if got == "" {
			if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
				// Uploads can be large and are spooled to disk while parsed:
				// only editors' are read at all.
				if _, err := u.workspaceOf(c); err != nil {
					return err
				}
				if !canEdit(c) {
					return &respond.Error{Status: http.StatusForbidden, Type: "invalid_request_error", Message: "Only a project's editors and owners may upload."}
				}
				r.Body = http.MaxBytesReader(c.Response(), r.Body, u.cfg.MaxUpload*maxUploadFiles+maxFormBytes)
			} else {
				r.Body = http.MaxBytesReader(c.Response(), r.Body, maxFormBytes)
			}
			got = r.FormValue(csrfField)
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			return &respond.Error{Status: http.StatusForbidden, Type: "invalid_request_error",
				Message: "The form has expired or did not come from this site (CSRF token missing or wrong). Reload the page and try again."}
		}
		return next(c)
	}
}

// currentUser returns the signed-in user, or nil.
func currentUser(c *echo.Context) *db.User {
	u, _ := c.Get(ctxUser).(*db.User)
	return u
}

// RequireUser sends people who are not signed in to the sign-in page. For
// those who are, it works out the project they work in (see workspaceOf)
// and scopes every query of the request to it.
func (u *UI) RequireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		if usr := currentUser(c); usr != nil {
			w, err := u.workspaceOf(c)
			if err != nil {
				return err
			}
			// What the user changes is recorded as theirs (assistant versions),
			// and every query is scoped to the project they are working in.
			ctx := db.WithActor(c.Request().Context(), db.Actor{Type: "user", ID: usr.ID, Name: usr.Email})
			if w.ID != "" {
				ctx = db.WithProject(ctx, w.ID)
			}
			c.SetRequest(c.Request().WithContext(ctx))
			return next(c)
		}
		r := c.Request()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return &respond.Error{Status: http.StatusUnauthorized, Type: "invalid_request_error", Message: "Sign in first."}
		}
		target := "/login"
		if r.URL.RequestURI() != "/" {
			target += "?next=" + url.QueryEscape(r.URL.RequestURI())
		}
		return redirect(c, target)
	}
}

// redirect answers with a 303 to target, or HX-Redirect for htmx.
func redirect(c *echo.Context, target string) error {
	if c.Request().Header.Get("HX-Request") == "true" {
		c.Response().Header().Set("HX-Redirect", target)
		return c.NoContent(http.StatusOK)
	}
	return c.Redirect(http.StatusSeeOther, target)
}

// page returns the layout model for the current request.
func (u *UI) page(c *echo.Context, title, nav string) views.Page {
	p := views.Page{Title: title, Nav: nav, Asset: u.cfg.AssetVersion, HTMX: u.cfg.HTMX}
	p.CSRF, _ = c.Get(ctxCSRF).(string)
	if usr := currentUser(c); usr != nil {
		if _, err := u.workspaceOf(c); err != nil { // pages outside RequireUser: error pages
			u.cfg.Log.Warn("work out the project", "error", err)
		}
		role := projectRole(c)
		p.User = &views.Viewer{Email: usr.Email, Role: role, CanEdit: canEdit(c),
			IsOwner: projectRank[role] >= projectRank[db.ProjectOwner], IsAdmin: usr.Role == db.RoleAdmin}
		if usr.Role == db.RoleAdmin {
			p.User.Role = db.RoleAdmin
		}
		if w, ok := c.Get(ctxWorkspace).(*workspace); ok && len(w.Choices) > 0 {
			p.Project = &views.ProjectNav{ID: w.ID, Name: w.Name, Choices: w.Choices, Next: sectionOf(c.Request().URL.Path)}
		}
	}
	if s, ok := c.Get(ctxSession).(*sessions.Session); ok {
		if fl := s.Flashes(); len(fl) > 0 {
			p.Flash, _ = fl[0].(string)
			if len(fl) > 1 {
				p.FlashErr, _ = fl[1].(bool)
			}
			if err := u.saveSession(c, s); err != nil {
				u.cfg.Log.Warn("save session", "error", err)
			}
		}
	}
	return p
}

// render writes a templ component with status.
func render(c *echo.Context, status int, comp templ.Component) error {
	c.Response().Header().Set("Content-Type", "text/html; charset=utf-8")
	c.Response().WriteHeader(status)
	return comp.Render(c.Request().Context(), c.Response())
}

func isHTMX(c *echo.Context) bool { return c.Request().Header.Get("HX-Request") == "true" }

// RenderError writes an error for the web app: a fragment for htmx
// requests (retargeted to the page's error area), a full page otherwise.
func (u *UI) RenderError(c *echo.Context, status int, message, requestID string) error {
	ev := views.ErrorView{Status: status, Title: http.StatusText(status), Message: message, ID: requestID}
	if isHTMX(c) {
		c.Response().Header().Set("HX-Retarget", "#htmx-errors")
		c.Response().Header().Set("HX-Reswap", "innerHTML")
		return render(c, status, views.ErrorFragment(ev))
	}
	return render(c, status, views.ErrorPage(u.page(c, ev.Title, ""), ev))
}

// flash shows msg on the next page the session sees, then redirects
// there (the post/redirect/get pattern).
//
// The message travels in the session cookie, which holds 4 KB at most, so
// it is cut to maxFlashRunes: a message quoting what someone typed (an id
// in a URL, say) can never make the cookie too large to write. Only the
// latest message is kept: posts that redirect to no page (a script, a
// browser that does not follow) must not pile messages up in the cookie.
func (u *UI) flash(c *echo.Context, target, msg string, isErr bool) error {
	if err := u.setFlash(c, msg, isErr); err != nil {
		return err
	}
	return redirect(c, target)
}

// setFlash keeps msg in the session for the next page it sees.
func (u *UI) setFlash(c *echo.Context, msg string, isErr bool) error {
	if s, ok := c.Get(ctxSession).(*sessions.Session); ok {
		_ = s.Flashes() // drop any not yet shown
		s.AddFlash(clip(msg, maxFlashRunes))
		s.AddFlash(isErr)
		if err := u.saveSession(c, s); err != nil {
			return err
		}
	}
	return nil
}

// maxFlashRunes bounds a flash message (see flash).
const maxFlashRunes = 300

// clip shortens s to at most n runes, marking the cut with an ellipsis.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
