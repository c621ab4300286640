package quicwire

import (
	"fmt"
	"log/slog"
	"net"
	"os"
)

// UDPBufferBytes is the socket buffer size (receive and send) asked of the
// kernel for QUIC sockets; quic-go wants at least 7 MiB to sustain high
// rates without drops.
const UDPBufferBytes = 7 << 20

// ListenUDP opens a UDP socket on addr ("host:port"; port 0 for any) and
// raises its buffers to UDPBufferBytes. When the kernel grants less, it
// logs one warning with the sizes and the sysctl that lifts the limit;
// the socket still works, with more loss under load.
func ListenUDP(addr string, log *slog.Logger) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("quicwire: address %q: %w", addr, err)
	}
	udp, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("quicwire: listen on UDP %s: %w", addr, err)
	}
	rcv, snd, err := raiseBuffers(udp, UDPBufferBytes)
	switch {
	case err != nil:
		log.Warn("could not check the UDP socket buffers of the QUIC socket", "addr", udp.LocalAddr().String(), "err", err)
	case rcv < UDPBufferBytes || snd < UDPBufferBytes:
		log.Warn(fmt.Sprintf("the kernel refused UDP socket buffers of %d KiB for QUIC: receive %d KiB, send %d KiB; "+
			"expect packet loss at high rates. Raise the limits with: sysctl -w net.core.rmem_max=%d net.core.wmem_max=%d",
			UDPBufferBytes>>10, rcv>>10, snd>>10, UDPBufferBytes, UDPBufferBytes),
			"addr", udp.LocalAddr().String(), "wanted_bytes", UDPBufferBytes, "receive_bytes", rcv, "send_bytes", snd)
		// quic-go would print the same through the standard logger.
		if os.Getenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING") == "" {
			os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
		}
	default:
		log.Debug("UDP socket buffers raised for QUIC", "addr", udp.LocalAddr().String(), "receive_bytes", rcv, "send_bytes", snd)
	}
	return udp, nil
}
