package apitest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
)

// populate creates assistants, threads, messages and files, and returns
// the GET paths whose bodies describe them all.
func populate(t testing.TB, s *server) []string {
	t.Helper()
	ctx := context.Background()
	paths := []string{"/v1/assistants?limit=100&order=asc", "/v1/files?order=asc"}
	f := uploadFile(t, s, "data.csv", "a,b\n1,2\n", openai.FilePurposeAssistants)
	img := uploadFile(t, s, "img.png", "\x89PNG fake", openai.FilePurposeVision)
	paths = append(paths, "/v1/files/"+f.ID, "/v1/files/"+f.ID+"/content", "/v1/files/"+img.ID, "/v1/files/"+img.ID+"/content")
	for i := range 3 {
		a, err := s.Client.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{
			Model: "gpt-4o-mini", Name: openai.String(fmt.Sprintf("assistant %d", i)), Instructions: openai.String("Be brief."),
			Tools: []openai.AssistantToolUnionParam{{OfCodeInterpreter: &openai.CodeInterpreterToolParam{}}},
			ToolResources: openai.BetaAssistantNewParamsToolResources{
				CodeInterpreter: openai.BetaAssistantNewParamsToolResourcesCodeInterpreter{FileIDs: []string{f.ID}}},
			Metadata: shared.Metadata{"i": fmt.Sprint(i)}, Temperature: openai.Float(0.25),
			ResponseFormat: openai.AssistantResponseFormatOptionUnionParam{OfJSONObject: &shared.ResponseFormatJSONObjectParam{}},
		})
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, "/v1/assistants/"+a.ID)
	}
	for i := range 2 {
		th, err := s.Client.Beta.Threads.New(ctx, openai.BetaThreadNewParams{
			Metadata: shared.Metadata{"thread": fmt.Sprint(i)},
			Messages: []openai.BetaThreadNewParamsMessage{{Role: "user", Content: openai.BetaThreadNewParamsMessageContentUnion{OfString: openai.String("first")}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, "/v1/threads/"+th.ID, "/v1/threads/"+th.ID+"/messages?limit=100&order=asc")
		for j := range 5 {
			m, err := s.Client.Beta.Threads.Messages.New(ctx, th.ID, openai.BetaThreadMessageNewParams{Role: "assistant",
				Content: openai.BetaThreadMessageNewParamsContentUnion{OfArrayOfContentParts: []openai.MessageContentPartParamUnion{
					openai.MessageContentPartParamOfText(fmt.Sprintf("reply %d", j)),
					openai.MessageContentPartParamOfImageFile(openai.ImageFileParam{FileID: img.ID, Detail: "low"}),
				}},
				Attachments: []openai.BetaThreadMessageNewParamsAttachment{{FileID: openai.String(f.ID),
					Tools: []openai.BetaThreadMessageNewParamsAttachmentToolUnion{{OfCodeInterpreter: &openai.CodeInterpreterToolParam{}}}}},
				Metadata: shared.Metadata{"j": fmt.Sprint(j)},
			})
			if err != nil {
				t.Fatal(err)
			}
			paths = append(paths, "/v1/threads/"+th.ID+"/messages/"+m.ID)
		}
	}
	return paths
}

// bodies GETs every path and returns the response bodies.
func bodies(t testing.TB, s *server, paths []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range paths {
		res := s.do(t, "GET", p, nil, http.Header{"Openai-Beta": {"assistants=v2"}})
		if res.Status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, res.Status, res.Body)
		}
		out[p] = string(res.Body)
	}
	return out
}

func TestRestartKeepsEverything(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	paths := populate(t, s)
	before := bodies(t, s, paths)
	oldURL := s.URL

	s.restart(t)
	if s.URL == oldURL {
		t.Logf("note: the restarted server got the same address %s", s.URL)
	}
	if diff := cmp.Diff(before, bodies(t, s, paths)); diff != "" {
		t.Errorf("after restart (-before +after):\n%s", diff)
	}
	// The restarted server still takes writes, and ids stay unique.
	a, err := s.Client.Beta.Assistants.New(context.Background(), openai.BetaAssistantNewParams{Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	for p, body := range before {
		if strings.Contains(body, a.ID) {
			t.Errorf("new id %s already appears in %s", a.ID, p)
		}
	}
}

func TestKillKeepsCommittedWrites(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	paths := populate(t, s)
	before := bodies(t, s, paths)
	s.kill(t)
	s.restart(t)
	if diff := cmp.Diff(before, bodies(t, s, paths)); diff != "" {
		t.Errorf("after SIGKILL and start (-before +after):\n%s", diff)
	}
	var leftovers []string
	for _, f := range storedFiles(t, s) {
		if strings.HasPrefix(f, ".") {
			leftovers = append(leftovers, f)
		}
	}
	if len(leftovers) > 0 {
		t.Errorf("staging leftovers in %s/files: %v", s.Data, leftovers)
	}
}

const generatedKeyLine = "Generated an API key for /v1."

// generatedKey returns the key a first start printed, or "".
func generatedKey(s *server) string {
	lines := s.out.lines()
	for i, l := range lines {
		if strings.HasPrefix(l, generatedKeyLine) {
			for _, k := range lines[i+1:] {
				if k = strings.TrimSpace(k); k != "" {
					return k
				}
			}
		}
	}
	return ""
}

func TestGeneratedAPIKey(t *testing.T) {
	t.Parallel()
	s := newServer(t, "", t.TempDir())
	key := generatedKey(s)
	if len(key) < 20 {
		t.Fatalf("first start printed no usable key; stdout:\n%s", s.out.String())
	}
	if n := strings.Count(s.out.String(), key); n != 1 {
		t.Errorf("key printed %d times, want once", n)
	}
	s.Key = key
	s.connect()
	ctx := context.Background()
	if _, err := s.Client.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{Model: "m"}); err != nil {
		t.Fatalf("generated key refused: %v", err)
	}
	res := s.do(t, "GET", "/v1/assistants", nil, http.Header{"Authorization": {"Bearer " + key + "x"}})
	checkError(t, res, wantErr{http.StatusUnauthorized, "invalid_request_error", "", "invalid_api_key", ""})

	s.restart(t)
	if strings.Contains(s.out.String(), generatedKeyLine) || strings.Contains(s.out.String(), key) {
		t.Errorf("second start printed a key again:\n%s", s.out.String())
	}
	page, err := s.Client.Beta.Assistants.List(ctx, openai.BetaAssistantListParams{})
	if err != nil {
		t.Fatalf("generated key refused after restart: %v", err)
	}
	if len(page.Data) != 1 {
		t.Errorf("%d assistants after restart, want 1", len(page.Data))
	}

	// The key is stored hashed: it appears in no file of the data directory.
	err = filepath.WalkDir(s.Data, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(key)) {
			t.Errorf("%s contains the API key in clear", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// runBinary runs the server binary to completion with args.
func runBinary(t *testing.T, args ...string) (stdout, stderr string, exitCode int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, serverBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "ASSISTANTD_API_KEY=", "ASSISTANTD_UPSTREAM_URL=", "ASSISTANTD_MAX_UPLOAD_BYTES=")
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		exitCode = ee.ExitCode()
	default:
		t.Fatalf("run %v: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%v did not exit within the deadline", args)
	}
	return out.String(), errb.String(), exitCode
}

func TestHelp(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := runBinary(t, "--help")
	if code != 0 {
		t.Fatalf("--help exited %d; stderr:\n%s", code, stderr)
	}
	for _, flag := range []string{"-addr", "-data", "-api-key", "-upstream-url", "-upstream-key", "-max-upload-bytes"} {
		if !strings.Contains(stdout+stderr, flag+" ") && !strings.Contains(stdout+stderr, flag+"\n") {
			t.Errorf("--help does not document %s:\n%s", flag, stdout+stderr)
		}
	}
}

func TestInvalidFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string // in the error output
	}{
		{"upstream url scheme", []string{"--upstream-url", "ftp://example.com/v1"}, "--upstream-url"},
		{"upstream url not a url", []string{"--upstream-url", "not a url"}, "--upstream-url"},
		{"upstream url without host", []string{"--upstream-url", "http://"}, "--upstream-url"},
		{"max upload text", []string{"--max-upload-bytes", "lots"}, "--max-upload-bytes"},
		{"max upload zero", []string{"--max-upload-bytes", "0"}, "--max-upload-bytes"},
		{"max upload negative", []string{"--max-upload-bytes", "-5"}, "--max-upload-bytes"},
		{"max upload bad unit", []string{"--max-upload-bytes", "12XB"}, "--max-upload-bytes"},
		{"short api key", []string{"--api-key", "short"}, "--api-key"},
		{"bad addr", []string{"--addr", "nowhere"}, "--addr"},
		{"unknown flag", []string{"--bogus"}, "bogus"},
		{"stray argument", []string{"serve"}, "serve"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"--data", t.TempDir(), "--addr", "127.0.0.1:0"}, tc.args...)
			stdout, stderr, code := runBinary(t, args...)
			if code == 0 {
				t.Fatalf("exit 0, want non-zero; stdout:\n%s", stdout)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr does not mention %q:\n%s", tc.want, stderr)
			}
			if strings.Contains(stdout, listeningPrefix) {
				t.Errorf("server started listening despite the bad flag")
			}
		})
	}
}

// TestCrashDuringUpload kills the server while an upload is being staged:
// the next start must not keep the partial content.
func TestCrashDuringUpload(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	kept := uploadFile(t, s, "kept.txt", "kept", openai.FilePurposeAssistants)

	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	req, err := http.NewRequest("POST", s.URL+"/v1/files", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Key)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	done := make(chan error, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	if err := mw.WriteField("purpose", "assistants"); err != nil {
		t.Fatal(err)
	}
	part, err := mw.CreateFormFile("file", "big.bin")
	if err != nil {
		t.Fatal(err)
	}
	// Stream until the server has started staging the content.
	staged := func() bool {
		for _, f := range storedFiles(t, s) {
			if f != kept.ID {
				return true
			}
		}
		return false
	}
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	deadline := time.Now().Add(10 * time.Second)
	for !staged() {
		if time.Now().After(deadline) {
			t.Fatalf("no staged content appeared in %s/files", s.Data)
		}
		if _, err := part.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	s.kill(t)
	pw.CloseWithError(errors.New("server killed"))
	<-done

	s.restart(t)
	if diff := cmp.Diff([]string{kept.ID}, storedFiles(t, s)); diff != "" {
		t.Errorf("%s/files after restart (-want +got):\n%s", s.Data, diff)
	}
	if _, err := s.Client.Files.Get(context.Background(), kept.ID); err != nil {
		t.Errorf("committed file lost: %v", err)
	}
}

// TestDataDirCreated starts on a data directory that does not exist yet.
func TestDataDirCreated(t *testing.T) {
	t.Parallel()
	sqliteOnly(t)
	data := filepath.Join(t.TempDir(), "nested", "data")
	s := newServer(t, "sk-test-"+randomHex(16), data)
	uploadFile(t, s, "a.txt", "a", openai.FilePurposeAssistants)
	for _, p := range []string{"assistantd.db", "files"} {
		if _, err := os.Stat(filepath.Join(data, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}
