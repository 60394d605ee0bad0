package apitest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/assistantd/assistantd/tests/upstream"
)

// readyz reads GET /readyz.
func readyz(t *testing.T, s *server) (int, map[string]string) {
	t.Helper()
	res, err := http.Get(s.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]string
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, out
}

// The README's command run as root from a clone in root's home directory
// (mode 0700 on Debian): --data lies under a directory the kernels' users
// may not pass, and code runs all the same; /readyz says so. When no
// place the kernels can reach exists, /readyz says why.
func TestCodeInterpreterUnderPrivateHome(t *testing.T) {
	requireCodeSandbox(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root: kernels run as their own users only when the server is root")
	}
	home := filepath.Join(t.TempDir(), "root")
	if err := os.MkdirAll(filepath.Join(home, "assistantd"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(home, 0o700)
	pub := t.TempDir()
	os.Chmod(filepath.Dir(pub), 0o711)
	os.Chmod(pub, 0o711)
	srv := httptest.NewServer(upstream.New())
	t.Cleanup(srv.Close)
	srvURL := srv.URL + "/v1"
	s := newServer(t, "sk-test-"+randomHex(16), filepath.Join(home, "assistantd", "data"),
		"--upstream-url", srvURL, "--code-pool", "0", "--code-timeout", "20s", "--code-shared-dir", filepath.Join(pub, "shared"))
	if code, body := readyz(t, s); code != http.StatusOK || body["code_interpreter"] != "ok" || body["status"] != "ok" {
		t.Fatalf("/readyz: %d %v", code, body)
	}
	asst := codeAssistant(t, s)
	thread, err := s.Client.Beta.Threads.New(context.Background(), openai.BetaThreadNewParams{})
	if err != nil {
		t.Fatal(err)
	}
	call, _ := codeRun(t, s, thread.ID, asst, "print(6 * 7)")
	if got := callLogs(call); got != "42\n" {
		t.Fatalf("logs %q", got)
	}

	// No reachable place: the server starts, and /readyz names the problem.
	closed := filepath.Join(t.TempDir(), "closed")
	os.MkdirAll(closed, 0o700)
	s2 := newServer(t, "sk-test-"+randomHex(16), filepath.Join(home, "assistantd", "data2"),
		"--upstream-url", srvURL, "--code-pool", "0", "--code-shared-dir", filepath.Join(closed, "shared"))
	code, body := readyz(t, s2)
	if code != http.StatusOK || body["status"] != "degraded" || !strings.Contains(body["code_interpreter"], "does not let other users pass") {
		t.Fatalf("/readyz with no reachable place: %d %v", code, body)
	}
}
