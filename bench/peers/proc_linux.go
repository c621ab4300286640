package main

import "syscall"

// childProcAttr makes the kernel kill redis-server if this process dies
// without stopping it (SIGKILL included), so that no server is left
// running. (Pdeathsig fires when the creating OS thread exits; the Go
// runtime keeps its threads, except those of goroutines that exit while
// locked to them, which this program has none of.)
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// settleDisk flushes every dirty page in the system (sync(2)), so that
// the next run does not pay for the last one's writeback.
func settleDisk() { syscall.Sync() }
