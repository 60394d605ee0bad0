package sandbox

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// diskLimits: a small cap, so the tests write little; the per-file limit
// (8 MiB) is above what each file the tests write holds.
func diskLimits(c *Config) {
	c.Limits.Disk = 8 << 20
	c.Limits.DiskFiles = 200
}

func diskUse(t *testing.T, l *Local, thread string) usage {
	t.Helper()
	u, _ := measureDisk(Limits{Disk: 1 << 62, DiskFiles: 1 << 30}, nil, l.threadDir(thread))
	return u
}

// A call writing file after file, each under the per-file limit, is
// stopped once the thread passes its cap; what it wrote is deleted, the
// thread's earlier files are kept, its kernel is fresh, and other threads
// are untouched.
func TestDiskLimitStopsWriter(t *testing.T) {
	l, _ := newTestLocal(t, diskLimits)
	mustOK(t, run(t, l, "thread_d", "kept = 1\nopen('/mnt/data/keep.txt', 'w').write('earlier work')\nimport os\nos.mkdir('old')\nopen('old/a.txt', 'w').write('A')"))
	mustOK(t, run(t, l, "thread_n", "neighbour = 5\nopen('n.txt', 'w').write('N')"))
	// The stop waits for the sandbox's processes by a pidfd on its init.
	l.mu.Lock()
	k := l.sessions["thread_n"].k
	l.mu.Unlock()
	<-k.infoDone
	if k.pidfd < 0 {
		t.Fatal("no pidfd on the sandbox's init")
	}

	cases := []struct{ name, code string }{
		// Endless: only the watcher can stop it before the time limit.
		// It rewrites 100 names over and over, so the file-count limit
		// (200) can never be what stops it, however slow the machine.
		{"endless", "i = 0\nwhile True:\n    open(f'/mnt/data/f{i % 100}.bin', 'wb').write(b'x' * (1 << 20))\n    i += 1"},
		// Done before the first check: the check at the call's end
		// stops it.
		{"quick", "import os\nos.mkdir('new')\nfor i in range(12):\n    open(f'new/f{i}.bin', 'wb').write(b'x' * (1 << 20))\nprint('done')"},
		// Allocated, never written: blocks count. Sixteen files of 4 MiB
		// pass the 8 MiB cap by far and stay under the file-count limit,
		// so the disk limit is what stops it whether the watcher or the
		// check at the call's end sees it first.
		{"fallocate", "import os\nfor i in range(16):\n    fd = os.open(f'alloc{i}', os.O_WRONLY | os.O_CREAT)\n    os.posix_fallocate(fd, 0, 4 << 20)\n    os.close(fd)"},
		// Deleted but kept open: no walk sees them; their blocks count.
		{"deleted open", "import os\nfs = []\nwhile True:\n    f = open(f'h{len(fs)}', 'wb')\n    os.unlink(f.name)\n    f.write(b'x' * (4 << 20))\n    f.flush()\n    fs.append(f)"},
		// An earlier file grown, inside an earlier directory.
		{"append", "f = open('old/a.txt', 'ab')\nwhile True:\n    f.write(b'y' * (1 << 16))\n    f.flush()"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustOK(t, run(t, l, "thread_d", "canary = 1"))
			res := run(t, l, "thread_d", tc.code)
			t.Logf("error output: %s", res.Error)
			// What was deleted is what the call left: for "deleted open"
			// nothing, unless the stop came between a file's creation and
			// its unlinking (a loaded machine), when it is that one file.
			deletedOK := strings.Contains(res.Error, "was deleted")
			if tc.name == "deleted open" {
				deletedOK = strings.Contains(res.Error, "Nothing this call wrote was left to delete") ||
					regexp.MustCompile(`was deleted \(1 entries\): h\d+\.`).MatchString(res.Error)
			}
			if !strings.HasPrefix(res.Error, "Disk limit exceeded: /mnt/data and /tmp hold ") ||
				!(strings.Contains(res.Error, "the limit is 8.0 MiB") || strings.Contains(res.Error, "the limit is 8388608 bytes")) || !deletedOK ||
				!strings.Contains(res.Error, "kernel was restarted") || !res.Restarted {
				t.Fatalf("error output: %q (restarted %v)", res.Error, res.Restarted)
			}
			if u := diskUse(t, l, "thread_d"); u.bytes > 8<<20 {
				t.Fatalf("after the stop the thread holds %d bytes", u.bytes)
			}
			if len(res.Files) != 0 && tc.name != "append" {
				t.Fatalf("files reported from a stopped call: %v", res.Files)
			}
			// The append case deleted old/a.txt (changed by the stopped
			// call); its directory, from earlier, stays. (Checked here, so
			// that running one case alone with -run checks only that case.)
			if tc.name == "append" {
				if _, err := os.Stat(filepath.Join(l.threadDir("thread_d"), "old", "a.txt")); !os.IsNotExist(err) {
					t.Fatalf("old/a.txt after the append was stopped: %v", err)
				}
			}
			// Earlier work is kept; the kernel is a fresh one.
			next := mustOK(t, run(t, l, "thread_d", "import os\nprint(open('keep.txt').read(), 'canary' in globals(), sorted(os.listdir('.')))"))
			want := "earlier work False ['keep.txt', 'old']\n"
			if next.Logs != want {
				t.Fatalf("next call: %q, want %q", next.Logs, want)
			}
			if res := mustOK(t, run(t, l, "thread_n", "print(neighbour, open('n.txt').read())")); res.Logs != "5 N\n" {
				t.Fatalf("other thread: %q", res.Logs)
			}
		})
		if t.Failed() {
			return
		}
	}
}

// Sparse files: truncating to a huge size is refused by the per-file
// limit, and sparse files within it cost only what they hold.
func TestDiskLimitSparse(t *testing.T) {
	l, _ := newTestLocal(t, diskLimits)
	res := run(t, l, "thread_s", "import os\nopen('huge', 'wb').close()\nos.truncate('huge', 1 << 40)")
	if !strings.Contains(res.Error, "File too large") || res.Restarted {
		t.Fatalf("truncate to 1 TiB: %+v", res)
	}
	// Twenty sparse files of nearly 8 MiB each (160 MiB apparent, 20
	// times the cap) hold next to nothing: allowed.
	mustOK(t, run(t, l, "thread_s", "import os\nfor i in range(20):\n    os.truncate(open(f's{i}', 'wb').name, (8 << 20) - 1)\nprint(os.path.getsize('s3'))"))
	if u := diskUse(t, l, "thread_s"); u.bytes > 1<<20 || u.entries != 21 {
		t.Fatalf("sparse files measured as %+v", u)
	}
	// Filling their holes is writing: stopped.
	res = run(t, l, "thread_s", "for i in range(20):\n    with open(f's{i}', 'r+b') as f:\n        f.write(b'z' * ((8 << 20) - 1))")
	if !strings.HasPrefix(res.Error, "Disk limit exceeded") {
		t.Fatalf("filling sparse files: %+v", res)
	}
	if u := diskUse(t, l, "thread_s"); u.bytes > 8<<20 {
		t.Fatalf("after the stop: %+v", u)
	}
}

// Many empty files: the entry cap stops them.
func TestDiskLimitFileCount(t *testing.T) {
	l, _ := newTestLocal(t, diskLimits)
	mustOK(t, run(t, l, "thread_c", "open('keep.txt', 'w').write('k')"))
	res := run(t, l, "thread_c", "import os\ni = 0\nwhile True:\n    os.makedirs(f'd{i % 7}', exist_ok=True)\n    open(f'd{i % 7}/t{i}', 'w').close()\n    i += 1")
	if !strings.HasPrefix(res.Error, "Disk limit exceeded: /mnt/data and /tmp hold ") ||
		!res.Restarted {
		t.Fatalf("tiny files: %+v", res)
	}
	if !strings.Contains(res.Error, " files and directories, the limit is 200.") {
		t.Fatalf("tiny files: %s", res.Error)
	}
	t.Logf("error output: %s", res.Error)
	if u := diskUse(t, l, "thread_c"); u.entries != 1 {
		t.Fatalf("after the stop: %+v", u)
	}
	if res := mustOK(t, run(t, l, "thread_c", "print(open('keep.txt').read())")); res.Logs != "k\n" {
		t.Fatalf("next call: %q", res.Logs)
	}
}

// A thread whose files (here an attachment) already fill its cap is not
// run at all, and keeps its kernel.
func TestDiskLimitRefusedUpFront(t *testing.T) {
	l, _ := newTestLocal(t, diskLimits)
	mustOK(t, run(t, l, "thread_r", "state = 3"))
	big := InputFile{ID: "file-big", Name: "big.csv", Open: func() (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(strings.Repeat("1,2\n", 9<<20/4))), nil
	}}
	res, err := l.Exec(context.Background(), "thread_r", Request{Files: []InputFile{big}, Code: "open('ran.txt', 'w').write('ran')"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Error, "Disk limit exceeded: /mnt/data holds 9.0 MiB, the limit is 8.0 MiB. The code was not run") ||
		res.Restarted || res.Logs != "" {
		t.Fatalf("over before the call: %+v", res)
	}
	if _, err := os.Stat(filepath.Join(l.threadDir("thread_r"), "ran.txt")); !os.IsNotExist(err) {
		t.Fatalf("the code ran: %v", err)
	}
	if _, err := os.Stat(filepath.Join(l.threadDir("thread_r"), "big.csv")); err != nil {
		t.Fatalf("the attachment was removed: %v", err)
	}
	// Every call is refused while the files fill the cap.
	if res := run(t, l, "thread_r", "print(state)"); !strings.Contains(res.Error, "The code was not run") {
		t.Fatalf("second call: %+v", res)
	}
}

// One check of a directory of 1000 files (10 directories of 100), as the
// watcher makes it every interval while code runs.
//
//	go test ./agent/sandbox/ -run '^$' -bench DiskUsage
func BenchmarkDiskUsage(b *testing.B) {
	dir := b.TempDir()
	for d := range 10 {
		sub := filepath.Join(dir, fmt.Sprintf("d%d", d))
		if err := os.Mkdir(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 100 {
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%d.csv", f)), []byte(strings.Repeat("x", 1000)), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	lim := Limits{Disk: 1 << 30, DiskFiles: 10000}
	b.ResetTimer()
	for b.Loop() {
		if u, over := measureDisk(lim, nil, dir); over || u.entries != 1010 {
			b.Fatalf("%+v %v", u, over)
		}
	}
}

// One check as the watcher makes it of a running kernel: its /mnt/data of
// 1000 files (10 directories of 100), its /tmp, and the open files of its
// processes (a scan of /proc).
//
//	go test ./agent/sandbox/ -run '^$' -bench DiskCheck
func BenchmarkDiskCheck(b *testing.B) {
	l, _ := newTestLocal(b, nil)
	mustOK(b, run(b, l, "thread_bench", "import os\nfor d in range(10):\n    os.mkdir(f'd{d}')\n    for f in range(100):\n        open(f'd{d}/f{f}.csv', 'w').write('x' * 1000)"))
	l.mu.Lock()
	k := l.sessions["thread_bench"].k
	l.mu.Unlock()
	<-k.infoDone
	lim := l.cfg.Limits
	b.ResetTimer()
	for b.Loop() {
		if u, over := k.measure(lim, nil); over || u.entries < 1010 {
			b.Fatalf("%+v %v", u, over)
		}
	}
}

// measureDisk and undoCall on a plain directory: a file with two names
// counts once, a sparse file by its blocks; undoing a call removes what
// is new or changed (a new directory whole, even one made unreadable)
// and keeps the rest.
func TestUndoCall(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, n int) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Repeat("x", n)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(dir, "old"), 0o755)
	write("keep", 1<<20)
	write("old/a", 10)
	write("old/b", 10)
	lim := Limits{Disk: 1 << 30, DiskFiles: 100}
	before := map[string]entry{}
	u0, over := measureDisk(lim, before, dir)
	if over || u0.entries != 4 || len(before) != 4 {
		t.Fatalf("before: %+v %v %v", u0, over, before)
	}
	// The call: a second name for keep, a sparse file, old/a rewritten,
	// a new directory it then locks.
	if err := os.Link(filepath.Join(dir, "keep"), filepath.Join(dir, "keep2")); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Create(filepath.Join(dir, "sparse"))
	f.Truncate(1 << 30)
	f.Close()
	write("old/a", 20)
	os.MkdirAll(filepath.Join(dir, "new", "deep"), 0o755)
	write("new/deep/x", 100)
	os.Chmod(filepath.Join(dir, "new"), 0)
	u1, _ := measureDisk(lim, nil, dir)
	if u1.entries != 9 || u1.bytes > u0.bytes+64<<10 {
		t.Fatalf("after the call: %+v (before %+v): the link or the sparse file counted in full", u1, u0)
	}
	if small := (Limits{Disk: 1 << 30, DiskFiles: 5}); !u1.over(small) {
		t.Fatal("9 entries not over a cap of 5")
	}
	deleted := undoCall(dir, before)
	if got := strings.Join(deleted, ","); got != "keep2,new,old/a,sparse" {
		t.Fatalf("deleted %s", got)
	}
	var left []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(dir, p)
		left = append(left, rel)
		return nil
	})
	if got := strings.Join(left, ","); got != ".,keep,old,old/b" {
		t.Fatalf("left %s", got)
	}
}
