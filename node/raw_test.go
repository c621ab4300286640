package node

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/result"
)

func rawBatch(headers ...batch.RecordHeader) []byte {
	var b batch.Builder
	b.Reset(-1, -1, -1)
	b.Add(1000, nil, []byte("v"), headers...)
	return bytes.Clone(b.Finish())
}

// TestAppendRaw: a Kafka-style batch is stored as it came when its records
// allow the partition's hub and lane, and refused whole otherwise.
func TestAppendRaw(t *testing.T) {
	n, _ := threeHubs(t, t.TempDir())
	defer n.Close()
	ctx := context.Background()
	// payments has 2 partitions per hub and lane: partition 0 is tangier
	// (MA) low, 6 is dakhla... (hub*3+lane)*2+index; dakar (SN) low is 12.
	cases := []struct {
		name      string
		partition int32
		headers   []batch.RecordHeader
		want      result.Code
	}{
		{"no headers, default mask *", 0, nil, result.OK},
		{"MA record to an MA hub", 0, []batch.RecordHeader{{Key: "sense.jurisdiction", Value: []byte("MA")}}, result.OK},
		{"SN record to an MA hub", 0, []batch.RecordHeader{{Key: "sense.jurisdiction", Value: []byte("SN")}}, result.PolicyViolation},
		{"ECOWAS record to the SN hub", 12, []batch.RecordHeader{{Key: "sense.jurisdiction", Value: []byte("ECOWAS")}}, result.OK},
		{"critical record to a low lane", 0, []batch.RecordHeader{{Key: "sense.priority", Value: []byte("critical")}}, result.PolicyViolation},
		{"unknown code", 0, []batch.RecordHeader{{Key: "sense.jurisdiction", Value: []byte("XX")}}, result.PolicyViolation},
		{"unknown partition", 999, nil, result.UnknownPartition},
	}
	for _, c := range cases {
		_, code, why := n.AppendRaw(ctx, "payments", c.partition, rawBatch(c.headers...))
		if code != c.want {
			t.Errorf("%s: %v (%s), want %v", c.name, code, why, c.want)
		}
	}
	bad := rawBatch()
	bad[len(bad)-1] ^= 1
	if _, code, _ := n.AppendRaw(ctx, "payments", 0, bad); code != result.CorruptBatch {
		t.Errorf("corrupt batch: %v", code)
	}
	// Refused batches stored nothing: three accepted batches in all.
	total := int64(0)
	parts, _ := n.Partitions("payments")
	for _, p := range parts {
		total += p.HighWatermark
	}
	if total != 3 {
		t.Fatalf("%d records stored, want 3", total)
	}
}

// gzipBatch is rawBatch with its records gzip-compressed, as a Kafka
// producer sends them (attributes codec 1, CRC over the compressed bytes).
func gzipBatch(t *testing.T, headers ...batch.RecordHeader) []byte {
	plain := rawBatch(headers...)
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	if _, err := w.Write(plain[batch.HeaderSize:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p := append(bytes.Clone(plain[:batch.HeaderSize]), z.Bytes()...)
	binary.BigEndian.PutUint32(p[batch.OffLength:], uint32(len(p)-batch.LogOverhead))
	binary.BigEndian.PutUint16(p[batch.OffAttributes:], batch.CompressionGzip)
	binary.BigEndian.PutUint32(p[batch.OffCRC:], batch.Checksum(p[batch.OffAttributes:]))
	return p
}

// TestAppendRawCompressed: the records of a compressed batch are checked
// like those of a plain one, and the batch is stored as it came.
func TestAppendRawCompressed(t *testing.T) {
	n, _ := threeHubs(t, t.TempDir())
	defer n.Close()
	ctx := context.Background()
	sn := []batch.RecordHeader{{Key: "sense.jurisdiction", Value: []byte("SN")}}
	ma := []batch.RecordHeader{{Key: "sense.jurisdiction", Value: []byte("MA")}}
	if code, why := n.CheckRecords("payments", 0, gzipBatch(t, sn...)); code != result.PolicyViolation {
		t.Errorf("gzip SN record to an MA partition: %v (%s), want PolicyViolation", code, why)
	}
	if _, code, why := n.AppendRaw(ctx, "payments", 0, gzipBatch(t, sn...)); code != result.PolicyViolation {
		t.Errorf("AppendRaw gzip SN to MA: %v (%s), want PolicyViolation", code, why)
	}
	want := gzipBatch(t, ma...)
	if _, code, why := n.AppendRaw(ctx, "payments", 0, bytes.Clone(want)); code != result.OK {
		t.Fatalf("gzip MA record to an MA partition: %v (%s), want OK", code, why)
	}
	// Compressed bytes that do not decompress are a corrupt batch.
	bad := gzipBatch(t, ma...)
	bad[batch.HeaderSize+12] ^= 0xff
	binary.BigEndian.PutUint32(bad[batch.OffCRC:], batch.Checksum(bad[batch.OffAttributes:]))
	if code, why := n.CheckRecords("payments", 0, bad); code != result.CorruptBatch {
		t.Errorf("undecodable gzip: %v (%s), want CorruptBatch", code, why)
	}
	parts, _ := n.Partitions("payments")
	total := int64(0)
	for _, p := range parts {
		total += p.HighWatermark
	}
	if total != 1 {
		t.Fatalf("%d records stored, want 1", total)
	}
}

// Under memory pressure a Kafka batch sent to a low or medium lane is shed
// (OVERLOADED) like a native event of that class; the critical lane is
// never refused.
func TestAppendRawSheds(t *testing.T) {
	n, _ := threeHubs(t, t.TempDir())
	defer n.Close()
	ctx := context.Background()
	// Hold 90% of the budget, past both shed levels (0.5 and 0.8).
	held := n.opts.MemoryLimit * 9 / 10
	if err := n.Reserve(ctx, held); err != nil {
		t.Fatal(err)
	}
	// tangier: low lane partitions 0-1, medium 2-3, critical 4-5.
	for _, c := range []struct {
		partition int32
		prio      string
		want      result.Code
	}{{0, "low", result.Overloaded}, {2, "medium", result.Overloaded}, {4, "critical", result.OK}} {
		b := rawBatch(batch.RecordHeader{Key: "sense.priority", Value: []byte(c.prio)})
		if _, code, why := n.AppendRaw(ctx, "payments", c.partition, b); code != c.want {
			t.Errorf("%s lane under pressure: %v (%s), want %v", c.prio, code, why, c.want)
		}
	}
	n.Release(held)
	b := rawBatch(batch.RecordHeader{Key: "sense.priority", Value: []byte("low")})
	if _, code, why := n.AppendRaw(ctx, "payments", 0, b); code != result.OK {
		t.Fatalf("low lane after the pressure: %v (%s)", code, why)
	}
	if v := testutil.ToFloat64(n.Metrics.shedTotal.WithLabelValues("payments", "low")); v != 1 {
		t.Fatalf("shed counter for low = %v, want 1", v)
	}
}
