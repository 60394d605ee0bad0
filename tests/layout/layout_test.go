// Package layout checks the direction of imports between assistantd's
// packages (ARCHITECTURE.md): the web app and the API are siblings, the
// engine and the store know nothing of HTTP, and views are pure.
package layout

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/assistantd/assistantd"

// rule: no package matching from may depend, directly or not, on a package
// matching to. A pattern ending in "/..." matches the package and those
// under it.
type rule struct{ from, to, why string }

var rules = []rule{
	{"handlers/ui/...", "handlers/api/...", "the web app and the API are siblings over validate and respond"},
	{"handlers/api/...", "handlers/ui/...", "the web app and the API are siblings over validate and respond"},
	{"db/...", "handlers/...", "the store knows nothing of HTTP"},
	{"db/...", "web/...", "the store knows nothing of HTTP"},
	{"db/...", "agent/...", "the engine builds on the store, not the reverse"},
	{"agent/...", "handlers/...", "the engine knows nothing of HTTP"},
	{"agent/...", "web/...", "the engine knows nothing of HTTP"},
	{"handlers/...", "web/...", "web wires the handlers, not the reverse"},
	{"views/...", "...", "views take view models and import nothing of ours"},
}

func matches(pattern, rel string) bool {
	if pattern == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return rel == base || strings.HasPrefix(rel, base+"/")
	}
	return rel == pattern
}

type pkg struct {
	ImportPath string
	Deps       []string
}

// ourPackages lists every package of the module (tests aside: a test may
// build the whole server) with its
// transitive dependencies, as go list -deps resolves them.
func ourPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Deps", module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// rel is the path of an import within the module, or false for another
// module's package. A test variant "p [p.test]" is p.
func rel(importPath string) (string, bool) {
	importPath, _, _ = strings.Cut(importPath, " ")
	importPath = strings.TrimSuffix(importPath, "_test")
	if importPath == module {
		return "", true
	}
	r, ok := strings.CutPrefix(importPath, module+"/")
	return r, ok
}

func TestImportDirection(t *testing.T) {
	pkgs := ourPackages(t)
	checked := map[string]bool{}
	for _, p := range pkgs {
		from, ok := rel(p.ImportPath)
		if !ok || from == "" {
			continue
		}
		for _, r := range rules {
			if !matches(r.from, from) {
				continue
			}
			checked[r.from] = true
			for _, d := range p.Deps {
				to, ok := rel(d)
				if !ok || to == "" || matches(r.from, to) && r.to == "..." {
					continue // another module, main, or the package's own family
				}
				if matches(r.to, to) {
					t.Errorf("%s depends on %s: %s", p.ImportPath, to, r.why)
				}
			}
		}
	}
	for _, r := range rules {
		if !checked[r.from] {
			t.Errorf("no package matches %s: the rule checks nothing (was it moved?)", r.from)
		}
	}
}
