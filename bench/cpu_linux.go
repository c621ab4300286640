package bench

import (
	"sync"

	"golang.org/x/sys/unix"
)

// atClkTck is the auxiliary vector's entry for the clock tick rate
// (AT_CLKTCK in <elf.h>).
const atClkTck = 17

// clockTicks is the rate of the clock ticks /proc/<pid>/stat counts in
// (USER_HZ), what getconf CLK_TCK prints: the kernel passes it to every
// process in the auxiliary vector. Linux fixes it at 100 on every
// architecture, the value used when the vector cannot be read.
var clockTicks = sync.OnceValue(func() int64 {
	auxv, err := unix.Auxv()
	if err != nil {
		return 100
	}
	for _, kv := range auxv {
		if kv[0] == atClkTck && kv[1] > 0 {
			return int64(kv[1])
		}
	}
	return 100
})
