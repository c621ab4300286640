package native_test

import (
	"net"
	"testing"
	"time"

	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/sensetest"
)

// BenchmarkProduceRequest sends PRODUCE requests of one 100-byte event, one
// at a time, over a socket to an in-process server (fsync never) and reads
// each answer; one op is one request. The test side reuses its buffers, so
// the allocations reported are the server's per request (the issue's
// "allocation per request near zero on the produce path"). It also
// reports the process's CPU time per request (the test's side included).
func BenchmarkProduceRequest(b *testing.B) {
	srv := sensetest.Start(b, "durability: {fsync: never}\n")
	c, err := net.Dial("tcp", srv.NativeAddr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Minute))
	if _, err := c.Write(wire.AppendHello(nil, 1, wire.Hello{MinVersion: 1, MaxVersion: 1, ClientID: "bench"})); err != nil {
		b.Fatal(err)
	}
	rd := wire.NewReader(c)
	if f, err := rd.Next(); err != nil || f.Type != wire.TypeHelloOK {
		b.Fatalf("handshake: %v %v", f.Type, err)
	}
	value := make([]byte, 100)
	req := wire.AppendProduce(nil, 1, wire.ProduceHeader{Pipeline: "bench", ProducerID: -1}, []wire.EventIn{{Value: value}})
	round := func() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		f, err := rd.Next()
		if err != nil || f.Type != wire.TypeProduceResult {
			b.Fatalf("answer: %v %v", f.Type, err)
		}
	}
	for range 100 { // creates the pipeline, warms the pools
		round()
	}
	b.ReportAllocs()
	cpu0 := sensetest.CPUTime()
	for b.Loop() {
		round()
	}
	sensetest.ReportCPU(b, cpu0)
}
