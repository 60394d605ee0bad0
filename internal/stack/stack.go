// Package stack keeps the stacks of long-waiting goroutines small.
//
// A goroutine's stack grows to the deepest call it has made and shrinks
// only at garbage collections, by half at a time and never below four
// times what it uses. A goroutine that serves one stream or executes one
// run waits for most of its life, and thousands wait at once; if it made
// a deep call first (decoding a request, reading the store, encoding an
// upstream request) it keeps tens of kilobytes of stack it no longer
// uses for several collections. Run makes such a call on a goroutine of
// its own, whose stack is freed when it returns.
package stack

// Run calls f on a new goroutine and waits for it to return. A panic in
// f is raised again on the caller's goroutine, with the same value, so
// the caller's recovery sees it as if f had run there.
func Run(f func()) {
	done := make(chan struct{})
	var (
		value    any
		panicked bool
	)
	go func() {
		defer close(done)
		defer func() {
			if v := recover(); v != nil {
				value, panicked = v, true
			}
		}()
		f()
	}()
	<-done
	if panicked {
		panic(value)
	}
}
