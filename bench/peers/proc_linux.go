package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// childProcAttr puts a server in a process group of its own, and makes
// the kernel kill it if this process dies without stopping it (SIGKILL
// included), so that no server is left running. (Pdeathsig fires when the
// creating OS thread exits; the Go runtime keeps its threads, except
// those of goroutines that exit while locked to them, which this program
// has none of. It survives the exec of a script that execs the server,
// as rabbitmq-server does.)
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// killGroup kills the process group that the server p leads (p and the
// helpers it started) with SIGKILL.
func killGroup(p *os.Process) error {
	err := syscall.Kill(-p.Pid, syscall.SIGKILL)
	if err == syscall.ESRCH {
		return nil // the whole group has exited already
	}
	return err
}

// settleDisk flushes every dirty page in the system (sync(2)), so that
// the next run does not pay for the last one's writeback.
func settleDisk() { syscall.Sync() }

// helper is a process a server started, known by its PID and its start
// time (so that a PID reused later is not taken for it).
type helper struct {
	pid   int
	start string
}

// helpersOf lists the processes server pid has started and that still run
// (from /proc/PID/task/*/children).
func helpersOf(pid int) []helper {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []helper
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, field := range bytes.Fields(b) {
			child, err := strconv.Atoi(string(field))
			if err != nil {
				continue
			}
			if start, ok := startTime(child); ok {
				out = append(out, helper{pid: child, start: start})
			}
		}
	}
	return out
}

// running reports whether h still runs (a zombie counts as gone).
func (h helper) running() bool {
	start, ok := startTime(h.pid)
	return ok && start == h.start
}

// kill sends h SIGKILL if it still runs.
func (h helper) kill() {
	if h.running() {
		syscall.Kill(h.pid, syscall.SIGKILL)
	}
}

// startTime returns field 22 of /proc/PID/stat, the process's start time
// in clock ticks after boot; ok is false when the process is gone or a
// zombie.
func startTime(pid int) (string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return "", false
	}
	// Fields from the state (field 3) on.
	fields := bytes.Fields(b[end+1:])
	if len(fields) < 22-2 || string(fields[0]) == "Z" || string(fields[0]) == "X" {
		return "", false
	}
	return string(fields[22-3]), true
}
