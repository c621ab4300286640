//go:build !linux

package main

import (
	"errors"
	"os"
	"syscall"
)

// childProcAttr: outside Linux there is no parent-death signal; Close and
// the signal handler stop the servers.
func childProcAttr() *syscall.SysProcAttr { return nil }

// killGroup kills the server p; outside Linux its helpers are left to
// exit with it.
func killGroup(p *os.Process) error {
	if err := p.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// settleDisk: outside Linux the next run may pay for the last one's
// writeback.
func settleDisk() {}

// helper is a process a server started; outside Linux none is tracked.
type helper struct{}

func helpersOf(int) []helper { return nil }
func (helper) running() bool { return false }
func (helper) kill()         {}
