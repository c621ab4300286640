package seglog

import (
	"encoding/binary"
	"fmt"

	"github.com/sensehq/sense/batch"
)

// window is how many recent batches are remembered per producer, as in Kafka.
const window = 5

// seqEntry remembers one idempotent batch: its sequences and offsets.
type seqEntry struct {
	firstSeq, lastSeq int32
	base, last        int64
}

// producer is the idempotence state of one producer id: its epoch and its
// last (up to) five batches, oldest first.
type producer struct {
	epoch int16
	n     int
	ents  [window]seqEntry
}

func (p *producer) latest() *seqEntry { return &p.ents[p.n-1] }

func (p *producer) push(e seqEntry) {
	if p.n == window {
		copy(p.ents[:], p.ents[1:])
		p.n--
	}
	p.ents[p.n] = e
	p.n++
}

// producers maps producer id to state.
type producers map[int64]*producer

// seqDiff returns a-b in the 31-bit sequence space, in [-2^30, 2^30).
func seqDiff(a, b int32) int64 {
	d := (int64(a) - int64(b)) & (1<<31 - 1)
	if d >= 1<<30 {
		d -= 1 << 31
	}
	return d
}

// check decides what to do with an idempotent batch. It returns dup != nil
// when the batch repeats one of the remembered batches (the caller answers
// with the original offsets), or an error for a fenced epoch or a bad
// sequence. With sparse, sequences must only increase: gaps are allowed
// (a producer whose events are spread over several logs).
func (ps producers) check(h *batch.Header, sparse bool) (dup *seqEntry, err error) {
	p := ps[h.ProducerID]
	if p == nil || h.ProducerEpoch > p.epoch {
		if h.BaseSequence != 0 && !sparse {
			return nil, fmt.Errorf("%w: producer %d epoch %d is new here and must start at sequence 0, not %d",
				ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, h.BaseSequence)
		}
		return nil, nil
	}
	if h.ProducerEpoch < p.epoch {
		return nil, fmt.Errorf("%w: producer %d sent epoch %d, current is %d; a newer instance of this producer took over",
			ErrProducerFenced, h.ProducerID, h.ProducerEpoch, p.epoch)
	}
	last := h.LastSequence()
	for i := 0; i < p.n; i++ {
		if e := &p.ents[i]; e.firstSeq == h.BaseSequence && e.lastSeq == last {
			return e, nil
		}
	}
	expect := int32((int64(p.latest().lastSeq) + 1) & (1<<31 - 1))
	switch d := seqDiff(h.BaseSequence, expect); {
	case d < 0:
		return nil, fmt.Errorf("%w: producer %d sequences %d..%d were already written and are older than the last %d batches",
			ErrDuplicateSequence, h.ProducerID, h.BaseSequence, last, window)
	case d > 0 && !sparse:
		return nil, fmt.Errorf("%w: producer %d sent sequence %d, expected %d (a batch is missing)",
			ErrOutOfOrderSequence, h.ProducerID, h.BaseSequence, expect)
	}
	return nil, nil
}

// record notes an appended idempotent batch whose header already holds its
// base offset.
func (ps producers) record(h *batch.Header) {
	p := ps[h.ProducerID]
	if p == nil {
		p = &producer{epoch: h.ProducerEpoch}
		ps[h.ProducerID] = p
	}
	if h.ProducerEpoch != p.epoch {
		*p = producer{epoch: h.ProducerEpoch}
	}
	p.push(seqEntry{firstSeq: h.BaseSequence, lastSeq: h.LastSequence(), base: h.BaseOffset, last: h.LastOffset()})
}

// truncate forgets batches at or past offset. It returns the producers
// that lost batches: their windows must be refilled from the log.
func (ps producers) truncate(offset int64) map[int64]bool {
	lost := map[int64]bool{}
	for id, p := range ps {
		for p.n > 0 && p.latest().base >= offset {
			p.n--
			lost[id] = true
		}
		if lost[id] {
			delete(ps, id)
		}
	}
	return lost
}

// refill rebuilds the windows of the producers in want from batch headers
// met walking the log backwards (hs is one segment's headers in log order,
// and segments are offered newest first). It removes from want the
// producers whose window is complete.
func (ps producers) refill(want map[int64]bool, hs []batch.Header) {
	for i := len(hs) - 1; i >= 0; i-- {
		h := &hs[i]
		if !want[h.ProducerID] {
			continue
		}
		p := ps[h.ProducerID]
		if p == nil {
			p = &producer{epoch: h.ProducerEpoch}
			ps[h.ProducerID] = p
		}
		if h.ProducerEpoch != p.epoch {
			delete(want, h.ProducerID) // older epoch: the window is complete
			continue
		}
		copy(p.ents[1:], p.ents[:p.n])
		p.ents[0] = seqEntry{firstSeq: h.BaseSequence, lastSeq: h.LastSequence(), base: h.BaseOffset, last: h.LastOffset()}
		p.n++
		if p.n == window {
			delete(want, h.ProducerID)
		}
	}
}

// Snapshot encoding, inside the checkpoint file:
//
//	uint32 count, then per producer:
//	int64 id, int16 epoch, uint8 n, then n × (int32 firstSeq, int32 lastSeq, int64 base, int64 last)
const seqEntrySize = 24

func (ps producers) appendTo(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(ps)))
	for id, p := range ps {
		b = binary.BigEndian.AppendUint64(b, uint64(id))
		b = binary.BigEndian.AppendUint16(b, uint16(p.epoch))
		b = append(b, byte(p.n))
		for i := 0; i < p.n; i++ {
			e := &p.ents[i]
			b = binary.BigEndian.AppendUint32(b, uint32(e.firstSeq))
			b = binary.BigEndian.AppendUint32(b, uint32(e.lastSeq))
			b = binary.BigEndian.AppendUint64(b, uint64(e.base))
			b = binary.BigEndian.AppendUint64(b, uint64(e.last))
		}
	}
	return b
}

func decodeProducers(b []byte) (producers, []byte, error) {
	if len(b) < 4 {
		return nil, nil, fmt.Errorf("producer snapshot: %d bytes, need 4", len(b))
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	if uint64(n) > uint64(len(b)/11) { // each producer takes at least 11 bytes
		return nil, nil, fmt.Errorf("producer snapshot: count %d cannot fit in %d bytes", n, len(b))
	}
	ps := make(producers, n)
	for i := uint32(0); i < n; i++ {
		if len(b) < 11 {
			return nil, nil, fmt.Errorf("producer snapshot: truncated at producer %d", i)
		}
		id := int64(binary.BigEndian.Uint64(b))
		p := &producer{epoch: int16(binary.BigEndian.Uint16(b[8:])), n: int(b[10])}
		b = b[11:]
		if p.n > window || len(b) < p.n*seqEntrySize {
			return nil, nil, fmt.Errorf("producer snapshot: producer %d has %d entries, %d bytes left", id, p.n, len(b))
		}
		for j := 0; j < p.n; j++ {
			p.ents[j] = seqEntry{
				firstSeq: int32(binary.BigEndian.Uint32(b)),
				lastSeq:  int32(binary.BigEndian.Uint32(b[4:])),
				base:     int64(binary.BigEndian.Uint64(b[8:])),
				last:     int64(binary.BigEndian.Uint64(b[16:])),
			}
			b = b[seqEntrySize:]
		}
		if p.n > 0 {
			ps[id] = p
		}
	}
	return ps, b, nil
}
