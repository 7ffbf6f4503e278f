package testdb

import (
	"syscall"
	"time"
)

// ProcessCPU is the process's user + system CPU time so far: benchmarks
// report it per op (cpu-µs/op), which holds on a shared, loaded machine
// where ns/op (wall time) does not.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
