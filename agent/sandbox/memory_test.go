package sandbox

import (
	"strings"
	"testing"
	"time"
)

// A memory bomb that touches what it takes (zeroed bytearrays) is stopped
// by the memory limit. Zeroing a gigabyte costs CPU time, which on a
// loaded machine could meet the CPU limit first: here the CPU and wall
// clocks are far away, so only the memory limit can end it, and the test
// decides by what happened, not by which limit a slow machine reached
// first.
func TestMemoryLimitTouched(t *testing.T) {
	l, _ := newTestLocal(t, func(c *Config) { c.Limits.CPUTime, c.Limits.WallTime = 5*time.Minute, 5*time.Minute })
	mustOK(t, run(t, l, "thread_mem", "canary = 7"))
	res := run(t, l, "thread_mem", "def f():\n    a = []\n    while True:\n        a.append(bytearray(50 << 20))\nf()")
	if !strings.Contains(res.Error, "MemoryError") || res.Restarted {
		t.Fatalf("touched memory bomb: %+v", res)
	}
	// The kernel lived through it, its state kept.
	if res := mustOK(t, run(t, l, "thread_mem", "print(canary)")); res.Logs != "7\n" {
		t.Fatalf("after the memory bomb: %q", res.Logs)
	}
}
