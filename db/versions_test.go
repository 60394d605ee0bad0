package db

import (
	"context"
	"strings"
	"testing"
)

// TestVersionsMigration: migration 0020 gives every assistant that exists
// when it runs a version 1 holding its configuration, made by "system";
// the store then goes on from 2.
func TestVersionsMigration(t *testing.T) {
	eachStore(t, func(t *testing.T) {
		ctx := WithProject(context.Background(), DefaultProjectID)
		s := openTest(t)
		name, instr := "Old", "Be old."
		temp := 0.4
		a, err := s.CreateAssistant(ctx, Assistant{Name: &name, Model: "m", Instructions: &instr, Temperature: &temp,
			Tools: []Tool{{Type: "code_interpreter"}}, Metadata: Metadata{"k": "v"}})
		if err != nil {
			t.Fatal(err)
		}
		// As before the migration: no history at all, then the migration.
		var body string
		ms, err := s.migrations()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.version == 20 {
				body = m.body
			}
		}
		if !strings.Contains(body, "assistant_versions") {
			t.Fatal("migration 0020 not found")
		}
		if _, err := s.w.ExecContext(ctx, `DROP TABLE assistant_versions`); err != nil {
			t.Fatal(err)
		}
		if _, err := s.w.ExecContext(ctx, body); err != nil {
			t.Fatal(err)
		}
		// And what later migrations add to the table (0025: its project).
		if _, err := s.w.ExecContext(ctx, `ALTER TABLE assistant_versions ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default'`); err != nil {
			t.Fatal(err)
		}
		v, err := s.GetAssistantVersion(ctx, a.ID, 1)
		if err != nil {
			t.Fatal(err)
		}
		if v.CreatedBy.Type != "system" || v.CreatedAt != a.CreatedAt || *v.Assistant.Name != "Old" ||
			*v.Assistant.Instructions != "Be old." || *v.Assistant.Temperature != 0.4 ||
			len(v.Assistant.Tools) != 1 || v.Assistant.Metadata["k"] != "v" || v.Assistant.CreatedAt != a.CreatedAt {
			t.Errorf("version 1 = %+v", v)
		}
		changed := "Be new."
		ctx = WithActor(ctx, Actor{Type: "user", ID: "user_1", Name: "ann@example.com"})
		if _, err := s.UpdateAssistant(ctx, a.ID, func(a *Assistant) error { a.Instructions = &changed; return nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RestoreAssistantVersion(ctx, a.ID, 1); err != nil {
			t.Fatal(err)
		}
		all, err := s.AllAssistantVersions(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 3 || *all[1].Assistant.Instructions != "Be new." || *all[2].Assistant.Instructions != "Be old." ||
			all[2].CreatedBy.Name != "ann@example.com" {
			t.Fatalf("history after an edit and a restore: %+v", all)
		}
		cur, err := s.GetAssistant(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if *cur.Instructions != "Be old." || cur.CreatedAt != a.CreatedAt {
			t.Errorf("restored assistant = %+v", cur)
		}
	})
}
