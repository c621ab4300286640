//go:build !linux

package main

import "syscall"

// childProcAttr: outside Linux there is no parent-death signal; Close and
// the signal handler stop redis-server.
func childProcAttr() *syscall.SysProcAttr { return nil }
