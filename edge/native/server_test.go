package native_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/sensetest"
)

func handshake(t *testing.T, addr string) (net.Conn, *wire.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(wire.AppendHello(nil, 1, wire.Hello{MinVersion: 1, MaxVersion: 1, ClientID: "test"})); err != nil {
		t.Fatal(err)
	}
	rd := wire.NewReader(c)
	f, err := rd.Next()
	if err != nil || f.Type != wire.TypeHelloOK {
		t.Fatalf("handshake: %v %v", f.Type, err)
	}
	return c, rd
}

// TestMalformedFrameClosesOnlyThatConnection: garbage on one connection
// gets an ERROR frame (MALFORMED) and a close; another connection keeps
// working.
func TestMalformedFrameClosesOnlyThatConnection(t *testing.T) {
	srv := sensetest.Start(t, "")
	addr := srv.NativeAddr().String()
	bad, badRd := handshake(t, addr)
	good, goodRd := handshake(t, addr)
	defer bad.Close()
	defer good.Close()

	// A PRODUCE whose event count cannot fit in its payload.
	frame := wire.AppendFrame(nil, wire.TypeProduce, 0, 7, []byte{0, 0, 0, 1, 'p', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	if _, err := bad.Write(frame); err != nil {
		t.Fatal(err)
	}
	f, err := badRd.Next()
	if err != nil || f.Type != wire.TypeError {
		t.Fatalf("after a malformed frame: %v %v, want an ERROR frame", f.Type, err)
	}
	e, err := wire.DecodeError(f.Payload)
	if err != nil || e.Code != result.Malformed {
		t.Fatalf("error frame: %+v %v", e, err)
	}
	if _, err := badRd.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("connection not closed after MALFORMED: %v", err)
	}
	// The other connection still works.
	if _, err := good.Write(wire.AppendPing(nil, 9, []byte("hi"))); err != nil {
		t.Fatal(err)
	}
	f, err = goodRd.Next()
	if err != nil || f.Type != wire.TypePong || string(f.Payload) != "hi" {
		t.Fatalf("ping on the other connection: %v %q %v", f.Type, f.Payload, err)
	}
}

// TestHugeLengthRefusedBeforeAllocation: a frame claiming 1 GiB is refused
// with REQUEST_TOO_LARGE and the connection closed.
func TestHugeLengthRefused(t *testing.T) {
	srv := sensetest.Start(t, "")
	c, rd := handshake(t, srv.NativeAddr().String())
	defer c.Close()
	c.Write([]byte{0x40, 0, 0, 0, byte(wire.TypeProduce), 0, 0, 0, 0, 5})
	f, err := rd.Next()
	if err != nil || f.Type != wire.TypeError {
		t.Fatalf("%v %v", f.Type, err)
	}
	if e, _ := wire.DecodeError(f.Payload); e.Code != result.RequestTooLarge {
		t.Fatalf("code %v", e.Code)
	}
}

// TestRequestBeforeHello is refused.
func TestRequestBeforeHello(t *testing.T) {
	srv := sensetest.Start(t, "")
	c, err := net.Dial("tcp", srv.NativeAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(wire.AppendPing(nil, 3, nil))
	f, err := wire.NewReader(c).Next()
	if err != nil || f.Type != wire.TypeError {
		t.Fatalf("%v %v", f.Type, err)
	}
	if e, _ := wire.DecodeError(f.Payload); e.Code != result.NotHandshaken {
		t.Fatalf("code %v", e.Code)
	}
}

// TestPipelinedRequestsStartInOrder: four connections each pipeline 300
// PRODUCE requests to one partition without waiting for answers, so that
// the node's append places are sometimes taken (a request is then started
// by the connection's starter goroutine) and sometimes free (the reader
// starts it itself). Each connection's answers come in request order and
// its events' offsets rise in request order: the two ways of starting a
// request keep its connection's order.
func TestPipelinedRequestsStartInOrder(t *testing.T) {
	srv := sensetest.Start(t, "durability: {fsync: never}\n")
	const conns, requests = 4, 300
	errs := make(chan error, conns)
	for k := range conns {
		go func() {
			errs <- func() error {
				c, rd := handshake(t, srv.NativeAddr().String())
				defer c.Close()
				value := make([]byte, 100)
				done := make(chan error, 1)
				go func() {
					var out []byte
					for i := range requests {
						out = wire.AppendProduce(out[:0], uint32(i+1), wire.ProduceHeader{Pipeline: "order", ProducerID: -1},
							[]wire.EventIn{{Value: value}, {Value: value}})
						if _, err := c.Write(out); err != nil {
							done <- err
							return
						}
					}
					done <- nil
				}()
				last := int64(-1)
				for i := range requests {
					f, err := rd.Next()
					if err != nil {
						return fmt.Errorf("connection %d, answer %d: %w", k, i, err)
					}
					if f.Type != wire.TypeProduceResult || f.Corr != uint32(i+1) {
						return fmt.Errorf("connection %d: answer %d is %v for request %d, want PRODUCE_RESULT for %d", k, i, f.Type, f.Corr, i+1)
					}
					res, err := wire.DecodeProduceResult(f.Payload)
					if err != nil {
						return err
					}
					for e := range res.Len() {
						r := res.At(e)
						if r.Code != result.OK || r.Offset <= last {
							return fmt.Errorf("connection %d, request %d, event %d: %+v after offset %d: want OK at a later offset", k, i+1, e, r, last)
						}
						last = r.Offset
					}
				}
				return <-done
			}()
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
