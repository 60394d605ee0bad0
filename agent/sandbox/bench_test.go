package sandbox

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// Round trips of print(1) through the sandbox, as the code_interpreter
// tool makes them. Each reports p50 and p99 in ms besides ns/op.
//
//	go test ./agent/sandbox/ -run '^$' -bench . -benchtime 200x

// BenchmarkWarmKernel: a thread's kernel already runs.
func BenchmarkWarmKernel(b *testing.B) {
	l, _ := newTestLocal(b, nil)
	mustOK(b, run(b, l, "thread_bench", "print(1)"))
	measure(b, func(int) {
		if res := run(b, l, "thread_bench", "print(1)"); res.Logs != "1\n" {
			b.Fatalf("logs %q %s", res.Logs, res.Error)
		}
	})
}

// BenchmarkFirstCallWarmPool: a new thread's first call takes a pooled
// kernel (the pool refilled between calls, outside the timing).
func BenchmarkFirstCallWarmPool(b *testing.B) {
	l, _ := newTestLocal(b, func(c *Config) { c.PoolSize = 1 })
	l.Warm()
	measureEach(b, func() { waitPool(b, l, 1) }, func(i int) {
		if res := run(b, l, fmt.Sprintf("thread_pool_%d", i), "print(1)"); res.Logs != "1\n" {
			b.Fatalf("logs %q %s", res.Logs, res.Error)
		}
	})
}

// BenchmarkFirstCallCold: a new thread's first call starts a kernel.
func BenchmarkFirstCallCold(b *testing.B) {
	l, _ := newTestLocal(b, nil)
	measure(b, func(i int) {
		thread := fmt.Sprintf("thread_cold_%d", i)
		if res := run(b, l, thread, "print(1)"); res.Logs != "1\n" {
			b.Fatalf("logs %q %s", res.Logs, res.Error)
		}
		b.StopTimer()
		l.Forget(thread)
		b.StartTimer()
	})
}

func measure(b *testing.B, op func(i int)) { measureEach(b, nil, op) }

// measureEach times op b.N times, running prepare untimed before each.
func measureEach(b *testing.B, prepare func(), op func(i int)) {
	b.Helper()
	durs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if prepare != nil {
			b.StopTimer()
			prepare()
			b.StartTimer()
		}
		start := time.Now()
		op(i)
		durs = append(durs, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(durs)
	pct := func(p float64) float64 {
		return float64(durs[min(len(durs)-1, int(p*float64(len(durs))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
