package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// privateData is a data directory inside a directory only root may pass
// (as a clone in root's home directory, mode 0700 on Debian), and a
// shared directory the kernels can reach.
func privateData(t *testing.T) (sandboxDir, shared string) {
	t.Helper()
	requireSandbox(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root: kernels run as their own users only when the server is root")
	}
	home := filepath.Join(t.TempDir(), "root-home")
	if err := os.MkdirAll(filepath.Join(home, "clone", "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(home, 0o700)
	pub := t.TempDir()
	os.Chmod(filepath.Dir(pub), 0o711)
	os.Chmod(pub, 0o711)
	return filepath.Join(home, "clone", "data", "sandbox"), filepath.Join(pub, "shared")
}

// With the data directory under a 0700 directory, code runs all the same:
// the sandbox keeps its directories in a place of its own, the same on
// every start, and says nothing is wrong.
func TestSandboxUnderPrivateDirectory(t *testing.T) {
	dir, shared := privateData(t)
	cfg := Config{Dir: dir, SharedDir: shared, PoolSize: -1, Limits: testLimits}
	l, err := NewLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p := l.Problem(); p != "" {
		t.Fatalf("problem: %s", p)
	}
	if !strings.HasPrefix(l.Dir(), shared+string(filepath.Separator)) {
		t.Fatalf("the sandbox's directory is %s, want one under %s", l.Dir(), shared)
	}
	if st, err := os.Stat(shared); err != nil || st.Mode().Perm() != 0o711 || st.Sys() == nil {
		t.Fatalf("shared directory: %v %v", st, err)
	}
	res := mustOK(t, run(t, l, "thread_home", "open('note.txt', 'w').write('kept')\nprint(6 * 7)"))
	if res.Logs != "42\n" {
		t.Fatalf("logs %q", res.Logs)
	}
	l.Close()
	// A restart with the same data directory finds the thread's files.
	l2, err := NewLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.Dir() != l.Dir() {
		t.Fatalf("second start placed the sandbox at %s, first at %s", l2.Dir(), l.Dir())
	}
	if res := mustOK(t, run(t, l2, "thread_home", "print(open('note.txt').read())")); res.Logs != "kept\n" {
		t.Fatalf("after a restart: %q", res.Logs)
	}
}

// When no place can be reached, the sandbox says why through Problem (for
// the web app and /readyz) and code calls explain it.
func TestSandboxProblemSaid(t *testing.T) {
	dir, _ := privateData(t)
	closed := filepath.Join(t.TempDir(), "closed")
	os.MkdirAll(closed, 0o700)
	l, err := NewLocal(Config{Dir: dir, SharedDir: filepath.Join(closed, "shared"), PoolSize: -1, Limits: testLimits})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := l.Problem()
	if !strings.Contains(p, "does not let other users pass") {
		t.Fatalf("problem %q", p)
	}
	if res := run(t, l, "thread_x", "print(1)"); !strings.Contains(res.Error, p) {
		t.Fatalf("a call's error %q does not say %q", res.Error, p)
	}
}
