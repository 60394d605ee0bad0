package ui

import (
	"testing"

	"github.com/assistantd/assistantd/db"
)

// TestRequireRoleRefusesNonProjectRoles: the instance role "admin" is not a
// project role; asking RequireRole for it would rank below every role and
// let anyone through, so the route table cannot be built with it.
func TestRequireRoleRefusesNonProjectRoles(t *testing.T) {
	u := New(Config{HashKey: make([]byte, 64), BlockKey: make([]byte, 32)})
	for _, role := range []string{db.RoleAdmin, "", "member"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("RequireRole(%q) did not panic", role)
				}
			}()
			u.RequireRole(role)
		}()
	}
	for _, role := range db.ProjectRoles {
		u.RequireRole(role) // does not panic
	}
}
