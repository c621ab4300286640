package server

import (
	"bytes"
	"errors"
	"testing"

	"github.com/sensehq/sense/txn"
)

// FuzzTxnAdd: the decoders of the transaction add frames take any bytes
// without panicking, check every length against what is there, and what
// they accept as a request encodes back to the same bytes; an answer is
// an error unless its outcome says added.
func FuzzTxnAdd(f *testing.F) {
	f.Add(encodeTxnAdd(txnAddRequest{id: 7, txnID: "tx-1", pid: 42, epoch: 3,
		parts: []txn.TopicPartition{{Topic: "payments", Partition: 0}, {Topic: "orders", Partition: 5}}}))
	f.Add(encodeTxnAddResp(7, nil))
	f.Add(encodeTxnAddResp(8, txn.ErrFenced))
	f.Add(encodeTxnAddResp(9, errors.New("disk full")))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff})                                          // an id claiming 64 KiB
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 'x', 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0xff, 0xff}) // 65535 partitions
	f.Fuzz(func(t *testing.T, p []byte) {
		if r, err := decodeTxnAdd(p); err == nil {
			if again := encodeTxnAdd(r); !bytes.Equal(again, p) {
				t.Fatalf("%x decodes to %+v, which encodes as %x", p, r, again)
			}
		}
		if _, answer, err := decodeTxnAddResp(p); err == nil && (answer == nil) != (p[8] == txnAddOK) {
			t.Fatalf("%x: outcome %d decodes as %v", p, p[8], answer)
		}
	})
}

// An answer carries the coordinator's error as the txn package's, so the
// Kafka edge maps it to the same code as a local one.
func TestTxnAddAnswer(t *testing.T) {
	for _, want := range []error{nil, txn.ErrNotCoordinator, txn.ErrFenced, txn.ErrInvalidState, txn.ErrConcurrent, txn.ErrInvalidMapping} {
		id, got, err := decodeTxnAddResp(encodeTxnAddResp(5, want))
		if err != nil || id != 5 {
			t.Fatalf("%v: id %d, %v", want, id, err)
		}
		if want == nil && got != nil || want != nil && !errors.Is(got, want) {
			t.Fatalf("sent %v, got %v", want, got)
		}
	}
	_, got, err := decodeTxnAddResp(encodeTxnAddResp(5, errors.New("disk full")))
	if err != nil || got == nil || !bytes.Contains([]byte(got.Error()), []byte("disk full")) {
		t.Fatalf("an other error: %v, %v", got, err)
	}
	r, err := decodeTxnAdd(encodeTxnAdd(txnAddRequest{id: 1, txnID: "t", pid: 9, epoch: -1, parts: []txn.TopicPartition{{Topic: "a", Partition: 2}}}))
	if err != nil || r.txnID != "t" || r.pid != 9 || r.epoch != -1 || len(r.parts) != 1 || r.parts[0] != (txn.TopicPartition{Topic: "a", Partition: 2}) {
		t.Fatalf("round trip: %+v, %v", r, err)
	}
}
