package db

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestProjectKeys: a key speaks for its project; it stops working when it
// is revoked, when it expires, when its service account is deleted and
// when its project is archived. The Default project cannot be archived.
func TestProjectKeys(t *testing.T) { eachStore(t, testProjectKeys) }

func testProjectKeys(t *testing.T) {
	ctx := WithProject(context.Background(), DefaultProjectID)
	s, clk := openClocked(t)
	check := func(secret string) (Principal, bool) {
		t.Helper()
		p, ok, err := s.CheckAPIKey(ctx, secret)
		if err != nil {
			t.Fatal(err)
		}
		return p, ok
	}
	_, defSecret, err := s.CreateAPIKey(ctx, KeyOptions{Name: "old"})
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := check(defSecret); !ok || p.ProjectID != DefaultProjectID {
		t.Fatalf("a key made without a project: %+v %v, want the Default project", p, ok)
	}

	b, err := s.CreateProject(ctx, " Team B ")
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != "Team B" || !b.Active() {
		t.Fatalf("created project: %+v", b)
	}
	expires := clk.Now().Add(time.Hour).Unix()
	k, secret, err := s.CreateAPIKey(ctx, KeyOptions{ProjectID: b.ID, Name: "ci", ReadOnly: true, ExpiresAt: &expires})
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := check(secret); !ok || p.ProjectID != b.ID || !p.ReadOnly || p.KeyID != k.ID {
		t.Fatalf("project B's key: %+v %v", p, ok)
	}
	if _, err := s.GetAPIKey(ctx, DefaultProjectID, k.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("B's key read as the Default project's: %v", err)
	}
	if err := s.RevokeAPIKey(ctx, DefaultProjectID, k.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("B's key revoked through the Default project: %v", err)
	}
	clk.advance(2 * time.Hour)
	if _, ok := check(secret); ok {
		t.Fatal("an expired key still works")
	}

	sa, saKey, saSecret, err := s.CreateServiceAccount(ctx, b.ID, "deployer", "")
	if err != nil {
		t.Fatal(err)
	}
	if saKey.ServiceAccountID != sa.ID || sa.Role != "member" {
		t.Fatalf("service account %+v, key %+v", sa, saKey)
	}
	if p, ok := check(saSecret); !ok || p.ProjectID != b.ID {
		t.Fatalf("service account key: %+v %v", p, ok)
	}
	_, other, err := s.CreateAPIKey(ctx, KeyOptions{ProjectID: b.ID, Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteServiceAccount(ctx, b.ID, sa.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := check(saSecret); ok {
		t.Fatal("a deleted service account's key still works")
	}
	if _, ok := check(other); !ok {
		t.Fatal("deleting a service account revoked another key")
	}

	if _, err := s.ArchiveProject(ctx, DefaultProjectID); !errors.Is(err, ErrDefaultProject) {
		t.Fatalf("archiving the Default project: %v", err)
	}
	if p, err := s.ArchiveProject(ctx, b.ID); err != nil || p.Active() {
		t.Fatalf("archive: %+v %v", p, err)
	}
	if _, ok := check(other); ok {
		t.Fatal("a key of an archived project still works")
	}
	if _, _, err := s.CreateAPIKey(ctx, KeyOptions{ProjectID: b.ID, Name: "late"}); !errors.Is(err, ErrArchived) {
		t.Fatalf("a key made in an archived project: %v", err)
	}
	active, err := s.ListProjects(ctx, false)
	if err != nil || len(active) != 1 || active[0].ID != DefaultProjectID {
		t.Fatalf("active projects after archiving B: %+v %v", active, err)
	}
	if _, ok := check(defSecret); !ok {
		t.Fatal("archiving B broke the Default project's key")
	}
}

// TestProjectMembersAndUsage: roles are set and changed in place; usage
// adds up per day and model.
func TestProjectMembersAndUsage(t *testing.T) { eachStore(t, testProjectMembersAndUsage) }

func testProjectMembersAndUsage(t *testing.T) {
	ctx := WithProject(context.Background(), DefaultProjectID)
	s, clk := openClocked(t)
	u, err := s.CreateUser(ctx, "a@example.com", RoleEditor, "0123456789abc")
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.CreateProject(ctx, "P")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetMember(ctx, p.ID, u.ID, ProjectViewer); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMember(ctx, p.ID, u.ID, ProjectEditor); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMember(ctx, p.ID, u.ID, "admin"); err == nil {
		t.Fatal("an unknown project role was accepted")
	}
	m, err := s.GetMember(ctx, p.ID, u.ID)
	if err != nil || m.Role != ProjectEditor || m.User.Email != "a@example.com" {
		t.Fatalf("member: %+v %v", m, err)
	}
	ps, err := s.ListUserProjects(ctx, u.ID)
	if err != nil || len(ps) != 1 || ps[0].Project.ID != p.ID {
		t.Fatalf("the user's projects: %+v %v", ps, err)
	}
	if err := s.RemoveMember(ctx, p.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveMember(ctx, p.ID, u.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removing twice: %v", err)
	}

	// Kept an owner (what owners who are not instance admins do): its only
	// owner is neither demoted nor removed until someone else owns it
	// too; an archived one may lose it.
	v, err := s.CreateUser(ctx, "b@example.com", RoleEditor, "0123456789abc")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetMember(ctx, p.ID, u.ID, ProjectOwner); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMemberKeepingOwner(ctx, p.ID, u.ID, ProjectEditor); !errors.Is(err, ErrLastOwner) {
		t.Fatalf("demoting the only owner: %v", err)
	}
	if err := s.RemoveMemberKeepingOwner(ctx, p.ID, u.ID); !errors.Is(err, ErrLastOwner) {
		t.Fatalf("removing the only owner: %v", err)
	}
	if m, err := s.GetMember(ctx, p.ID, u.ID); err != nil || m.Role != ProjectOwner {
		t.Fatalf("the only owner after refused changes: %+v %v", m, err)
	}
	if err := s.SetMember(ctx, p.ID, v.ID, ProjectOwner); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMemberKeepingOwner(ctx, p.ID, u.ID, ProjectViewer); err != nil {
		t.Fatalf("demoting one of two owners: %v", err)
	}
	if err := s.RemoveMemberKeepingOwner(ctx, p.ID, v.ID); !errors.Is(err, ErrLastOwner) {
		t.Fatalf("removing the new only owner: %v", err)
	}
	if _, err := s.ArchiveProject(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveMemberKeepingOwner(ctx, p.ID, v.ID); err != nil {
		t.Fatalf("removing the owner of an archived project: %v", err)
	}
	// Instance admins (and admin keys) may leave a project without owners.
	q, err := s.CreateProject(ctx, "Q")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetMember(ctx, q.ID, u.ID, ProjectOwner); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMember(ctx, q.ID, u.ID, ProjectViewer); err != nil {
		t.Fatalf("an admin demoting the only owner: %v", err)
	}

	for _, in := range []int64{10, 20} {
		if err := s.RecordUsage(ctx, p.ID, "gpt-x", in, 5); err != nil {
			t.Fatal(err)
		}
	}
	clk.advance(24 * time.Hour)
	if err := s.RecordUsage(ctx, p.ID, "gpt-x", 1, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordUsage(ctx, DefaultProjectID, "gpt-x", 100, 100); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListUsage(ctx, p.ID, clk.Now().Add(-48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Requests != 2 || got[0].InputTokens != 30 || got[0].OutputTokens != 10 || got[1].Requests != 1 {
		t.Fatalf("usage: %+v", got)
	}
	if !got[1].Day.After(got[0].Day) {
		t.Fatalf("usage days out of order: %v then %v", got[0].Day, got[1].Day)
	}
}
