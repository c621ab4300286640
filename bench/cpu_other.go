//go:build !linux

package bench

// clockTicks is the rate of the clock ticks of /proc/<pid>/stat, which
// only Linux has: ProcessCPU fails before it matters.
func clockTicks() int64 { return 100 }
