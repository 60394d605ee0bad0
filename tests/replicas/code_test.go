package replicas

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
)

// requireCodeSandbox skips without bubblewrap and Debian's Python stack,
// except on CI, where .ci/run installs them and their absence fails.
func requireCodeSandbox(t *testing.T) {
	t.Helper()
	_, errB := exec.LookPath("bwrap")
	errP := exec.Command("/usr/bin/python3", "-c", "import numpy, pandas, matplotlib, scipy, sklearn").Run()
	if errB != nil || errP != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("sandbox prerequisites missing: bwrap: %v, python3 stack: %v", errB, errP)
		}
		t.Skipf("sandbox prerequisites missing: bwrap: %v, python3 stack: %v", errB, errP)
	}
}

// codeDataDir is a data directory the kernels' users may pass through
// (as /var/lib would let them), so each replica's sandbox keeps its
// threads' files in it.
func codeDataDir(t *testing.T) string {
	tmp := t.TempDir()
	os.Chmod(tmp, 0o711)
	os.Chmod(filepath.Dir(tmp), 0o711)
	return filepath.Join(tmp, "data")
}

// codeDirective makes the scripted model call code_interpreter with code.
func codeDirective(code string) string {
	b, _ := json.Marshal(map[string]string{"code": code})
	return "run it [[call code_interpreter " + string(b) + "]]"
}

// addRun adds a user message to the thread and starts a run, through r.
func addRun(t *testing.T, r *replica, threadID, asst, text string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := r.Client.Beta.Threads.Messages.New(ctx, threadID, openai.BetaThreadMessageNewParams{Role: "user",
		Content: openai.BetaThreadMessageNewParamsContentUnion{OfString: openai.String(text)}}); err != nil {
		t.Fatalf("add message through %s: %v", r.name, err)
	}
	run, err := r.Client.Beta.Threads.Runs.New(ctx, threadID, openai.BetaThreadRunNewParams{AssistantID: asst})
	if err != nil {
		t.Fatalf("create run through %s: %v", r.name, err)
	}
	return run.ID
}

// name is the replica's name, or what names no replica of the test.
func (c *cluster) name(claimedBy string) string {
	if r := c.holder(claimedBy); r != nil {
		return r.name
	}
	return "no replica of the test (" + claimedBy + ")"
}

// codeLogs are the logs of the run's code_interpreter calls, read
// through r.
func codeLogs(t *testing.T, r *replica, threadID, runID string) string {
	t.Helper()
	page, err := r.Client.Beta.Threads.Runs.Steps.List(context.Background(), threadID, runID, openai.BetaThreadRunStepListParams{})
	if err != nil {
		t.Fatalf("list steps: %v", err)
	}
	var logs []string
	for _, st := range page.Data {
		for _, tc := range st.StepDetails.ToolCalls {
			if tc.Type != "code_interpreter" {
				continue
			}
			for _, o := range tc.AsCodeInterpreter().CodeInterpreter.Outputs {
				logs = append(logs, o.Logs)
			}
		}
	}
	return strings.Join(logs, "")
}

// TestCodeInterpreterAcrossReplicas: a thread's next run goes to the
// replica whose kernel holds its variables, even when created through
// another; when that replica dies, the thread's next run executes
// elsewhere in a new kernel that finds every file the code left in
// /mnt/data (written, changed, in a subdirectory; removed ones stay
// removed), though not the variables.
func TestCodeInterpreterAcrossReplicas(t *testing.T) {
	requireCodeSandbox(t)
	t.Parallel()
	c := newCluster(t)
	code := []string{"--run-lease", "1s", "--code-pool", "0", "--code-timeout", "30s"}
	data := map[string]string{"a": codeDataDir(t), "b": codeDataDir(t)}
	a := c.start("a", append([]string{"--data", data["a"]}, code...)...)
	b := c.start("b", append([]string{"--data", data["b"]}, code...)...)
	api := c.start("api", "--role", "api")
	ctx := context.Background()
	as, err := a.Client.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{Model: "fake-model",
		Tools: []openai.AssistantToolUnionParam{{OfCodeInterpreter: &openai.CodeInterpreterToolParam{}}}})
	if err != nil {
		t.Fatal(err)
	}
	asst := as.ID

	th, run1 := createRun(t, a, asst, codeDirective(`x = 41
import os
open('/mnt/data/out.txt', 'w').write('hello')
open('/mnt/data/gone.txt', 'w').write('bye')
os.makedirs('/mnt/data/sub', exist_ok=True)
open('/mnt/data/sub/deep.txt', 'w').write('deep')
print('first call')`))
	waitStatus(t, a, th, run1, 90*time.Second, openai.RunStatusCompleted)
	home := c.holder(c.runRow(run1).ClaimedBy)
	if home == nil {
		t.Fatalf("run 1 was claimed by %q, no replica of the test", c.runRow(run1).ClaimedBy)
	}
	other := a
	if home == a {
		other = b
	}
	if logs := codeLogs(t, other, th, run1); !strings.Contains(logs, "first call") {
		t.Fatalf("run 1 logs: %q", logs)
	}

	// Created through the other replica, the run waits for the one whose
	// kernel has x.
	run2 := addRun(t, other, th, asst, codeDirective(`import os
os.remove('/mnt/data/gone.txt')
open('/mnt/data/out.txt', 'a').write(' again')
print('x + 1 =', x + 1)`))
	waitStatus(t, other, th, run2, 90*time.Second, openai.RunStatusCompleted)
	if by := c.runRow(run2).ClaimedBy; c.holder(by) != home {
		t.Fatalf("run 2 executed by %s, want %s (its thread's kernel)", c.name(by), home.name)
	}
	if logs := codeLogs(t, other, th, run2); !strings.Contains(logs, "x + 1 = 42") {
		t.Fatalf("run 2 did not find the kernel's variables: %q", logs)
	}
	var saved []string
	rows, err := c.db.Query(`SELECT path FROM sandbox_files WHERE thread_id = $1 ORDER BY path`, th)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var p string
		rows.Scan(&p)
		saved = append(saved, p)
	}
	rows.Close()
	if strings.Join(saved, ",") != "out.txt,sub/deep.txt" {
		t.Fatalf("saved files: %q, want out.txt and sub/deep.txt", saved)
	}

	// The kernel's replica dies: the next run executes on the other, in
	// a new kernel with the thread's files.
	home.kill()
	run3 := addRun(t, other, th, asst, codeDirective(`import os
print(sorted(os.listdir('/mnt/data')), open('/mnt/data/out.txt').read(), open('/mnt/data/sub/deep.txt').read(), 'x' in globals())`))
	waitStatus(t, other, th, run3, 90*time.Second, openai.RunStatusCompleted)
	if by := c.runRow(run3).ClaimedBy; c.holder(by) != other {
		t.Fatalf("run 3 executed by %s, want %s", c.name(by), other.name)
	}
	if logs, want := codeLogs(t, other, th, run3), "['out.txt', 'sub'] hello again deep False"; !strings.Contains(logs, want) {
		t.Fatalf("run 3 logs: %q, want %q", logs, want)
	}

	// Deleted through a replica that ran none of its code, the thread's
	// kernel and files go on the one that did.
	dir := filepath.Join(data[other.name], "sandbox", "threads", th)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the thread's directory on %s: %v", other.name, err)
	}
	if _, err := api.Client.Beta.Threads.Delete(ctx, th); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the thread's files to go on "+other.name, func() bool {
		_, err := os.Stat(dir)
		return os.IsNotExist(err)
	})
	for _, tbl := range []string{"sandbox_files", "code_kernels"} {
		var n int
		if err := c.db.QueryRow(`SELECT count(*) FROM `+tbl+` WHERE thread_id = $1`, th).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s: %d rows left for the deleted thread (%v)", tbl, n, err)
		}
	}
}

// TestContainerDeletedStopsKernelElsewhere: a container whose code ran on
// replica B (its kernel and /mnt/data there) is deleted through replica
// A: B stops the kernel and drops its directory too, told through the
// forget notification, not left to the idle timeout.
func TestContainerDeletedStopsKernelElsewhere(t *testing.T) {
	requireCodeSandbox(t)
	t.Parallel()
	c := newCluster(t)
	code := []string{"--code-pool", "0", "--code-timeout", "30s"}
	data := map[string]string{"a": codeDataDir(t), "b": codeDataDir(t)}
	a := c.start("a", append([]string{"--data", data["a"]}, code...)...)
	b := c.start("b", append([]string{"--data", data["b"]}, code...)...)
	ctx := context.Background()
	ct, err := a.Client.Containers.New(ctx, openai.ContainerNewParams{Name: "elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	call, _ := json.Marshal(map[string]string{"code": "open('/mnt/data/kept.txt', 'w').write('here')\nprint('ran')"})
	r, err := b.Client.Responses.New(ctx, responses.ResponseNewParams{Model: "fake-model",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("elsewhere [[call code_interpreter " + string(call) + "]]")},
		Tools: []responses.ToolUnionParam{{OfCodeInterpreter: &responses.ToolCodeInterpreterParam{
			Container: responses.ToolCodeInterpreterContainerUnionParam{OfString: openai.String(ct.ID)}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Output) == 0 || r.Output[0].Type != "code_interpreter_call" || r.Output[0].ContainerID != ct.ID {
		t.Fatalf("response through b: %s", r.RawJSON())
	}
	dir := filepath.Join(data["b"], "sandbox", "threads", ct.ID)
	if _, err := os.Stat(filepath.Join(dir, "kept.txt")); err != nil {
		t.Fatalf("the container's /mnt/data on b: %v", err)
	}
	if err := a.Client.Containers.Delete(ctx, ct.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "b to drop the deleted container's directory", func() bool {
		_, err := os.Stat(dir)
		return os.IsNotExist(err)
	})
}
