package kafka_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
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

// start runs a node (dev mode, or from yaml) and a Kafka server for it on
// a loopback port, and returns the Kafka address.
func start(t *testing.T, yaml string) string { return startTB(t, yaml) }

func startB(b *testing.B) string { return startTB(b, "") }

func startTB(t testing.TB, yaml string) string {
	addr, _ := startWith(t, yaml, kafka.Options{AutoCreateTopics: true, GroupInitialRebalanceDelay: 300 * time.Millisecond})
	return addr
}

// startWith is startTB with the server's options (AdvertisedAddr and
// Logger are filled in); it also returns the node.
func startWith(t testing.TB, yaml string, opts kafka.Options) (string, *node.Node) {
	t.Helper()
	srv := sensetest.Start(t, yaml)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts.AdvertisedAddr = ln.Addr().String()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ks, err := kafka.New(srv.Node, srv.Offsets, opts)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ks.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ks.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, kafka.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String(), srv.Node
}

func client(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func TestProduceConsume(t *testing.T) {
	addr := start(t, "")
	const topic, n = "orders", 10000
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// kgo's default producer is idempotent.
	p := client(t, addr, kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation())
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Value: fmt.Appendf(nil, "value-%d", i)}
	}
	if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	want := map[int32][]string{}
	for _, r := range recs {
		want[r.Partition] = append(want[r.Partition], string(r.Value))
	}

	for part, vs := range want {
		t.Logf("partition %d: %d records", part, len(vs))
	}
	parts := map[int32]kgo.Offset{}
	for i := range int32(3) { // dev mode: one hub, three lanes
		parts[i] = kgo.NewOffset().AtStart()
	}
	cons := client(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
	got := map[int32][]string{}
	total := 0
	for total < n {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", total, n, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != int64(len(got[r.Partition])) {
				t.Fatalf("partition %d: offset %d, want %d", r.Partition, r.Offset, len(got[r.Partition]))
			}
			got[r.Partition] = append(got[r.Partition], string(r.Value))
			total++
		})
	}
	for part, w := range want {
		g := got[part]
		if len(g) != len(w) {
			t.Fatalf("partition %d: %d records, want %d", part, len(g), len(w))
		}
		for i := range w {
			if g[i] != w[i] {
				t.Fatalf("partition %d record %d: %q, want %q", part, i, g[i], w[i])
			}
		}
	}
	if total != n {
		t.Fatalf("consumed %d records, want %d", total, n)
	}
}

const twoHubs = `
jurisdictions: [MA, SN]
hubs:
  - {name: tangier, jurisdiction: MA}
  - {name: dakar, jurisdiction: SN}
`

func TestJurisdictionRefused(t *testing.T) {
	addr := start(t, twoHubs)
	for _, codec := range []struct {
		name  string
		codec kgo.CompressionCodec
		attr  int16 // the batch attributes' codec bits
	}{
		{"none", kgo.NoCompression(), 0},
		{"gzip", kgo.GzipCompression(), 1},
		{"snappy", kgo.SnappyCompression(), 2},
		{"lz4", kgo.Lz4Compression(), 3},
		{"zstd", kgo.ZstdCompression(), 4},
	} {
		t.Run(codec.name, func(t *testing.T) { jurisdictionRefused(t, addr, "payments-"+codec.name, codec.codec, codec.attr) })
	}
}

func jurisdictionRefused(t *testing.T, addr, topic string, codec kgo.CompressionCodec, attr int16) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := client(t, addr, kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DisableIdempotentWrite(), kgo.RecordRetries(2),
		kgo.ProducerBatchCompression(codec))
	sn := []kgo.RecordHeader{{Key: "sense.jurisdiction", Value: []byte("SN")}}
	value := bytes.Repeat([]byte("compressible "), 100) // so that codecs do compress

	// Partitions 0-2 are tangier's (MA) lanes, 3-5 dakar's (SN).
	ok := &kgo.Record{Value: value, Headers: sn, Partition: 3}
	if err := cl.ProduceSync(ctx, ok).FirstErr(); err != nil {
		t.Fatalf("SN record to dakar: %v", err)
	}
	// The batch is stored as the producer compressed it.
	fr, err := fetchReq(topic, 3, 0, 0, 1<<20).RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(fr.Topics[0].Partitions[0].RecordBatches); err != nil {
		t.Fatal(err)
	}
	if rb.Attributes&7 != attr {
		t.Fatalf("stored batch attributes %#x, want codec %d", rb.Attributes, attr)
	}
	bad := []*kgo.Record{
		{Value: value, Partition: 0}, // no header: the pipeline's default (*) fits
		{Value: value, Headers: sn, Partition: 0},
	}
	err = cl.ProduceSync(ctx, bad...).FirstErr()
	if !errors.Is(err, kerr.PolicyViolation) {
		t.Fatalf("SN record to tangier: got %v, want POLICY_VIOLATION", err)
	}
	// Nothing reached tangier's partition: the batch is refused whole.
	for p, latest := range latestOffsets(t, ctx, cl, topic, 0, 3) {
		if want := map[int32]int64{0: 0, 3: 1}[p]; latest != want {
			t.Errorf("partition %d: latest %d, want %d", p, latest, want)
		}
	}
}

// latestOffsets asks ListOffsets for the high watermark of partitions of
// topic; a partition error fails the test.
func latestOffsets(t *testing.T, ctx context.Context, cl *kgo.Client, topic string, partitions ...int32) map[int32]int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for _, p := range partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for _, p := range resp.Topics[0].Partitions {
		if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
			t.Fatalf("ListOffsets %s/%d: %v", topic, p.Partition, err)
		}
		out[p.Partition] = p.Offset
	}
	return out
}

func TestListOffsets(t *testing.T) {
	addr := start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := client(t, addr, kgo.DefaultProduceTopic("events"), kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	before := time.Now().Add(-time.Second).UnixMilli()
	for i := range 3 { // three produce requests: three batches
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%d", i)}, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	list := func(ts int64) (int64, int16) {
		req := kmsg.NewPtrListOffsetsRequest()
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "events"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = 0, ts
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		p := resp.Topics[0].Partitions[0]
		return p.Offset, p.ErrorCode
	}
	for _, c := range []struct {
		name string
		ts   int64
		want int64
	}{
		{"earliest", -2, 0},
		{"latest", -1, 6},
		{"by old timestamp", before, 0},
		{"by future timestamp", time.Now().Add(time.Hour).UnixMilli(), -1},
	} {
		if off, code := list(c.ts); code != 0 || off != c.want {
			t.Errorf("%s: offset %d, error %d; want %d", c.name, off, code, c.want)
		}
	}
	// An unknown topic's partition (this client does not auto-create).
	plain := client(t, addr)
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = "nope"
	rt.Partitions = []kmsg.ListOffsetsRequestTopicPartition{kmsg.NewListOffsetsRequestTopicPartition()}
	req.Topics = append(req.Topics, rt)
	// kgo maps the topic through Metadata first and reports the error
	// itself; either way the answer is UNKNOWN_TOPIC_OR_PARTITION.
	resp, err := req.RequestWith(ctx, plain)
	if err == nil {
		err = kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
	}
	if !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("unknown topic: %v", err)
	}
}

// rawRequest frames a request with a v1/v2 header.
func rawRequest(req kmsg.Request, version int16, corr int32) []byte {
	req.SetVersion(version)
	b := []byte{0, 0, 0, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, "test"...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func readResponse(t testing.TB, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var sz [4]byte
	if _, err := io.ReadFull(c, sz[:]); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, binary.BigEndian.Uint32(sz[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes, want the connection closed", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("connection still open")
	}
}

func TestUnsupported(t *testing.T) {
	addr := start(t, "")
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	// ApiVersions of an unknown version: UNSUPPORTED_VERSION, v0 body,
	// with the versions of ApiVersions served (KIP-511); the connection
	// stays usable.
	c := dial()
	c.Write(rawRequest(kmsg.NewPtrApiVersionsRequest(), 99, 7))
	b := readResponse(t, c)
	if corr := int32(binary.BigEndian.Uint32(b)); corr != 7 {
		t.Fatalf("correlation id %d", corr)
	}
	av := kmsg.NewPtrApiVersionsResponse()
	av.SetVersion(0)
	if err := av.ReadFrom(b[4:]); err != nil {
		t.Fatal(err)
	}
	if lo, hi, _ := kafka.VersionRange(18); av.ErrorCode != kerr.UnsupportedVersion.Code || len(av.ApiKeys) != 1 ||
		av.ApiKeys[0].ApiKey != 18 || av.ApiKeys[0].MinVersion != lo || av.ApiKeys[0].MaxVersion != hi {
		t.Fatalf("ApiVersions v99: error %d, keys %+v", av.ErrorCode, av.ApiKeys)
	}
	c.Write(rawRequest(kmsg.NewPtrApiVersionsRequest(), 2, 8))
	b = readResponse(t, c)
	av = kmsg.NewPtrApiVersionsResponse()
	av.SetVersion(2)
	if err := av.ReadFrom(b[4:]); err != nil || av.ErrorCode != 0 {
		t.Fatalf("ApiVersions v2: %v, error %d", err, av.ErrorCode)
	}
	for _, k := range av.ApiKeys {
		lo, hi, ok := kafka.VersionRange(k.ApiKey)
		if !ok || lo != k.MinVersion || hi != k.MaxVersion {
			t.Errorf("advertised key %d %d-%d", k.ApiKey, k.MinVersion, k.MaxVersion)
		}
	}

	// Metadata of a version not served, an API not served and an API key
	// nobody knows: each answered with UNSUPPORTED_VERSION, in order, and
	// the connection stays usable.
	c = dial()
	c.Write(rawRequest(kmsg.NewPtrMetadataRequest(), 12, 1))
	b = readResponse(t, c)
	if corr := int32(binary.BigEndian.Uint32(b)); corr != 1 {
		t.Fatalf("Metadata v12 answer has correlation id %d, want 1", corr)
	}
	c.Write(rawRequest(kmsg.NewPtrUpdateFeaturesRequest(), 1, 2))
	b = readResponse(t, c)
	uf := kmsg.NewPtrUpdateFeaturesResponse()
	uf.SetVersion(1)
	// UpdateFeatures v1 is flexible: the response header has a tag byte.
	if corr := int32(binary.BigEndian.Uint32(b)); corr != 2 {
		t.Fatalf("UpdateFeatures answer has correlation id %d, want 2", corr)
	}
	if err := uf.ReadFrom(b[5:]); err != nil || uf.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("UpdateFeatures v1: %v, error code %d, want %d", err, uf.ErrorCode, kerr.UnsupportedVersion.Code)
	}
	unknown := []byte{0, 0, 0, 0, 0x03, 0xe7, 0, 0, 0, 0, 0, 3, 0, 0}
	binary.BigEndian.PutUint32(unknown, uint32(len(unknown)-4))
	c.Write(unknown)
	b = readResponse(t, c)
	if len(b) != 6 || binary.BigEndian.Uint32(b) != 3 || int16(binary.BigEndian.Uint16(b[4:])) != kerr.UnsupportedVersion.Code {
		t.Fatalf("API key 999 answered %x, want correlation id 3 and error %d", b, kerr.UnsupportedVersion.Code)
	}
	c.Write(rawRequest(kmsg.NewPtrApiVersionsRequest(), 2, 4))
	if corr := int32(binary.BigEndian.Uint32(readResponse(t, c))); corr != 4 {
		t.Fatalf("ApiVersions after unsupported requests: correlation id %d", corr)
	}

	// Produce v2 (a legacy message set, advertised so that librdkafka
	// compresses): every partition answered UNSUPPORTED_FOR_MESSAGE_FORMAT,
	// not retriable.
	c = dial()
	pr := kmsg.NewPtrProduceRequest()
	pr.Acks, pr.TimeoutMillis = -1, 1000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "legacy"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = []byte("a v1 message set would be here")
	pt.Partitions = append(pt.Partitions, pp)
	pr.Topics = append(pr.Topics, pt)
	c.Write(rawRequest(pr, 2, 5))
	b = readResponse(t, c)
	presp := kmsg.NewPtrProduceResponse()
	presp.SetVersion(2)
	if err := presp.ReadFrom(b[4:]); err != nil {
		t.Fatal(err)
	}
	if len(presp.Topics) != 1 || len(presp.Topics[0].Partitions) != 1 || presp.Topics[0].Partitions[0].ErrorCode != kerr.UnsupportedForMessageFormat.Code {
		t.Fatalf("Produce v2: %+v, want UNSUPPORTED_FOR_MESSAGE_FORMAT", presp.Topics)
	}
	if lo, _, _ := kafka.VersionRange(0); lo != 0 {
		t.Fatalf("Produce advertised from v%d; librdkafka up to 2.11 compresses with gzip, snappy and lz4 only from a broker that advertises v0", lo)
	}

	// A size past the limit: closed before anything is allocated.
	c = dial()
	c.Write([]byte{0x7f, 0xff, 0xff, 0xff})
	expectClosed(t, c)
}

func TestResponsesInOrder(t *testing.T) {
	addr := start(t, "")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var all []byte
	for i := range int32(20) {
		if i%2 == 0 {
			all = append(all, rawRequest(kmsg.NewPtrApiVersionsRequest(), 2, i)...)
		} else {
			all = append(all, rawRequest(kmsg.NewPtrMetadataRequest(), 8, i)...)
		}
	}
	c.Write(all)
	for i := range int32(20) {
		if corr := int32(binary.BigEndian.Uint32(readResponse(t, c))); corr != i {
			t.Fatalf("response %d has correlation id %d", i, corr)
		}
	}
}

// codecs are the batch codecs a Kafka producer may use, none first.
var codecs = []struct {
	name  string
	codec kgo.CompressionCodec
}{
	{"none", kgo.NoCompression()},
	{"gzip", kgo.GzipCompression()},
	{"snappy", kgo.SnappyCompression()},
	{"lz4", kgo.Lz4Compression()},
	{"zstd", kgo.ZstdCompression()},
}

// Each codec's batches, stored as the producer compressed them, are read
// back by a consumer record for record.
func TestCodecsRoundTrip(t *testing.T) {
	addr := start(t, "")
	for _, codec := range codecs[1:] {
		t.Run(codec.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			topic := "codec-" + codec.name
			p := client(t, addr, kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
				kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(codec.codec))
			const n = 500
			recs := make([]*kgo.Record, n)
			for i := range recs {
				recs[i] = &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: bytes.Repeat(fmt.Appendf(nil, "value %d ", i), 1+i%7)}
			}
			if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			c := client(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
			var got []*kgo.Record
			for len(got) < n {
				fs := c.PollFetches(ctx)
				if ctx.Err() != nil {
					t.Fatalf("consumed %d of %d", len(got), n)
				}
				fs.EachError(func(_ string, _ int32, err error) { t.Fatal(err) })
				got = append(got, fs.Records()...)
			}
			for i, r := range got {
				if r.Offset != int64(i) || !bytes.Equal(r.Key, recs[i].Key) || !bytes.Equal(r.Value, recs[i].Value) {
					t.Fatalf("record %d: offset %d key %q, want key %q", i, r.Offset, r.Key, recs[i].Key)
				}
			}
		})
	}
}
