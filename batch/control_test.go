package batch

import "testing"

func TestControl(t *testing.T) {
	p := Control(0, ControlRaftConfig, []byte{1, 2, 3})
	h, err := Check(p)
	if err != nil {
		t.Fatal(err)
	}
	if h.Attributes&AttrControl == 0 || h.RecordCount != 1 {
		t.Fatalf("attributes %#x, %d records", h.Attributes, h.RecordCount)
	}
	typ, v, ok, err := ControlType(p)
	if err != nil || !ok || typ != ControlRaftConfig || string(v) != "\x01\x02\x03" {
		t.Fatalf("ControlType: %d %q %v %v", typ, v, ok, err)
	}
	var b Builder
	b.Reset(-1, -1, -1)
	b.Add(1, nil, []byte("x"))
	if _, _, ok, err := ControlType(b.Finish()); ok || err != nil {
		t.Fatalf("a data batch is not a control batch: %v %v", ok, err)
	}
}

func TestTxnMarker(t *testing.T) {
	for _, commit := range []bool{false, true} {
		p := TxnMarker(42, Marker{ProducerID: 7, ProducerEpoch: 3, Commit: commit, CoordinatorEpoch: 9})
		h, err := Check(p)
		if err != nil {
			t.Fatal(err)
		}
		if h.Attributes != AttrControl|AttrTransactional || h.ProducerID != 7 || h.ProducerEpoch != 3 || h.BaseSequence != -1 || h.RecordCount != 1 {
			t.Fatalf("header %+v", h)
		}
		m, ok, err := ParseMarker(p)
		if err != nil || !ok || m != (Marker{ProducerID: 7, ProducerEpoch: 3, Commit: commit, CoordinatorEpoch: 9}) {
			t.Fatalf("ParseMarker: %+v %v %v", m, ok, err)
		}
	}
	if _, ok, err := ParseMarker(Control(0, ControlLeaderChange, nil)); ok || err != nil {
		t.Fatalf("a leader-change batch is no marker: %v %v", ok, err)
	}
}

func TestEmptied(t *testing.T) {
	var b Builder
	b.Reset(5, 1, 10)
	for i := range 4 {
		b.Add(int64(100+i), []byte("k"), []byte("value"))
	}
	p := b.Finish()
	SetBaseOffset(p, 1000)
	e := Emptied(nil, p)
	h, err := Check(e)
	if err != nil {
		t.Fatal(err)
	}
	if h.BaseOffset != 1000 || h.LastDelta != 3 || h.RecordCount != 0 || h.ProducerID != 5 || h.BaseSequence != 10 || h.Size() != HeaderSize {
		t.Fatalf("emptied header %+v", h)
	}
}

// FuzzParseMarker: no input makes ParseMarker panic, and a marker it
// accepts encodes back to the same fields.
func FuzzParseMarker(f *testing.F) {
	f.Add(TxnMarker(1, Marker{ProducerID: 1, ProducerEpoch: 2, Commit: true, CoordinatorEpoch: 3}))
	f.Add(TxnMarker(1, Marker{ProducerID: -1, ProducerEpoch: -1}))
	f.Add(Control(0, ControlCommit, nil))
	f.Add(Control(0, ControlAbort, []byte{0}))
	f.Add([]byte{})
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, p []byte) {
		if _, err := CheckFraming(p); err != nil {
			return
		}
		m, ok, err := ParseMarker(p)
		if err != nil || !ok {
			return
		}
		m2, ok2, err2 := ParseMarker(TxnMarker(0, m))
		if !ok2 || err2 != nil || m2 != m {
			t.Fatalf("round trip: %+v -> %+v %v %v", m, m2, ok2, err2)
		}
	})
}
