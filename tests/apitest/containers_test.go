package apitest

import (
	"database/sql"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// execStore runs one statement on s's database, for a test to put a
// record where no API call can (a container idle for an hour). The server
// must be stopped.
func execStore(t *testing.T, s *server, query string, args ...any) {
	t.Helper()
	driver, dsn := "sqlite", "file:"+filepath.Join(s.Data, "assistantd.db")+"?_pragma=busy_timeout(5000)"
	if s.DatabaseURL != "" {
		driver, dsn = "pgx", s.DatabaseURL
	}
	conn, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Exec(query, args...); err != nil {
		t.Fatal(err)
	}
}

func containerCode(id, marker, code string) responses.ResponseNewParams {
	p := textParams(marker + " " + callDirective(code))
	p.Tools = []responses.ToolUnionParam{{OfCodeInterpreter: &responses.ToolCodeInterpreterParam{
		Container: responses.ToolCodeInterpreterContainerUnionParam{OfString: openai.String(id)}}}}
	p.Include = []responses.ResponseIncludable{responses.ResponseIncludableCodeInterpreterCallOutputs}
	return p
}

func bodyOf(t *testing.T, r httpResult) string {
	t.Helper()
	res, err := r.res, r.err
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func statusOf(err error) int {
	var ae *openai.Error
	if errors.As(err, &ae) {
		return ae.StatusCode
	}
	return 0
}

// TestContainers: a container made with files (by id, and one uploaded
// later) runs the code of responses naming it in one kernel with its
// files; what the code writes becomes the container's files; once it
// expires (idle past expires_after) responses cannot use it, its kernel is
// stopped by the sweep, and its files are still downloadable until it is
// deleted. Every body is validated against the spec's schemas.
func TestContainers(t *testing.T) {
	t.Parallel()
	s, _ := startCodeServer(t)
	ctx := streamContext(t)
	data := uploadText(t, s, "numbers.csv", "n\n1\n2\n3\n")

	ct, err := s.Client.Containers.New(ctx, openai.ContainerNewParams{Name: "analysis", FileIDs: []string{data},
		ExpiresAfter: openai.ContainerNewParamsExpiresAfter{Anchor: "last_active_at", Minutes: 5}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ct.ID, "cntr_") || ct.Object != "container" || ct.Name != "analysis" || ct.Status != "running" ||
		ct.ExpiresAfter.Minutes != 5 || ct.ExpiresAfter.Anchor != "last_active_at" || ct.LastActiveAt == 0 {
		t.Errorf("container = %s", ct.RawJSON())
	}
	other, err := s.Client.Containers.New(ctx, openai.ContainerNewParams{Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if other.ExpiresAfter.Minutes != 20 {
		t.Errorf("default expiry: %s", other.RawJSON())
	}
	page, err := s.Client.Containers.List(ctx, openai.ContainerListParams{Name: openai.String("analysis")})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 1 || page.Data[0].ID != ct.ID {
		t.Errorf("list by name: %s", page.RawJSON())
	}
	if page, err = s.Client.Containers.List(ctx, openai.ContainerListParams{Order: openai.ContainerListParamsOrderAsc}); err != nil ||
		len(page.Data) != 2 || page.Data[0].ID != ct.ID {
		t.Errorf("list: %v %v", err, page)
	}

	// Files in: the one it was made with, an upload, a file by id.
	up, err := s.Client.Containers.Files.New(ctx, ct.ID, openai.ContainerFileNewParams{
		File: openai.File(strings.NewReader("factor = 10\n"), "settings.py", "text/x-python")})
	if err != nil {
		t.Fatal(err)
	}
	if up.Source != "user" || up.Path != "/mnt/data/settings.py" || up.Bytes != 12 || up.ContainerID != ct.ID || !strings.HasPrefix(up.ID, "cfile_") {
		t.Errorf("uploaded = %s", up.RawJSON())
	}
	notes := uploadText(t, s, "notes.txt", "remember me")
	byID, err := s.Client.Containers.Files.New(ctx, ct.ID, openai.ContainerFileNewParams{FileID: openai.String(notes)})
	if err != nil {
		t.Fatal(err)
	}
	if byID.Path != "/mnt/data/notes.txt" {
		t.Errorf("by id = %s", byID.RawJSON())
	}

	// Code in the container: its files, one kernel across responses, and
	// what it writes listed as the container's files.
	r, err := s.Client.Responses.New(ctx, containerCode(ct.ID, "c1",
		"import pandas as pd\nexec(open('/mnt/data/settings.py').read())\ntotal = pd.read_csv('/mnt/data/numbers.csv').n.sum() * factor\n"+
			"open('/mnt/data/total.txt', 'w').write(str(total))\nprint(total, open('/mnt/data/notes.txt').read())"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Output) == 0 || r.Output[0].Type != "code_interpreter_call" || len(r.Output[0].Outputs) == 0 ||
		!strings.Contains(r.Output[0].Outputs[0].Logs, "60 remember me") {
		t.Fatalf("first response = %s", r.RawJSON())
	}
	if r.Output[0].ContainerID != ct.ID {
		t.Errorf("code_interpreter_call.container_id = %q, want %s", r.Output[0].ContainerID, ct.ID)
	}
	r, err = s.Client.Responses.New(ctx, containerCode(ct.ID, "c2", "print(total + 1)"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Output[0].Outputs) == 0 || !strings.Contains(r.Output[0].Outputs[0].Logs, "61") {
		t.Errorf("the second response ran in another kernel: %s", r.RawJSON())
	}
	files, err := s.Client.Containers.Files.List(ctx, ct.ID, openai.ContainerFileListParams{Order: openai.ContainerFileListParamsOrderAsc})
	if err != nil {
		t.Fatal(err)
	}
	var written *openai.ContainerFileListResponse
	var paths []string
	for i, f := range files.Data {
		paths = append(paths, f.Source+":"+f.Path)
		if f.Path == "/mnt/data/total.txt" {
			written = &files.Data[i]
		}
	}
	if len(files.Data) != 4 || written == nil || written.Source != "assistant" {
		t.Fatalf("container files %v", paths)
	}
	if got := bodyOf(t, call2(s.Client.Containers.Files.Content.Get(ctx, ct.ID, written.ID))); got != "60" {
		t.Errorf("total.txt = %q", got)
	}
	if got, err := s.Client.Containers.Files.Get(ctx, ct.ID, up.ID); err != nil || got.Path != up.Path {
		t.Errorf("retrieve: %v %v", err, got)
	}
	if err := s.Client.Containers.Files.Delete(ctx, ct.ID, byID.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.Containers.Files.Get(ctx, ct.ID, byID.ID); statusOf(err) != http.StatusNotFound {
		t.Errorf("deleted file: %v", err)
	}
	if _, err := s.Client.Files.Get(ctx, notes); err != nil {
		t.Errorf("removing it from the container deleted the client's file: %v", err)
	}
	kernelDir := filepath.Join(s.Data, "sandbox", "threads", ct.ID)
	if _, err := os.Stat(kernelDir); err != nil {
		t.Fatalf("no kernel directory for the container: %v", err)
	}

	// Idle for an hour: expired. The sweep (at start, then every minute)
	// stops its kernel; its files stay downloadable.
	s.stop(t)
	execStore(t, s, `UPDATE containers SET last_active_at = last_active_at - 3600 WHERE id = $1`, ct.ID)
	s.start(t)
	got, err := s.Client.Containers.Get(ctx, ct.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != "expired" {
		t.Errorf("after an idle hour: %s", got.RawJSON())
	}
	for deadline := time.Now().Add(runDeadline); ; {
		if _, err := os.Stat(kernelDir); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sweep did not stop the expired container's kernel")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, err = s.Client.Responses.New(ctx, containerCode(ct.ID, "c3", "print(1)"))
	if ae := respErr(t, err, http.StatusBadRequest); ae.Param != "tools[0].container" || !strings.Contains(ae.Message, "expired") {
		t.Errorf("response on an expired container: %s", ae.RawJSON())
	}
	if got := bodyOf(t, call2(s.Client.Containers.Files.Content.Get(ctx, ct.ID, written.ID))); got != "60" {
		t.Errorf("total.txt after expiry = %q", got)
	}

	// Deleted: gone, with the files it made; the client's own file stays.
	if err := s.Client.Containers.Delete(ctx, ct.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.Containers.Get(ctx, ct.ID); statusOf(err) != http.StatusNotFound {
		t.Errorf("deleted container: %v", err)
	}
	if _, err := s.Client.Containers.Files.Content.Get(ctx, ct.ID, written.ID); statusOf(err) != http.StatusNotFound {
		t.Errorf("a deleted container's file: %v", err)
	}
	if _, err := s.Client.Files.Get(ctx, data); err != nil {
		t.Errorf("deleting the container deleted the client's file: %v", err)
	}

	// Bad requests.
	for _, tc := range []struct{ name, path, body, param string }{
		{"no name", "/v1/containers", `{}`, "name"},
		{"bad expiry", "/v1/containers", `{"name":"x","expires_after":{"anchor":"created_at","minutes":5}}`, "expires_after.anchor"},
		{"zero minutes", "/v1/containers", `{"name":"x","expires_after":{"anchor":"last_active_at","minutes":0}}`, "expires_after.minutes"},
		{"unknown file", "/v1/containers", `{"name":"x","file_ids":["file-nope"]}`, "file_ids"},
		{"no file", "/v1/containers/" + other.ID + "/files", `{}`, "file_id"},
		{"unknown container", "/v1/responses", `{"model":"fake-model","input":"x","tools":[{"type":"code_interpreter","container":"cntr_nope"}]}`, "tools[0].container"},
	} {
		res := s.do(t, "POST", tc.path, strings.NewReader(tc.body), http.Header{"Content-Type": {"application/json"}})
		if res.Status != http.StatusBadRequest && res.Status != http.StatusNotFound || !strings.Contains(string(res.Body), tc.param) {
			t.Errorf("%s: %d %s", tc.name, res.Status, res.Body)
		}
	}
}

// call2 passes a (response, error) pair on as one value.
func call2(res *http.Response, err error) httpResult { return httpResult{res, err} }

type httpResult struct {
	res *http.Response
	err error
}
