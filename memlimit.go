package main

import (
	"errors"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// memoryLimit resolves --memory-limit to the Go runtime's soft memory
// limit in bytes, or 0 for none. "auto" (the default) keeps a GOMEMLIMIT
// the environment set, else takes 90% of the container's memory limit
// (cgroup v2 memory.max, v1 memory.limit_in_bytes), else none: the heap
// then grows to twice what is live between collections (GOGC), which under
// many open streams is most of the process's memory. "0" or "off" sets no
// limit; a size (1GiB, 900MiB) sets that one. Beyond the limit the
// collector runs more often rather than letting the heap grow; it is soft:
// live data above it is never refused.
func memoryLimit(s string, getenv func(string) string, cgroup func() int64) (int64, error) {
	switch s = strings.TrimSpace(s); s {
	case "auto", "":
		if getenv("GOMEMLIMIT") != "" {
			return -1, nil // the runtime already applied it
		}
		if n := cgroup(); n > 0 {
			return n / 10 * 9, nil
		}
		return 0, nil
	case "0", "off":
		return 0, nil
	}
	n, err := parseBytes(s)
	if err != nil || n < 1<<20 {
		return 0, errors.New("expected auto, off or a size of at least 1MiB such as 1GiB")
	}
	return n, nil
}

// cgroupMemory is the memory limit of the process's cgroup, or 0 when it
// has none (or it cannot be read).
func cgroupMemory() int64 {
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || n <= 0 || n >= 1<<62 { // "max", or v1's "unlimited" (a huge number)
			return 0
		}
		return n
	}
	return 0
}

// applyMemoryLimit sets the runtime's soft memory limit (see memoryLimit);
// n ≤ 0 leaves the runtime's own setting.
func applyMemoryLimit(n int64) {
	if n > 0 {
		debug.SetMemoryLimit(n)
	}
}

// upstreamClient is the HTTP client of the model providers: Go's default
// transport with smaller connection buffers. Each streaming run holds one
// upstream connection for its whole answer; the default 4 KiB read and
// write buffers are most of what a connection costs, while a request is
// written once and an answer arrives in chunks of a few hundred bytes.
// Longer reads and writes pass through the buffers unharmed.
//
// It keeps up to 64 idle connections per provider instead of Go's 2: with
// more runs at once than that, every request closed its connection after
// the answer and the next one dialled anew.
func upstreamClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ReadBufferSize = 1 << 10
	t.WriteBufferSize = 1 << 10
	t.MaxIdleConnsPerHost = 64
	t.MaxIdleConns = max(t.MaxIdleConns, 256)
	return &http.Client{Transport: t}
}
