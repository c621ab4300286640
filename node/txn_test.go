package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/result"
)

// txnRawBatch is a transactional batch of producer pid with one record.
func txnRawBatch(pid int64, seq int32, value string) []byte {
	var b batch.Builder
	b.Reset(pid, 0, seq)
	b.Add(1000, nil, []byte(value))
	p := bytes.Clone(b.Finish())
	binary.BigEndian.PutUint16(p[batch.OffAttributes:], batch.AttrTransactional)
	binary.BigEndian.PutUint32(p[batch.OffCRC:], batch.Checksum(p[batch.OffAttributes:]))
	return p
}

// values returns the values of the records in batches p, skipping control
// batches and empty ones, as Sense's readers do.
func values(t *testing.T, p []byte) []string {
	t.Helper()
	var out []string
	for len(p) > 0 {
		h, err := batch.Check(p[:min(len(p), int(binary.BigEndian.Uint32(p[batch.OffLength:]))+batch.LogOverhead)])
		if err != nil {
			t.Fatal(err)
		}
		b := p[:h.Size()]
		p = p[h.Size():]
		if h.Attributes&batch.AttrControl != 0 || h.RecordCount == 0 {
			continue
		}
		it, err := batch.NewIter(b)
		if err != nil {
			t.Fatal(err)
		}
		for it.Next() {
			out = append(out, string(it.Record().Value))
		}
	}
	return out
}

// The last stable offset stops at an open transaction, read-committed
// fetches stop there too and skip aborted records; the index is rebuilt
// from the log after a restart.
func TestTransactionsInPartition(t *testing.T) {
	dir := t.TempDir()
	n, _ := threeHubs(t, dir)
	ctx := context.Background()
	appendOK := func(b []byte) {
		t.Helper()
		if _, code, why := n.AppendRaw(ctx, "payments", 0, b); code != result.OK {
			t.Fatalf("append: %v %s", code, why)
		}
	}
	fetch := func(iso Isolation) []string {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		b, _, _, code := n.FetchIsolated(wctx, "payments", 0, 0, 1<<20, nil, iso)
		if code != result.OK {
			t.Fatal(code)
		}
		return values(t, b)
	}
	appendOK(rawBatch())                  // offset 0, "v"
	appendOK(txnRawBatch(7, 0, "open-a")) // 1: producer 7's transaction
	appendOK(rawBatch())                  // 2
	lso, code := n.StableOffset("payments", 0)
	if code != result.OK || lso != 1 {
		t.Fatalf("LSO %d %v, want 1", lso, code)
	}
	if got := fetch(ReadCommitted); len(got) != 1 {
		t.Fatalf("read committed with a transaction open: %v", got)
	}
	if got := fetch(ReadUncommitted); len(got) != 3 {
		t.Fatalf("read uncommitted: %v", got)
	}
	if err := n.AppendMarker(ctx, "payments", 0, batch.Marker{ProducerID: 7}); err != nil { // 3: abort
		t.Fatal(err)
	}
	appendOK(txnRawBatch(7, 1, "done-b"))                                                                 // 4
	if err := n.AppendMarker(ctx, "payments", 0, batch.Marker{ProducerID: 7, Commit: true}); err != nil { // 5
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		if lso, _ := n.StableOffset("payments", 0); lso != 6 {
			t.Fatalf("LSO %d, want 6", lso)
		}
		if got := fetch(ReadCommitted); len(got) != 3 || got[2] != "done-b" {
			t.Fatalf("read committed: %v", got)
		}
		if got := fetch(ReadCommittedKafka); len(got) != 4 {
			t.Fatalf("Kafka read committed keeps aborted batches: %v", got)
		}
		_, aborted, _ := n.AbortedTransactions("payments", 0, 0, 6)
		if len(aborted) != 1 || aborted[0] != (AbortedTxn{ProducerID: 7, FirstOffset: 1, LastOffset: 3}) {
			t.Fatalf("aborted %+v", aborted)
		}
		if _, aborted, _ := n.AbortedTransactions("payments", 0, 4, 6); len(aborted) != 0 {
			t.Fatalf("aborted in [4, 6): %+v", aborted)
		}
	}
	check()
	n.Close()
	n, _ = threeHubs(t, dir)
	defer n.Close()
	check()
}
