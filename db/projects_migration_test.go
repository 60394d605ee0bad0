package db

import (
	"context"
	"errors"
	"testing"

	"github.com/assistantd/assistantd/db/dbtest"
)

// TestProjectsMigrationKeepsEverything: a store an older release left
// (migrated through 0024, holding an assistant, a thread with a message
// and a run, a file and an API key) opens with everything in the Default
// project, where the old key speaks and every object reads as before;
// another project sees none of it.
func TestProjectsMigrationKeepsEverything(t *testing.T) {
	eachStore(t, func(t *testing.T) {
		ctx := context.Background()
		dir := t.TempDir()
		var opts []Option
		if t.Name() == "TestProjectsMigrationKeepsEverything/postgres" {
			opts = append(opts, WithDatabaseURL(dbtest.Empty(t)))
		}
		old, err := Open(ctx, dir, append(opts, func(s *Store) { s.migrateThrough = 24 })...)
		if err != nil {
			t.Fatal(err)
		}
		var version int
		if err := old.r.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&version); err != nil || version != 24 {
			t.Fatalf("old store at version %d (%v), want 24", version, err)
		}
		const secret = "sk-old-release-key"
		fill := []struct {
			query string
			args  []any
		}{
			{`INSERT INTO assistants (id, created_at, model, name) VALUES ($1, $2, $3, $4)`, []any{"asst_old", 1, "m", "Old"}},
			{`INSERT INTO threads (id, created_at) VALUES ($1, $2)`, []any{"thread_old", 1}},
			{`INSERT INTO messages (id, thread_id, created_at, status, role, content) VALUES ($1, $2, $3, $4, $5, $6)`,
				[]any{"msg_old", "thread_old", 1, "completed", "user", `[{"type":"text","text":{"value":"hi","annotations":[]}}]`}},
			{`INSERT INTO runs (id, thread_id, assistant_id, created_at, status, model, truncation_strategy, tool_choice, response_format)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
				[]any{"run_old", "thread_old", "asst_old", 1, "completed", "m", `{"type":"auto","last_messages":null}`, `"auto"`, `"auto"`}},
			{`INSERT INTO files (id, created_at, bytes, filename, purpose) VALUES ($1, $2, $3, $4, $5)`,
				[]any{"file-old", 1, 0, "old.txt", "assistants"}},
			{`INSERT INTO api_keys (id, name, hash, hint, created_at) VALUES ($1, $2, $3, $4, $5)`,
				[]any{"key_old", "old key", HashKey(secret), "sk-...key", 1}},
		}
		for _, f := range fill {
			if _, err := old.w.ExecContext(ctx, f.query, f.args...); err != nil {
				t.Fatalf("%s: %v", f.query, err)
			}
		}
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}

		s, err := Open(ctx, dir, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		p, ok, err := s.CheckAPIKey(ctx, secret)
		if err != nil || !ok || p.ProjectID != DefaultProjectID || p.KeyID != "key_old" || p.ReadOnly {
			t.Fatalf("old key: %+v ok=%v err=%v, want a read-write key of %s", p, ok, err, DefaultProjectID)
		}
		def := WithProject(ctx, p.ProjectID)
		if a, err := s.GetAssistant(def, "asst_old"); err != nil || *a.Name != "Old" {
			t.Errorf("assistant: %+v %v", a, err)
		}
		if _, err := s.GetThread(def, "thread_old"); err != nil {
			t.Errorf("thread: %v", err)
		}
		if m, err := s.GetMessage(def, "thread_old", "msg_old"); err != nil || m.Content[0].Text.Value != "hi" {
			t.Errorf("message: %+v %v", m, err)
		}
		if r, err := s.GetRun(def, "thread_old", "run_old"); err != nil || r.ProjectID != DefaultProjectID {
			t.Errorf("run: %+v %v", r, err)
		}
		if _, err := s.GetFile(def, "file-old"); err != nil {
			t.Errorf("file: %v", err)
		}
		page, err := s.ListAssistants(def, ListParams{Limit: 10})
		if err != nil || len(page.Data) != 1 {
			t.Errorf("assistants listed in the Default project: %+v %v", page.Data, err)
		}

		other, err := s.CreateProject(ctx, "Other")
		if err != nil {
			t.Fatal(err)
		}
		o := WithProject(ctx, other.ID)
		for what, err := range map[string]error{
			"assistant": second(s.GetAssistant(o, "asst_old")),
			"thread":    second(s.GetThread(o, "thread_old")),
			"message":   second(s.GetMessage(o, "thread_old", "msg_old")),
			"run":       second(s.GetRun(o, "thread_old", "run_old")),
			"file":      second(s.GetFile(o, "file-old")),
		} {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s from another project: %v, want ErrNotFound", what, err)
			}
		}
		if page, err := s.ListAssistants(o, ListParams{Limit: 10}); err != nil || len(page.Data) != 0 {
			t.Errorf("assistants listed in another project: %+v %v", page.Data, err)
		}
	})
}

func second[T any](_ T, err error) error { return err }

// TestScopedQueriesNeedAProject: a project-owned query made without a
// project in its context fails with ErrNoProject; it never reads or writes
// every project's objects.
func TestScopedQueriesNeedAProject(t *testing.T) {
	eachStore(t, func(t *testing.T) {
		s := openTest(t)
		bare := context.Background()
		a, err := s.CreateAssistant(WithProject(bare, DefaultProjectID), Assistant{Model: "m"})
		if err != nil {
			t.Fatal(err)
		}
		for what, err := range map[string]error{
			"create assistant": second(s.CreateAssistant(bare, Assistant{Model: "m"})),
			"get assistant":    second(s.GetAssistant(bare, a.ID)),
			"list assistants":  second(s.ListAssistants(bare, ListParams{Limit: 10})),
			"delete assistant": s.DeleteAssistant(bare, a.ID),
			"create thread":    third(s.CreateThread(bare, Thread{}, nil)),
			"browse threads":   third(s.BrowseThreads(bare, ThreadFilter{Limit: 10})),
			"list files":       second(s.ListFiles(bare, "", ListParams{Limit: 10})),
			"list stores":      second(s.ListVectorStores(bare, ListParams{Limit: 10})),
			"get response":     second(s.GetResponse(bare, "resp_1")),
			"list containers":  second(s.ListContainers(bare, "", ListParams{Limit: 10})),
		} {
			if !errors.Is(err, ErrNoProject) {
				t.Errorf("%s without a project: %v, want ErrNoProject", what, err)
			}
		}
		if _, err := s.GetAssistant(WithProject(bare, DefaultProjectID), a.ID); err != nil {
			t.Errorf("the assistant after the unscoped delete: %v", err)
		}
	})
}

func third[T, U any](_ T, _ U, err error) error { return err }
