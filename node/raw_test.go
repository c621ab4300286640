package node

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/event"
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
	if _, code, why := n.AppendRaw(ctx, "payments", 0, batch.Control(1, batch.ControlTrim, make([]byte, 8))); code != result.InvalidRequest {
		t.Errorf("a producer's control batch: %v %s, want INVALID_REQUEST", code, why)
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
// like those of a plain one.
func TestAppendRawCompressed(t *testing.T) {
	n, _ := threeHubs(t, t.TempDir())
	defer n.Close()
	ctx := context.Background()
	sn := []batch.RecordHeader{{Key: "sense.jurisdiction", Value: []byte("SN")}}
	ma := []batch.RecordHeader{{Key: "sense.jurisdiction", Value: []byte("MA")}}
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
	if _, code, why := n.AppendRaw(ctx, "payments", 0, bad); code != result.CorruptBatch {
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
	if v := testutil.ToFloat64(n.Metrics.shedTotal.WithLabelValues("payments", "low", "bytes")); v != 1 {
		t.Fatalf("shed counter for low = %v, want 1", v)
	}
}

// storedRecords reads back a partition's records from offset 0 to its
// high watermark.
func storedRecords(t *testing.T, n *Node, pipeline string, partition int32) ([]batch.Header, []batch.Record) {
	t.Helper()
	var hs []batch.Header
	var recs []batch.Record
	ended, cancel := context.WithCancel(context.Background())
	cancel() // never wait for more
	var out []byte
	for off := int64(0); ; {
		more, _, hw, code := n.Fetch(ended, pipeline, partition, off, 1<<20, nil)
		if code != result.OK {
			t.Fatalf("fetch %s/%d at %d: %v", pipeline, partition, off, code)
		}
		if len(more) == 0 {
			break
		}
		out = append(out, more...)
		h, _ := batch.ParseHeader(more[len(more)-int(lastBatchSize(more)):])
		if off = h.NextOffset(); off >= hw {
			break
		}
	}
	for len(out) > 0 {
		h, err := batch.ParseHeader(out)
		if err != nil {
			t.Fatal(err)
		}
		b := out[:h.Size()]
		out = out[h.Size():]
		records, err := batch.Decompress(nil, b)
		if err != nil {
			t.Fatal(err)
		}
		it, err := batch.NewIterRecords(records, h.RecordCount)
		if err != nil {
			t.Fatal(err)
		}
		for it.Next() {
			recs = append(recs, *it.Record())
		}
		hs = append(hs, h)
	}
	return hs, recs
}

func routingOf(t *testing.T, r *batch.Record) (mask uint64, prio event.Priority, text map[string]string) {
	t.Helper()
	text = map[string]string{}
	masks, prios := 0, 0
	hi := r.Headers()
	for k, v, ok := hi.Next(); ok; k, v, ok = hi.Next() {
		switch string(k) {
		case event.HeaderMask:
			m, err := event.DecodeMaskHeader(v)
			if err != nil {
				t.Fatal(err)
			}
			mask = uint64(m)
			masks++
		case event.HeaderPriority:
			p, err := event.DecodePriorityHeader(v)
			if err != nil {
				t.Fatal(err)
			}
			prio = p
			prios++
		default:
			text[string(k)] = string(v)
		}
	}
	if masks != 1 || prios != 1 {
		t.Fatalf("record carries %d sense.j and %d sense.p headers, want one each", masks, prios)
	}
	return mask, prio, text
}

// TestAppendRawStoresRouting: every record a Kafka producer sends is stored
// with the binary mask and priority the node checked (sense.j, sense.p),
// whatever headers it came with and whether it was compressed; the
// producer's own headers, timestamps and idempotence fields are kept, and
// a retry of a restamped idempotent batch is still recognized.
func TestAppendRawStoresRouting(t *testing.T) {
	n, reg := threeHubs(t, t.TempDir())
	defer n.Close()
	ctx := context.Background()
	ma, _ := reg.Parse("MA")
	ecowas, _ := reg.Parse("ECOWAS")
	all := reg.All()

	// dakar (SN) low is partition 12.
	var b batch.Builder
	b.Reset(77, 3, 0)
	b.Add(5000, []byte("k1"), []byte("v1"), batch.RecordHeader{Key: "sense.jurisdiction", Value: []byte("ECOWAS")}, batch.RecordHeader{Key: "app", Value: []byte("x")})
	b.Add(5007, nil, []byte("v2"))
	first := bytes.Clone(b.Finish())
	base, code, why := n.AppendRaw(ctx, "payments", 12, bytes.Clone(first))
	if code != result.OK {
		t.Fatalf("append: %v %s", code, why)
	}
	// The same idempotent batch again: the original offset, nothing new.
	if again, code, _ := n.AppendRaw(ctx, "payments", 12, bytes.Clone(first)); code != result.OK || again != base {
		t.Fatalf("retry: base %d, %v; want %d", again, code, base)
	}
	hs, recs := storedRecords(t, n, "payments", 12)
	if len(hs) != 1 || len(recs) != 2 {
		t.Fatalf("%d batches, %d records stored; want 1 and 2", len(hs), len(recs))
	}
	h := hs[0]
	if h.ProducerID != 77 || h.ProducerEpoch != 3 || h.BaseSequence != 0 || h.BaseTimestamp != 5000 || h.MaxTimestamp != 5007 || h.LastDelta != 1 {
		t.Fatalf("stored header %+v lost the producer's fields", h)
	}
	if m, p, text := routingOf(t, &recs[0]); m != uint64(ecowas) || p != event.Low || text["sense.jurisdiction"] != "ECOWAS" || text["app"] != "x" ||
		string(recs[0].Key) != "k1" || recs[0].TimestampDelta != 0 {
		t.Fatalf("record 0: mask %#x prio %s headers %v", m, p, text)
	}
	if m, p, _ := routingOf(t, &recs[1]); m != uint64(all) || p != event.Low || recs[1].Key != nil || recs[1].TimestampDelta != 7 || recs[1].OffsetDelta != 1 {
		t.Fatalf("record 1 (pipeline default): mask %#x prio %s", m, p)
	}

	// A gzip batch is checked, restamped and stored gzip-compressed.
	if _, code, why := n.AppendRaw(ctx, "payments", 0, gzipBatch(t, batch.RecordHeader{Key: "sense.jurisdiction", Value: []byte("MA")})); code != result.OK {
		t.Fatalf("gzip: %v %s", code, why)
	}
	if hs, recs := storedRecords(t, n, "payments", 0); len(recs) != 1 || hs[0].Compression() != batch.CompressionGzip {
		t.Fatalf("%d records in partition 0, codec %d", len(recs), hs[0].Compression())
	} else if m, _, _ := routingOf(t, &recs[0]); m != uint64(ma) {
		t.Fatalf("gzip record stored with mask %#x, want MA", m)
	}

	// Binary headers are checked like the text ones; a record that has
	// both is stored as it came.
	maHdr := event.AppendMaskHeader(nil, ma)
	snHdr := event.AppendMaskHeader(nil, ecowas&^ma)
	lowHdr := event.AppendPriorityHeader(nil, event.Low)
	for _, c := range []struct {
		name    string
		headers []batch.RecordHeader
		want    result.Code
	}{
		{"binary SN to MA", []batch.RecordHeader{{Key: event.HeaderMask, Value: snHdr}}, result.PolicyViolation},
		{"binary critical to low", []batch.RecordHeader{{Key: event.HeaderPriority, Value: event.AppendPriorityHeader(nil, event.Critical)}}, result.PolicyViolation},
		{"binary mask of 3 bytes", []batch.RecordHeader{{Key: event.HeaderMask, Value: []byte{1, 2, 3}}}, result.PolicyViolation},
		{"binary mask outside the registry", []batch.RecordHeader{{Key: event.HeaderMask, Value: event.AppendMaskHeader(nil, 1<<40)}}, result.PolicyViolation},
		{"binary and text disagree", []batch.RecordHeader{{Key: event.HeaderMask, Value: maHdr}, {Key: "sense.jurisdiction", Value: []byte("SN")}}, result.PolicyViolation},
		{"binary and text agree", []batch.RecordHeader{{Key: event.HeaderMask, Value: maHdr}, {Key: "sense.jurisdiction", Value: []byte("MA")}}, result.OK},
	} {
		if _, code, why := n.AppendRaw(ctx, "payments", 1, rawBatch(c.headers...)); code != c.want {
			t.Errorf("%s: %v (%s), want %v", c.name, code, why, c.want)
		}
	}
	whole := rawBatch(batch.RecordHeader{Key: event.HeaderMask, Value: maHdr}, batch.RecordHeader{Key: event.HeaderPriority, Value: lowHdr})
	off, code, why := n.AppendRaw(ctx, "payments", 1, bytes.Clone(whole))
	if code != result.OK {
		t.Fatalf("fully stamped batch: %v %s", code, why)
	}
	out, _, _, _ := n.Fetch(ctx, "payments", 1, off, 1<<20, nil)
	if !bytes.Equal(out[batch.OffMagic:], whole[batch.OffMagic:]) {
		t.Fatal("a batch whose records carry both binary headers was rewritten")
	}

	// Batches whose records carry some of the binary headers: the one
	// whose first record lacks one is re-encoded as it is checked, the
	// other once its checks find a record that does. Either way every
	// record ends with each header once, its own values kept.
	both := []batch.RecordHeader{{Key: event.HeaderMask, Value: maHdr}, {Key: event.HeaderPriority, Value: lowHdr}}
	for _, recHeaders := range [][3][]batch.RecordHeader{
		{both[:1], both[1:], nil},  // first lacks the class
		{both, both[:1], both[1:]}, // first has both, second lacks the class
	} {
		var b batch.Builder
		b.Reset(-1, -1, -1)
		for i, hs := range recHeaders {
			b.Add(int64(2000+i), nil, []byte{'v', byte('0' + i)}, hs...)
		}
		off, code, why := n.AppendRaw(ctx, "payments", 0, bytes.Clone(b.Finish()))
		if code != result.OK {
			t.Fatalf("partly stamped batch: %v %s", code, why)
		}
		out, _, _, _ := n.Fetch(ctx, "payments", 0, off, 1<<20, nil)
		it, err := batch.NewIter(out)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; it.Next(); i++ {
			r := it.Record()
			wantMask := uint64(ma)
			if recHeaders[i] == nil || len(recHeaders[i]) == 1 && recHeaders[i][0].Key == event.HeaderPriority {
				wantMask = uint64(all) // the pipeline's default
			}
			if m, p, _ := routingOf(t, r); m != wantMask || p != event.Low || string(r.Value) != string([]byte{'v', byte('0' + i)}) || r.NumHeaders != 2 {
				t.Fatalf("record %d of %v: mask %#x prio %s value %q, %d headers", i, recHeaders, m, p, r.Value, r.NumHeaders)
			}
		}
	}
}

// lastBatchSize returns the size of the last batch of a run of batches.
func lastBatchSize(p []byte) int {
	last := 0
	for len(p) > 0 {
		h, err := batch.ParseHeader(p)
		if err != nil {
			return len(p)
		}
		last = h.Size()
		p = p[last:]
	}
	return last
}

// FuzzAppendRaw: whatever bytes a Kafka producer sends as a batch, the
// node answers with a code and never panics; a batch it accepts is stored
// with the binary routing headers on every record, readable back.
func FuzzAppendRaw(f *testing.F) {
	f.Add(rawBatch(), int32(0), false)
	f.Add(rawBatch(batch.RecordHeader{Key: "sense.jurisdiction", Value: []byte("SN")}), int32(12), true)
	f.Add(rawBatch(batch.RecordHeader{Key: "sense.j", Value: []byte{0, 0, 0, 0, 0, 0, 0, 1}}, batch.RecordHeader{Key: "sense.p", Value: []byte{0}}), int32(0), true)
	f.Add(rawBatch(batch.RecordHeader{Key: "sense.priority", Value: []byte("critical")}), int32(4), true)
	f.Add([]byte{}, int32(0), false)
	f.Add(make([]byte, batch.HeaderSize), int32(0), true)
	n, _ := threeHubs(f, f.TempDir())
	f.Cleanup(func() { n.Close() })
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, b []byte, partition int32, seal bool) {
		partition %= 40
		if seal && len(b) >= batch.HeaderSize {
			// Make the framing and the CRC right, so that the records
			// themselves are what is fuzzed.
			b = bytes.Clone(b)
			binary.BigEndian.PutUint32(b[batch.OffLength:], uint32(len(b)-batch.LogOverhead))
			b[batch.OffMagic] = batch.Magic
			binary.BigEndian.PutUint32(b[batch.OffCRC:], batch.Checksum(b[batch.OffAttributes:]))
		}
		before, _ := n.Partitions("payments")
		base, code, why := n.AppendRaw(ctx, "payments", partition, bytes.Clone(b))
		switch code {
		case result.OK:
		case result.CorruptBatch, result.PolicyViolation, result.UnknownPartition, result.OutOfOrderSequence,
			result.DuplicateSequence, result.ProducerFenced, result.InvalidRequest:
			if why == "" {
				t.Fatalf("%v without a reason", code)
			}
			after, _ := n.Partitions("payments")
			for i := range before {
				if after[i].HighWatermark != before[i].HighWatermark && code != result.DuplicateSequence {
					t.Fatalf("refused with %v, yet partition %d grew", code, i)
				}
			}
			return
		default:
			t.Fatalf("unexpected code %v (%s)", code, why)
		}
		ended, cancel := context.WithCancel(ctx)
		cancel()
		out, _, _, rc := n.Fetch(ended, "payments", partition, base, 1<<20, nil)
		if rc != result.OK || len(out) == 0 {
			t.Fatalf("accepted batch at %d not readable: %v", base, rc)
		}
		h, err := batch.ParseHeader(out)
		if err != nil {
			t.Fatal(err)
		}
		records, err := batch.Decompress(nil, out[:h.Size()])
		if err != nil {
			t.Fatalf("stored batch: %v", err)
		}
		it, err := batch.NewIterRecords(records, h.RecordCount)
		if err != nil {
			t.Fatal(err)
		}
		for it.Next() {
			r := it.Record()
			hasJ, hasP := false, false
			hi := r.Headers()
			for k, v, ok := hi.Next(); ok; k, v, ok = hi.Next() {
				switch string(k) {
				case event.HeaderMask:
					_, err := event.DecodeMaskHeader(v)
					hasJ = hasJ || err == nil
				case event.HeaderPriority:
					_, err := event.DecodePriorityHeader(v)
					hasP = hasP || err == nil
				}
			}
			if !hasJ || !hasP {
				t.Fatalf("stored record at delta %d lacks a valid sense.j or sense.p", r.OffsetDelta)
			}
		}
		if it.Err() != nil {
			t.Fatal(it.Err())
		}
	})
}

// A producer's batch whose offsets skip (a last offset delta past the
// record count) is refused whole: it would move the partition's offsets by
// up to 2^31 per batch. Found by FuzzAppendRaw.
func TestAppendRawRefusesOffsetGaps(t *testing.T) {
	n, _ := threeHubs(t, t.TempDir())
	defer n.Close()
	b := rawBatch()
	binary.BigEndian.PutUint32(b[batch.OffLastDelta:], 1<<30)
	binary.BigEndian.PutUint32(b[batch.OffCRC:], batch.Checksum(b[batch.OffAttributes:]))
	if _, code, why := n.AppendRaw(context.Background(), "payments", 0, b); code != result.CorruptBatch || !strings.Contains(why, "numbered 0 to count-1") {
		t.Fatalf("a batch with a gap: %v (%s), want CORRUPT_BATCH", code, why)
	}
	if parts, _ := n.Partitions("payments"); parts[0].HighWatermark != 0 {
		t.Fatalf("the refused batch moved the partition to %d", parts[0].HighWatermark)
	}
}
