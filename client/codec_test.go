package client_test

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/sensetest"
)

// codecHubs is a registry with a group, and one hub per jurisdiction:
// partitions 0-2 are tangier's (MA) lanes, 3-5 dakar's (SN).
const codecHubs = `
jurisdictions: [MA, SN]
groups: {WEST: [MA, SN]}
hubs:
  - {name: tangier, jurisdiction: MA}
  - {name: dakar, jurisdiction: SN}
`

var kafkaCodecs = []struct {
	name  string
	codec kgo.CompressionCodec
	id    int // the batch attributes' codec bits
}{
	{"none", kgo.NoCompression(), batch.CompressionNone},
	{"gzip", kgo.GzipCompression(), batch.CompressionGzip},
	{"snappy", kgo.SnappyCompression(), batch.CompressionSnappy},
	{"lz4", kgo.Lz4Compression(), batch.CompressionLZ4},
	{"zstd", kgo.ZstdCompression(), batch.CompressionZstd},
}

// lanePartition returns the partition of hub's lane in the pipeline's
// layout.
func lanePartition(t testing.TB, c *client.Client, pipeline, hub string, lane event.Priority) int32 {
	t.Helper()
	_, layout, err := c.Describe(testCtx(t, 10*time.Second), pipeline)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layout {
		if l.Hub == hub && l.Lane == lane.String() {
			return l.Partition
		}
	}
	t.Fatalf("pipeline %s has no %s lane in hub %s: %+v", pipeline, lane, hub, layout)
	return -1
}

// kafkaRecord is a record a Kafka producer sends, and what reading it
// back must show.
type kafkaRecord struct {
	hub      string
	lane     event.Priority
	headers  []kgo.RecordHeader
	mask     jurisdiction.Mask // 0: none recorded
	prio     event.Priority
	hasPrio  bool
	keepText int // text routing headers left in Record.Headers
}

func textHeaders(j, p string) []kgo.RecordHeader {
	return []kgo.RecordHeader{{Key: "sense.jurisdiction", Value: []byte(j)}, {Key: "sense.priority", Value: []byte(p)}, {Key: "trace", Value: []byte("t-1")}}
}

// routedRecords are records with text routing headers, one per hub and
// lane of interest (mask bit 0 is MA, bit 1 SN).
var routedRecords = []kafkaRecord{
	{hub: "tangier", lane: event.Critical, headers: textHeaders("MA,SN", "critical"), mask: 3, prio: event.Critical, hasPrio: true, keepText: 2},
	{hub: "tangier", lane: event.Low, headers: textHeaders("ma", "LOW"), mask: 1, prio: event.Low, hasPrio: true, keepText: 2},
	{hub: "dakar", lane: event.Medium, headers: textHeaders("west", "medium"), mask: 3, prio: event.Medium, hasPrio: true, keepText: 2},
}

// produceKafka creates the pipeline and sends it n records of each kind
// in recs, each to the partition of its hub and lane, compressed with
// codec; it returns what to expect by partition, in offset order.
func produceKafka(t *testing.T, srv interface{ KafkaAddr() net.Addr }, c *client.Client, pipeline string, codec kgo.CompressionCodec, recs []kafkaRecord, n int) map[int32][]kafkaRecord {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	if _, err := c.Admin(ctx, admin.CreatePipeline{Pipeline: pipeline}); err != nil {
		t.Fatal(err)
	}
	kc, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr().String()), kgo.DefaultProduceTopic(pipeline),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(codec), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	parts := make([]int32, len(recs))
	for i, r := range recs {
		parts[i] = lanePartition(t, c, pipeline, r.hub, r.lane)
	}
	var out []*kgo.Record
	want := map[int32][]kafkaRecord{}
	for i := range n {
		for j, r := range recs {
			p := parts[j]
			// Compressible values, so that every codec does compress.
			v := bytes.Repeat(fmt.Appendf(nil, "%s/%d/%d ", pipeline, p, len(want[p])), 20)
			out = append(out, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: v, Headers: r.headers, Partition: p})
			want[p] = append(want[p], r)
		}
	}
	if err := kc.ProduceSync(ctx, out...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return want
}

// checkRead reads every record of the pipeline with a consumer and checks
// it against want (by partition, in offset order).
func checkRead(t *testing.T, c *client.Client, pipeline string, want map[int32][]kafkaRecord) {
	t.Helper()
	total := 0
	for _, w := range want {
		total += len(w)
	}
	got := consume(t, c, pipeline, client.Earliest, total)
	reg, err := c.Registry(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got {
		if r.Offset < 0 || r.Offset >= int64(len(want[r.Partition])) {
			t.Fatalf("record %d@%d: no such record was produced", r.Partition, r.Offset)
		}
		w := want[r.Partition][r.Offset]
		if v := bytes.Repeat(fmt.Appendf(nil, "%s/%d/%d ", pipeline, r.Partition, r.Offset), 20); !bytes.Equal(r.Value, v) {
			t.Fatalf("%d@%d: value %q, want %q", r.Partition, r.Offset, r.Value, v)
		}
		if r.Mask != w.mask || r.Priority != w.prio || r.HasPriority != w.hasPrio {
			t.Errorf("%d@%d: jurisdiction %q priority %s (recorded %v); want %q %s (%v)", r.Partition, r.Offset,
				reg.Format(r.Mask), r.Priority, r.HasPriority, reg.Format(w.mask), w.prio, w.hasPrio)
		}
		text := 0
		for _, h := range r.Headers {
			switch h.Key {
			case "sense.jurisdiction", "sense.priority":
				text++
			case event.HeaderMask, event.HeaderPriority:
				t.Errorf("%d@%d: binary routing header %s left in Headers", r.Partition, r.Offset, h.Key)
			}
		}
		if text != w.keepText {
			t.Errorf("%d@%d: %d text routing headers in %v, want %d", r.Partition, r.Offset, text, r.Headers, w.keepText)
		}
	}
}

// TestKafkaCodecsReadBack: records a Kafka producer sends with each codec
// and the text routing headers are read back by the Go client with their
// values, jurisdiction and priority.
func TestKafkaCodecsReadBack(t *testing.T) {
	srv := sensetest.Start(t, codecHubs)
	c := dial(t, srv.NativeAddr().String())
	for _, cc := range kafkaCodecs {
		t.Run(cc.name, func(t *testing.T) {
			pipeline := "kafka-" + cc.name
			want := produceKafka(t, srv, c, pipeline, cc.codec, routedRecords, 20)
			checkRead(t, c, pipeline, want)
		})
	}
}

func compress(t testing.TB, codec int, plain []byte) []byte {
	var buf bytes.Buffer
	switch codec {
	case batch.CompressionNone:
		return plain
	case batch.CompressionGzip:
		zw := gzip.NewWriter(&buf)
		zw.Write(plain)
		zw.Close()
	case batch.CompressionSnappy:
		// xerial framing: magic, version 1, compatible version 1, then
		// length-prefixed raw snappy blocks.
		buf.WriteString("\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01")
		for p := plain; len(p) > 0; {
			chunk := p[:min(len(p), 1000)]
			p = p[len(chunk):]
			blk := s2.EncodeSnappy(nil, chunk)
			binary.Write(&buf, binary.BigEndian, uint32(len(blk)))
			buf.Write(blk)
		}
	case batch.CompressionLZ4:
		zw := lz4.NewWriter(&buf)
		zw.Write(plain)
		zw.Close()
	case batch.CompressionZstd:
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(plain)
		zw.Close()
	default:
		t.Fatalf("codec %d", codec)
	}
	return buf.Bytes()
}

// TestCompressedBatchesWithTextHeaders: batches as the node stored Kafka
// producers' before it wrote the binary routing headers (compressed with
// each codec, the routing in text headers only) are decompressed by the
// consumer and by Fetch, which read the jurisdiction and priority from the
// text headers, and say that a record without any has none recorded.
func TestCompressedBatchesWithTextHeaders(t *testing.T) {
	srv := sensetest.Start(t, codecHubs)
	admin := dial(t, srv.NativeAddr().String())
	recs := append(routedRecords[:len(routedRecords):len(routedRecords)],
		kafkaRecord{hub: "dakar", lane: event.Low}) // no headers: nothing recorded once sense.j and sense.p are gone
	for _, cc := range kafkaCodecs {
		t.Run(cc.name, func(t *testing.T) {
			pipeline := "text-" + cc.name
			want := produceKafka(t, srv, admin, pipeline, kgo.NoCompression(), recs, 20)
			proxy := sensetest.Rewriter(t, srv.NativeAddr().String(), func(b []byte) []byte { return sensetest.WithoutRouting(t, b, cc.id) })
			c := dial(t, proxy)
			checkRead(t, c, pipeline, want)
			// Fetch reads the same.
			for p, w := range want {
				res, err := c.Fetch(testCtx(t, 10*time.Second), pipeline, p, client.Earliest, 0)
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Records) != len(w) || res.NextOffset != int64(len(w)) {
					t.Fatalf("Fetch %d: %d records, next offset %d; want %d", p, len(res.Records), res.NextOffset, len(w))
				}
				for i, r := range res.Records {
					if r.Mask != w[i].mask || r.Priority != w[i].prio || r.HasPriority != w[i].hasPrio {
						t.Errorf("Fetch %d@%d: mask %d priority %s (recorded %v); want %d %s (%v)", p, r.Offset, r.Mask, r.Priority, r.HasPriority, w[i].mask, w[i].prio, w[i].hasPrio)
					}
				}
			}
		})
	}
}

// A batch that cannot be read: its CRC is right, what it holds is not.
var unreadable = []struct {
	name string
	make func(t testing.TB, b []byte) []byte
	want error
}{
	{"truncated gzip", func(t testing.TB, b []byte) []byte {
		z := compress(t, batch.CompressionGzip, b[batch.HeaderSize:])
		return sensetest.WithRecords(b, batch.CompressionGzip, z[:len(z)/2])
	}, batch.ErrCorrupt},
	{"lz4 garbage", func(t testing.TB, b []byte) []byte {
		return sensetest.WithRecords(b, batch.CompressionLZ4, []byte("this is no lz4 frame at all"))
	}, batch.ErrCorrupt},
	{"unknown codec", func(t testing.TB, b []byte) []byte {
		return sensetest.WithRecords(b, 5, b[batch.HeaderSize:])
	}, batch.ErrInvalid},
	{"snappy claiming 100 MiB", func(t testing.TB, b []byte) []byte {
		blk := binary.AppendUvarint(nil, 100<<20)
		blk = append(blk, 0, 'x')
		z := []byte("\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01")
		z = binary.BigEndian.AppendUint32(z, uint32(len(blk)))
		return sensetest.WithRecords(b, batch.CompressionSnappy, append(z, blk...))
	}, batch.ErrInvalid},
	{"zstd past MaxDecompressed", func(t testing.TB, b []byte) []byte {
		// A stream (no declared size) of zeros: the decoder must stop at
		// the bound, not at the end.
		return sensetest.WithRecords(b, batch.CompressionZstd, zstdBomb(t))
	}, batch.ErrInvalid},
}

var (
	bombOnce sync.Once
	bomb     []byte
)

func zstdBomb(t testing.TB) []byte {
	bombOnce.Do(func() {
		var buf bytes.Buffer
		zw, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			t.Fatal(err)
		}
		zeros := make([]byte, 1<<20)
		for range batch.MaxDecompressed>>20 + 1 {
			zw.Write(zeros)
		}
		zw.Close()
		bomb = buf.Bytes()
	})
	return bomb
}

// TestUnreadableBatchIsAnError: a batch that is corrupt or would decompress
// past batch.MaxDecompressed ends the consumer's subscription with an error
// naming the pipeline, partition and offset, and fails Fetch the same way;
// neither waits.
func TestUnreadableBatchIsAnError(t *testing.T) {
	srv := sensetest.Start(t, codecHubs)
	admin := dial(t, srv.NativeAddr().String())
	want := produceKafka(t, srv, admin, "bad", kgo.NoCompression(), routedRecords[:1], 3)
	var part int32
	for p := range want {
		part = p
	}
	for _, tc := range unreadable {
		t.Run(tc.name, func(t *testing.T) {
			proxy := sensetest.Rewriter(t, srv.NativeAddr().String(), func(b []byte) []byte { return tc.make(t, b) })
			c := dial(t, proxy)
			wantMsg := fmt.Sprintf("bad partition %d: batch at offset 0", part)
			ctx := testCtx(t, 60*time.Second)
			cs, err := c.NewConsumer(ctx, client.ConsumerOptions{Pipeline: "bad", From: client.Earliest})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			r, err := cs.Next(ctx)
			if err == nil || ctx.Err() != nil {
				t.Fatalf("Next: %+v, %v; want an error", r, err)
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), wantMsg) {
				t.Fatalf("Next: %v; want %v naming %q", err, tc.want, wantMsg)
			}
			// The partition's subscription is over; the others are empty.
			if r, err := cs.NextWithin(ctx, 100*time.Millisecond); !errors.Is(err, client.ErrNoRecord) {
				t.Fatalf("after the error: %+v, %v; want ErrNoRecord", r, err)
			}
			// Fetch's NextOffset points at the batch: a retry meets it again.
			res, err := c.Fetch(ctx, "bad", part, client.Earliest, 0)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), wantMsg) || len(res.Records) != 0 || res.NextOffset != 0 {
				t.Fatalf("Fetch: %d records, next %d, %v; want %v naming %q", len(res.Records), res.NextOffset, err, tc.want, wantMsg)
			}
		})
	}
}
