package db

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/assistantd/assistantd/db/dbtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	dbtest.Cleanup()
	os.Exit(code)
}

// eachStore runs test once on SQLite and once on PostgreSQL (skipped when
// ASSISTANTD_TEST_POSTGRES is unset), as subtests named after the store;
// openTest opens the subtest's store.
func eachStore(t *testing.T, test func(t *testing.T)) {
	t.Run("sqlite", test)
	t.Run("postgres", test)
}

// openTest opens a store for t: SQLite in a temporary directory, or, in
// eachStore's postgres subtest, PostgreSQL on a database of its own.
func openTest(t testing.TB, opts ...Option) *Store {
	t.Helper()
	if strings.Contains(t.Name(), "/postgres") {
		url := dbtest.Database(t, migrateTemplate)
		opts = append(opts, WithDatabaseURL(url), WithMaxConns(8))
	}
	s, err := Open(context.Background(), t.TempDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// migrateTemplate migrates the template database test databases copy.
func migrateTemplate(url string) error {
	dir, err := os.MkdirTemp("", "assistantd-dbtest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s, err := Open(context.Background(), dir, WithDatabaseURL(url))
	if err != nil {
		return err
	}
	return s.Close()
}
