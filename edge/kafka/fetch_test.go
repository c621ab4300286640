package kafka_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/edge/kafka"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/sensetest"
)

func fetchReq(topic string, partition int32, offset int64, maxWait time.Duration, partMax int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis = int32(maxWait / time.Millisecond)
	req.MinBytes = 1
	req.MaxBytes = 50 << 20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = partition, offset, partMax
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// ingressBytes reads the node's sense_ingress_bytes gauge: the bytes of
// requests read and not yet answered (a Kafka request's bytes are held by
// the ingress budget from when its size is read until it is answered).
func ingressBytes(t *testing.T, n *node.Node) float64 {
	t.Helper()
	mfs, err := n.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "sense_ingress_bytes" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no sense_ingress_bytes metric")
	return 0
}

// fetchAnswer is the outcome of a fetch sent by sendFetch.
type fetchAnswer struct {
	resp *kmsg.FetchResponse
	err  error
}

func (a fetchAnswer) String() string {
	if a.err != nil {
		return a.err.Error()
	}
	p := a.resp.Topics[0].Partitions[0]
	return fmt.Sprintf("error %d, %d bytes, hw %d", p.ErrorCode, len(p.RecordBatches), p.HighWatermark)
}

// sendFetch sends a Fetch v11 on a connection of its own and returns once
// the server has read it and holds it (its bytes are in the ingress
// budget), or has answered it, with a channel that gets the answer. The caller must keep other
// requests from ending while it waits (the gauge is the node's). It fails
// the test if the fetch is not read before ctx ends.
func sendFetch(t *testing.T, ctx context.Context, addr string, n *node.Node, req *kmsg.FetchRequest) <-chan fetchAnswer {
	t.Helper()
	// Requests answered before are released just after their responses
	// are written: wait for them to be gone first.
	for ingressBytes(t, n) != 0 {
		if ctx.Err() != nil {
			t.Fatalf("ingress bytes %v before the fetch, want 0", ingressBytes(t, n))
		}
		time.Sleep(time.Millisecond)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	frame := rawRequest(req, 11, 1)
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	answered := make(chan fetchAnswer, 1)
	go func() {
		var sz [4]byte
		if _, err := io.ReadFull(c, sz[:]); err != nil {
			answered <- fetchAnswer{err: err}
			return
		}
		b := make([]byte, binary.BigEndian.Uint32(sz[:]))
		if _, err := io.ReadFull(c, b); err != nil {
			answered <- fetchAnswer{err: err}
			return
		}
		resp := kmsg.NewPtrFetchResponse()
		resp.SetVersion(11)
		err := resp.ReadFrom(b[4:]) // after the correlation id
		answered <- fetchAnswer{resp, err}
	}()
	for ingressBytes(t, n) < float64(len(frame)-4) {
		select {
		case a := <-answered: // answered at once: the caller sees it
			answered <- a
			return answered
		case <-ctx.Done():
			t.Fatal("the server did not read the fetch")
		case <-time.After(time.Millisecond):
		}
	}
	return answered
}

// onlyRecord decodes a partition's record set, which must hold one batch of
// one record, and returns that record's offset and value.
func onlyRecord(t *testing.T, p kmsg.FetchResponseTopicPartition) (int64, string) {
	t.Helper()
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(p.RecordBatches); err != nil {
		t.Fatalf("record set of %d bytes: %v", len(p.RecordBatches), err)
	}
	if rb.NumRecords != 1 || int(rb.Length)+12 != len(p.RecordBatches) {
		t.Fatalf("record set: %d records, batch length %d of %d bytes; want one batch of one record", rb.NumRecords, rb.Length, len(p.RecordBatches))
	}
	rs, err := kgo.DefaultDecompressor().Decompress(rb.Records, kgo.CompressionCodecType(rb.Attributes&7))
	if err != nil {
		t.Fatal(err)
	}
	var r kmsg.Record
	if err := r.ReadFrom(rs); err != nil {
		t.Fatal(err)
	}
	return rb.FirstOffset + int64(r.OffsetDelta), string(r.Value)
}

func TestFetchLongPoll(t *testing.T) {
	addr, n := startWith(t, "", kafka.Options{AutoCreateTopics: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := client(t, addr, kgo.DefaultProduceTopic("polls"), kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("first")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// Nothing past offset 1 and nothing produced: max_wait_ms ends the
	// wait with an empty record set. (That the fetch waits at all is shown
	// next.)
	resp, err := fetchReq("polls", 0, 1, 300*time.Millisecond, 1<<20).RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || len(p.RecordBatches) != 0 || p.HighWatermark != 1 || p.LastStableOffset != 1 || p.LogStartOffset != 0 {
		t.Errorf("empty fetch: error %d, %d bytes, hw %d, lso %d, log start %d", p.ErrorCode, len(p.RecordBatches), p.HighWatermark, p.LastStableOffset, p.LogStartOffset)
	}

	// A record produced while the fetch waits ends the wait, and the fetch
	// returns it. The fetch is read by the server and not answered before
	// the record exists, so the record in its answer came while it waited;
	// its max_wait_ms outlasts ctx, so only the record can end it in time.
	answered := sendFetch(t, ctx, addr, n, fetchReq("polls", 0, 1, 45*time.Second, 1<<20))
	select {
	case a := <-answered:
		t.Fatalf("fetch at the log end answered before anything was produced: %s", a)
	default:
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("second")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var a fetchAnswer
	select {
	case a = <-answered:
	case <-ctx.Done():
		t.Fatal("the fetch was not woken by the record produced while it waited")
	}
	if a.err != nil {
		t.Fatal(a.err)
	}
	p = a.resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || len(p.RecordBatches) == 0 || p.HighWatermark != 2 {
		t.Fatalf("woken fetch: error %d, %d bytes, hw %d", p.ErrorCode, len(p.RecordBatches), p.HighWatermark)
	}
	if off, val := onlyRecord(t, p); off != 1 || val != "second" {
		t.Fatalf("woken fetch returned %q at offset %d, want \"second\" at 1", val, off)
	}

	// Partition max bytes smaller than a batch still returns one batch;
	// the stored bytes come back unchanged.
	resp, err = fetchReq("polls", 0, 0, 0, 1).RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	p = resp.Topics[0].Partitions[0]
	var bh kmsg.RecordBatch
	if err := bh.ReadFrom(p.RecordBatches); err != nil {
		t.Fatal(err)
	}
	if bh.FirstOffset != 0 || bh.NumRecords != 1 || int(bh.Length)+12 != len(p.RecordBatches) {
		t.Errorf("one-byte fetch: first offset %d, %d records, batch length %d of %d bytes", bh.FirstOffset, bh.NumRecords, bh.Length, len(p.RecordBatches))
	}

	// Past the high watermark: OFFSET_OUT_OF_RANGE.
	resp, err = fetchReq("polls", 0, 5, 0, 1<<20).RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.OffsetOutOfRange.Code {
		t.Errorf("fetch past the end: error %d", code)
	}
}

func TestAcksZero(t *testing.T) {
	addr := start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := client(t, addr, kgo.DefaultProduceTopic("fire"), kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	for i := range 100 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// The records arrive (no response is sent for them).
	for {
		resp, err := fetchReq("fire", 0, 0, 0, 1<<20).RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if hw := resp.Topics[0].Partitions[0].HighWatermark; hw == 100 {
			break
		} else if ctx.Err() != nil {
			t.Fatalf("high watermark %d, want 100", hw)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Shutdown ends a waiting fetch (it is answered) instead of waiting for
// max_wait_ms.
func TestShutdownEndsLongPoll(t *testing.T) {
	srv := sensetest.Start(t, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ks, err := kafka.New(srv.Node, srv.Offsets, kafka.Options{AutoCreateTopics: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	go ks.Serve(ln)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := client(t, ln.Addr().String(), kgo.DefaultProduceTopic("slow"), kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The fetch's max_wait_ms outlasts ctx: only the shutdown can end it
	// in time.
	answered := sendFetch(t, ctx, ln.Addr().String(), srv.Node, fetchReq("slow", 0, 1, 45*time.Second, 1<<20))
	// Shutdown fails if connections are still open at sctx's end.
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := ks.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	var a fetchAnswer
	select {
	case a = <-answered:
	case <-ctx.Done():
		t.Fatal("fetch still waiting after shutdown")
	}
	if a.err != nil {
		t.Fatalf("the waiting fetch was not answered: %v", a.err)
	}
	if p := a.resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || len(p.RecordBatches) != 0 || p.HighWatermark != 1 {
		t.Errorf("fetch ended by shutdown: error %d, %d bytes, hw %d", p.ErrorCode, len(p.RecordBatches), p.HighWatermark)
	}
}

// A partition with nothing to return gets an empty record set, not a null
// one: librdkafka cannot parse a null record set (kcat -C -e and
// confluent-kafka consumers stall on it).
func TestFetchEmptyRecordSetNotNull(t *testing.T) {
	addr := start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := client(t, addr, kgo.DefaultProduceTopic("caught-up"), kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("only")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Fetch v11 at the high watermark, without waiting: a one-partition
	// response whose last field is the record set's int32 size.
	c.Write(rawRequest(fetchReq("caught-up", 0, 1, 0, 1<<20), 11, 5))
	b := readResponse(t, c)
	if size := int32(binary.BigEndian.Uint32(b[len(b)-4:])); size != 0 {
		t.Fatalf("record set size %d for a caught-up partition, want 0 (empty, not null)", size)
	}
}

// TestFetchCriticalFirst: a fetch whose byte limit cannot hold every
// partition's data reads the critical lane's partition first, whatever the
// request's order, and answers in the request's order.
func TestFetchCriticalFirst(t *testing.T) {
	addr := start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := client(t, addr, kgo.DefaultProduceTopic("lagging"), kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	value := make([]byte, 1000)
	// The standard layout of one hub: partition 0 is the low lane, 2 the
	// critical one.
	for i := range 20 {
		rec := &kgo.Record{Partition: 0, Value: value, Headers: []kgo.RecordHeader{{Key: "sense.priority", Value: []byte("low")}}}
		if i < 3 {
			if err := cl.ProduceSync(ctx, &kgo.Record{Partition: 2, Value: value, Headers: []kgo.RecordHeader{{Key: "sense.priority", Value: []byte("critical")}}}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	req := fetchReq("lagging", 0, 0, 0, 1<<20)
	for _, p := range []int32{1, 2} {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.PartitionMaxBytes = p, 1<<20
		req.Topics[0].Partitions = append(req.Topics[0].Partitions, rp)
	}
	req.MaxBytes = 1 // room for one batch: the first partition read gets it
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	parts := resp.Topics[0].Partitions
	if len(parts) != 3 || parts[0].Partition != 0 || parts[1].Partition != 1 || parts[2].Partition != 2 {
		t.Fatalf("answer's partitions not in the request's order: %+v", parts)
	}
	if len(parts[2].RecordBatches) == 0 {
		t.Error("the critical partition got no records")
	}
	if len(parts[0].RecordBatches) != 0 {
		t.Errorf("the low partition got %d bytes before the critical one was served", len(parts[0].RecordBatches))
	}
	for _, p := range parts {
		if p.ErrorCode != 0 {
			t.Errorf("partition %d: error %d", p.Partition, p.ErrorCode)
		}
	}
}
