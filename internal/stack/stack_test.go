package stack

import (
	"errors"
	"runtime"
	"sync"
	"testing"
)

func TestRunReturnsAfterF(t *testing.T) {
	n := 0
	Run(func() { n = 42 })
	if n != 42 {
		t.Fatalf("n = %d after Run, want 42", n)
	}
}

func TestRunRaisesThePanicAgain(t *testing.T) {
	want := errors.New("boom")
	defer func() {
		if got := recover(); got != want {
			t.Fatalf("recovered %v, want %v", got, want)
		}
	}()
	Run(func() { panic(want) })
	t.Fatal("Run returned after a panic")
}

// deep uses about n KiB of stack.
func deep(n int) byte {
	var buf [1024]byte
	buf[n%1024] = byte(n)
	if n == 0 {
		return buf[0]
	}
	return deep(n-1) + buf[n%1024]
}

// TestRunLeavesTheCallerSmall: goroutines that made a deep call through
// Run and then wait hold far less stack than goroutines that made it
// themselves.
func TestRunLeavesTheCallerSmall(t *testing.T) {
	const n = 200
	held := func(viaRun bool) uint64 {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var ready sync.WaitGroup
		release := make(chan struct{})
		var done sync.WaitGroup
		for range n {
			ready.Add(1)
			done.Add(1)
			go func() {
				defer done.Done()
				if viaRun {
					Run(func() { deep(64) })
				} else {
					deep(64)
				}
				ready.Done()
				<-release
			}()
		}
		ready.Wait()
		runtime.ReadMemStats(&after)
		close(release)
		done.Wait()
		return (after.StackInuse - before.StackInuse) / n
	}
	direct, via := held(false), held(true)
	if via*4 > direct {
		t.Fatalf("stack per waiting goroutine: %d bytes through Run, %d calling directly; want Run's at most a quarter", via, direct)
	}
	t.Logf("stack per waiting goroutine: %d bytes through Run, %d calling directly", via, direct)
}
