//go:build !linux

package main

import "syscall"

// childProcAttr: outside Linux there is no parent-death signal; Close and
// the signal handler stop redis-server.
func childProcAttr() *syscall.SysProcAttr { return nil }

// settleDisk: outside Linux the next run may pay for the last one's
// writeback.
func settleDisk() {}
