package quicwire

import (
	"net"

	"golang.org/x/sys/unix"
)

// raiseBuffers asks for want bytes of receive and send buffer, first within
// net.core.rmem_max/wmem_max, then past them with SO_RCVBUFFORCE /
// SO_SNDBUFFORCE (which needs CAP_NET_ADMIN), and returns what the kernel
// granted. Linux reports twice the size asked (its bookkeeping overhead),
// so the figures are halved.
func raiseBuffers(udp *net.UDPConn, want int) (rcv, snd int, err error) {
	raw, err := udp.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var serr error
	cerr := raw.Control(func(fd uintptr) {
		get := func(opt int) int {
			v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, opt)
			if err != nil && serr == nil {
				serr = err
			}
			return v / 2
		}
		raise := func(opt, force int) int {
			if got := get(opt); got >= want {
				return got
			}
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, want)
			if got := get(opt); got >= want {
				return got
			}
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, force, want)
			return get(opt)
		}
		rcv = raise(unix.SO_RCVBUF, unix.SO_RCVBUFFORCE)
		snd = raise(unix.SO_SNDBUF, unix.SO_SNDBUFFORCE)
	})
	if cerr != nil {
		return 0, 0, cerr
	}
	return rcv, snd, serr
}
