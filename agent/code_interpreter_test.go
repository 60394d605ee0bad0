package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/assistantd/assistantd/agent/sandbox"
	"github.com/assistantd/assistantd/db"
)

// The code streams as the model writes it, whatever the fragments cut:
// escapes, surrogate pairs and UTF-8 sequences split across fragments,
// other members before the code.
func TestCodeStreamAnyFragmentation(t *testing.T) {
	codes := []string{
		"print(1)",
		"print(\"a\\tb\")\nx = 'é✓'\n# 𝄞 clef\r\n\t\\n",
		"s = \"\\u00e9\" + '\\\\'\n",
		"emoji = '😀😃'\nprint(emoji)",
		"",
	}
	for _, code := range codes {
		b, _ := json.Marshal(map[string]string{"code": code})
		raws := []string{string(b), `{"lang": "py", "n": [1, {"x": "}"}], "code": ` + string(b[len(`{"code":`):])}
		// Also with \u escapes for every non-ASCII character, as some
		// models send.
		ascii := strings.Builder{}
		ascii.WriteString(`{ "code" : "`)
		for _, r := range code {
			switch {
			case r == '"' || r == '\\':
				ascii.WriteString(`\` + string(r))
			case r >= 0x80 || r < 0x20:
				s, _ := json.Marshal(string(r))
				esc := strings.Trim(string(s), `"`)
				if !strings.HasPrefix(esc, `\`) || len(esc) == 2 && esc[1] != 'u' {
					esc = ""
					for _, u := range utf16Units(r) {
						esc += `\u` + hex4str(u)
					}
				}
				ascii.WriteString(esc)
			default:
				ascii.WriteRune(r)
			}
		}
		ascii.WriteString(`"}`)
		raws = append(raws, ascii.String())
		for _, raw := range raws {
			var check struct{ Code string }
			if err := json.Unmarshal([]byte(raw), &check); err != nil || check.Code != code {
				t.Fatalf("bad fixture %s: %v", raw, err)
			}
			for size := 1; size <= 7; size++ {
				s := (&CodeInterpreter{}).Stream()
				start, _ := json.Marshal(s.Start())
				if string(start) != `{"input":"","outputs":[]}` {
					t.Fatalf("start = %s", start)
				}
				var got strings.Builder
				for i := 0; i < len(raw); i += size {
					part := s.Write(raw[i:min(i+size, len(raw))])
					if part == nil {
						continue
					}
					in := part.(map[string]any)["input"].(string)
					if in == "" || !utf8.ValidString(in) {
						t.Fatalf("empty or invalid delta %q", in)
					}
					got.WriteString(in)
					if !strings.HasPrefix(code, got.String()) {
						t.Fatalf("size %d: streamed %q is not a prefix of %q", size, got.String(), code)
					}
				}
				if got.String() != code {
					t.Fatalf("size %d of %s: streamed %q, want %q", size, raw, got.String(), code)
				}
			}
		}
	}
}

func utf16Units(r rune) []rune {
	if r < 0x10000 {
		return []rune{r}
	}
	r -= 0x10000
	return []rune{0xD800 + (r >> 10), 0xDC00 + (r & 0x3FF)}
}

func hex4str(r rune) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[r>>12&15], digits[r>>8&15], digits[r>>4&15], digits[r&15]})
}

func TestCodeArgs(t *testing.T) {
	for raw, want := range map[string]string{`{"code":"print(1)"}`: "print(1)", "print(2)": "print(2)"} {
		if got, ok := codeArgs(raw); !ok || got != want {
			t.Fatalf("codeArgs(%q) = %q, %v", raw, got, ok)
		}
	}
	for _, raw := range []string{`{}`, `{"code": 3}`, ``, `{"cod`} {
		if _, ok := codeArgs(raw); ok {
			t.Fatalf("codeArgs(%q) accepted", raw)
		}
	}
}

// annotateStore serves GetFile/StageFile/CommitFile for Annotate.
type annotateStore struct {
	CodeStore
	created []string
}

func (s *annotateStore) GetFile(_ context.Context, id string) (db.File, error) {
	for _, c := range s.created {
		if c == id {
			return db.File{ID: id}, nil
		}
	}
	return db.File{}, db.ErrNotFound
}
func (s *annotateStore) StageFile(r io.Reader, _ int64) (*db.StagedFile, error) {
	_, err := io.ReadAll(r)
	return &db.StagedFile{}, err
}
func (s *annotateStore) CommitFile(_ context.Context, f db.File, _ *db.StagedFile, _ int64) (db.File, error) {
	f.ID = "file-" + strings.TrimPrefix(f.Filename, "/mnt/data/")
	s.created = append(s.created, f.ID)
	return f, nil
}

// dirSandbox serves Open from a directory.
type dirSandbox struct {
	sandbox.Sandbox
	dir string
}

func (d dirSandbox) Open(_, name string) (io.ReadCloser, error) {
	if strings.Contains(name, "..") {
		return nil, errors.New("outside")
	}
	return os.Open(d.dir + "/" + name)
}

func TestAnnotateSandboxLinks(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/out.csv", []byte("a,b\n"), 0o644)
	os.WriteFile(dir+"/my plot.png", []byte("png"), 0o644)
	c := NewCodeInterpreter(dirSandbox{dir: dir}, &annotateStore{})
	text := "Voilà ✓ [the CSV](sandbox:/mnt/data/out.csv). Also sandbox:/mnt/data/out.csv, and " +
		"sandbox:/mnt/data/my%20plot.png but not sandbox:/mnt/data/missing.txt nor sandbox:/mnt/data/../etc/passwd."
	anns, err := c.Annotate(testCtx(), db.Run{ThreadID: "thread_1"}, text)
	if err != nil {
		t.Fatal(err)
	}
	if len(anns) != 3 {
		t.Fatalf("annotations = %+v", anns)
	}
	runes := []rune(text)
	for i, want := range []string{"sandbox:/mnt/data/out.csv", "sandbox:/mnt/data/out.csv", "sandbox:/mnt/data/my%20plot.png"} {
		a := anns[i]
		if a.Type != "file_path" || a.Text != want || string(runes[a.StartIndex:a.EndIndex]) != want || a.FilePath == nil {
			t.Fatalf("annotation %d = %+v", i, a)
		}
	}
	if anns[0].FilePath.FileID != "file-out.csv" || anns[1].FilePath.FileID != "file-out.csv" || anns[2].FilePath.FileID != "file-my plot.png" {
		t.Fatalf("file ids: %+v", anns)
	}
}

// A thread's run has no container.
func (s *annotateStore) RunContainer(context.Context, string) (db.Container, error) {
	return db.Container{}, db.ErrNotFound
}
func (s *annotateStore) ResponseInput(context.Context, string) ([]json.RawMessage, error) {
	return nil, nil
}
