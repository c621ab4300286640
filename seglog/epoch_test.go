package seglog

import (
	"errors"
	"fmt"
	"testing"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/vfs"
)

// KIP-890 part 2: a transaction's marker carries the producer epoch its
// EndTxn bumped, and the producer's next transaction starts there at
// sequence 0. The log takes the batches of the new epoch from sequence 0
// (and their retries as repeats), and fences the old epoch once the new
// one has written. The marker itself holds no sequence: it is not checked
// against the producer's window, nor does it change it.
func TestEpochBumpedByMarker(t *testing.T) {
	l := openT(t, t.TempDir(), Options{FS: vfs.NewMem()})
	defer l.Close()
	const pid = 9
	txnBatch := func(tag string, epoch int16, seq int32) []byte {
		b := mkBatch(tag, 2, 20, pid, seq)
		b[batch.OffProducerEpoch], b[batch.OffProducerEpoch+1] = byte(epoch>>8), byte(epoch)
		b[batch.OffAttributes+1] |= byte(batch.AttrTransactional)
		binaryFix(b)
		return b
	}
	for i, seq := range []int32{0, 2, 4} {
		if _, err := l.Append(txnBatch(fmt.Sprint(i), 0, seq)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Append(batch.TxnMarker(1_700_000_000_000, batch.Marker{ProducerID: pid, ProducerEpoch: 1, Commit: true})); err != nil {
		t.Fatalf("marker at the bumped epoch: %v", err)
	}
	if _, err := l.Append(txnBatch("e1", 1, 2)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("the bumped epoch not from sequence 0: %v", err)
	}
	base, err := l.Append(txnBatch("e1", 1, 0))
	if err != nil {
		t.Fatalf("the bumped epoch from sequence 0: %v", err)
	}
	if again, err := l.Append(txnBatch("e1", 1, 0)); err != nil || again != base {
		t.Fatalf("a retry at the bumped epoch: base %d err %v, want %d", again, err, base)
	}
	if _, err := l.Append(txnBatch("late", 0, 6)); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("the old epoch after the new one wrote: %v", err)
	}
}
