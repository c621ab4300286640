package loopback

import (
	"net"
	"strconv"
	"testing"
)

func TestAddrsDistinctAndFree(t *testing.T) {
	addrs, err := Addrs(50)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
		_, p, _ := net.SplitHostPort(a)
		if port, _ := strconv.Atoi(p); port >= ephemeralStart() && ephemeralStart() > low+1000 {
			t.Errorf("%s is in the ephemeral range (from %d)", a, ephemeralStart())
		}
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("%s is not free: %v", a, err)
		}
		l.Close()
	}
}
