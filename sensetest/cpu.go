package sensetest

import (
	"syscall"
	"testing"
	"time"
)

// CPUTime is the test process's CPU time so far, user and system: a
// benchmark that runs its server in process reports the difference over
// b.N (ReportCPU), which a shared machine's CPU steal does not inflate as
// it does wall time.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ReportCPU reports the process's CPU time since start per op, as
// "cpu-µs/op".
func ReportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((CPUTime()-start).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
}
