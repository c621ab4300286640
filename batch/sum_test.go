package batch

import (
	"fmt"
	"testing"
)

// TestProducerSum: only the producer's records at or after the offset
// asked for are summed, in log order, across batches of other producers
// and control batches; a truncated batch is an error.
func TestProducerSum(t *testing.T) {
	var log []byte
	var want uint32
	off := int64(0)
	add := func(pid int64, n int, control bool) {
		var b Builder
		b.Reset(pid, 0, int32(off))
		for i := range n {
			v := fmt.Sprintf("p%d-%d", pid, off+int64(i))
			b.Add(1, []byte("k"), []byte(v))
		}
		p := b.Finish()
		SetBaseOffset(p, off)
		if control {
			p[OffAttributes+1] |= byte(AttrControl)
		}
		log = append(log, p...)
		off += int64(n)
	}
	add(7, 3, false) // offsets 0-2: below from
	add(9, 2, false) // 3-4: another producer
	add(7, 4, false) // 5-8
	add(7, 1, true)  // 9: a control batch
	add(7, 2, false) // 10-11
	for _, o := range []int64{5, 6, 7, 8, 10, 11} {
		want = AddRecord(want, []byte("k"), fmt.Appendf(nil, "p7-%d", o))
	}
	var s ProducerSum
	next, err := s.Add(log, 7, 3)
	if err != nil {
		t.Fatal(err)
	}
	if next != 12 || s.Records != 6 || s.First != 5 || s.Last != 11 || s.Checksum != want {
		t.Fatalf("sum %+v, next %d; want 6 records at 5 to 11, checksum %08x, next 12", s, next, want)
	}
	var short ProducerSum
	if _, err := short.Add(log[:len(log)-3], 7, 0); err == nil {
		t.Fatal("a truncated batch was summed")
	}
}
