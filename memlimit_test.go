package main

import (
	"io"
	"strings"
	"testing"
)

func TestMemoryLimit(t *testing.T) {
	noEnv := func(string) string { return "" }
	goMemLimit := func(name string) string {
		if name == "GOMEMLIMIT" {
			return "2GiB"
		}
		return ""
	}
	container := func() int64 { return 1 << 30 }
	none := func() int64 { return 0 }
	for _, c := range []struct {
		in     string
		getenv func(string) string
		cgroup func() int64
		want   int64
	}{
		{"auto", noEnv, none, 0},
		{"auto", noEnv, container, (1 << 30) / 10 * 9},
		{"auto", goMemLimit, container, -1},
		{"off", noEnv, container, 0},
		{"0", noEnv, container, 0},
		{"900MiB", goMemLimit, container, 900 << 20},
		{"1GiB", noEnv, none, 1 << 30},
	} {
		got, err := memoryLimit(c.in, c.getenv, c.cgroup)
		if err != nil || got != c.want {
			t.Errorf("memoryLimit(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"lots", "-1GiB", "1KiB", "12 parsecs"} {
		if _, err := memoryLimit(bad, noEnv, none); err == nil {
			t.Errorf("memoryLimit(%q) accepted", bad)
		}
	}
	_, err := parseConfig([]string{"--memory-limit", "lots"}, noEnv, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--memory-limit") {
		t.Errorf("parseConfig with --memory-limit lots: %v", err)
	}
	cfg, err := parseConfig([]string{"--memory-limit", "768MiB"}, noEnv, io.Discard)
	if err != nil || cfg.MemoryLimit != 768<<20 {
		t.Errorf("parseConfig with --memory-limit 768MiB: %d, %v", cfg.MemoryLimit, err)
	}
}
