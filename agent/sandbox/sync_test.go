package sandbox

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
)

// savedStore stands in for the store's record of a thread's files
// (sandbox_files and the blob store): path → saved version and contents.
type savedStore struct {
	n     int
	files map[string]savedFile
}

type savedFile struct{ id, content string }

// save records what a call did, as the code_interpreter tool does, and
// tells the sandbox which versions it holds.
func (s *savedStore) save(t *testing.T, l *Local, thread string, res Result) {
	t.Helper()
	ids := map[string]string{}
	for _, name := range res.Files {
		r, err := l.Open(thread, name)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		s.n++
		f := savedFile{fmt.Sprintf("file-%d", s.n), string(b)}
		s.files[name], ids[name] = f, f.id
	}
	for _, name := range res.Removed {
		delete(s.files, name)
	}
	if err := l.NoteSaved(thread, ids, res.Removed); err != nil {
		t.Fatal(err)
	}
}

func (s *savedStore) list() ([]InputFile, error) {
	var out []InputFile
	for name, f := range s.files {
		out = append(out, InputFile{ID: f.id, Name: name, Open: func() (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader(f.content)), nil
		}})
	}
	return out, nil
}

// TestSavedFilesFollowTheThread: two servers' sandboxes run one thread's
// code in turn. Each call reports what it wrote and removed; saved, those
// are what a kernel on the other server finds in /mnt/data (written,
// changed, in subdirectories; removed ones stay removed), without the
// other kernel's variables. A kernel whose thread ran elsewhere since
// (Fresh) starts over.
func TestSavedFilesFollowTheThread(t *testing.T) {
	one, _ := newTestLocal(t, nil)
	two, _ := newTestLocal(t, nil)
	store := &savedStore{files: map[string]savedFile{}}
	exec := func(l *Local, code string, fresh bool) Result {
		t.Helper()
		res, err := l.Exec(context.Background(), "thread_sync", Request{Code: code, Saved: store.list, Fresh: fresh})
		if err != nil {
			t.Fatal(err)
		}
		if res.Error != "" {
			t.Fatalf("%q: %s", code, res.Error)
		}
		store.save(t, l, "thread_sync", res)
		return res
	}
	res := exec(one, `import os
x = 5
open('/mnt/data/a.txt', 'w').write('a1')
open('/mnt/data/c.txt', 'w').write('c1')
os.makedirs('/mnt/data/sub', exist_ok=True)
open('/mnt/data/sub/b.txt', 'w').write('b1')`, false)
	if want := []string{"a.txt", "c.txt", "sub/b.txt"}; !slices.Equal(res.Files, want) {
		t.Fatalf("files = %q, want %q", res.Files, want)
	}
	res = exec(one, `import os; os.remove('/mnt/data/c.txt')`, false)
	if want := []string{"c.txt"}; !slices.Equal(res.Removed, want) || len(res.Files) != 0 {
		t.Fatalf("files %q, removed %q; want removed %q", res.Files, res.Removed, want)
	}

	listing := `import os
found = []
for d, _, fs in sorted(os.walk('/mnt/data')):
    for f in sorted(fs):
        p = os.path.join(d, f)
        found.append(os.path.relpath(p, '/mnt/data') + '=' + open(p).read())
print(' '.join(found), 'x' in globals())`
	if res := exec(two, listing, false); res.Logs != "a.txt=a1 sub/b.txt=b1 False\n" {
		t.Fatalf("the other server's kernel found %q", res.Logs)
	}
	exec(two, `import os
open('/mnt/data/a.txt', 'w').write('a2')
os.remove('/mnt/data/sub/b.txt')
y = 1`, false)

	// Back on the first server: its kernel (with x) is stale and its
	// directory out of date.
	if res := exec(one, listing, true); res.Logs != "a.txt=a2 False\n" {
		t.Fatalf("back on the first server: %q", res.Logs)
	}
	// Its own saved writes are not written again over later local ones.
	exec(one, `open('/mnt/data/a.txt', 'w').write('a3'); z = 1`, false)
	if res := exec(one, `print(open('/mnt/data/a.txt').read(), z)`, false); res.Logs != "a3 1\n" {
		t.Fatalf("after a local write: %q", res.Logs)
	}
}
