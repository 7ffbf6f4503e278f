package server

import (
	"os"
	"runtime/debug"
)

// DefaultGCPercent is the garbage collector's target when the operator sets
// no GOGC. A sign-in allocates a few hundred short-lived objects (JSON,
// JOSE, SQL rows) over a live heap of a few MB, so Go's default of 100
// runs a collection every few hundred requests and costs 8–15 % of the CPU
// per login under load (docs/benchmarks.md). 400 lets the heap grow to five
// times the live set before collecting: about 20 MB more RSS under load,
// nothing more at idle. GOGC (and GOMEMLIMIT) still win when set.
const DefaultGCPercent = 400

// TuneGC applies DefaultGCPercent unless GOGC is set in the environment
// (the runtime has applied GOGC itself then).
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
}
