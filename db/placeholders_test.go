package db

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sqlPlaceholder finds a "?" used as a bind placeholder: PostgreSQL binds
// only $N, so a query written with "?" works on SQLite and fails on
// PostgreSQL, where only the tests that reach it would notice.
var sqlPlaceholder = regexp.MustCompile(`(?i)(=|<|>|\(|,|\bIN|\bLIKE|\bLIMIT|\bOFFSET|\bTHEN|\bELSE|\bAND|\bOR|\bSELECT|\bVALUES)\s*\?`)

// TestQueriesUseNumberedPlaceholders reads the store's Go source and
// fails on any SQL string literal that binds with "?".
func TestQueriesUseNumberedPlaceholders(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			checked++
			if sqlPlaceholder.MatchString(lit.Value) {
				t.Errorf("%s: a query binds with ? (write $N): %s", fset.Position(lit.Pos()), lit.Value)
			}
			return true
		})
	}
	if checked < 100 {
		t.Fatalf("only %d string literals read: the check reads the wrong files", checked)
	}
}
