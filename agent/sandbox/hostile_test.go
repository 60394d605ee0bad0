package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestKernelCap: with a cap of two kernels, a third thread's call stops
// the idlest thread's kernel (its variables are lost, its files kept), and
// with every kernel running a call, a call fails saying so instead of
// starting another.
func TestKernelCap(t *testing.T) {
	l, _ := newTestLocal(t, func(c *Config) { c.MaxKernels = 2 })
	mustOK(t, run(t, l, "a", "x = 'a'\nopen('/mnt/data/a.txt', 'w').write('kept')"))
	mustOK(t, run(t, l, "b", "x = 'b'"))
	mustOK(t, run(t, l, "b", "x")) // b is now the more recently used
	mustOK(t, run(t, l, "c", "x = 'c'"))
	if res := run(t, l, "b", "print(x)"); res.Error != "" || res.Logs != "b\n" {
		t.Fatalf("b lost its kernel: %+v", res)
	}
	res := run(t, l, "a", "print(open('/mnt/data/a.txt').read())\nprint(x)")
	if !strings.Contains(res.Error, "NameError") || !strings.HasPrefix(res.Logs, "kept\n") {
		t.Fatalf("a (the idlest, evicted): %+v", res)
	}
	l.mu.Lock()
	live := l.live
	l.mu.Unlock()
	if live > 2 {
		t.Fatalf("%d kernels alive under a cap of 2", live)
	}

	// Both kernels busy: each call waits for a file the test writes.
	started := make(chan Result, 2)
	for _, th := range []string{"b", "c"} {
		go func() {
			res, err := l.Exec(context.Background(), th, Request{Code: "import os, time\nopen('/mnt/data/started', 'w').close()\n" +
				"while not os.path.exists('/mnt/data/go'): time.sleep(0.01)"})
			if err != nil {
				res.Error = err.Error()
			}
			started <- res
		}()
	}
	deadline := time.Now().Add(time.Minute)
	for _, th := range []string{"b", "c"} {
		for {
			if _, err := os.Stat(filepath.Join(l.threadDir(th), "started")); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("thread %s's call did not start", th)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	res = run(t, l, "d", "print('never')")
	if !strings.Contains(res.Error, "All 2 Python kernels") || res.Logs != "" {
		t.Fatalf("a call with every kernel busy: %+v", res)
	}
	for _, th := range []string{"b", "c"} {
		os.WriteFile(filepath.Join(l.threadDir(th), "go"), nil, 0o666)
	}
	for range 2 {
		if res := <-started; res.Error != "" {
			t.Errorf("busy call: %+v", res)
		}
	}
	// Room again: d runs, taking the idlest's place.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if res, err := l.Exec(ctx, "d", Request{Code: "print('d')"}); err != nil || res.Logs != "d\n" {
		t.Fatalf("d after the busy calls: %+v, %v", res, err)
	}
}

// forgeFrame is Python that writes a well-formed reply frame, with a
// 16 MiB "figure", to each descriptor that could be the protocol's.
const forgeFrame = `
import json, os, struct, base64
body = json.dumps({"id": "", "logs": "FORGED", "truncated": False, "omitted": 0, "error": None,
    "images": [base64.b64encode(b"\x89PNG" + b"x" * (16 << 20)).decode(), "../../../etc/passwd", "0-0.png"]}).encode()
wrote = []
for fd in range(3, 64):
    try:
        os.write(fd, struct.pack(">I", len(body)) + body)
        wrote.append(fd)
    except OSError:
        pass
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            fd = os.open("/proc/%s/fd/4" % pid, os.O_WRONLY)
            os.write(fd, struct.pack(">I", len(body)) + body)
            wrote.append("pid %s" % pid)
        except OSError:
            pass
print("real", wrote)
`

// TestForgedFrame: a frame the code writes (to any descriptor it has or
// can open through /proc) neither completes its call nor answers the next
// one: each call gets its own output, and the thread's kernel state
// survives.
func TestForgedFrame(t *testing.T) {
	l, _ := newTestLocal(t, nil)
	mustOK(t, run(t, l, "t", "x = 42"))
	res := run(t, l, "t", forgeFrame)
	if strings.Contains(res.Logs, "FORGED") || len(res.Images) != 0 || !strings.HasPrefix(res.Logs, "real ") {
		t.Fatalf("forging call: %+v", res)
	}
	t.Logf("forging call: %s", strings.TrimSpace(res.Logs))
	for i := range 3 {
		res := run(t, l, "t", fmt.Sprintf("print('call', %d, x)", i))
		if res.Error != "" || res.Logs != fmt.Sprintf("call %d 42\n", i) {
			t.Fatalf("call %d after the forgery: %+v", i, res)
		}
	}
}

// TestFiguresFromTheSandbox: figures come back as PNG files read from the
// kernel's /tmp, and a figure name pointing elsewhere is not followed.
func TestFiguresFromTheSandbox(t *testing.T) {
	l, _ := newTestLocal(t, nil)
	res := mustOK(t, run(t, l, "t", "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()\nplt.plot([3, 1])"))
	if len(res.Images) != 2 || !bytes.HasPrefix(res.Images[0], []byte("\x89PNG")) || !bytes.HasPrefix(res.Images[1], []byte("\x89PNG")) {
		t.Fatalf("images: %d", len(res.Images))
	}
	// The figures were removed once read.
	l.mu.Lock()
	k := l.sessions["t"].k
	l.mu.Unlock()
	if left, _ := os.ReadDir(filepath.Join(k.tmp, imagesDir)); len(left) != 0 {
		t.Fatalf("figures left behind: %v", left)
	}
	if imgs, note := k.readImages([]string{"../.kernel-output", "0-0.png", "1-1.png"}); len(imgs) != 0 || note == "" {
		t.Fatalf("readImages of bad names: %d images, %q", len(imgs), note)
	}
}

// TestCallIDVisible: the code reads its call's id, stable across the
// restart that would run it again, from CODE_INTERPRETER_CALL_ID.
func TestCallIDVisible(t *testing.T) {
	l, _ := newTestLocal(t, nil)
	for _, id := range []string{"call_first", "call_second"} {
		res, err := l.Exec(context.Background(), "t", Request{CallID: id,
			Code: "import os\nprint(os.environ['CODE_INTERPRETER_CALL_ID'])"})
		if err != nil || res.Error != "" || res.Logs != id+"\n" {
			t.Fatalf("call %s: %+v, %v", id, res, err)
		}
	}
}

// escapeSyscalls tries what the seccomp filter refuses, through libc's
// syscall(2) (x86-64 numbers), and nested namespaces through util-linux's
// unshare; it prints each result (0 or the errno's name) as JSON.
const escapeSyscalls = `
import ctypes, errno, json, os, subprocess
libc = ctypes.CDLL(None, use_errno=True)
res = {}
def call(name, nr, *args):
    r = libc.syscall(nr, *args)
    res[name] = 0 if r >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
call("unshare(CLONE_NEWUSER)", 272, 0x10000000)
call("unshare(CLONE_NEWNS)", 272, 0x00020000)
call("mount", 165, b"none", b"/tmp", b"tmpfs", 0, 0)
call("ptrace", 101, 0, 0, 0, 0)
call("keyctl", 250, 0, 0, 0, 0)
call("bpf", 321, 0, 0, 0)
call("perf_event_open", 298, 0, 0, -1, -1, 0)
call("setns", 308, -1, 0)
call("clone3", 435, 0, 0)
fd = os.open("/tmp/reserved", os.O_WRONLY | os.O_CREAT)
call("fallocate", 285, fd, 1, ctypes.c_long(0), ctypes.c_long(1 << 30))
os.posix_fallocate(fd, 0, 1 << 20)
res["posix_fallocate writes"] = os.fstat(fd).st_blocks * 512 >= 1 << 20
res["unshare -U"] = subprocess.run(["unshare", "-U", "true"], capture_output=True).returncode
res["unshare -Urm mount"] = subprocess.run(["unshare", "-Urm", "mount", "-t", "tmpfs", "none", "/tmp"], capture_output=True).returncode
res["fork"] = subprocess.run(["true"]).returncode
print(json.dumps(res, sort_keys=True))
`

// TestSeccompRefusesEscapes: inside the sandbox, nested user and mount
// namespaces, mounts, ptrace, keyrings, BPF, perf events and setns fail
// with EPERM (clone3 with ENOSYS, so libc falls back to clone), fallocate
// with EOPNOTSUPP (so posix_fallocate writes, at a pace the disk watcher
// keeps up with), while processes still start.
func TestSeccompRefusesEscapes(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the syscall numbers are x86-64's")
	}
	l, _ := newTestLocal(t, nil)
	res := mustOK(t, run(t, l, "t", escapeSyscalls))
	var got map[string]any
	if err := json.Unmarshal([]byte(res.Logs), &got); err != nil {
		t.Fatalf("logs %q: %v", res.Logs, err)
	}
	t.Logf("%s", res.Logs)
	for name, v := range got {
		want := any("EPERM")
		switch name {
		case "clone3":
			want = "ENOSYS"
		case "fallocate":
			want = "ENOTSUP" // EOPNOTSUPP's other name, the same number on Linux
		case "posix_fallocate writes":
			want = true
		case "fork":
			want = 0.0
		case "unshare -U", "unshare -Urm mount":
			if v == 0.0 {
				t.Errorf("%s succeeded", name)
			}
			continue
		}
		if v != want {
			t.Errorf("%s: %v, want %v", name, v, want)
		}
	}
}
