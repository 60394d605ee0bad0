package apitest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
)

// The disk cap through the API: code writing file after file (each well
// under the file-size limit) is stopped, the step's logs say why and what
// was deleted, the run completes, and the thread keeps its earlier files
// and works on (with a fresh kernel).
func TestCodeInterpreterDiskLimit(t *testing.T) {
	// The file-count cap is set far beyond what the disk cap lets through
	// (1 MiB files against 8 MiB): the call is stopped by the disk cap
	// however late a busy machine's check comes, and a broken disk cap
	// still stops at 1,000 files (1 GiB) with a message this test refuses.
	s, _ := startCodeServer(t, "--code-disk", "8MiB", "--code-disk-files", "1000")
	asst := codeAssistant(t, s)
	thread := threadWith(t, s)
	codeRun(t, s, thread, asst, "state = 1\nopen('/mnt/data/keep.txt', 'w').write('earlier')")
	filesBefore := outputFiles(t, s)

	call, answer := codeRun(t, s, thread, asst,
		"i = 0\nwhile True:\n    open(f'/mnt/data/f{i}.bin', 'wb').write(b'x' * (1 << 20))\n    i += 1")
	logs := callLogs(call)
	for _, want := range []string{"Disk limit exceeded: /mnt/data and /tmp hold ", "the limit is 8.0 MiB",
		"what this call created or changed was deleted", "f0.bin", "The Python kernel was restarted"} {
		if !strings.Contains(logs, want) {
			t.Fatalf("logs %q lack %q", logs, want)
		}
	}
	if answer.Role != openai.MessageRoleAssistant {
		t.Fatalf("last message is %s, want the assistant's answer", answer.Role)
	}
	// The deleted files were not turned into output files.
	if after := outputFiles(t, s); after != filesBefore {
		t.Fatalf("output files: %d before the stopped call, %d after", filesBefore, after)
	}

	dir := filepath.Join(s.Data, "sandbox", "threads", thread)
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 1 || ents[0].Name() != "keep.txt" {
		t.Fatalf("thread directory after the stop: %v %v", ents, err)
	}
	next, _ := codeRun(t, s, thread, asst, "print(open('keep.txt').read(), 'state' in globals())")
	if got := callLogs(next); got != "earlier False\n" {
		t.Fatalf("next call: %q", got)
	}
}

// outputFiles counts the files with purpose assistants_output.
func outputFiles(t *testing.T, s *server) int {
	t.Helper()
	n := 0
	iter := s.Client.Files.ListAutoPaging(context.Background(), openai.FileListParams{Purpose: openai.String("assistants_output")})
	for iter.Next() {
		n++
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}
