# The kernel: a long-lived Python process that runs one thread's code like a
# notebook kernel. The server starts it (inside bubblewrap) and speaks to it
# over two pipes: requests on fd 3, responses on fd 4, each frame a 4-byte
# big-endian length and a JSON object. It is given its limits as JSON in
# argv[1]. Nothing here is trusted to contain the code it runs: the sandbox
# around it is the boundary; this file only sets limits early (before any
# user code), captures output and figures, and reports errors.
import ast
import base64
import io
import json
import linecache
import os
import resource
import signal
import struct
import sys
import time
import traceback

CFG = json.loads(sys.argv[1])
RIN = os.fdopen(3, "rb", buffering=0)
WOUT = os.fdopen(4, "wb", buffering=0)
os.set_inheritable(3, False)
os.set_inheritable(4, False)
# fds 5 and 6 are /mnt/data's and /tmp's host directories: under
# bubblewrap they are already mounted and must not stay open (".." from a
# host directory's descriptor leads outside the sandbox); without it
# (unsafe mode) the kernel works in them by descriptor.
if CFG.get("chdir_fds"):
    os.fchdir(6)
    _out = os.open(".kernel-output", os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    os.fchdir(5)
    os.closerange(5, 6 + 1)
else:
    os.closerange(5, 6 + 1)
    _out = os.open("/tmp/.kernel-output", os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
for _fd in os.listdir("/proc/self/fd"):
    if int(_fd) > 4 and int(_fd) != _out:
        try:
            os.close(int(_fd))
        except OSError:
            pass


def read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = RIN.read(n - len(buf))
        if not chunk:
            sys.exit(0)
        buf += chunk
    return buf


def recv():
    (n,) = struct.unpack(">I", read_exact(4))
    return json.loads(read_exact(n))


def send(obj):
    data = json.dumps(obj).encode()
    WOUT.write(struct.pack(">I", len(data)) + data)


def setlimit(res, value):
    if value and value > 0:
        resource.setrlimit(res, (value, value))


# Output: fds 1 and 2 (this process's and any child's, C libraries' too) go
# to one file, so logs keep the order a terminal would show; Python's
# sys.stdout/sys.stderr write through to it and stop the code with
# OutputLimit once a call's output passes the cap.
os.dup2(_out, 1)
os.dup2(_out, 2)
os.close(_out)
OUTPUT_CAP = int(CFG.get("output_bytes") or 1 << 20)


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
images = []
saved = set()
_savefig = Figure.savefig


def savefig(self, *args, **kwargs):
    saved.add(id(self))
    return _savefig(self, *args, **kwargs)


Figure.savefig = savefig


def capture_figures(skip_saved):
    for num in plt.get_fignums():
        fig = plt.figure(num)
        if not (skip_saved and id(fig) in saved):
            buf = io.BytesIO()
            _savefig(fig, buf, format="png", dpi=100, bbox_inches="tight")
            images.append(base64.b64encode(buf.getvalue()).decode())
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
KERNEL_PID = os.getpid()

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


# Whatever start-up printed is not the first call's output.
os.ftruncate(1, 0)
def end_processes():
    """Ends every process the call left behind (a fork bomb's copies, a
    forgotten subprocess). Under bubblewrap the kernel has its own PID
    namespace, where kill(-1) reaches exactly the processes the code
    started; elsewhere (unsafe mode) it would reach the server's, so it is
    not done."""
    if CFG.get("chdir_fds"):
        return
    for _ in range(200):
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            return
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        time.sleep(0.001)


send({"ready": True})
while True:
    req = recv()
    if CPU_PER_CALL > 0:
        soft = cpu_used() + CPU_PER_CALL
        if CPU_TOTAL > 0:
            soft = min(soft, CPU_TOTAL)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, CPU_TOTAL if CPU_TOTAL > 0 else resource.RLIM_INFINITY))
    stdout.written = stderr.written = 0
    del images[:]
    saved.clear()
    error = run(req.get("code", ""))
    if os.getpid() != KERNEL_PID:
        os._exit(1)
    end_processes()
    try:
        capture_figures(True)
    except BaseException as e:
        error = (error or "") + "Capturing figures failed: %r\n" % (e,)
    try:
        sys.stdout.flush()
    except BaseException:
        pass
    size = os.lseek(1, 0, os.SEEK_END)
    logs = os.pread(1, OUTPUT_CAP, 0)
    os.ftruncate(1, 0)
    truncated = size > OUTPUT_CAP
    send({
        "logs": logs.decode("utf-8", "replace"),
        "truncated": truncated,
        "omitted": max(0, size - OUTPUT_CAP),
        "error": error,
        "images": images,
    })
