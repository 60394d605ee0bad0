package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/openai/openai-go/v3"

	"github.com/assistantd/assistantd/tests/upstream"
)

// The code_interpreter tool end to end: the scripted upstream calls the
// code_interpreter function, the server runs the code in its bubblewrap
// sandbox (real Debian python3), and openai-go reads the steps, streams,
// messages, annotations and files.

// requireCodeSandbox skips without bubblewrap and Debian's Python stack,
// except on CI, where they are installed by .ci/run and their absence is a
// failure.
func requireCodeSandbox(t testing.TB) {
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

// startCodeServer starts assistantd with tight sandbox limits against the
// scripted upstream; extra flags are appended.
func startCodeServer(t testing.TB, extra ...string) (*server, *upstream.Server) {
	t.Helper()
	requireCodeSandbox(t)
	up := upstream.New()
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	tmp := t.TempDir()
	// Kernels run as their own users and pass through the directories
	// above the data directory, as they would through /var/lib.
	os.Chmod(tmp, 0o711)
	os.Chmod(filepath.Dir(tmp), 0o711)
	args := append([]string{"--upstream-url", srv.URL + "/v1",
		"--code-pool", "1", "--code-timeout", "10s", "--code-cpu", "3s", "--code-memory", "1GiB",
		"--code-processes", "32", "--code-output", "16KiB"}, extra...)
	s := newServer(t, "sk-test-"+randomHex(16), filepath.Join(tmp, "data"), args...)
	return s, up
}

func codeAssistant(t testing.TB, s *server) string {
	return newAssistant(t, s, openai.BetaAssistantNewParams{Model: "fake-model",
		Tools: []openai.AssistantToolUnionParam{{OfCodeInterpreter: &openai.CodeInterpreterToolParam{}}}})
}

// callDirective is the upstream directive that makes the model call
// code_interpreter with code.
func callDirective(code string) string {
	b, _ := json.Marshal(map[string]string{"code": code})
	return "[[call code_interpreter " + string(b) + "]]"
}

// codeRun runs the assistant on the thread with a message making the model
// run code, and returns the code_interpreter call and the run's answer.
func codeRun(t testing.TB, s *server, thread, asst, code string, params ...openai.BetaThreadMessageNewParams) (openai.CodeInterpreterToolCall, openai.Message) {
	t.Helper()
	msg := textMessage("run it " + callDirective(code))
	if len(params) > 0 {
		msg = params[0]
		msg.Content = openai.BetaThreadMessageNewParamsContentUnion{OfString: openai.String("run it " + callDirective(code))}
	}
	if _, err := s.Client.Beta.Threads.Messages.New(context.Background(), thread, msg); err != nil {
		t.Fatalf("add message: %v", err)
	}
	run := startRun(t, s, thread, asst)
	// A generous deadline: a kernel's first start on a loaded 2-core CI
	// machine can take several seconds.
	deadline := time.Now().Add(90 * time.Second)
	for run.Status != openai.RunStatusCompleted {
		if slices.Contains(terminalStatuses, run.Status) || time.Now().After(deadline) {
			t.Fatalf("run %s is %s (last_error %+v), want completed", run.ID, run.Status, run.LastError)
		}
		time.Sleep(20 * time.Millisecond)
		var err error
		if run, err = s.Client.Beta.Threads.Runs.Get(context.Background(), thread, run.ID); err != nil {
			t.Fatal(err)
		}
	}
	var call openai.CodeInterpreterToolCall
	found := false
	for _, st := range runSteps(t, s, thread, run.ID) {
		for _, tc := range st.StepDetails.ToolCalls {
			if tc.Type == "code_interpreter" {
				call, found = tc.AsCodeInterpreter(), true
			}
		}
	}
	if !found {
		t.Fatalf("run %s has no code_interpreter call", run.ID)
	}
	if call.CodeInterpreter.Input != code {
		t.Fatalf("input = %q, want %q", call.CodeInterpreter.Input, code)
	}
	msgs := runMessages(t, s, thread)
	return call, msgs[len(msgs)-1]
}

func callLogs(call openai.CodeInterpreterToolCall) string {
	var logs []string
	for _, o := range call.CodeInterpreter.Outputs {
		if o.Type == "logs" {
			logs = append(logs, o.Logs)
		}
	}
	return strings.Join(logs, "")
}

func TestCodeInterpreterRuns(t *testing.T) {
	s, up := startCodeServer(t)
	ctx := context.Background()
	asst := codeAssistant(t, s)
	thread := threadWith(t, s)

	t.Run("logs", func(t *testing.T) {
		call, answer := codeRun(t, s, thread, asst, "x = 6 * 7\nprint('x is', x)")
		if logs := callLogs(call); logs != "x is 42\n" {
			t.Fatalf("logs = %q", logs)
		}
		if !strings.Contains(messageText(answer), "x is 42") {
			t.Fatalf("answer = %q", messageText(answer))
		}
		// The model was offered the tool as a function and read the logs.
		reqs := requestsWith(up, "x is")
		last := reqs[len(reqs)-1]
		offered := false
		for _, tool := range last.Tools {
			if fn, _ := tool["function"].(map[string]any); fn["name"] == "code_interpreter" &&
				strings.Contains(fn["description"].(string), "/mnt/data") {
				offered = true
			}
		}
		if !offered {
			t.Fatalf("code_interpreter not offered: %v", last.Tools)
		}
	})
	t.Run("state persists in the thread only", func(t *testing.T) {
		call, _ := codeRun(t, s, thread, asst, "print(x + 1)")
		if logs := callLogs(call); logs != "43\n" {
			t.Fatalf("logs = %q", logs)
		}
		other := threadWith(t, s)
		call, _ = codeRun(t, s, other, asst, "print(x)")
		if logs := callLogs(call); !strings.Contains(logs, "NameError: name 'x' is not defined") {
			t.Fatalf("other thread logs = %q", logs)
		}
	})
	t.Run("csv attachment read with pandas", func(t *testing.T) {
		f, err := s.Client.Files.New(ctx, openai.FileNewParams{Purpose: openai.FilePurposeAssistants,
			File: openai.File(strings.NewReader("region,amount\nnorth,10\nsouth,20\neast,30\n"), "sales.csv", "text/csv")})
		if err != nil {
			t.Fatal(err)
		}
		msg := openai.BetaThreadMessageNewParams{Role: openai.BetaThreadMessageNewParamsRoleUser,
			Attachments: []openai.BetaThreadMessageNewParamsAttachment{{FileID: openai.String(f.ID),
				Tools: []openai.BetaThreadMessageNewParamsAttachmentToolUnion{{OfCodeInterpreter: &openai.CodeInterpreterToolParam{}}}}}}
		call, _ := codeRun(t, s, thread, asst, "import pandas as pd\ndf = pd.read_csv('/mnt/data/sales.csv')\nprint(df['amount'].sum())", msg)
		if logs := callLogs(call); logs != "60\n" {
			t.Fatalf("logs = %q", logs)
		}
	})
	t.Run("figure becomes an image_file PNG", func(t *testing.T) {
		call, answer := codeRun(t, s, thread, asst, "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nplt.title('squares')\nplt.show()")
		var imageID string
		for _, o := range call.CodeInterpreter.Outputs {
			if o.Type == "image" {
				imageID = o.Image.FileID
			}
		}
		if imageID == "" {
			t.Fatalf("no image output: %s", call.RawJSON())
		}
		attached := false
		for _, c := range answer.Content {
			if c.Type == "image_file" && c.ImageFile.FileID == imageID {
				attached = true
			}
		}
		if !attached {
			t.Fatalf("answer lacks image_file %s: %s", imageID, answer.RawJSON())
		}
		f, err := s.Client.Files.Get(ctx, imageID)
		if err != nil || f.Purpose != "assistants_output" {
			t.Fatalf("image file: %+v %v", f, err)
		}
		res, err := s.Client.Files.Content(ctx, imageID)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || len(b) < 1000 {
			t.Fatalf("image content is not a PNG figure: %d bytes %q", len(b), b[:min(len(b), 8)])
		}
	})
	t.Run("written csv is a file_path annotation", func(t *testing.T) {
		_, answer := codeRun(t, s, thread, asst,
			"import pandas as pd\npd.DataFrame({'n': [1, 2, 3]}).assign(sq=lambda d: d.n ** 2).to_csv('/mnt/data/squares.csv', index=False)")
		var text openai.TextContentBlock
		for _, c := range answer.Content {
			if c.Type == "text" {
				text = c.AsText()
			}
		}
		link := "sandbox:/mnt/data/squares.csv"
		var ann openai.FilePathAnnotation
		for _, a := range text.Text.Annotations {
			if a.Type == "file_path" {
				ann = a.AsFilePath()
			}
		}
		if ann.Text != link {
			t.Fatalf("annotations of %q: %s", text.Text.Value, text.RawJSON())
		}
		runes := []rune(text.Text.Value)
		if ann.StartIndex < 0 || int(ann.EndIndex) > len(runes) || string(runes[ann.StartIndex:ann.EndIndex]) != link {
			t.Fatalf("annotation [%d,%d) does not cover %q in %q", ann.StartIndex, ann.EndIndex, link, text.Text.Value)
		}
		res, err := s.Client.Files.Content(ctx, ann.FilePath.FileID)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if string(b) != "n,sq\n1,1\n2,4\n3,9\n" {
			t.Fatalf("downloaded %q", b)
		}
	})
	t.Run("input streams as step deltas", func(t *testing.T) {
		code := "total = 0\nfor i in range(5):\n    total += i  # \u00e9 \u2713 \"q\" \\\nprint(f'total={total}')"
		addMessage(t, s, thread, "stream it "+callDirective(code))
		stream := s.Client.Beta.Threads.Runs.NewStreaming(streamContext(t), thread, openai.BetaThreadRunNewParams{AssistantID: asst})
		defer stream.Close()
		var input strings.Builder
		var inputDeltas int
		var logs string
		completed := false
		for stream.Next() {
			ev := stream.Current()
			switch v := ev.AsAny().(type) {
			case openai.AssistantStreamEventThreadRunStepDelta:
				for _, tc := range v.Data.Delta.StepDetails.ToolCalls {
					if tc.Type != "code_interpreter" {
						t.Fatalf("delta of a %s call", tc.Type)
					}
					if in := tc.CodeInterpreter.Input; in != "" {
						if !utf8.ValidString(in) {
							t.Fatalf("input delta %q is not UTF-8", in)
						}
						input.WriteString(in)
						inputDeltas++
					}
					for _, o := range tc.CodeInterpreter.Outputs {
						if o.Type == "logs" {
							logs += o.Logs
						}
					}
				}
			case openai.AssistantStreamEventThreadRunCompleted:
				completed = true
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if !completed || input.String() != code || inputDeltas < 5 || logs != "total=10\n" {
			t.Fatalf("completed %v, input %q in %d deltas, logs %q", completed, input.String(), inputDeltas, logs)
		}
	})
}

// Deleting a thread removes its kernel and its /mnt/data.
func TestCodeInterpreterThreadDeleted(t *testing.T) {
	s, _ := startCodeServer(t)
	asst := codeAssistant(t, s)
	thread := threadWith(t, s)
	codeRun(t, s, thread, asst, "open('/mnt/data/notes.txt', 'w').write('private')")
	dir := filepath.Join(s.Data, "sandbox", "threads", thread)
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Fatalf("thread file on the host: %v", err)
	}
	if _, err := s.Client.Beta.Threads.Delete(context.Background(), thread); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("thread directory after delete: %v", err)
	}
}

// Escapes through the API: each ends as an error output the model reads,
// and the thread's next call and the server are unaffected.
func TestCodeInterpreterEscapesContained(t *testing.T) {
	s, _ := startCodeServer(t)
	asst := codeAssistant(t, s)
	victim := threadWith(t, s)
	codeRun(t, s, victim, asst, "open('/mnt/data/secret.txt', 'w').write('VICTIM')")
	victimDir := filepath.Join(s.Data, "sandbox", "threads", victim)
	if b, err := os.ReadFile(filepath.Join(victimDir, "secret.txt")); err != nil || string(b) != "VICTIM" {
		t.Fatalf("victim file on the host: %q %v", b, err)
	}
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- struct{}{}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	thread := threadWith(t, s)
	cases := []struct{ name, code, want string }{
		{"network", fmt.Sprintf("import socket\nsocket.create_connection(('127.0.0.1', %d), timeout=3)", port), "ConnectionRefusedError"},
		{"database", fmt.Sprintf("print(open(%q, 'rb').read(16))", filepath.Join(s.Data, "assistantd.db")), "FileNotFoundError"},
		{"data directory", fmt.Sprintf("import os\nprint(os.listdir(%q))", s.Data), "FileNotFoundError"},
		{"other thread", fmt.Sprintf("print(open(%q).read())", filepath.Join(victimDir, "secret.txt")), "FileNotFoundError"},
		{"other thread relative", fmt.Sprintf("print(open('../%s/secret.txt').read())", victim), "FileNotFoundError"},
		{"write outside", "open('/usr/lib/evil.py', 'w').write('x')", "Read-only file system"},
		{"fork bomb", "import os\nwhile True:\n    os.fork()", "BlockingIOError"},
		// Reserved, never touched: the memory limit stops it at once,
		// where zeroing a gigabyte of bytearrays could meet the 3 s CPU
		// limit first on a loaded machine (the sandbox's own tests cover
		// the touched kind).
		{"memory bomb", "import numpy as np\nkeep = []\nwhile True:\n    keep.append(np.empty(50 << 20, dtype=np.uint8))", "MemoryError"},
		{"endless loop", "while True:\n    pass", "limit exceeded"}, // CPU or wall time, whichever comes first
		{"output flood", "while True:\n    print('flood' * 100)", "OutputLimit"},
		{"kernel crash", "import ctypes\nctypes.string_at(0)", "The kernel crashed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			call, _ := codeRun(t, s, thread, asst, tc.code)
			logs := callLogs(call)
			if !strings.Contains(logs, tc.want) {
				t.Fatalf("logs %q lack %q", logs, tc.want)
			}
			if len(logs) > 20<<10 {
				t.Fatalf("logs of %d bytes pass the output limit", len(logs))
			}
			next, _ := codeRun(t, s, thread, asst, "print('still here')")
			if got := callLogs(next); got != "still here\n" {
				t.Fatalf("next call: %q", got)
			}
		})
	}
	select {
	case <-accepted:
		t.Fatal("the test's listener received a connection from the sandbox")
	default:
	}
	if b, err := os.ReadFile(filepath.Join(victimDir, "secret.txt")); err != nil || string(b) != "VICTIM" {
		t.Fatalf("victim file changed: %q %v", b, err)
	}
	if res, err := http.Get(s.URL + "/healthz"); err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", res, err)
	} else {
		res.Body.Close()
	}
}
