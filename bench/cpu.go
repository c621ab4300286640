package bench

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"time"
)

// CPUTime is the CPU time a process has used, in user and in system
// (kernel) mode.
type CPUTime struct {
	User, System time.Duration
}

// Add returns c plus d.
func (c CPUTime) Add(d CPUTime) CPUTime {
	return CPUTime{User: c.User + d.User, System: c.System + d.System}
}

// Sub returns c minus d.
func (c CPUTime) Sub(d CPUTime) CPUTime {
	return CPUTime{User: c.User - d.User, System: c.System - d.System}
}

// Total is user plus system time.
func (c CPUTime) Total() time.Duration { return c.User + c.System }

// ErrBadProcStat is the error, wrapped with details, of a
// /proc/<pid>/stat text that does not parse.
var ErrBadProcStat = errors.New("bench: malformed /proc/<pid>/stat")

// ProcessCPU returns the CPU time process pid has used so far, from
// /proc/<pid>/stat (Linux). The kernel keeps it in clock ticks (10ms at
// the usual 100 per second), so a reading is that coarse.
func ProcessCPU(pid int) (CPUTime, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return CPUTime{}, fmt.Errorf("bench: CPU time of pid %d: %w", pid, err)
	}
	utime, stime, err := parseProcStat(b)
	if err != nil {
		return CPUTime{}, fmt.Errorf("bench: CPU time of pid %d: %w", pid, err)
	}
	hz := clockTicks()
	user, err := ticksToDuration(utime, hz)
	if err != nil {
		return CPUTime{}, fmt.Errorf("bench: CPU time of pid %d: utime: %w", pid, err)
	}
	system, err := ticksToDuration(stime, hz)
	if err != nil {
		return CPUTime{}, fmt.Errorf("bench: CPU time of pid %d: stime: %w", pid, err)
	}
	return CPUTime{User: user, System: system}, nil
}

// Fields of /proc/<pid>/stat counted from the state, the first field
// after the command name (proc(5) numbers them from 1 at the pid, so the
// state is 3, utime 14 and stime 15).
const (
	statUtime  = 14 - 3
	statStime  = 15 - 3
	statFields = statStime + 1
)

// parseProcStat returns the utime and stime fields, in clock ticks, of a
// /proc/<pid>/stat text: "pid (comm) state ppid ... utime stime ...". The
// command name may hold spaces and parentheses, so the fields are counted
// from the last ')'.
func parseProcStat(b []byte) (utime, stime uint64, err error) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return 0, 0, fmt.Errorf("%w: no command name in parentheses", ErrBadProcStat)
	}
	if _, err := strconv.ParseUint(string(bytes.TrimSpace(b[:open])), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("%w: pid %q before the command name is not a number", ErrBadProcStat, bytes.TrimSpace(b[:open]))
	}
	fields := bytes.Fields(b[end+1:])
	if len(fields) < statFields {
		return 0, 0, fmt.Errorf("%w: %d fields after the command name, want at least %d (up to stime)", ErrBadProcStat, len(fields), statFields)
	}
	if utime, err = strconv.ParseUint(string(fields[statUtime]), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("%w: utime %q is not a tick count", ErrBadProcStat, fields[statUtime])
	}
	if stime, err = strconv.ParseUint(string(fields[statStime]), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("%w: stime %q is not a tick count", ErrBadProcStat, fields[statStime])
	}
	return utime, stime, nil
}

// ticksToDuration converts clock ticks at hz per second to a duration,
// failing when it would not fit one (292 years).
func ticksToDuration(ticks uint64, hz int64) (time.Duration, error) {
	if hz <= 0 {
		return 0, fmt.Errorf("bench: clock tick rate %d per second: must be positive", hz)
	}
	sec, rem := ticks/uint64(hz), ticks%uint64(hz)
	if sec > uint64(math.MaxInt64/int64(time.Second))-1 {
		return 0, fmt.Errorf("%w: %d ticks is more CPU time than a duration holds", ErrBadProcStat, ticks)
	}
	return time.Duration(sec)*time.Second + time.Duration(rem)*time.Second/time.Duration(hz), nil
}
