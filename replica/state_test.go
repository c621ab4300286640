package replica

import (
	"testing"

	"github.com/sensehq/sense/vfs"
)

func TestStateRoundTripAndDamage(t *testing.T) {
	fs := vfs.NewMem()
	if err := fs.MkdirAll("/d"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := readState(fs, "/d"); ok || err != nil {
		t.Fatalf("no file: ok %v err %v", ok, err)
	}
	s := state{term: 4, vote: 7, commit: 9, baseIndex: 2, baseTerm: 1, baseNext: 40, voters: []uint64{11, 12, 13}}
	if err := writeState(fs, "/d", &s); err != nil {
		t.Fatal(err)
	}
	got, ok, err := readState(fs, "/d")
	if !ok || err != nil || got.term != 4 || got.vote != 7 || got.commit != 9 || got.baseNext != 40 || len(got.voters) != 3 {
		t.Fatalf("read back %+v ok %v err %v", got, ok, err)
	}
	b := s.encode()
	for i := range b {
		d := append([]byte(nil), b...)
		d[i] ^= 0x10
		if _, err := decodeState(d); err == nil {
			t.Fatalf("a flipped bit at byte %d went unnoticed", i)
		}
	}
}
