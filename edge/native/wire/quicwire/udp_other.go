//go:build !linux

package quicwire

import "net"

// raiseBuffers asks for want bytes of receive and send buffer; the sizes
// granted are not inspected on this system and reported as want.
func raiseBuffers(udp *net.UDPConn, want int) (rcv, snd int, err error) {
	if err := udp.SetReadBuffer(want); err != nil {
		return 0, 0, err
	}
	if err := udp.SetWriteBuffer(want); err != nil {
		return 0, 0, err
	}
	return want, want, nil
}
