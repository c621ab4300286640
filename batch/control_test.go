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
