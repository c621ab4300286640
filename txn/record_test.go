package txn

import (
	"reflect"
	"testing"

	"github.com/sensehq/sense/group"
)

func TestRecordRoundTrip(t *testing.T) {
	in := &Txn{ID: "t", ProducerID: 42, Epoch: 7, State: PrepareCommit, TimeoutMs: 60000, StartMs: 1700000000000, Seq: 9,
		PrevProducerID: 41, PrevEpoch: 6, UpdatedMs: 1700000000123,
		Partitions: []TopicPartition{{Topic: "a", Partition: 0}, {Topic: "bb", Partition: 3}},
		Groups: []Pending{{Group: "g", Offsets: []group.OffsetCommit{{TopicPartition: TopicPartition{Topic: "in", Partition: 1},
			CommittedOffset: group.CommittedOffset{Offset: 100, LeaderEpoch: -1, Metadata: "m"}}}}, {Group: "h"}}}
	// Version 3, then version 4 with the partitions' ends.
	for _, ends := range [][]int64{nil, {17, 1 << 40}} {
		in.Ends = ends
		v := appendValue(nil, in)
		if want := byte(3 + min(len(ends), 1)); v[0] != want {
			t.Fatalf("written at version %d, want %d", v[0], want)
		}
		out, err := decodeValue("t", v)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(in, out) {
			t.Fatalf("round trip:\n%+v\n%+v", in, out)
		}
	}
	// Ends that do not match the partitions are refused.
	in.Ends = []int64{1}
	if _, err := decodeValue("t", appendValue(nil, in)); err == nil {
		t.Fatal("a record with one end for two partitions decoded")
	}
}

// Records of versions 1 (before KIP-890) and 2 (before expiration)
// decode: version 1 with no last EndTxn, both with no write time.
func TestRecordOlderVersions(t *testing.T) {
	in := &Txn{ID: "t", ProducerID: 42, Epoch: 7, State: Ongoing, Seq: 3, PrevProducerID: -1, PrevEpoch: -1,
		Partitions: []TopicPartition{{Topic: "a", Partition: 2}}}
	v3 := appendValue(nil, in)
	// Version 2: the same without the write time (the last 8 bytes).
	v2 := append([]byte{2}, v3[1:len(v3)-8]...)
	// Version 1: also without the 10 bytes after the sequence (at offset
	// 1+8+2+1+4+8+8).
	const at = 32
	v1 := append([]byte{1}, v2[1:at]...)
	v1 = append(v1, v2[at+10:]...)
	for _, v := range [][]byte{v1, v2} {
		out, err := decodeValue("t", v)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(in, out) {
			t.Fatalf("version %d:\n%+v\n%+v", v[0], in, out)
		}
	}
	if _, err := decodeValue("t", append([]byte{5}, v3[1:]...)); err == nil {
		t.Fatal("a record of a version to come decoded")
	}
}

// FuzzRecord: no value makes decodeValue panic or allocate past its
// input, and what it accepts encodes back to the same bytes.
func FuzzRecord(f *testing.F) {
	f.Add(appendValue(nil, &Txn{ProducerID: 1, State: Ongoing, Partitions: []TopicPartition{{Topic: "x", Partition: 1}}}))
	f.Add(appendValue(nil, &Txn{Groups: []Pending{{Group: "g", Offsets: []group.OffsetCommit{{}}}}}))
	f.Add(appendValue(nil, &Txn{State: PrepareCommit, Partitions: []TopicPartition{{Topic: "x"}}, Ends: []int64{9}}))
	f.Add([]byte{1})
	f.Add([]byte{})
	// A count of 2^63 partitions in a short value.
	huge := appendValue(nil, &Txn{})
	f.Add(append(huge[:len(huge)-10], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f))
	f.Fuzz(func(t *testing.T, p []byte) {
		tx, err := decodeValue("id", p)
		if err != nil {
			return
		}
		if again := appendValue(nil, tx); string(again) != string(p) {
			// Uvarints have more than one encoding; decode again to compare.
			tx2, err := decodeValue("id", again)
			if err != nil || !reflect.DeepEqual(tx, tx2) {
				t.Fatalf("round trip differs: %v", err)
			}
		}
	})
}
