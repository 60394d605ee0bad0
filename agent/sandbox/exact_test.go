package sandbox

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPlaceExact: with Exact (a container's files) each file lands at its
// own path, a new file at a taken path replaces the old one, and placed or
// written files no longer listed leave /mnt/data; files the code wrote
// that are still listed stay.
func TestPlaceExact(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cntr_1")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	l := &Local{}
	file := func(id, name, content string) InputFile {
		return InputFile{ID: id, Name: name, Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content)), nil }}
	}
	ls := func() []string {
		var names []string
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				b, _ := os.ReadFile(p)
				rel, _ := filepath.Rel(dir, p)
				names = append(names, rel+"="+string(b))
			}
			return nil
		})
		return names
	}
	check := func(want ...string) {
		t.Helper()
		if got := ls(); !slices.Equal(got, want) {
			t.Fatalf("/mnt/data = %v, want %v", got, want)
		}
	}
	a, b := file("cfile_a", "a.txt", "one"), file("cfile_b", "sub/b.txt", "bee")
	if err := l.place(dir, -1, []InputFile{a, b}, true); err != nil {
		t.Fatal(err)
	}
	check("a.txt=one", "sub/b.txt=bee")
	a2 := file("cfile_a2", "a.txt", "two")
	if err := l.place(dir, -1, []InputFile{b, a2}, true); err != nil {
		t.Fatal(err)
	}
	check("a.txt=two", "sub/b.txt=bee")
	os.WriteFile(filepath.Join(dir, "out.txt"), []byte("made"), 0o644)
	os.WriteFile(filepath.Join(dir, "kept.txt"), []byte("kept"), 0o644)
	if err := noteWritten(dir, []string{"out.txt", "kept.txt"}); err != nil {
		t.Fatal(err)
	}
	if err := l.place(dir, -1, []InputFile{b, file("cfile_k", "kept.txt", "kept")}, true); err != nil {
		t.Fatal(err)
	}
	check("kept.txt=kept", "sub/b.txt=bee")
	if err := l.place(dir, -1, nil, true); err != nil {
		t.Fatal(err)
	}
	check()
	// Without Exact a second file of a taken name gets a name of its own.
	if err := l.place(dir, -1, []InputFile{a}, false); err != nil {
		t.Fatal(err)
	}
	if err := l.place(dir, -1, []InputFile{a2}, false); err != nil {
		t.Fatal(err)
	}
	check("a.txt=one", "cfile_a2-a.txt=two")
}

// TestRemove: Remove takes a file out of an idle session's /mnt/data and
// out of its manifest; a busy session keeps it (its next exact placement
// removes it).
func TestRemove(t *testing.T) {
	l := &Local{cfg: Config{Dir: t.TempDir()}, sessions: map[string]*session{}}
	dir := l.threadDir("cntr_1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := InputFile{ID: "cfile_a", Name: "a.txt", Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("a")), nil }}
	g := InputFile{ID: "cfile_b", Name: "b.txt", Open: f.Open}
	if err := l.place(dir, -1, []InputFile{f, g}, true); err != nil {
		t.Fatal(err)
	}
	s, _ := l.session("cntr_1")
	s.lock <- struct{}{} // running code
	if err := l.Remove("cntr_1", "/mnt/data/a.txt"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.txt")); err != nil {
		t.Fatalf("removed under running code: %v", err)
	}
	<-s.lock
	if err := l.Remove("cntr_1", "/mnt/data/a.txt"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.txt")); !os.IsNotExist(err) {
		t.Fatalf("a.txt after Remove: %v", err)
	}
	if b, _ := os.ReadFile(dir + ".files.json"); strings.Contains(string(b), "a.txt") || !strings.Contains(string(b), "b.txt") {
		t.Errorf("manifest after Remove: %s", b)
	}
	if err := l.Remove("cntr_1", "/mnt/data/../x"); err != nil {
		t.Fatal(err)
	}
}
