package replica

import (
	"encoding/binary"
	"hash/crc32"
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
	s := state{term: 4, vote: 7, commit: 9, baseIndex: 2, baseTerm: 1, baseNext: 40, start: 45, voters: []uint64{11, 12, 13}}
	if err := writeState(fs, "/d", &s); err != nil {
		t.Fatal(err)
	}
	got, ok, err := readState(fs, "/d")
	if !ok || err != nil || got.term != 4 || got.vote != 7 || got.commit != 9 || got.baseNext != 40 || got.start != 45 || len(got.voters) != 3 {
		t.Fatalf("read back %+v ok %v err %v", got, ok, err)
	}
	// A file of the first format (no start field) reads with start =
	// baseNext.
	var v1 []byte
	v1 = append(v1, stateMagic1...)
	for _, v := range []uint64{4, 7, 9, 2, 1, 40} {
		v1 = binary.BigEndian.AppendUint64(v1, v)
	}
	v1 = binary.BigEndian.AppendUint32(v1, 1)
	v1 = binary.BigEndian.AppendUint64(v1, 11)
	v1 = binary.BigEndian.AppendUint32(v1, crc32.Checksum(v1, crcTable))
	if got, err := decodeState(v1); err != nil || got.start != 40 || got.baseNext != 40 || len(got.voters) != 1 {
		t.Fatalf("SRS1 file: %+v %v", got, err)
	}
	s.start = 39
	if _, err := decodeState(s.encode()); err == nil {
		t.Fatal("a start before baseNext went unnoticed")
	}
	s.start = 45
	b := s.encode()
	for i := range b {
		d := append([]byte(nil), b...)
		d[i] ^= 0x10
		if _, err := decodeState(d); err == nil {
			t.Fatalf("a flipped bit at byte %d went unnoticed", i)
		}
	}
}
