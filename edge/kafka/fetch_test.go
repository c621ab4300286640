package kafka_test

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/edge/kafka"
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

func TestFetchLongPoll(t *testing.T) {
	addr := start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := client(t, addr, kgo.DefaultProduceTopic("polls"), kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("first")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// Nothing past offset 1: the fetch waits for max_wait_ms.
	t0 := time.Now()
	resp, err := fetchReq("polls", 0, 1, 300*time.Millisecond, 1<<20).RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	if el := time.Since(t0); el < 250*time.Millisecond {
		t.Errorf("empty fetch returned after %v, want about 300ms", el)
	}
	if p.ErrorCode != 0 || len(p.RecordBatches) != 0 || p.HighWatermark != 1 || p.LastStableOffset != 1 || p.LogStartOffset != 0 {
		t.Errorf("empty fetch: error %d, %d bytes, hw %d, lso %d, log start %d", p.ErrorCode, len(p.RecordBatches), p.HighWatermark, p.LastStableOffset, p.LogStartOffset)
	}

	// A record produced while the fetch waits ends the wait.
	go func() {
		time.Sleep(100 * time.Millisecond)
		cl.Produce(ctx, &kgo.Record{Value: []byte("second")}, nil)
	}()
	t0 = time.Now()
	resp, err = fetchReq("polls", 0, 1, 20*time.Second, 1<<20).RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	p = resp.Topics[0].Partitions[0]
	if el := time.Since(t0); el > 10*time.Second {
		t.Errorf("fetch woke after %v", el)
	}
	if p.ErrorCode != 0 || len(p.RecordBatches) == 0 || p.HighWatermark != 2 {
		t.Fatalf("woken fetch: error %d, %d bytes, hw %d", p.ErrorCode, len(p.RecordBatches), p.HighWatermark)
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
	ks, err := kafka.New(srv.Node, kafka.Options{AutoCreateTopics: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
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
	fetched := make(chan error, 1)
	go func() {
		_, err := fetchReq("slow", 0, 1, 25*time.Second, 1<<20).RequestWith(ctx, cl)
		fetched <- err
	}()
	time.Sleep(200 * time.Millisecond)
	t0 := time.Now()
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := ks.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if el := time.Since(t0); el > 5*time.Second {
		t.Errorf("shutdown took %v", el)
	}
	select {
	case <-fetched:
	case <-time.After(10 * time.Second):
		t.Error("fetch still waiting after shutdown")
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
