// Package dbtest gives tests their own PostgreSQL databases.
//
// Tests run on PostgreSQL when ASSISTANTD_TEST_POSTGRES holds the URL of a
// server where they may create databases (tests/run.sh starts a private
// one). Each test gets a database of its own, copied from a template that
// is migrated once per test process, and dropped WITH (FORCE) when the test
// ends.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
)

// EnvURL names the environment variable holding the server's URL.
const EnvURL = "ASSISTANTD_TEST_POSTGRES"

// URL returns the test server's URL, or "" when tests have none.
func URL() string { return os.Getenv(EnvURL) }

var (
	mu       sync.Mutex
	template string // the migrated template's name, once made
	made     []string
)

// Database creates a database for t from the template (made on first use
// by migrate, which is given the template's URL and must leave no
// connection open), drops it when t ends, and returns its URL. It skips t
// when no server is configured.
func Database(t testing.TB, migrate func(url string) error) string {
	t.Helper()
	base := URL()
	if base == "" {
		t.Skip(EnvURL + " is not set: no PostgreSQL server for this test")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx := context.Background()
	mu.Lock()
	defer mu.Unlock()
	if template == "" {
		name := "assistantd_tmpl_" + suffix()
		if _, err := admin.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
			t.Fatalf("create template database: %v", err)
		}
		made = append(made, name)
		if err := migrate(WithDatabase(base, name)); err != nil {
			t.Fatalf("migrate template database: %v", err)
		}
		template = name
	}
	name := "assistantd_test_" + suffix()
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE `+name+` TEMPLATE `+template); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() { drop(name) })
	return WithDatabase(base, name)
}

// Empty creates an empty database (no migrations) for t, dropped when t
// ends, and returns its URL; it skips t when no server is configured.
func Empty(t testing.TB) string {
	t.Helper()
	base := URL()
	if base == "" {
		t.Skip(EnvURL + " is not set: no PostgreSQL server for this test")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := "assistantd_test_" + suffix()
	if _, err := admin.ExecContext(context.Background(), `CREATE DATABASE `+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() { drop(name) })
	return WithDatabase(base, name)
}

// Cleanup drops the template; TestMain calls it after the tests.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	for _, name := range made {
		drop(name)
	}
	made, template = nil, ""
}

func drop(name string) {
	admin, err := sql.Open("pgx", URL())
	if err != nil {
		return
	}
	defer admin.Close()
	if _, err := admin.ExecContext(context.Background(), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
		fmt.Fprintf(os.Stderr, "dbtest: drop %s: %v\n", name, err)
	}
}

// WithDatabase returns the URL base with its database replaced by name.
func WithDatabase(base, name string) string {
	u, err := url.Parse(base)
	if err != nil {
		panic(fmt.Sprintf("%s: %v", EnvURL, err))
	}
	u.Path = "/" + name
	return u.String()
}

func suffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
