package tcpserve

import (
	"context"
	"errors"
	"net"
	"testing"
)

var errClosed = errors.New("closed")

// TestServeAfterShutdownReleasesPort: a server stopped before its Serve
// goroutine ran must still let go of the port.
func TestServeAfterShutdownReleasesPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	var tr Tracker
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := tr.Serve(ln, func(net.Conn) Conn { t.Fatal("accepted after shutdown"); return nil }, errClosed); !errors.Is(err, errClosed) {
		t.Fatalf("Serve after Shutdown: %v, want the closed error", err)
	}
	again, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port %s still bound after Serve returned: %v", addr, err)
	}
	again.Close()
}
