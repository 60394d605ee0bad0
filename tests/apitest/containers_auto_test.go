package apitest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
)

// autoCode is a response whose code_interpreter is {"type": "auto"} with
// files, running code.
func autoCode(marker, code string, fileIDs ...string) responses.ResponseNewParams {
	p := textParams(marker + " " + callDirective(code))
	p.Tools = []responses.ToolUnionParam{{OfCodeInterpreter: &responses.ToolCodeInterpreterParam{
		Container: responses.ToolCodeInterpreterContainerUnionParam{OfCodeInterpreterToolAuto: &responses.ToolCodeInterpreterContainerCodeInterpreterContainerAutoParam{
			FileIDs: fileIDs}}}}}
	p.Include = []responses.ResponseIncludable{responses.ResponseIncludableCodeInterpreterCallOutputs}
	return p
}

// codeLogs is the logs of a response's first code_interpreter_call.
func codeLogs(t *testing.T, r *responses.Response) (container, logs string) {
	t.Helper()
	for _, it := range r.Output {
		if it.Type == "code_interpreter_call" {
			for _, o := range it.Outputs {
				logs += o.Logs
			}
			return it.ContainerID, logs
		}
	}
	t.Fatalf("no code_interpreter_call: %s", r.RawJSON())
	return "", ""
}

const listData = "import os\nprint(sorted(os.listdir('/mnt/data')))"

// TestAutoContainer: code_interpreter {"type": "auto", "file_ids"} makes a
// real container (its calls name it, the containers API serves it and its
// files); the files the code writes are cited as container_file_citation
// annotations with container file ids; a later response naming the
// container, or continuing the first one, runs in the same kernel with the
// same files. Every body is validated against the spec's schemas.
func TestAutoContainer(t *testing.T) {
	t.Parallel()
	s, _ := startCodeServer(t)
	ctx := streamContext(t)
	data := uploadText(t, s, "numbers.csv", "n\n1\n2\n3\n")

	r, err := s.Client.Responses.New(ctx, autoCode("a1",
		"import pandas as pd\ntotal = int(pd.read_csv('/mnt/data/numbers.csv').n.sum())\n"+
			"open('/mnt/data/total.txt', 'w').write(str(total))\nprint(total)", data))
	if err != nil {
		t.Fatal(err)
	}
	cid, logs := codeLogs(t, r)
	if !strings.HasPrefix(cid, "cntr_") || !strings.Contains(logs, "6") {
		t.Fatalf("auto container response: %s", r.RawJSON())
	}
	ct, err := s.Client.Containers.Get(ctx, cid)
	if err != nil {
		t.Fatalf("the auto container is not served: %v", err)
	}
	if ct.Status != "running" || ct.ExpiresAfter.Minutes != 20 {
		t.Errorf("auto container = %s", ct.RawJSON())
	}
	files, err := s.Client.Containers.Files.List(ctx, cid, openai.ContainerFileListParams{Order: openai.ContainerFileListParamsOrderAsc})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	var total openai.ContainerFileListResponse
	for _, f := range files.Data {
		paths = append(paths, f.Source+":"+f.Path)
		if f.Path == "/mnt/data/total.txt" {
			total = f
		}
	}
	if strings.Join(paths, " ") != "user:/mnt/data/numbers.csv assistant:/mnt/data/total.txt" {
		t.Fatalf("auto container files = %v", paths)
	}
	if got := bodyOf(t, call2(s.Client.Containers.Files.Content.Get(ctx, cid, total.ID))); got != "6" {
		t.Errorf("total.txt = %q", got)
	}

	// The answer cites the written file in its container.
	link := "sandbox:/mnt/data/total.txt"
	var cited []responses.ResponseOutputTextAnnotationUnion
	var text string
	for _, it := range r.Output {
		for _, c := range it.Content {
			if strings.Contains(c.Text, link) {
				text, cited = c.Text, c.Annotations
			}
		}
	}
	if len(cited) != 1 {
		t.Fatalf("annotations of %q: %+v", text, cited)
	}
	a, runes := cited[0], []rune(text)
	if a.Type != "container_file_citation" || a.ContainerID != cid || a.FileID != total.ID || a.Filename != "total.txt" ||
		a.StartIndex < 0 || int(a.EndIndex) > len(runes) || string(runes[a.StartIndex:a.EndIndex]) != link {
		t.Errorf("citation = %s in %q", a.RawJSON(), text)
	}
	stored, err := s.Client.Responses.Get(ctx, r.ID, responses.ResponseGetParams{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stored.RawJSON(), `"file_id":"`+total.ID+`"`) {
		t.Errorf("retrieved response lacks the citation: %s", stored.RawJSON())
	}

	// Named by id: the same kernel (its variable) and files.
	r, err = s.Client.Responses.New(ctx, containerCode(cid, "a2", "print(total + 1, open('/mnt/data/total.txt').read())"))
	if err != nil {
		t.Fatal(err)
	}
	if got, logs := codeLogs(t, r); got != cid || !strings.Contains(logs, "7 6") {
		t.Errorf("named container: %s %q", got, logs)
	}
	// Continued with auto again: the context's running container.
	next := autoCode("a3", "print(total * 2)")
	next.PreviousResponseID = openai.String(r.ID)
	r, err = s.Client.Responses.New(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	if got, logs := codeLogs(t, r); got != cid || !strings.Contains(logs, "12") {
		t.Errorf("continued auto: %s %q", got, logs)
	}
	// A fresh auto response gets a container of its own.
	r, err = s.Client.Responses.New(ctx, autoCode("a4", "print('total' in dir())"))
	if err != nil {
		t.Fatal(err)
	}
	if got, logs := codeLogs(t, r); got == cid || !strings.HasPrefix(got, "cntr_") || !strings.Contains(logs, "False") {
		t.Errorf("fresh auto: %s %q", got, logs)
	}
	// A response without code makes none.
	before, err := s.Client.Containers.List(ctx, openai.ContainerListParams{Limit: openai.Int(100)})
	if err != nil {
		t.Fatal(err)
	}
	p := textParams("no code here")
	p.Tools = autoCode("", "").Tools
	if _, err := s.Client.Responses.New(ctx, p); err != nil {
		t.Fatal(err)
	}
	after, err := s.Client.Containers.List(ctx, openai.ContainerListParams{Limit: openai.Int(100)})
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Data) != len(before.Data) || len(before.Data) != 2 {
		t.Errorf("containers %d before, %d after a response without code", len(before.Data), len(after.Data))
	}
}

// TestContainerFilesInKernel: the kernel's /mnt/data follows the
// container's files: a deleted file leaves it, an upload under a taken
// name replaces the file there (the listed path is the path the code
// sees), and a file the code rewrites stays one file.
func TestContainerFilesInKernel(t *testing.T) {
	t.Parallel()
	s, _ := startCodeServer(t)
	ctx := streamContext(t)
	ct, err := s.Client.Containers.New(ctx, openai.ContainerNewParams{Name: "sync"})
	if err != nil {
		t.Fatal(err)
	}
	step := 0
	list := func(code, want string) {
		t.Helper()
		step++
		r, err := s.Client.Responses.New(ctx, containerCode(ct.ID, "k"+string(rune('0'+step)), code+"\n"+listData))
		if err != nil {
			t.Fatal(err)
		}
		if _, logs := codeLogs(t, r); !strings.Contains(logs, want) {
			t.Errorf("step %d: /mnt/data %q, want %s", step, logs, want)
		}
	}
	upload := func(name, content string) *openai.ContainerFileNewResponse {
		t.Helper()
		f, err := s.Client.Containers.Files.New(ctx, ct.ID, openai.ContainerFileNewParams{
			File: openai.File(strings.NewReader(content), name, "text/plain")})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	a := upload("a.txt", "one")
	upload("b.txt", "bee")
	list("print(open('/mnt/data/a.txt').read())", "one\n['a.txt', 'b.txt']")

	// Replaced by an upload of the same name: one a.txt, the new one.
	a2 := upload("a.txt", "two")
	if a2.Path != a.Path || a2.ID == a.ID {
		t.Errorf("replacement = %s", a2.RawJSON())
	}
	if _, err := s.Client.Containers.Files.Get(ctx, ct.ID, a.ID); statusOf(err) != 404 {
		t.Errorf("the replaced file is still listed: %v", err)
	}
	list("print(open('/mnt/data/a.txt').read())", "two\n['a.txt', 'b.txt']")

	// Deleted: gone from /mnt/data, at once.
	if err := s.Client.Containers.Files.Delete(ctx, ct.ID, a2.ID); err != nil {
		t.Fatal(err)
	}
	kernelDir := filepath.Join(s.Data, "sandbox", "threads", ct.ID)
	if _, err := os.Stat(filepath.Join(kernelDir, "b.txt")); err != nil {
		t.Fatalf("the kernel's directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(kernelDir, "a.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a deleted file stays in the kernel's directory until code runs: %v", err)
	}
	list("", "['b.txt']")

	// Written twice by the code: one file, listed once, its last content.
	list("open('/mnt/data/c.txt', 'w').write('first')", "['b.txt', 'c.txt']")
	list("open('/mnt/data/c.txt', 'w').write('second')", "['b.txt', 'c.txt']")
	list("print(open('/mnt/data/c.txt').read())", "second\n['b.txt', 'c.txt']")
	files, err := s.Client.Containers.Files.List(ctx, ct.ID, openai.ContainerFileListParams{})
	if err != nil {
		t.Fatal(err)
	}
	var cs []openai.ContainerFileListResponse
	for _, f := range files.Data {
		if f.Path == "/mnt/data/c.txt" {
			cs = append(cs, f)
		}
	}
	if len(files.Data) != 2 || len(cs) != 1 {
		t.Fatalf("container files: %s", files.RawJSON())
	}
	if got := bodyOf(t, call2(s.Client.Containers.Files.Content.Get(ctx, ct.ID, cs[0].ID))); got != "second" {
		t.Errorf("c.txt = %q", got)
	}
	// A written file deleted through the API leaves the kernel too, also
	// right after the call that wrote it.
	if err := s.Client.Containers.Files.Delete(ctx, ct.ID, cs[0].ID); err != nil {
		t.Fatal(err)
	}
	list("open('/mnt/data/d.txt', 'w').write('dee')", "['b.txt', 'd.txt']")
	files, err = s.Client.Containers.Files.List(ctx, ct.ID, openai.ContainerFileListParams{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files.Data {
		if f.Path == "/mnt/data/d.txt" {
			if err := s.Client.Containers.Files.Delete(ctx, ct.ID, f.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	list("", "['b.txt']")
}
