package seglog

import (
	"syscall"
	"time"
)

// preciseSleep sleeps for d in the calling thread. A group commit's pacing
// wait is a few hundred microseconds, and time.Sleep rounds a wait that
// short up to a millisecond when the process has nothing else to run (the
// Go scheduler then parks in epoll with a timeout in whole milliseconds):
// measured here, time.Sleep(200µs) in an idle process took 1.09 ms at the
// median, nanosleep(2) 0.27 ms. The goroutine holds its thread for the
// wait; the scheduler hands its P to another thread meanwhile.
func preciseSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for {
		var rem syscall.Timespec
		err := syscall.Nanosleep(&ts, &rem)
		if err != syscall.EINTR {
			return
		}
		ts = rem
	}
}
