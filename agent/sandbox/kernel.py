# The kernel: a long-lived Python process that runs one thread's code like a
# notebook kernel. The server starts it (inside bubblewrap) and speaks to it
# over two pipes: requests on fd 3, responses on fd 4, each frame a 4-byte
# big-endian length and a JSON object. It is given its limits as JSON in
# argv[1]. Nothing here is trusted to contain the code it runs: the sandbox
# around it is the boundary; this file only sets limits early (before any
# user code), captures output and figures, and reports errors.
#
# It is two processes. The monitor holds the protocol's descriptors and
# never runs user code; it makes itself non-dumpable, so the code (the same
# user) can neither read its memory nor open its descriptors through /proc,
# and so cannot write a frame to the server. The executor, a forked child,
# runs the code and reports each call's end over a private pipe. The code
# can write to that pipe too, but only the monitor reads it: the monitor
# answers each request once, echoing the request's id, with logs it reads
# from the output file, bounded error text, and the names of the figures
# the executor saved in the sandbox's /tmp, which the server reads from
# there itself, bounded and counted against the thread's disk limit.
import ctypes
import json
import os
import signal
import struct
import sys
import time

CFG = json.loads(sys.argv[1])
# fds 5 and 6 are /mnt/data's and /tmp's host directories: under
# bubblewrap they are already mounted and must not stay open (".." from a
# host directory's descriptor leads outside the sandbox); without it
# (unsafe mode) the kernel works in them by descriptor.
IMAGES = ".kernel-images"
if CFG.get("chdir_fds"):
    os.fchdir(6)
    _out = os.open(".kernel-output", os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    os.mkdir(IMAGES, 0o700)
    IMAGES_FD = os.open(IMAGES, os.O_RDONLY | os.O_DIRECTORY)
    os.fchdir(5)
else:
    _out = os.open("/tmp/.kernel-output", os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    os.mkdir("/tmp/" + IMAGES, 0o700)
    IMAGES_FD = os.open("/tmp/" + IMAGES, os.O_RDONLY | os.O_DIRECTORY)
for _fd in os.listdir("/proc/self/fd"):
    if int(_fd) > 4 and int(_fd) not in (_out, IMAGES_FD):
        try:
            os.close(int(_fd))
        except OSError:
            pass

# Output: fds 1 and 2 (both processes', any child's, C libraries' too) go
# to one file, so logs keep the order a terminal would show; Python's
# sys.stdout/sys.stderr write through to it and stop the code with
# OutputLimit once a call's output passes the cap.
os.dup2(_out, 1)
os.dup2(_out, 2)
os.close(_out)
OUTPUT_CAP = int(CFG.get("output_bytes") or 1 << 20)
# What the monitor passes on of the executor's reports.
MAX_ERROR = 64 << 10
MAX_IMAGES = 16


def read_exact(f, n):
    buf = b""
    while len(buf) < n:
        chunk = f.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def recv(f, limit):
    """One frame from f, None at its end; a frame past limit bytes is
    read and dropped ({} is returned)."""
    hdr = read_exact(f, 4)
    if hdr is None:
        return None
    (n,) = struct.unpack(">I", hdr)
    if n > limit:
        while n > 0:
            chunk = f.read(min(n, 1 << 16))
            if not chunk:
                return None
            n -= len(chunk)
        return {}
    body = read_exact(f, n)
    if body is None:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return {}


def send(f, obj):
    data = json.dumps(obj).encode()
    f.write(struct.pack(">I", len(data)) + data)


def prctl_dumpable(on):
    ctypes.CDLL(None, use_errno=True).prctl(4, 1 if on else 0, 0, 0, 0)  # PR_SET_DUMPABLE


_to_exec_r, _to_exec_w = os.pipe()
_from_exec_r, _from_exec_w = os.pipe()
EXECUTOR = os.fork()
if EXECUTOR == 0:
    os.close(3)
    os.close(4)
    os.close(_to_exec_w)
    os.close(_from_exec_r)
    EXEC_IN = os.fdopen(_to_exec_r, "rb", buffering=0)
    EXEC_OUT = os.fdopen(_from_exec_w, "wb", buffering=0)
else:
    prctl_dumpable(False)
    os.close(_to_exec_r)
    os.close(_from_exec_w)
    os.close(IMAGES_FD)
    RIN = os.fdopen(3, "rb", buffering=0)
    WOUT = os.fdopen(4, "wb", buffering=0)
    TO_EXEC = os.fdopen(_to_exec_w, "wb", buffering=0)
    FROM_EXEC = os.fdopen(_from_exec_r, "rb", buffering=0)


def others(keep):
    """The sandbox's processes but those in keep, as (pid, state, ppid)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in keep:
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            out.append((int(name), fields[0], int(fields[1])))
        except (OSError, IndexError, ValueError):
            continue
    return out


def end_processes():
    """Ends every process the call left behind (a fork bomb's copies, a
    forgotten subprocess) but the executor, the monitor and the sandbox's
    init, and returns whether it could. Under bubblewrap the kernel has its
    own PID namespace, where those are exactly the processes the code
    started; elsewhere (unsafe mode) /proc shows the server's, so it is not
    done.

    Copies still running are stopped first, and killed only once none is
    left running: a stopped copy cannot fork, and killing frees process
    slots a running copy would fill again at once. It ends when only
    zombies of the executor are left (it reaps them before the next call),
    however long a loaded machine takes, up to a deadline (clear_seconds)."""
    if CFG.get("chdir_fds"):
        return True
    me = os.getpid()
    keep = {1, me, EXECUTOR}
    deadline = time.monotonic() + float(CFG.get("clear_seconds") or 10)
    while True:
        procs = others(keep)
        running = [pid for pid, state, _ in procs if state not in (b"Z", b"X", b"T", b"t")]
        stopped = [pid for pid, state, _ in procs if state in (b"T", b"t")]
        waiting = [pid for pid, state, ppid in procs if state in (b"Z", b"X") and ppid != EXECUTOR]
        if not running and not stopped and not waiting:
            return True
        if time.monotonic() > deadline:
            return False
        for pid in running or stopped:
            try:
                os.kill(pid, signal.SIGSTOP if running else signal.SIGKILL)
            except OSError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        # Zombies of killed copies wait for the sandbox's init to reap them.
        time.sleep(0.001)


def die_like_executor():
    """The executor died: the monitor dies the same way, so the server
    reads the cause (a CPU or memory limit) from the kernel's status."""
    try:
        _, status = os.waitpid(EXECUTOR, 0)
    except ChildProcessError:
        os._exit(1)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass  # SIGKILL and SIGSTOP keep their default
        os.kill(os.getpid(), sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def image_names(seq, names):
    """The executor's figure names for call seq, MAX_IMAGES at most."""
    out = []
    if isinstance(names, list):
        for name in names[:MAX_IMAGES]:
            if isinstance(name, str) and name.startswith("%d-" % seq) and name.endswith(".png") and "/" not in name:
                out.append(name)
    return out


def monitor():
    done = recv(FROM_EXEC, 1 << 16)
    if not isinstance(done, dict) or not done.get("ready"):
        die_like_executor()
    # Whatever start-up printed is not the first call's output.
    os.ftruncate(1, 0)
    send(WOUT, {"ready": True})
    seq = 0
    while True:
        req = recv(RIN, 64 << 20)
        if req is None:
            os.kill(EXECUTOR, signal.SIGKILL)
            os._exit(0)
        seq += 1
        try:
            send(TO_EXEC, {"seq": seq, "code": req.get("code", ""), "call_id": req.get("call_id", "")})
        except OSError:
            die_like_executor()
        # This call's report; one of another call (the code can write to
        # the pipe too) is dropped.
        while True:
            done = recv(FROM_EXEC, 1 << 20)
            if done is None:
                die_like_executor()
            if isinstance(done, dict) and done.get("seq") == seq:
                break
        cleared = end_processes()
        error = done.get("error")
        if error is not None:
            error = str(error)
            if len(error) > MAX_ERROR:
                error = error[:MAX_ERROR] + "\n[error text truncated]"
        size = os.lseek(1, 0, os.SEEK_END)
        logs = os.pread(1, OUTPUT_CAP, 0)
        os.ftruncate(1, 0)
        send(WOUT, {
            "id": req.get("id"),
            "logs": logs.decode("utf-8", "replace"),
            "truncated": size > OUTPUT_CAP,
            "omitted": max(0, size - OUTPUT_CAP),
            "error": error,
            "images": image_names(seq, done.get("images")),
            # Copies that outlast the deadline would starve every later
            # call: the server then ends the kernel, and with the
            # sandbox's init its whole PID namespace.
            "leftover": not cleared,
        })


if EXECUTOR != 0:
    monitor()

# The executor, from here on: it runs the code.
prctl_dumpable(True)
import ast  # noqa: E402
import io  # noqa: E402
import linecache  # noqa: E402
import resource  # noqa: E402
import traceback  # noqa: E402


def setlimit(res, value):
    if value and value > 0:
        resource.setrlimit(res, (value, value))


class OutputLimit(BaseException):
    """Raised in the running code when its output passes the cap. A
    BaseException, so a bare `except Exception` in the code does not hide
    it."""


class CappedWriter(io.TextIOBase):
    def __init__(self, fd):
        self.fd = fd
        self.written = 0

    def writable(self):
        return True

    def write(self, s):
        b = s.encode("utf-8", "replace")
        if self.written + len(b) > OUTPUT_CAP:
            room = max(0, OUTPUT_CAP - self.written)
            if room:
                os.write(self.fd, b[:room])
            self.written = OUTPUT_CAP + 1
            raise OutputLimit("output limit of %d bytes exceeded" % OUTPUT_CAP)
        self.written += len(b)
        while b:
            n = os.write(self.fd, b)
            b = b[n:]
        return len(s)

    def flush(self):
        pass

    def isatty(self):
        return False

    def fileno(self):
        return self.fd


stdout = CappedWriter(1)
stderr = CappedWriter(2)
sys.stdout, sys.stderr = stdout, stderr

# The scientific stack, imported once so a warm kernel answers at once.
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
import numpy  # noqa: E402,F401
import pandas  # noqa: E402,F401

for extra in ("scipy", "sklearn"):
    try:
        __import__(extra)
    except Exception:
        pass

# Figures: plt.show() captures the open figures as PNGs (and closes them);
# figures still open when the call ends are captured too, except those the
# code saved itself (its saved file is the image).
images = []  # file names in the images directory, for this call
saved = set()
call_seq = 0
_savefig = Figure.savefig


def savefig(self, *args, **kwargs):
    saved.add(id(self))
    return _savefig(self, *args, **kwargs)


Figure.savefig = savefig


def capture_figures(skip_saved):
    for num in plt.get_fignums():
        fig = plt.figure(num)
        if not (skip_saved and id(fig) in saved):
            name = "%d-%d.png" % (call_seq, len(images))
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600, dir_fd=IMAGES_FD)
            with os.fdopen(fd, "wb") as f:
                _savefig(fig, f, format="png", dpi=100, bbox_inches="tight")
            images.append(name)
        plt.close(fig)
    saved.clear()


def show(*args, **kwargs):
    capture_figures(False)


plt.show = show

# Limits, last, so imports above are not counted against the per-call CPU
# budget and the interpreter's own start-up fits.
setlimit(resource.RLIMIT_AS, CFG.get("memory_bytes"))
setlimit(resource.RLIMIT_NOFILE, CFG.get("open_files"))
setlimit(resource.RLIMIT_FSIZE, CFG.get("file_bytes"))
setlimit(resource.RLIMIT_NPROC, CFG.get("processes"))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
CPU_PER_CALL = int(CFG.get("cpu_seconds") or 0)
CPU_TOTAL = int(CFG.get("cpu_total_seconds") or 0)
if CPU_TOTAL > 0:
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_TOTAL, CPU_TOTAL))

# A process the code forked returns here too: it must neither read
# requests nor answer them.
EXECUTOR_PID = os.getpid()

namespace = {"__name__": "__main__", "__builtins__": __builtins__}
cell = 0


def cpu_used():
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return int(r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime)


def run(code):
    """Runs code like a notebook cell: the value of a final expression is
    printed. Returns the error text, or None."""
    global cell
    cell += 1
    name = "<cell %d>" % cell
    linecache.cache[name] = (len(code), None, code.splitlines(True), name)
    try:
        tree = ast.parse(code, name, "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, name, "exec"), namespace)
        if last is not None:
            value = eval(compile(last, name, "eval"), namespace)
            if value is not None:
                print(repr(value))
        return None
    except SystemExit as e:
        return "SystemExit: %s" % (e.code,) if e.code not in (None, 0) else None
    except BaseException as e:
        tb = e.__traceback__
        # Drop this function's frame: the model reads its own code's frames.
        while tb is not None and tb.tb_frame.f_code is run.__code__:
            tb = tb.tb_next
        return "".join(traceback.format_exception(type(e), e, tb))


send(EXEC_OUT, {"ready": True})
while True:
    req = recv(EXEC_IN, 1 << 30)
    if req is None:
        os._exit(0)
    call_seq = req.get("seq", 0)
    # The tool call's id, stable across a restart that runs the call
    # again, for code whose effects must not happen twice.
    os.environ["CODE_INTERPRETER_CALL_ID"] = str(req.get("call_id", ""))
    if CPU_PER_CALL > 0:
        soft = cpu_used() + CPU_PER_CALL
        if CPU_TOTAL > 0:
            soft = min(soft, CPU_TOTAL)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, CPU_TOTAL if CPU_TOTAL > 0 else resource.RLIM_INFINITY))
    stdout.written = stderr.written = 0
    del images[:]
    saved.clear()
    # Processes of the last call the monitor killed are reaped here.
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    # Figures of earlier calls were read by the server; drop any left.
    for _name in os.listdir(IMAGES_FD):
        try:
            os.unlink(_name, dir_fd=IMAGES_FD)
        except OSError:
            pass
    error = run(req.get("code", ""))
    if os.getpid() != EXECUTOR_PID:
        os._exit(1)
    try:
        capture_figures(True)
    except BaseException as e:
        error = (error or "") + "Capturing figures failed: %r\n" % (e,)
    try:
        sys.stdout.flush()
    except BaseException:
        pass
    send(EXEC_OUT, {"seq": call_seq, "error": error, "images": images})
