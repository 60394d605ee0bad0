package sandbox

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

//go:embed kernel.py
var kernelSource string

// Limits bound what one kernel may use. Zero fields take the defaults.
type Limits struct {
	// CPUTime is the CPU time one call may use (the kernel is killed
	// past it).
	CPUTime time.Duration
	// WallTime is how long one call may take.
	WallTime time.Duration
	// Memory caps the kernel's address space, in bytes.
	Memory int64
	// Processes caps the processes and threads the kernel may have.
	Processes int
	// OpenFiles caps its open file descriptors.
	OpenFiles int
	// FileSize caps the size of any file it writes, in bytes.
	FileSize int64
	// Output caps one call's logs, in bytes.
	Output int64
	// Disk caps what a thread's /mnt/data (with its kernel's /tmp) may
	// hold, in bytes as allocated on disk; DiskFiles caps its files and
	// directories. See disk.go for how they are enforced.
	Disk      int64
	DiskFiles int
}

// DefaultLimits are generous for data analysis yet keep one thread from
// taking the machine.
var DefaultLimits = Limits{
	CPUTime:   60 * time.Second,
	WallTime:  120 * time.Second,
	Memory:    2 << 30,
	Processes: 64,
	OpenFiles: 256,
	FileSize:  256 << 20,
	Output:    256 << 10,
	Disk:      1 << 30,
	DiskFiles: 10000,
}

func (l *Limits) defaults() {
	d := DefaultLimits
	if l.CPUTime <= 0 {
		l.CPUTime = d.CPUTime
	}
	if l.WallTime <= 0 {
		l.WallTime = d.WallTime
	}
	if l.Memory <= 0 {
		l.Memory = d.Memory
	}
	if l.Processes <= 0 {
		l.Processes = d.Processes
	}
	if l.OpenFiles <= 0 {
		l.OpenFiles = d.OpenFiles
	}
	if l.FileSize <= 0 {
		l.FileSize = d.FileSize
	}
	if l.Output <= 0 {
		l.Output = d.Output
	}
	if l.Disk <= 0 {
		l.Disk = d.Disk
	}
	if l.DiskFiles <= 0 {
		l.DiskFiles = d.DiskFiles
	}
}

// Config configures the local backend.
type Config struct {
	// Dir holds the threads' files and the kernels' scratch space
	// (<data>/sandbox). Only the sandbox subtree of a thread's own
	// directory is ever visible to its code.
	Dir string
	// Python is the interpreter (default /usr/bin/python3: Debian's, whose
	// numpy, pandas, matplotlib, scipy and scikit-learn are installed
	// under /usr).
	Python string
	// Bwrap is the bubblewrap binary (default: bwrap on PATH).
	Bwrap string
	// Unsafe runs code without bubblewrap when it is missing: no
	// isolation beyond the limits, a separate user when the server runs as
	// root, and the thread's directory as the working directory.
	Unsafe bool
	// IdleTimeout frees a thread's kernel after this long without a call
	// (files are kept); 0 means 10 minutes.
	IdleTimeout time.Duration
	// PoolSize is how many pre-started kernels wait for threads' first
	// calls; negative means none.
	PoolSize int
	// MaxKernels caps the kernels alive at once (pooled ones included;
	// each holds about 100 MiB while idle). A thread needing a kernel
	// past it takes the idlest one's; when all are busy its call fails
	// with an error saying so. 0 means DefaultMaxKernels.
	MaxKernels int
	Limits     Limits
	Logger     *slog.Logger
	// SharedDir holds the sandbox's directories when the data
	// directory's parents do not let the kernels' users pass (default
	// DefaultSharedDir; see placeDir).
	SharedDir string

	// clearWithin bounds how long a kernel may take to end the processes
	// a call left behind before the server restarts it (default 10 s;
	// tests shorten it).
	clearWithin time.Duration
}

// Local runs kernels on this machine under bubblewrap: no network, a
// read-only /usr, a private /tmp, /proc and /dev, a cleared environment,
// and the thread's directory bound at /mnt/data as the only place it can
// write that outlives the kernel. When the server runs as root each kernel
// runs as a user of its own, so its process limit counts only itself.
type Local struct {
	cfg    Config
	bwrap  string
	root   bool
	logger *slog.Logger
	// broken says why kernels cannot start at all (set at start).
	broken error

	mu       sync.Mutex
	sessions map[string]*session
	uids     map[int]bool
	nextSlot int
	closed   bool
	// live counts kernels started or starting and not yet released,
	// bounded by cfg.MaxKernels (see reserve).
	live int

	pool   chan *kernel
	refill chan struct{}
	// starting is set while the pool is starting a kernel.
	starting atomic.Bool
	// warm is closed by the first Warm or Exec: the pool fills only once
	// code is about to run, so a server that never runs code starts no
	// Python.
	warm     chan struct{}
	warmOnce sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup
}

// session is one thread's kernel and the files placed for it. lock is a
// one-slot channel so that waiting for a busy kernel can be abandoned with
// ctx.
type session struct {
	lock chan struct{}
	// rec guards the record of saved versions (<dir>.saved.json), which
	// NoteSaved writes after the call, outside lock.
	rec  sync.Mutex
	k    *kernel
	used time.Time
}

// DefaultMaxKernels is the kernel cap unless configured.
const DefaultMaxKernels = 16

// uidBase starts the range of user ids kernels run as when the server is
// root: far above ordinary and subordinate id ranges.
const uidBase = 1_900_000_000

// NewLocal prepares the directories and starts filling the warm pool.
func NewLocal(cfg Config) (*Local, error) {
	cfg.Limits.defaults()
	if cfg.Python == "" {
		cfg.Python = "/usr/bin/python3"
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	if cfg.MaxKernels <= 0 {
		cfg.MaxKernels = DefaultMaxKernels
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Local{cfg: cfg, logger: cfg.Logger, root: os.Geteuid() == 0, sessions: map[string]*session{},
		uids: map[int]bool{}, refill: make(chan struct{}, 1), stop: make(chan struct{}), warm: make(chan struct{})}
	bw := cfg.Bwrap
	if bw == "" {
		bw = "bwrap"
	}
	if p, err := exec.LookPath(bw); err == nil {
		l.bwrap = p
	} else if !cfg.Unsafe {
		l.logger.Warn("code_interpreter disabled: bubblewrap not found (set --code-unsafe to run code without isolation)")
	}
	if l.root && l.bwrap != "" {
		// Kernels must pass through the directories above the data
		// directory; where they cannot, the sandbox's own place is used.
		dir, moved, err := placeDir(cfg.Dir, cfg.SharedDir)
		if err != nil {
			l.logger.Warn("code_interpreter: no shared directory", "err", err)
		} else if moved {
			l.logger.Info("code_interpreter keeps its files outside the data directory, whose parents do not let the kernels' users pass",
				"dir", dir, "data_sandbox", cfg.Dir)
			cfg.Dir, l.cfg.Dir = dir, dir
		}
	}
	// Scratch directories of kernels a previous process left are stale.
	for _, d := range []string{"slots", "tmp"} {
		if err := os.RemoveAll(filepath.Join(cfg.Dir, d)); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	for _, d := range []string{"threads", "slots", "tmp"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	if l.root && l.bwrap != "" {
		if err := l.grantTraversal(); err != nil {
			// The rest of the server works; code calls explain.
			l.broken = err
			l.logger.Warn("code_interpreter disabled", "err", err)
		}
	}
	size := max(cfg.PoolSize, 0)
	if l.broken != nil {
		size = 0
	}
	l.pool = make(chan *kernel, max(size, 1))
	l.wg.Add(1)
	go l.reap()
	if size > 0 && l.enabled() {
		l.wg.Add(1)
		go l.fill(size)
	}
	return l, nil
}

func (l *Local) enabled() bool { return l.bwrap != "" || l.cfg.Unsafe }

// Problem says why code cannot run on this server, or "" when it can:
// for the web app and /readyz, not only a line in the log at start-up.
func (l *Local) Problem() string {
	switch {
	case !l.enabled():
		return ErrUnavailable.Error()
	case l.broken != nil:
		return l.broken.Error()
	}
	return ""
}

// Dir is where the sandbox keeps threads' files (Config.Dir, or its own
// place under Config.SharedDir).
func (l *Local) Dir() string { return l.cfg.Dir }

// Isolated reports whether code runs under bubblewrap.
func (l *Local) Isolated() bool { return l.bwrap != "" }

// fill keeps the warm pool at size, one kernel start at a time (each
// start is a burst of CPU the server's other work should not compete with
// in parallel).
func (l *Local) fill(size int) {
	defer l.wg.Done()
	select {
	case <-l.warm:
	case <-l.stop:
		return
	}
	for {
		for len(l.pool) < size && l.reserve() {
			l.starting.Store(true)
			k, err := l.start()
			l.starting.Store(false)
			if err != nil {
				l.logger.Warn("code_interpreter: starting a pooled kernel failed", "err", err)
				break
			}
			select {
			case l.pool <- k:
			case <-l.stop:
				k.kill()
				return
			}
		}
		select {
		case <-l.refill:
		case <-l.stop:
			return
		case <-time.After(30 * time.Second): // retry after a failed start
		}
	}
}

// Warm starts filling the warm pool, if it has not started yet. The
// code_interpreter tool calls it when it is offered to a model, so kernels
// start while the model writes the code.
func (l *Local) Warm() { l.warmOnce.Do(func() { close(l.warm) }) }

// reap frees kernels idle past the timeout.
func (l *Local) reap() {
	defer l.wg.Done()
	tick := time.NewTicker(min(l.cfg.IdleTimeout/4+time.Millisecond, 10*time.Second))
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case now := <-tick.C:
			l.mu.Lock()
			var idle []*session
			for _, s := range l.sessions {
				idle = append(idle, s)
			}
			l.mu.Unlock()
			for _, s := range idle {
				select {
				case s.lock <- struct{}{}:
				default:
					continue // busy: not idle
				}
				if s.k != nil && now.Sub(s.used) >= l.cfg.IdleTimeout {
					s.k.kill()
					l.release(s.k)
					s.k = nil
				}
				<-s.lock
			}
		}
	}
}

func (l *Local) session(threadID string) (*session, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("sandbox closed")
	}
	s := l.sessions[threadID]
	if s == nil {
		s = &session{lock: make(chan struct{}, 1)}
		l.sessions[threadID] = s
	}
	return s, nil
}

var safeID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// threadDir is the host directory holding a thread's /mnt/data.
func (l *Local) threadDir(threadID string) string {
	name := threadID
	if !safeID.MatchString(name) {
		name = "x" + hex.EncodeToString([]byte(threadID))
	}
	return filepath.Join(l.cfg.Dir, "threads", name)
}

// Exec implements Sandbox.
func (l *Local) Exec(ctx context.Context, threadID string, req Request) (Result, error) {
	if !l.enabled() {
		return Result{Error: ErrUnavailable.Error()}, nil
	}
	if l.broken != nil {
		return Result{Error: "Code execution is unavailable on this server: " + l.broken.Error()}, nil
	}
	l.Warm()
	s, err := l.session(threadID)
	if err != nil {
		return Result{}, err
	}
	select {
	case s.lock <- struct{}{}:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	defer func() { <-s.lock }()
	s.used = time.Now()
	defer func() { s.used = time.Now() }()

	dir := l.threadDir(threadID)
	if req.Fresh && s.k != nil {
		s.k.kill()
		l.release(s.k)
		s.k = nil
	}
	if s.k == nil || s.k.exited() {
		if s.k != nil {
			l.release(s.k)
			s.k = nil
		}
		k, err := l.checkout(ctx, s, dir)
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return Result{}, err
		}
		if errors.Is(err, errAllBusy) {
			return Result{Error: fmt.Sprintf("All %d Python kernels this server allows are busy running other threads' code; "+
				"the code was not run. Try again in a moment.", l.cfg.MaxKernels)}, nil
		}
		if err != nil {
			l.logger.Error("code_interpreter: kernel start failed", "thread", threadID, "err", err)
			return Result{Error: "The sandbox could not start a Python kernel: " + err.Error()}, nil
		}
		s.k = k
	}
	if err := l.place(dir, s.k.uid, req.Files, req.Exact); err != nil {
		return Result{}, err
	}
	if req.Saved != nil {
		saved, err := req.Saved()
		if err != nil {
			return Result{}, err
		}
		s.rec.Lock()
		err = l.restore(dir, s.k.uid, saved)
		s.rec.Unlock()
		if err != nil {
			return Result{}, err
		}
	}
	lim := l.cfg.Limits
	roots := []string{dir, s.k.tmp}
	entries := map[string]entry{}
	if _, over := measureDisk(lim, entries, dir); over {
		// Files placed from attachments (or left by an earlier server
		// with a larger cap) fill it: running code could only add.
		u, _ := measureDisk(Limits{Disk: math.MaxInt64, DiskFiles: math.MaxInt}, nil, dir)
		return Result{Error: diskReason(u, lim, false) + " The code was not run: the thread's files leave no room. " +
			"Start a new thread, or give it fewer or smaller files."}, nil
	}
	before, whole := snapshot(dir)
	k := s.k
	overCh, stopWatch := make(chan usage, 1), make(chan struct{})
	var seen usage
	var tripped atomic.Bool
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		diskWatch(func() (usage, bool) { return k.measure(lim, nil) }, stopWatch, func(u usage) {
			seen = u
			tripped.Store(true)
			overCh <- u
		}, lim)
	}()
	res := k.exec(ctx, req, lim, overCh)
	close(stopWatch)
	<-watched
	// A call shorter than the interval is measured here; so is one the
	// watcher stopped (with everything it wrote by then).
	u, over := k.measure(lim, nil)
	if over || tripped.Load() {
		if !over {
			u = seen
		}
		if !res.Restarted {
			s.k.kill()
			<-s.k.done
			res.Restarted = true
		}
		// Nothing writes any more: measure all of it, for the message.
		if all, _ := measureDisk(Limits{Disk: math.MaxInt64, DiskFiles: math.MaxInt}, nil, roots...); all.over(lim) {
			u = all
		}
		deleted := undoCall(dir, entries)
		res.Error = diskReason(u, lim, true) + deletedNote(deleted) + restartNote
		res.Images = nil
		if u, over := measureDisk(lim, nil, dir); over {
			l.logger.Warn("code_interpreter: a thread is over its disk limit after deleting a call's files", "thread", threadID,
				"bytes", u.bytes, "entries", u.entries)
		}
	}
	if res.Restarted {
		l.release(s.k)
		s.k = nil
	}
	after, wholeAfter := snapshot(dir)
	res.Files = changed(before, after)
	if whole && wholeAfter {
		res.Removed = removed(before, after)
	}
	if req.Exact && len(res.Files) > 0 {
		if err := noteWritten(dir, res.Files); err != nil {
			return res, err
		}
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	return res, nil
}

// checkout gives a thread a running kernel bound to its directory: a
// pooled one when one is waiting, else a fresh one. A kernel starts with
// its own empty slot directory at /mnt/data; the thread's files are moved
// into it and the slot directory then renamed to be the thread's
// directory. The bind mount follows the directory, not its name, so a
// kernel started before its thread was known sees exactly that thread's
// files and nothing else.
func (l *Local) checkout(ctx context.Context, s *session, dir string) (*kernel, error) {
	var k *kernel
	for k == nil {
		select {
		case k = <-l.pool:
			if k.exited() {
				l.release(k)
				k = nil
				continue
			}
		default:
		}
		select {
		case l.refill <- struct{}{}:
		default:
		}
		if k != nil {
			break
		}
		if l.starting.Load() {
			// A pooled kernel is on its way: it is ready sooner than a
			// new one would be, and two starts at once slow each other.
			select {
			case k = <-l.pool:
				if k.exited() {
					l.release(k)
					k = nil
				}
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(startTimeout):
			}
		}
		// A new kernel needs room under the cap: the idlest other
		// thread's kernel gives up its place.
		for !l.reserve() {
			if !l.evictIdlest(s) {
				return nil, errAllBusy
			}
		}
		type started struct {
			k   *kernel
			err error
		}
		ch := make(chan started, 1)
		go func() {
			k, err := l.start()
			ch <- started{k, err}
		}()
		select {
		case st := <-ch:
			if st.err != nil {
				return nil, st.err
			}
			k = st.k
		case <-ctx.Done():
			go func() {
				if st := <-ch; st.k != nil {
					st.k.kill()
					l.release(st.k)
				}
			}()
			return nil, ctx.Err()
		}
	}
	if err := l.assign(k, dir); err != nil {
		k.kill()
		l.release(k)
		return nil, err
	}
	return k, nil
}

func (l *Local) assign(k *kernel, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		if err := os.Rename(filepath.Join(dir, e.Name()), filepath.Join(k.dir, e.Name())); err != nil {
			return fmt.Errorf("move thread files: %w", err)
		}
	}
	if k.uid >= 0 {
		// Files a previous kernel of the thread wrote belong to its user.
		err := filepath.WalkDir(k.dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, k.uid, kernelGID)
		})
		if err != nil {
			return fmt.Errorf("own thread files: %w", err)
		}
	}
	// syscall.Rename: os.Rename refuses to replace a directory, even an
	// empty one.
	if err := syscall.Rename(k.dir, dir); err != nil {
		return fmt.Errorf("assign thread directory: %w", err)
	}
	k.dir = dir
	return nil
}

// Kernels reports the kernels alive: running ones (bound to a thread, or
// starting) and pooled ones (started, waiting for a thread).
func (l *Local) Kernels() (running, pooled int) {
	l.mu.Lock()
	live := l.live
	l.mu.Unlock()
	pooled = len(l.pool)
	return max(live-pooled, 0), pooled
}

// errAllBusy says every kernel under the cap is running a call.
var errAllBusy = errors.New("all kernels are busy")

// reserve takes a place under the kernel cap for a kernel about to start;
// start gives it back if the kernel fails, release when it is gone.
func (l *Local) reserve() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.live >= l.cfg.MaxKernels {
		return false
	}
	l.live++
	return true
}

func (l *Local) unreserve() {
	l.mu.Lock()
	l.live--
	l.mu.Unlock()
}

// evictIdlest stops the kernel of the thread (other than self) whose last
// call ended longest ago, among those not running a call, or a pooled
// kernel; it reports whether it freed a place.
func (l *Local) evictIdlest(self *session) bool {
	select {
	case k := <-l.pool:
		k.kill()
		l.release(k)
		return true
	default:
	}
	l.mu.Lock()
	var all []*session
	for _, s := range l.sessions {
		if s != self {
			all = append(all, s)
		}
	}
	l.mu.Unlock()
	var idlest *session
	for _, s := range all {
		select {
		case s.lock <- struct{}{}:
		default:
			continue // running a call
		}
		if s.k != nil && (idlest == nil || s.used.Before(idlest.used)) {
			if idlest != nil {
				<-idlest.lock
			}
			idlest = s
			continue
		}
		<-s.lock
	}
	if idlest == nil {
		return false
	}
	defer func() { <-idlest.lock }()
	l.logger.Info("code_interpreter: kernel cap reached; stopping the idlest kernel", "max_kernels", l.cfg.MaxKernels,
		"idle", time.Since(idlest.used).Round(time.Second))
	idlest.k.kill()
	l.release(idlest.k)
	idlest.k = nil
	return true
}

// release frees a dead kernel's user id, scratch space and place under the
// kernel cap.
func (l *Local) release(k *kernel) {
	<-k.done
	if k.respFile != nil {
		k.respFile.Close()
	}
	os.RemoveAll(k.tmp)
	if strings.HasPrefix(k.dir, filepath.Join(l.cfg.Dir, "slots")+string(filepath.Separator)) {
		os.RemoveAll(k.dir)
	}
	l.mu.Lock()
	delete(l.uids, k.uid)
	l.live--
	l.mu.Unlock()
}

// place writes the files the call should find that this thread has not
// been given yet. Writes go through an os.Root of the thread's directory,
// so a symlink the code planted cannot redirect them outside it; a file
// is written under a temporary name and renamed into place, replacing
// whatever the code left under that name. With exact (a container's
// files), a file keeps its own name even when an earlier file had it, and
// placed files no longer among files are removed.
func (l *Local) place(dir string, uid int, files []InputFile, exact bool) error {
	if len(files) == 0 && !exact {
		return nil
	}
	manifest := dir + ".files.json"
	placed := map[string]string{}
	if b, err := os.ReadFile(manifest); err == nil {
		json.Unmarshal(b, &placed)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("place files: %w", err)
	}
	defer root.Close()
	dirty := false
	if exact {
		wanted := map[string]bool{}
		names := map[string]bool{}
		for _, f := range files {
			wanted[f.ID], names[exactName(f.Name)] = true, true
		}
		for id, name := range placed {
			if wanted[id] {
				continue
			}
			if !names[name] {
				if err := root.RemoveAll(name); err != nil {
					return fmt.Errorf("remove %s: %w", name, err)
				}
			}
			delete(placed, id)
			dirty = true
		}
	}
	for _, f := range files {
		if _, ok := placed[f.ID]; ok {
			continue
		}
		name := cleanName(f.Name)
		if exact {
			name = exactName(f.Name)
		}
		if name == "" {
			name = f.ID
		}
		if other := nameTaken(placed, name); other && !exact {
			name = f.ID + "-" + name
		}
		if dir := filepath.Dir(name); exact && dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("place %s: %w", f.ID, err)
			}
		}
		if err := writeInto(root, name, uid, f.Open); err != nil {
			return fmt.Errorf("place %s: %w", f.ID, err)
		}
		placed[f.ID], dirty = name, true
	}
	if !dirty {
		return nil
	}
	b, _ := json.Marshal(placed)
	return os.WriteFile(manifest, b, 0o600)
}

// noteWritten records the files a call wrote in the manifest of a
// session whose files are exact (a container's), so that the next call
// removes those no longer among its files (deleted through the API).
func noteWritten(dir string, names []string) error {
	manifest := dir + ".files.json"
	placed := map[string]string{}
	if b, err := os.ReadFile(manifest); err == nil {
		json.Unmarshal(b, &placed)
	}
	for _, name := range names {
		placed["written:"+name] = name
	}
	b, _ := json.Marshal(placed)
	return os.WriteFile(manifest, b, 0o600)
}

// exactName keeps a container file's path (relative to /mnt/data) as it
// is when it stays inside /mnt/data; "" otherwise.
func exactName(name string) string {
	name = filepath.Clean(strings.ReplaceAll(name, "\\", "/"))
	if filepath.IsAbs(name) || name == "." || name == ".." || strings.HasPrefix(name, "../") || strings.HasPrefix(name, ".files") ||
		strings.HasPrefix(name, ".placing-") {
		return ""
	}
	return name
}

func nameTaken(placed map[string]string, name string) bool {
	for _, n := range placed {
		if n == name {
			return true
		}
	}
	return false
}

// cleanName keeps a stored file's name usable as one path element.
func cleanName(name string) string {
	name = filepath.Base(strings.ReplaceAll(name, "\\", "/"))
	if name == "." || name == "/" || name == ".." || strings.HasPrefix(name, ".files") {
		return ""
	}
	return name
}

func writeInto(root *os.Root, name string, uid int, open func() (io.ReadCloser, error)) error {
	src, err := open()
	if err != nil {
		return err
	}
	defer src.Close()
	tmp := fmt.Sprintf(".placing-%d", time.Now().UnixNano())
	dst, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil && uid >= 0 {
		err = root.Lchown(tmp, uid, kernelGID)
	}
	if err == nil {
		root.RemoveAll(name) // a directory the code made under that name
		err = root.Rename(tmp, name)
	}
	if err != nil {
		root.Remove(tmp)
	}
	return err
}

// Open implements Sandbox: the name is resolved inside the thread's
// directory (os.Root), so neither ".." nor a symlink the code made reaches
// anything outside it.
func (l *Local) Open(threadID, name string) (io.ReadCloser, error) {
	root, err := os.OpenRoot(l.threadDir(threadID))
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.Open(filepath.Clean(strings.TrimPrefix(name, "/mnt/data/")))
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	return f, nil
}

// Remove implements Remover: the file at name (relative to /mnt/data)
// goes, with what the manifest knew of it, unless the session is running
// code (its next exact placement removes it then).
func (l *Local) Remove(threadID, name string) error {
	name = exactName(strings.TrimPrefix(name, "/mnt/data/"))
	if name == "" {
		return nil
	}
	s, err := l.session(threadID)
	if err != nil {
		return err
	}
	select {
	case s.lock <- struct{}{}:
	default:
		return nil // busy
	}
	defer func() { <-s.lock }()
	dir := l.threadDir(threadID)
	root, err := os.OpenRoot(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.RemoveAll(name); err != nil {
		return err
	}
	manifest := dir + ".files.json"
	placed := map[string]string{}
	b, err := os.ReadFile(manifest)
	if err != nil {
		return nil
	}
	json.Unmarshal(b, &placed)
	for id, n := range placed {
		if n == name {
			delete(placed, id)
		}
	}
	b, _ = json.Marshal(placed)
	return os.WriteFile(manifest, b, 0o600)
}

// restore brings the thread's directory to the saved state of its files
// (Request.Sync): a saved file is written unless the directory holds
// that version already, by the record in <dir>.saved.json (outside the
// kernel's reach, like the placement manifest), and a file written from
// an earlier saved state and no longer saved is removed. A saved file
// whose stored contents are gone (deleted through the API) is left out.
func (l *Local) restore(dir string, uid int, saved []InputFile) error {
	record := dir + ".saved.json"
	held := map[string]string{}
	if b, err := os.ReadFile(record); err == nil {
		json.Unmarshal(b, &held)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("restore files: %w", err)
	}
	defer root.Close()
	dirty := false
	want := map[string]bool{}
	for _, f := range saved {
		name := exactName(f.Name)
		if name == "" {
			continue
		}
		want[name] = true
		if held[name] == f.ID {
			continue
		}
		var openErr error
		open := func() (io.ReadCloser, error) {
			r, err := f.Open()
			openErr = err
			return r, err
		}
		if d := filepath.Dir(name); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("restore %s: %w", name, err)
			}
			if uid >= 0 {
				root.Lchown(d, uid, kernelGID)
			}
		}
		if err := writeInto(root, name, uid, open); err != nil {
			if openErr != nil {
				continue
			}
			return fmt.Errorf("restore %s: %w", name, err)
		}
		held[name], dirty = f.ID, true
	}
	for name := range held {
		if want[name] {
			continue
		}
		if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("restore: remove %s: %w", name, err)
		}
		delete(held, name)
		dirty = true
	}
	if !dirty {
		return nil
	}
	b, _ := json.Marshal(held)
	return os.WriteFile(record, b, 0o600)
}

// NoteSaved implements Syncer.
func (l *Local) NoteSaved(threadID string, saved map[string]string, removed []string) error {
	if len(saved) == 0 && len(removed) == 0 {
		return nil
	}
	s, err := l.session(threadID)
	if err != nil {
		return err
	}
	s.rec.Lock()
	defer s.rec.Unlock()
	dir := l.threadDir(threadID)
	if _, err := os.Stat(dir); err != nil {
		return nil // forgotten meanwhile
	}
	record := dir + ".saved.json"
	held := map[string]string{}
	if b, err := os.ReadFile(record); err == nil {
		json.Unmarshal(b, &held)
	}
	for _, name := range removed {
		delete(held, name)
	}
	for name, id := range saved {
		held[name] = id
	}
	b, _ := json.Marshal(held)
	return os.WriteFile(record, b, 0o600)
}

// Forget implements Sandbox.
func (l *Local) Forget(threadID string) error {
	l.mu.Lock()
	s := l.sessions[threadID]
	delete(l.sessions, threadID)
	l.mu.Unlock()
	if s != nil {
		s.lock <- struct{}{}
		if s.k != nil {
			s.k.kill()
			l.release(s.k)
			s.k = nil
		}
		<-s.lock
	}
	dir := l.threadDir(threadID)
	os.Remove(dir + ".files.json")
	os.Remove(dir + ".saved.json")
	return os.RemoveAll(dir)
}

// Close implements Sandbox.
func (l *Local) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	sessions := l.sessions
	l.mu.Unlock()
	close(l.stop)
	l.wg.Wait()
	for {
		select {
		case k := <-l.pool:
			k.kill()
			l.release(k)
			continue
		default:
		}
		break
	}
	for _, s := range sessions {
		s.lock <- struct{}{}
		if s.k != nil {
			s.k.kill()
			l.release(s.k)
			s.k = nil
		}
		<-s.lock
	}
	return nil
}

// kernelGID is the group every kernel runs in when the server is root:
// the only group allowed to pass through the data directory to the
// sandbox's directories (bubblewrap resolves its bind sources as the
// kernel's user, before the kernel can see anything).
const kernelGID = uidBase

// grantTraversal lets kernelGID pass through the data directory and the
// sandbox directory (search permission only, no listing), and checks the
// directories above them let others pass.
func (l *Local) grantTraversal() error {
	dir, err := filepath.Abs(l.cfg.Dir)
	if err != nil {
		return err
	}
	own := []string{filepath.Dir(dir), dir}
	for _, d := range []string{"threads", "slots", "tmp"} {
		own = append(own, filepath.Join(dir, d))
	}
	for _, d := range own {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
		if err := os.Lchown(d, -1, kernelGID); err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
		if err := os.Chmod(d, st.Mode().Perm()&^0o070|0o010); err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
	}
	for d := filepath.Dir(own[0]); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("sandbox: %s does not let other users pass (chmod o+x %s): "+
				"code_interpreter kernels run as their own users and must reach %s", d, d, dir)
		}
		if d == "/" || d == "." {
			return nil
		}
	}
}

// allocUID picks the user a new kernel runs as (-1 when the server is not
// root and cannot switch users).
func (l *Local) allocUID() int {
	if !l.root {
		return -1
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		l.nextSlot = (l.nextSlot + 1) % 1_000_000
		uid := uidBase + l.nextSlot
		if !l.uids[uid] {
			l.uids[uid] = true
			return uid
		}
	}
}

// start launches a kernel with a fresh slot directory at /mnt/data and
// waits until it has imported the scientific stack. The caller has
// reserved its place under the kernel cap.
func (l *Local) start() (*kernel, error) {
	uid := l.allocUID()
	k := &kernel{uid: uid, done: make(chan struct{}), pidfd: -1, infoDone: make(chan struct{})}
	name := fmt.Sprintf("%d-%d", time.Now().UnixNano(), uid)
	k.dir = filepath.Join(l.cfg.Dir, "slots", name)
	k.tmp = filepath.Join(l.cfg.Dir, "tmp", name)
	fail := func(err error) (*kernel, error) {
		os.RemoveAll(k.dir)
		os.RemoveAll(k.tmp)
		l.mu.Lock()
		delete(l.uids, uid)
		l.live--
		l.mu.Unlock()
		return nil, err
	}
	for _, d := range []string{k.dir, k.tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return fail(err)
		}
		if uid >= 0 {
			if err := os.Chown(d, uid, kernelGID); err != nil {
				return fail(err)
			}
		}
	}
	lim := l.cfg.Limits
	cpu := int64(max(lim.CPUTime/time.Second, 1))
	k.output = filepath.Join(k.tmp, ".kernel-output")
	cfg, _ := json.Marshal(map[string]any{
		"memory_bytes": lim.Memory, "open_files": lim.OpenFiles, "file_bytes": lim.FileSize,
		"processes": lim.Processes, "cpu_seconds": cpu, "cpu_total_seconds": cpu * 20,
		"output_bytes": lim.Output, "chdir_fds": l.bwrap == "",
		"clear_seconds": cmp.Or(l.cfg.clearWithin, 10*time.Second).Seconds(),
	})
	env := []string{"HOME=/tmp", "TMPDIR=/tmp", "MPLBACKEND=Agg", "MPLCONFIGDIR=/tmp/.matplotlib", "LANG=C.UTF-8",
		"PATH=/usr/local/bin:/usr/bin:/bin", "OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1",
		"PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"}
	pyArgs := []string{l.cfg.Python, "-s", "-c", kernelSource, string(cfg)}
	var cmd *exec.Cmd
	if l.bwrap != "" {
		args := []string{"--unshare-all", "--die-with-parent", "--new-session", "--hostname", "sandbox",
			"--cap-drop", "ALL",
			"--ro-bind", "/usr", "/usr",
			"--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
			"--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
			"--dir", "/etc",
		}
		// Only what Python, BLAS and matplotlib read from /etc; nothing of
		// the host's users, hosts or secrets.
		for _, p := range []string{"/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
			"/etc/fonts", "/etc/matplotlibrc", "/etc/localtime", "/etc/mime.types"} {
			args = append(args, "--ro-bind-try", p, p)
		}
		if ms, _ := filepath.Glob("/etc/python3*"); len(ms) > 0 {
			for _, p := range ms {
				args = append(args, "--ro-bind", p, p)
			}
		}
		args = append(args, "--proc", "/proc", "--dev", "/dev",
			// By descriptor (fds 5 and 6): the kernel's user may not
			// traverse the data directory, and need not.
			"--bind-fd", "6", "/tmp",
			"--bind-fd", "5", "/mnt/data", "--chdir", "/mnt/data",
			"--remount-ro", "/", "--clearenv",
			// bwrap reports the sandbox's init there (see waitGone).
			"--info-fd", "7",
			// The seccomp filter (seccomp.go), read from fd 8.
			"--seccomp", "8")
		if bwrapDisablesUserns(l.bwrap) {
			// No nested user namespaces (the filter refuses them too).
			args = append(args, "--unshare-user", "--disable-userns")
		}
		for _, e := range env {
			n, v, _ := strings.Cut(e, "=")
			args = append(args, "--setenv", n, v)
		}
		args = append(args, "--")
		cmd = exec.Command(l.bwrap, append(args, pyArgs...)...)
		cmd.Env = []string{}
	} else {
		// Unsafe: the kernel changes into its directory by descriptor.
		cmd = exec.Command(pyArgs[0], pyArgs[1:]...)
		env = slices.DeleteFunc(env, func(e string) bool { return strings.Contains(e, "/tmp") })
		cmd.Env = append(env, "HOME=/nonexistent")
	}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if uid >= 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: kernelGID}
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	respR, respW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		return fail(err)
	}
	dirFD, err := os.Open(k.dir)
	if err != nil {
		return fail(err)
	}
	defer dirFD.Close()
	tmpFD, err := os.Open(k.tmp)
	if err != nil {
		return fail(err)
	}
	defer tmpFD.Close()
	// fds 3 and 4 are the protocol; 5 and 6 the directories, which the
	// kernel closes before running any code (a host directory's
	// descriptor would lead out of the sandbox through "..").
	infoR, infoW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	defer infoW.Close()
	cmd.ExtraFiles = []*os.File{reqR, respW, dirFD, tmpFD, infoW}
	if l.bwrap != "" {
		filter, err := seccompFile()
		if err != nil {
			for _, f := range []*os.File{reqR, reqW, respR, respW, infoR} {
				f.Close()
			}
			return fail(err)
		}
		defer filter.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, filter)
	}
	k.stderr = &capBuffer{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = k.stderr, k.stderr
	err = cmd.Start()
	reqR.Close()
	respW.Close()
	infoW.Close()
	if err != nil {
		reqW.Close()
		respR.Close()
		infoR.Close()
		return fail(fmt.Errorf("start kernel: %w", err))
	}
	go k.readInfo(infoR)
	k.cmd, k.req, k.resp = cmd, reqW, bufio.NewReader(respR)
	k.respFile = respR
	go func() {
		k.waitErr = cmd.Wait()
		k.waitGone()
		close(k.done)
	}()
	ready := make(chan error, 1)
	go func() {
		var msg struct {
			Ready bool `json:"ready"`
		}
		ready <- readFrame(k.resp, 1<<10, &msg)
	}()
	select {
	case err = <-ready:
	case <-time.After(startTimeout):
		err = fmt.Errorf("the kernel did not start within %s", startTimeout)
	}
	if err != nil {
		k.kill()
		<-k.done
		detail := strings.TrimSpace(k.stderr.String())
		if detail != "" {
			err = fmt.Errorf("%w: %s", err, detail)
		}
		return fail(fmt.Errorf("kernel start: %w", err))
	}
	return k, nil
}

// bwrapDisablesUserns reports whether bubblewrap has --disable-userns
// (0.8.0 and later; not in its setuid build, which refuses it).
var bwrapDisablesUserns = func() func(string) bool {
	var mu sync.Mutex
	known := map[string]bool{}
	return func(bwrap string) bool {
		mu.Lock()
		defer mu.Unlock()
		if v, ok := known[bwrap]; ok {
			return v
		}
		out, _ := exec.Command(bwrap, "--help").CombinedOutput()
		st, err := os.Stat(bwrap)
		known[bwrap] = bytes.Contains(out, []byte("--disable-userns")) && err == nil && st.Mode()&os.ModeSetuid == 0
		return known[bwrap]
	}
}()

// startTimeout bounds a kernel's start (bubblewrap, Python, the imports).
const startTimeout = 60 * time.Second

// kernel is one running Python process.
type kernel struct {
	cmd      *exec.Cmd
	uid      int
	dir, tmp string
	output   string // host path of its output file
	req      *os.File
	resp     *bufio.Reader
	respFile *os.File
	stderr   *capBuffer
	// done is closed once the kernel and every process of its sandbox
	// have exited: nothing writes to its directories any more.
	done    chan struct{}
	waitErr error
	// pidfd refers to the sandbox's init (its PID namespace's first
	// process), -1 when unknown; pidNS names that namespace (as
	// /proc/<pid>/ns/pid reads). Both are set before infoDone is closed.
	pidfd    int
	pidNS    string
	infoDone chan struct{}
}

// readInfo reads bubblewrap's report of the sandbox's init process and
// holds a pidfd on it. Killing bwrap does not wait for the processes in
// the sandbox: the init gets SIGKILL by its parent-death signal a moment
// later, and until it (and with it the whole PID namespace) is gone, code
// may still be writing to /mnt/data.
func (k *kernel) readInfo(r *os.File) {
	defer close(k.infoDone)
	defer r.Close()
	var info struct {
		ChildPID int `json:"child-pid"`
	}
	if json.NewDecoder(r).Decode(&info) != nil || info.ChildPID <= 0 {
		return
	}
	if fd, err := unix.PidfdOpen(info.ChildPID, 0); err == nil {
		k.pidfd = fd
		// Read after the pidfd is held: a pid reused since would have
		// another namespace, and the pidfd pins this one's process.
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", info.ChildPID)); err == nil {
			if unix.PidfdSendSignal(fd, 0, nil, 0) == nil {
				k.pidNS = ns
			}
		}
	}
}

// waitGone waits, after bwrap has exited, until the sandbox's init has
// too: the kernel ends every process of a PID namespace before its init
// exits.
func (k *kernel) waitGone() {
	<-k.infoDone
	if k.pidfd < 0 {
		return
	}
	defer unix.Close(k.pidfd)
	unix.PidfdSendSignal(k.pidfd, unix.SIGKILL, nil, 0)
	fds := []unix.PollFd{{Fd: int32(k.pidfd), Events: unix.POLLIN}}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		n, err := unix.Poll(fds, int(time.Until(deadline).Milliseconds())+1)
		if n > 0 || (err != nil && err != unix.EINTR) {
			return
		}
	}
}

func (k *kernel) exited() bool {
	select {
	case <-k.done:
		return true
	default:
		return false
	}
}

// kill stops the kernel and everything it started: its process group,
// and (under bubblewrap) its PID namespace, which dies with its init.
func (k *kernel) kill() {
	if k.cmd != nil && k.cmd.Process != nil {
		syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
		k.cmd.Process.Kill()
	}
	if k.req != nil {
		k.req.Close()
	}
}

// reply is the kernel's answer to one call. Nothing in it is trusted: it
// must carry the call's id, fit in maxFrame, and its images are names of
// files the server reads from the kernel's own /tmp, within bounds.
type reply struct {
	ID        string   `json:"id"`
	Logs      string   `json:"logs"`
	Truncated bool     `json:"truncated"`
	Omitted   int64    `json:"omitted"`
	Error     *string  `json:"error"`
	Images    []string `json:"images"`
	Leftover  bool     `json:"leftover"` // processes the kernel could not end
}

// Bounds on the figures of one call, read from the kernel's /tmp (where
// they count against the thread's disk limit while they exist).
const (
	maxImages     = 16
	maxImageBytes = 8 << 20
	maxImageTotal = 32 << 20
	imagesDir     = ".kernel-images"
)

// restartNote ends the error of a call that cost the kernel its state.
const restartNote = "\nThe Python kernel was restarted: variables and imports are lost; files in /mnt/data are kept."

// exec runs one call. A usage on diskOver (the disk watcher saw the
// thread past its limits) stops it like the time limit does.
func (k *kernel) exec(ctx context.Context, req Request, lim Limits, diskOver <-chan usage) Result {
	got := make(chan error, 1)
	var rep reply
	var nonce [16]byte
	rand.Read(nonce[:])
	id := hex.EncodeToString(nonce[:])
	go func() {
		body, _ := json.Marshal(map[string]string{"id": id, "code": req.Code, "call_id": req.CallID})
		if err := writeFrame(k.req, body); err != nil {
			got <- err
			return
		}
		err := readFrame(k.resp, maxReply(lim), &rep)
		if err == nil && rep.ID != id {
			err = errForeignReply
		}
		got <- err
	}()
	timer := time.NewTimer(lim.WallTime)
	defer timer.Stop()
	var reason string
	select {
	case err := <-got:
		if err == nil {
			res := Result{Logs: rep.Logs}
			if rep.Truncated {
				res.Logs += fmt.Sprintf("\n[output truncated: %d more bytes]", rep.Omitted)
			}
			var note string
			res.Images, note = k.readImages(rep.Images)
			res.Logs += note
			if rep.Error != nil {
				res.Error = *rep.Error
			}
			if rep.Leftover {
				k.kill()
				<-k.done
				if res.Error != "" {
					res.Error += "\n"
				}
				res.Error += "Processes the code started could not be stopped, so the kernel was stopped with them." + restartNote
				res.Restarted = true
			}
			return res
		}
		if errors.Is(err, errForeignReply) || errors.Is(err, errReplyTooLarge) {
			k.kill()
			<-k.done
			return Result{Logs: k.partialOutput(lim.Output), Error: "The kernel's reply was not an answer to this call (" +
				err.Error() + "); it was stopped." + restartNote, Restarted: true}
		}
		// The kernel is dying on its own: let it, so its exit status
		// says why.
		select {
		case <-k.done:
		case <-time.After(2 * time.Second):
		}
		k.kill()
		<-k.done
		reason = k.deathReason(lim)
	case <-timer.C:
		k.kill()
		<-k.done
		reason = fmt.Sprintf("Time limit exceeded: the call ran longer than %s and was stopped.", lim.WallTime)
	case u := <-diskOver:
		k.kill()
		<-k.done
		reason = diskReason(u, lim, true)
	case <-ctx.Done():
		k.kill()
		<-k.done
		reason = "The call was cancelled."
	}
	return Result{Logs: k.partialOutput(lim.Output), Error: reason + restartNote, Restarted: true}
}

// partialOutput reads what a killed call had written.
func (k *kernel) partialOutput(limit int64) string {
	f, err := os.Open(k.output)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, limit))
	s := string(bytes.ToValidUTF8(b, []byte("\uFFFD")))
	if st, err := f.Stat(); err == nil && st.Size() > limit {
		s += fmt.Sprintf("\n[output truncated: %d more bytes]", st.Size()-limit)
	}
	return s
}

// deathReason explains, for the model, why the kernel died mid-call.
func (k *kernel) deathReason(lim Limits) string {
	var ee *exec.ExitError
	if errors.As(k.waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			if ws.Signaled() {
				switch ws.Signal() {
				case syscall.SIGXCPU:
					return fmt.Sprintf("CPU time limit exceeded: the call used more than %s of CPU time.", lim.CPUTime)
				case syscall.SIGXFSZ:
					return fmt.Sprintf("File size limit exceeded: files may be at most %d bytes.", lim.FileSize)
				case syscall.SIGKILL:
					return "The kernel was killed (out of memory?)."
				case syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGILL, syscall.SIGABRT, syscall.SIGFPE:
					return fmt.Sprintf("The kernel crashed (%s).", ws.Signal())
				}
				return fmt.Sprintf("The kernel was terminated by signal %s.", ws.Signal())
			}
			// bwrap reports its child's death by signal as 128+n.
			if c := ws.ExitStatus(); c > 128 && c < 128+65 {
				sig := syscall.Signal(c - 128)
				switch sig {
				case syscall.SIGXCPU:
					return fmt.Sprintf("CPU time limit exceeded: the call used more than %s of CPU time.", lim.CPUTime)
				case syscall.SIGKILL:
					return "The kernel was killed (out of memory?)."
				}
				return fmt.Sprintf("The kernel crashed (%s).", sig)
			}
			return fmt.Sprintf("The kernel exited with status %d.", ws.ExitStatus())
		}
	}
	if k.waitErr == nil {
		return "The kernel exited."
	}
	return "The kernel stopped: " + k.waitErr.Error()
}

// errForeignReply is a reply without the call's id: stale or forged.
var errForeignReply = errors.New("a reply without the call's id")

// errReplyTooLarge is a reply past maxReply.
var errReplyTooLarge = errors.New("a reply larger than the output limit allows")

// maxReply bounds one reply: the logs (capped at the output limit, each
// byte at most six when escaped in JSON), the error text (64 KiB in the
// kernel) and a few names.
func maxReply(lim Limits) uint32 {
	return uint32(min(6*lim.Output+1<<20, math.MaxUint32))
}

// readImages reads the figures a reply names from the kernel's images
// directory (through an os.Root, so a link planted there cannot lead
// elsewhere), within the bounds above, and removes them. It returns a
// note for the logs on any it left out.
func (k *kernel) readImages(names []string) ([][]byte, string) {
	if len(names) == 0 {
		return nil, ""
	}
	root, err := os.OpenRoot(filepath.Join(k.tmp, imagesDir))
	if err != nil {
		return nil, "\n[figures could not be read]"
	}
	defer root.Close()
	var out [][]byte
	var total int64
	skipped := 0
	for i, name := range names {
		if i >= maxImages || !validImageName.MatchString(name) {
			skipped++
			continue
		}
		b, err := readBounded(root, name, min(maxImageBytes, maxImageTotal-total))
		root.Remove(name)
		if err != nil {
			skipped++
			continue
		}
		total += int64(len(b))
		out = append(out, b)
	}
	if skipped > 0 {
		return out, fmt.Sprintf("\n[%d figure(s) left out: more than %d, larger than %d MiB each or %d MiB in all, or unreadable]",
			skipped, maxImages, maxImageBytes>>20, maxImageTotal>>20)
	}
	return out, ""
}

var validImageName = regexp.MustCompile(`^[0-9]{1,12}-[0-9]{1,4}\.png$`)

// readBounded reads a regular file of root, refusing one over limit bytes.
func readBounded(root *os.Root, name string, limit int64) ([]byte, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() > limit {
		return nil, fmt.Errorf("figure %s: not a regular file within %d bytes", name, limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil || int64(len(b)) > limit {
		return nil, fmt.Errorf("figure %s: larger than %d bytes", name, limit)
	}
	return b, nil
}

func writeFrame(w io.Writer, body []byte) error {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(body)))
	_, err := w.Write(append(hdr[:], body...))
	return err
}

func readFrame(r io.Reader, limit uint32, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > limit {
		return fmt.Errorf("%w: %d bytes", errReplyTooLarge, n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return err
	}
	return json.Unmarshal(body, v)
}

// capBuffer keeps the first max bytes written to it (bubblewrap's own
// error messages).
type capBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *capBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *capBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type fileState struct {
	size  int64
	mtime time.Time
}

// snapshotLimit bounds how many entries a scan of /mnt/data looks at.
const snapshotLimit = 10000

// snapshot lists the regular files under dir (not following symlinks);
// whole is false when dir held more than snapshotLimit entries.
func snapshot(dir string) (files map[string]fileState, whole bool) {
	out := map[string]fileState{}
	n := 0
	whole = true
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if n++; n > snapshotLimit {
			whole = false
			return filepath.SkipAll
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if strings.HasPrefix(d.Name(), ".placing-") {
			return nil
		}
		if info, err := d.Info(); err == nil {
			out[rel] = fileState{info.Size(), info.ModTime()}
		}
		return nil
	})
	return out, whole
}

// removed lists files present before and gone after, sorted.
func removed(before, after map[string]fileState) []string {
	var out []string
	for name := range before {
		if _, ok := after[name]; !ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// changed lists files new or modified between two snapshots, sorted.
func changed(before, after map[string]fileState) []string {
	var out []string
	for name, st := range after {
		if old, ok := before[name]; !ok || old != st {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
