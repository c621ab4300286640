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

// digestChunk is how much one read of a local digest takes.
const digestChunk = 1 << 20

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
	var s batch.ProducerSum
	var buf []byte
	for off := max(from, b.StartOffset()); off < end; {
		var err error
		if buf, err = b.Read(buf[:0], off, digestChunk); err != nil {
			return d, err
		}
		if len(buf) == 0 {
			break
		}
		next, err := s.Add(buf, pid, off)
		if err != nil {
			return d, fmt.Errorf("digest of %s/%d at %d: %w", pipeline, partition, off, err)
		}
		if next <= off {
			break
		}
		off = next
	}
	if s.Records > 0 {
		d.Records, d.Checksum, d.First, d.Last = s.Records, s.Checksum, s.First, s.Last
	}
	return d, nil
}
