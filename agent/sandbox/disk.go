package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The disk cap. A thread's /mnt/data lives on the server's disk, and the
// per-file limit (RLIMIT_FSIZE) does not stop code writing file after
// file until that disk is full. Neither a size-limited mount nor a quota
// serves here: tmpfs is memory, not disk, and loop images or project
// quotas need privileges an unprivileged server lacks. So the server
// measures the thread's directory (and the kernel's /tmp, which is on the
// same disk) itself: before a call, every diskInterval while it runs, and
// once when it ends. A call that takes the thread past Limits.Disk bytes
// or Limits.DiskFiles entries is stopped like one past its time limit
// (the kernel is killed), and what it created or changed is deleted, so
// the thread is back under the cap with its earlier files intact.
//
// Bytes are counted as allocated (st_blocks*512), so a sparse file made
// with truncate costs what it really holds, and a file with several names
// counts once. Directories count too (entries and their own blocks).
//
// Overshoot: code may write between two checks, so the most a thread can
// hold before it is stopped is the cap plus what its code writes between
// the last check under the cap and the kill: rate × (wait + walk time +
// kill), where the rate is what the disk (or page cache) accepts from one
// kernel; each single file stays under the per-file limit whatever the
// rate. diskWatch checks first after diskMinInterval (5 ms), then at
// doubling waits up to diskInterval (100 ms), and back down towards 5 ms
// when the thread grows fast enough to reach the cap before the next
// check; so a writer at 1 GB/s passes the cap by tens of MB, not by the
// 100 MB of a whole interval. Measured (TestDiskLimitStopsWriter, 8 MiB
// cap, 2-core VM): a loop writing 1 MiB files stopped at 13-57 MiB; a loop
// of 4 MiB posix_fallocate calls, which reserve without writing at
// several GB/s, at 52-192 MiB.
//
// Cost: a walk is one getdents per directory and one fstatat per entry;
// on the test VM, where a system call costs about 3 µs, about 3.3 ms for
// 1000 files (BenchmarkDiskUsage), plus about 0.3 ms for the scan of
// /proc for deleted open files with 70 processes on the host
// (BenchmarkDiskCheck, a whole check of a running kernel: 3.4 ms), so
// ~3.5% of a core at 100 ms. A walk stops as soon as it has seen more
// than the cap, so it never costs more than a walk of Limits.DiskFiles
// entries, and a slow walk stretches the wait to ten walks' time, so
// measuring takes at most about a tenth of a core.
//
// Not seen by a walk: a file the code deleted while keeping it open,
// which holds its blocks until it is closed. So each check also looks at
// the open files of the sandbox's processes (openDeleted) and counts the
// deleted ones. A file deleted while only mapped (mmap, descriptor
// closed) is not counted: it is bounded by the address-space limit and
// freed when the kernel is.

// diskInterval is how often a running call's disk use is measured.
const diskInterval = 100 * time.Millisecond

// usage is what a directory tree holds.
type usage struct {
	bytes   int64 // allocated: st_blocks * 512
	entries int64 // files, directories, links (not the top directory)
	// open is the part of bytes in files deleted but still open.
	open int64
}

func (u usage) over(lim Limits) bool { return u.bytes > lim.Disk || u.entries > int64(lim.DiskFiles) }

// entry is what a path was before a call. A file whose inode, size and
// mtime are the same and whose blocks did not grow holds no more than
// before the call, whatever else the code did to it (a second name or a
// chmod, which move ctime, are not growth; a rewrite in place with its
// mtime set back costs no space).
type entry struct {
	ino    uint64
	size   int64
	mtime  unix.Timespec
	blocks int64
	dir    bool
}

// grew says whether st, at the path e described, may hold more than then.
func (e entry) grew(st *unix.Stat_t) bool {
	return st.Ino != e.ino || st.Size != e.size || st.Mtim != e.mtime || st.Blocks > e.blocks
}

// diskWalk measures trees. Walking stops once the total is over lim, so a
// walk of a flooded directory costs no more than one at the cap.
type diskWalk struct {
	lim   Limits
	u     usage
	links map[[2]uint64]bool // inodes with several names, counted once
	// state, when not nil, records every entry (under its path relative
	// to the walked root).
	state map[string]entry
}

var errOver = errors.New("over the disk limit")

// measure walks each root (missing ones hold nothing) and reports what
// they hold, and whether that is over the limits (then possibly only
// part of it was counted).
func measureDisk(lim Limits, state map[string]entry, roots ...string) (usage, bool) {
	w := &diskWalk{lim: lim, state: state}
	for _, r := range roots {
		if err := w.walk(r, ""); errors.Is(err, errOver) {
			return w.u, true
		}
	}
	return w.u, w.u.over(lim)
}

// walk counts dir's entries, recursively. It opens directories itself
// (os.File.ReadDir, unsorted) rather than through filepath.WalkDir, which
// sorts every directory. Errors (an entry removed meanwhile) skip the
// entry: the code is still running and changing the tree.
func (w *diskWalk) walk(dir, rel string) error {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrPermission) {
		// Code can chmod its directories to 000; the server owns them
		// (or is root) and may take access back.
		os.Chmod(dir, 0o700)
		f, err = os.Open(dir)
	}
	if err != nil {
		return nil
	}
	defer f.Close()
	fd := int(f.Fd())
	for {
		ents, err := f.ReadDir(256)
		for _, e := range ents {
			var st unix.Stat_t
			// Relative to the open directory: no path lookup per entry.
			if unix.Fstatat(fd, e.Name(), &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
				continue
			}
			w.u.entries++
			if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
				if w.links == nil {
					w.links = map[[2]uint64]bool{}
				}
				key := [2]uint64{st.Dev, st.Ino}
				if !w.links[key] {
					w.links[key] = true
					w.u.bytes += st.Blocks * 512
				}
			} else {
				w.u.bytes += st.Blocks * 512
			}
			if w.u.over(w.lim) {
				return errOver
			}
			isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
			r := e.Name()
			if rel != "" {
				r = rel + "/" + e.Name()
			}
			if w.state != nil {
				w.state[r] = entry{ino: st.Ino, size: st.Size, mtime: st.Mtim, blocks: st.Blocks, dir: isDir}
			}
			if isDir {
				if err := w.walk(filepath.Join(dir, e.Name()), r); err != nil {
					return err
				}
			}
		}
		if err != nil || len(ents) == 0 {
			return nil
		}
	}
}

// diskWatch measures a running call's directories until stop is closed;
// the first time they are over the limits it calls over with what it saw
// and returns. The first check comes after diskMinInterval and the wait
// doubles up to diskInterval (a call that floods the disk from its first
// line is caught early), and it shrinks again when the last two checks
// show the thread growing fast enough to reach its cap before the next
// one (to half the time the growth would take, down to diskMinInterval).
// So a fast writer overshoots by about what it writes in diskMinInterval
// rather than in a whole interval. A walk that takes long stretches the
// wait to ten walks, so measuring costs at most about a tenth of a core.
func diskWatch(measure func() (usage, bool), stop <-chan struct{}, over func(usage), lim Limits) {
	wait, ramp := diskMinInterval, diskMinInterval
	var last usage
	var lastAt time.Time
	for {
		select {
		case <-stop:
			return
		case <-time.After(wait):
		}
		start := time.Now()
		u, isOver := measure()
		if isOver {
			over(u)
			return
		}
		walk := time.Since(start)
		ramp = min(2*ramp, diskInterval)
		wait = ramp
		if !lastAt.IsZero() {
			dt := start.Sub(lastAt)
			soon := func(used, prev, limit int64) {
				if grew := used - prev; grew > 0 {
					eta := time.Duration(float64(dt) * float64(limit-used) / float64(grew))
					wait = min(wait, max(eta/2, diskMinInterval))
				}
			}
			soon(u.bytes, last.bytes, lim.Disk)
			soon(u.entries, last.entries, int64(lim.DiskFiles))
		}
		wait = max(wait, 10*walk)
		last, lastAt = u, start
	}
}

// diskMinInterval is the shortest wait between checks of a thread
// growing towards its cap.
const diskMinInterval = 5 * time.Millisecond

// undoCall deletes what a call created or changed in dir, given the
// entries before it: new entries (a new directory with everything in it)
// and files that may have grown (entry.grew). It returns the paths deleted,
// relative to dir.
func undoCall(dir string, before map[string]entry) []string {
	var deleted []string
	var walk func(d, rel string)
	walk = func(d, rel string) {
		f, err := os.Open(d)
		if errors.Is(err, fs.ErrPermission) {
			os.Chmod(d, 0o700)
			f, err = os.Open(d)
		}
		if err != nil {
			return
		}
		names, _ := f.Readdirnames(-1)
		f.Close()
		for _, n := range names {
			p, r := filepath.Join(d, n), n
			if rel != "" {
				r = rel + "/" + n
			}
			var st unix.Stat_t
			if unix.Lstat(p, &st) != nil {
				continue
			}
			isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
			old, existed := before[r]
			switch {
			case isDir && existed && old.dir && old.ino == st.Ino:
				// An earlier directory: its size and times move
				// with its entries; look inside.
				walk(p, r)
				continue
			case existed && !isDir && !old.dir && !old.grew(&st):
				continue // holds no more than before
			}
			if isDir {
				removeTree(p)
			} else {
				os.Remove(p)
			}
			deleted = append(deleted, r)
		}
	}
	walk(dir, "")
	slices.Sort(deleted)
	return deleted
}

// removeTree removes a directory the code made, taking back access to
// subdirectories it made unreadable or unwritable.
func removeTree(p string) {
	if os.RemoveAll(p) == nil {
		return
	}
	filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if d != nil && d.IsDir() {
			os.Chmod(q, 0o700)
		}
		return nil
	})
	os.RemoveAll(p)
}

// formatBytes shows a size for people: 8.0 MiB.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %s", v, []string{"KiB", "MiB", "GiB", "TiB", "PiB"}[i])
}

// diskReason explains a thread over its disk limits.
func diskReason(u usage, lim Limits, withTmp bool) string {
	where := "/mnt/data holds"
	if withTmp {
		where = "/mnt/data and /tmp hold"
	}
	if u.entries > int64(lim.DiskFiles) {
		return fmt.Sprintf("Disk limit exceeded: %s %d files and directories, the limit is %d.", where, u.entries, lim.DiskFiles)
	}
	if u.bytes > lim.Disk {
		held, limit := formatBytes(u.bytes), formatBytes(lim.Disk)
		if held == limit {
			held, limit = fmt.Sprintf("%d bytes", u.bytes), fmt.Sprintf("%d bytes", lim.Disk)
		}
		if u.open > 0 {
			held += fmt.Sprintf(" (%s of it in files deleted but still open)", formatBytes(u.open))
		}
		return fmt.Sprintf("Disk limit exceeded: %s %s, the limit is %s.", where, held, limit)
	}
	return fmt.Sprintf("Disk limit exceeded: %s %s in %d entries, the limits are %s and %d entries.",
		where, formatBytes(u.bytes), u.entries, formatBytes(lim.Disk), lim.DiskFiles)
}

// deletedNote tells the model what undoCall removed.
func deletedNote(deleted []string) string {
	if len(deleted) == 0 {
		return "\nNothing this call wrote was left to delete."
	}
	shown := deleted[:min(len(deleted), 10)]
	s := fmt.Sprintf("\nTo bring /mnt/data back under the limit, what this call created or changed was deleted (%d entries): %s",
		len(deleted), strings.Join(shown, ", "))
	if len(deleted) > len(shown) {
		s += fmt.Sprintf(" and %d more", len(deleted)-len(shown))
	}
	return s + ". Files from earlier calls are kept."
}

// openDeleted sums the blocks of files the sandbox's processes hold open
// after deleting them. The processes are those in the sandbox's PID
// namespace (found by scanning /proc: about one readlink per process on
// the host); each one's descriptors are followed to their files.
func (k *kernel) openDeleted() int64 {
	select {
	case <-k.infoDone:
	default:
		return 0
	}
	if k.pidNS == "" {
		return 0
	}
	procs, err := os.Open("/proc")
	if err != nil {
		return 0
	}
	names, _ := procs.Readdirnames(-1)
	procs.Close()
	var total int64
	seen := map[[2]uint64]bool{}
	for _, p := range names {
		if p[0] < '0' || p[0] > '9' {
			continue
		}
		if ns, err := os.Readlink("/proc/" + p + "/ns/pid"); err != nil || ns != k.pidNS {
			continue
		}
		fdDir := "/proc/" + p + "/fd/"
		d, err := os.Open(fdDir)
		if err != nil {
			continue
		}
		fds, _ := d.Readdirnames(-1)
		d.Close()
		for _, fd := range fds {
			var st unix.Stat_t
			if unix.Stat(fdDir+fd, &st) != nil || st.Nlink != 0 || st.Mode&unix.S_IFMT != unix.S_IFREG {
				continue
			}
			if key := [2]uint64{st.Dev, st.Ino}; !seen[key] {
				seen[key] = true
				total += st.Blocks * 512
			}
		}
	}
	return total
}

// measure is what a kernel's thread holds: its directory, its /tmp and
// its deleted open files.
func (k *kernel) measure(lim Limits, state map[string]entry) (usage, bool) {
	u, over := measureDisk(lim, state, k.dir, k.tmp)
	if over {
		return u, true
	}
	u.open = k.openDeleted()
	u.bytes += u.open
	return u, u.over(lim)
}
