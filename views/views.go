// Package views holds the web app's templ components and the typed view
// models they render. Views do no I/O: handlers load everything first.
// Every element a test locates carries a data-testid.
package views

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Page is what every full page's layout needs.
type Page struct {
	Title    string
	Nav      string  // the active top-level section
	User     *Viewer // nil when nobody is signed in
	CSRF     string  // the session's CSRF token, put in forms and htmx headers
	Asset    string  // static asset version, for cache busting
	HTMX     bool    // htmx is embedded (npm ci ran before the build)
	Flash    string
	FlashErr bool
	// Project is the project the person works in and those they may switch
	// to; nil when they belong to none.
	Project *ProjectNav
}

// ProjectNav is the layout's project switcher.
type ProjectNav struct {
	ID, Name string
	Choices  []ProjectChoice
	Next     string // where switching returns to: the current section's list
}

// ProjectChoice is a project the person may work in.
type ProjectChoice struct {
	ID, Name string
}

// Viewer is the signed-in user as the pages show them.
type Viewer struct {
	Email   string
	Role    string // their role in the current project; "admin" for instance admins
	CanEdit bool   // the current project's editors and owners
	IsOwner bool   // the current project's owners (and instance admins)
	IsAdmin bool   // instance admins: users, projects, the server's settings
}

// CanEdit reports whether the page's user may change things.
func (p Page) CanEdit() bool { return p.User != nil && p.User.CanEdit }

// IsOwner reports whether the page's user manages the current project
// (its members, keys and service accounts).
func (p Page) IsOwner() bool { return p.User != nil && p.User.IsOwner }

// IsAdmin reports whether the page's user is an instance admin.
func (p Page) IsAdmin() bool { return p.User != nil && p.User.IsAdmin }

func csrfHeaders(token string) string {
	b, _ := json.Marshal(map[string]string{"X-CSRF-Token": token})
	return string(b)
}

func asset(p Page, path string) string { return "/static/" + path + "?v=" + p.Asset }

// When formats a unix time for people, in UTC.
func When(unix int64) string {
	if unix == 0 {
		return "—"
	}
	return time.Unix(unix, 0).UTC().Format("2006-01-02 15:04 UTC")
}

// WhenPtr formats an optional unix time.
func WhenPtr(unix *int64) string {
	if unix == nil {
		return "never"
	}
	return When(*unix)
}

// Bytes formats a size for people.
func Bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func navCurrent(p Page, name string) string {
	if p.Nav == name {
		return "page"
	}
	return "false"
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "—"
	}
	return s
}

func itoa(n int) string { return fmt.Sprint(n) }

// Duration formats the time between two optional unix times.
func Duration(start, end *int64) string {
	if start == nil || end == nil {
		return "—"
	}
	return (time.Duration(*end-*start) * time.Second).String()
}

// shortID abbreviates an object id for tight spaces ("thread_…W2kd").
func shortID(id string) string {
	if len(id) <= 14 {
		return id
	}
	i := strings.IndexByte(id, '_') + 1
	return id[:i] + "…" + id[len(id)-4:]
}
