package apitest

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/conversations"
)

// threadsCLI runs `assistantd threads-to-conversations args…` on s's store
// and returns its exit code, stdout and stderr.
func threadsCLI(t *testing.T, s *server, args ...string) (int, string, string) {
	t.Helper()
	store := []string{"--data", s.Data}
	if s.DatabaseURL != "" {
		store = append(store, "--database-url", s.DatabaseURL)
	}
	cmd := exec.Command(serverBin, append(append([]string{"threads-to-conversations"}, store...), args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// TestThreadsToConversationsCLI: --all converts every thread the
// Assistants API made (not the threads holding responses), printing the
// mapping as CSV and a progress bar; --thread converts the ones named and
// reports a missing one with exit status 1.
func TestThreadsToConversationsCLI(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t)
	ctx := context.Background()
	asst := newAssistant(t, s)
	t1 := threadWith(t, s, "first thread hello")
	run := startRun(t, s, t1, asst)
	waitRun(t, s, t1, run.ID, openai.RunStatusCompleted)
	t2 := threadWith(t, s, "second thread a", "second thread b")
	if _, err := s.Client.Responses.New(ctx, textParams("a response, whose thread is not converted")); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := threadsCLI(t, s, "--all")
	if code != 0 {
		t.Fatalf("--all: exit %d\n%s", code, errOut)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("stdout is not CSV: %v\n%s", err, out)
	}
	if len(rows) != 3 || !slices.Equal(rows[0], []string{"thread_id", "conversation_id"}) || rows[1][0] != t1 || rows[2][0] != t2 {
		t.Fatalf("mapping = %q, want t1 and t2", rows)
	}
	if !strings.Contains(errOut, "2/2") || !strings.Contains(errOut, "████") {
		t.Errorf("no progress bar on stderr:\n%s", errOut)
	}
	wantItems := map[string][]string{t1: {"first thread hello", "You said: first thread hello"}, t2: {"second thread a", "second thread b"}}
	for _, row := range rows[1:] {
		conv, err := s.Client.Conversations.Get(ctx, row[1])
		if err != nil {
			t.Fatal(err)
		}
		if meta, _ := conv.Metadata.(map[string]any); meta["thread_id"] != row[0] {
			t.Errorf("%s metadata = %v", row[1], conv.Metadata)
		}
		items, err := s.Client.Conversations.Items.List(ctx, row[1], conversations.ItemListParams{Order: conversations.ItemListParamsOrderAsc})
		if err != nil {
			t.Fatal(err)
		}
		var texts []string
		for _, it := range items.Data {
			for _, c := range it.Content.OfMessageContentArray {
				texts = append(texts, c.Text)
			}
		}
		if !slices.Equal(texts, wantItems[row[0]]) {
			t.Errorf("%s items %q, want %q", row[0], texts, wantItems[row[0]])
		}
	}

	code, out, errOut = threadsCLI(t, s, "--thread", t2, "--thread", "thread_missing")
	if code != 1 || !strings.Contains(errOut, "thread_missing") || !strings.Contains(errOut, "1 of 2 threads were not converted") {
		t.Errorf("--thread with a missing one: exit %d\n%s", code, errOut)
	}
	rows, _ = csv.NewReader(strings.NewReader(out)).ReadAll()
	if len(rows) != 2 || rows[1][0] != t2 || rows[1][1] == "" {
		t.Errorf("mapping = %q", rows)
	}
	if code, _, errOut := threadsCLI(t, s); code != 1 || !strings.Contains(errOut, "needs --thread") {
		t.Errorf("no thread named: exit %d\n%s", code, errOut)
	}
}
