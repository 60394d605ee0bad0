package sandbox

import (
	"context"
	"os"
	"path/filepath"
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
