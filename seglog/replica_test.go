package seglog

import (
	"errors"
	"testing"

	"github.com/sensehq/sense/batch"
)

func TestReplicaSurface(t *testing.T) {
	l := openT(t, t.TempDir(), Options{SegmentBytes: 4 << 10})
	defer l.Close()
	for i := range 40 {
		b := mkBatch("r", 3, 100, 9, int32(3*i))
		base, next, err := l.AppendReplicated(b, int32(1+i/10), false)
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(3 * i); base != want || next != want+3 {
			t.Fatalf("batch %d at [%d, %d), want [%d, %d)", i, base, next, want, want+3)
		}
	}
	if l.Segments() < 2 {
		t.Fatalf("%d segments; the test wants the scan to cross one", l.Segments())
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	// ScanHeaders sees every batch from a boundary, with its epoch.
	var got []int64
	err := l.ScanHeaders(30, func(h *batch.Header) error {
		if want := int32(1 + h.BaseOffset/30); h.LeaderEpoch != want {
			t.Errorf("batch at %d has epoch %d, want %d", h.BaseOffset, h.LeaderEpoch, want)
		}
		got = append(got, h.NextOffset())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 30 || got[0] != 33 || got[29] != 120 {
		t.Fatalf("scan from 30 saw %d batches ending %v", len(got), got)
	}
	// ReadBelow stops at the commit point, whole batches only.
	p, err := l.ReadBelow(nil, 0, 1<<20, 10)
	if err != nil {
		t.Fatal(err)
	}
	if next, _ := lastNext(p); next != 9 {
		t.Fatalf("read below 10 ends at %d, want 9 (the batch [9, 12) passes 10)", next)
	}
	if p, err := l.ReadBelow(nil, 9, 1<<20, 9); err != nil || len(p) != 0 {
		t.Fatalf("read at the commit point: %d bytes, %v", len(p), err)
	}
	if _, err := l.ReadBelow(nil, 12, 1<<20, 9); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read past the commit point: %v", err)
	}
	s, err := l.LocateBelow(0, 1<<20, 10)
	if err != nil {
		t.Fatal(err)
	}
	if s.NextOffset != 9 {
		t.Fatalf("locate below 10 ends at %d, want 9", s.NextOffset)
	}
	s.Release()
	// CheckSequence: the producer's next, a repeat, a gap.
	h, _ := batch.ParseHeader(mkBatch("r", 3, 100, 9, 120))
	if _, _, dup, err := l.CheckSequence(&h, false); dup || err != nil {
		t.Fatalf("next sequence: dup %v err %v", dup, err)
	}
	h, _ = batch.ParseHeader(mkBatch("r", 3, 100, 9, 117))
	if base, last, dup, err := l.CheckSequence(&h, false); !dup || err != nil || base != 117 || last != 119 {
		t.Fatalf("repeat: [%d, %d] dup %v err %v", base, last, dup, err)
	}
	h, _ = batch.ParseHeader(mkBatch("r", 3, 100, 9, 200))
	if _, _, _, err := l.CheckSequence(&h, false); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("gap: %v", err)
	}
}
