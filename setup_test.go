package main

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/assistantd/assistantd/db"
)

// TestAdminFromFlagsOwnsTheDefaultProject: the admin made from
// --admin-email is listed as the Default project's owner, as the projects
// migration listed every admin.
func TestAdminFromFlagsOwnsTheDefaultProject(t *testing.T) {
	ctx := context.Background()
	store, err := db.Open(ctx, t.TempDir(), db.WithPasswordCost(bcrypt.MinCost))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	w := webConfig{AdminEmail: "root@example.com", AdminPassword: "a-good-password"}
	if _, err := firstUser(ctx, w, store, io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	users, err := store.ListUsers(ctx)
	if err != nil || len(users) != 1 || users[0].Role != db.RoleAdmin {
		t.Fatalf("users: %+v, %v", users, err)
	}
	m, err := store.GetMember(ctx, db.DefaultProjectID, users[0].ID)
	if err != nil || m.Role != db.ProjectOwner {
		t.Errorf("membership: %+v, %v", m, err)
	}
}
