// Package loopback hands out free TCP ports on 127.0.0.1 for servers that
// must know their address before they listen: a cluster's nodes name each
// other's ports in their configs, and a node restarted in a test must come
// back on the same ones.
//
// A port asked of the kernel with ":0" comes from the ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by default), the
// same range every outgoing connection on the machine takes its local port
// from; between the moment it is released here and the moment the server
// binds it, any connection may take it ("address already in use"). So
// Addrs picks ports below that range, where only listeners that choose
// their port go, and checks each is free by listening on it. It holds
// every port it picked until it returns, so the ports it returns differ.
package loopback

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// low and high bound the ports Addrs picks from when the ephemeral range
// starts above them.
const (
	low  = 20000
	high = 32768
)

// Addrs returns n addresses 127.0.0.1:PORT whose ports were free a moment
// ago, outside the ephemeral port range when it allows.
func Addrs(n int) ([]string, error) {
	lo, hi := low, min(high, ephemeralStart())
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	out := make([]string, 0, n)
	for tries := 0; len(out) < n; tries++ {
		addr := "127.0.0.1:0"
		if hi-lo > 1000 && tries < 100*n {
			addr = "127.0.0.1:" + strconv.Itoa(lo+rand.IntN(hi-lo))
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			if addr == "127.0.0.1:0" {
				return nil, fmt.Errorf("loopback: find a free port: %w", err)
			}
			continue // taken: try another
		}
		held = append(held, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// ephemeralStart returns the first port of the kernel's ephemeral range,
// or high when it cannot be read.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return high
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return high
	}
	v, err := strconv.Atoi(f[0])
	if err != nil {
		return high
	}
	return v
}
