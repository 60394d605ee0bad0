//go:build race

package retrieval

// raceEnabled: the race detector is on, and allocations are larger (its
// shadow bookkeeping), so allocation bounds allow for it.
const raceEnabled = true
