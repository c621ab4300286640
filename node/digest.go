package node

import (
	"fmt"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/result"
)

// Digest is what a buffer holds of one producer's records from an offset
// (batch.ProducerSum): Records of them, Checksum over their keys and
// values in log order, at offsets First to Last (-1 when none), read up
// to End, the high watermark of the replica that summed them.
type Digest struct {
	Records     int64
	Checksum    uint32
	First, Last int64
	End         int64
}

// Digester is implemented by a Buffer that sums records where its data
// lives (a replicated buffer: on a node that holds a replica of it, so
// that no event byte leaves its hub's nodes).
type Digester interface {
	Digest(from, pid int64) (Digest, error)
}

// Digest sums the records producer pid wrote to a partition from offset
// from; from < 0 asks only for End. The migrator reads its copies back
// with it.
func (n *Node) Digest(pipeline string, partition int32, from, pid int64) (Digest, error) {
	b, code := n.buffer(pipeline, partition)
	if code != result.OK {
		return Digest{}, result.New(code, fmt.Sprintf("digest of %s/%d", pipeline, partition))
	}
	if d, ok := b.(Digester); ok {
		return d.Digest(from, pid)
	}
	end := b.HighWatermark()
	d := Digest{First: -1, Last: -1, End: end}
	if from < 0 {
		return d, nil
	}
	sum, err := batch.SumLog(b.Read, max(from, b.StartOffset()), end, pid)
	if err != nil {
		return d, fmt.Errorf("digest of %s/%d: %w", pipeline, partition, err)
	}
	d.Records, d.Checksum, d.First, d.Last = sum.Records, sum.Checksum, sum.First, sum.Last
	return d, nil
}
