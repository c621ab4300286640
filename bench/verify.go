package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/sensehq/sense/event"
)

// HeaderSize is the size of the header at the start of every event value:
// run id (8 bytes), sequence number (8), intended send time in unix
// nanoseconds (8) and priority (1), all big-endian.
const HeaderSize = 25

// Header is the measurement header carried by a benchmark event's value.
type Header struct {
	RunID    uint64
	Seq      uint64
	Intended time.Time
	Priority event.Priority
}

// ErrNotBenchEvent is wrapped by DecodeHeader's error for a value too
// short to carry a header.
var ErrNotBenchEvent = errors.New("bench: value carries no benchmark header")

// AppendValue appends to dst an event value of exactly size bytes: h's
// header, then filler derived from the sequence number. size must be at
// least HeaderSize.
func AppendValue(dst []byte, h Header, size int) ([]byte, error) {
	if size < HeaderSize {
		return dst, fmt.Errorf("bench: event size %d bytes: must be at least %d (the header)", size, HeaderSize)
	}
	if !h.Priority.Valid() {
		return dst, fmt.Errorf("bench: priority %d of event %d: want 0 (low), 1 (medium) or 2 (critical)", uint8(h.Priority), h.Seq)
	}
	dst = binary.BigEndian.AppendUint64(dst, h.RunID)
	dst = binary.BigEndian.AppendUint64(dst, h.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.Intended.UnixNano()))
	dst = append(dst, byte(h.Priority))
	fill := byte(h.Seq)
	n := len(dst)
	dst = slices.Grow(dst, size-HeaderSize)[:n+size-HeaderSize]
	tail := dst[n:]
	for i := range tail {
		tail[i] = fill + byte(HeaderSize+i)
	}
	return dst, nil
}

// DecodeHeader reads the header at the start of v.
func DecodeHeader(v []byte) (Header, error) {
	if len(v) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, want at least %d", ErrNotBenchEvent, len(v), HeaderSize)
	}
	return Header{
		RunID:    binary.BigEndian.Uint64(v[0:8]),
		Seq:      binary.BigEndian.Uint64(v[8:16]),
		Intended: time.Unix(0, int64(binary.BigEndian.Uint64(v[16:24]))),
		Priority: event.Priority(v[24]),
	}, nil
}

// Verifier checks that every acknowledged event of one run is consumed
// exactly once, with the bytes that were sent. The producer side calls
// Acked or Failed once per event sent; the consumer side calls Consumed
// for every record read. Verify compares the two at the end. It is safe
// for concurrent use; its memory is one bit and one counter per planned
// event, plus the checksums of failed events.
type Verifier struct {
	runID    uint64
	n        uint64
	acked    []atomic.Uint32 // bitmap
	counts   []atomic.Uint32 // receptions per sequence
	ackSum   atomic.Uint64
	firstSum atomic.Uint64 // sum over first receptions, any ack state
	foreign  atomic.Int64
	mu       sync.Mutex
	failed   map[uint64]uint64 // seq -> checksum of events not acknowledged
}

// NewVerifier returns a verifier for run runID of at most n events,
// numbered 0..n-1.
func NewVerifier(runID uint64, n uint64) *Verifier {
	return &Verifier{
		runID:  runID,
		n:      n,
		acked:  make([]atomic.Uint32, (n+31)/32),
		counts: make([]atomic.Uint32, n),
		failed: make(map[uint64]uint64),
	}
}

// Checksum is the per-event checksum the verifier sums (xxhash64 of the
// whole value).
func Checksum(value []byte) uint64 { return xxhash.Sum64(value) }

// Acked records that event seq, whose value as sent had checksum sum
// (Checksum), was acknowledged.
func (v *Verifier) Acked(seq uint64, sum uint64) error {
	if seq >= v.n {
		return fmt.Errorf("bench: acknowledged sequence %d out of range: the run plans %d events", seq, v.n)
	}
	bit := uint32(1) << (seq % 32)
	if old := v.acked[seq/32].Or(bit); old&bit != 0 {
		return fmt.Errorf("bench: sequence %d acknowledged twice", seq)
	}
	v.ackSum.Add(sum)
	return nil
}

// Failed records that event seq, whose value had checksum sum, was not
// acknowledged (its result was an error). Should it be consumed anyway
// (stored before the error), it counts as unacknowledged-consumed, not as
// a duplicate.
func (v *Verifier) Failed(seq uint64, sum uint64) {
	v.mu.Lock()
	v.failed[seq] = sum
	v.mu.Unlock()
}

// Consumed records one reception of value. Values of other runs, values
// without a header and sequence numbers beyond the plan count as foreign.
func (v *Verifier) Consumed(value []byte) {
	h, err := DecodeHeader(value)
	if err != nil || h.RunID != v.runID || h.Seq >= v.n {
		v.foreign.Add(1)
		return
	}
	if v.counts[h.Seq].Add(1) == 1 {
		v.firstSum.Add(Checksum(value))
	}
}

// Verdict is what Verify found.
type Verdict struct {
	// Acknowledged events, and how many of them were consumed (at least
	// once).
	Acknowledged, Consumed int64
	// Lost are acknowledged events never consumed; Duplicated acknowledged
	// events consumed more than once, and ExtraCopies the surplus
	// receptions of those.
	Lost, Duplicated, ExtraCopies int64
	// UnackedConsumed are events whose result was an error (or that never
	// had a result) and that were consumed anyway.
	UnackedConsumed int64
	// Foreign are receptions that were not events of this run.
	Foreign int64
	// AckChecksum sums Checksum over the acknowledged events as sent;
	// ConsumeChecksum over the acknowledged events as first consumed. They
	// are equal when nothing was lost or altered.
	AckChecksum, ConsumeChecksum uint64
}

// OK reports whether every acknowledged event was consumed exactly once
// with the bytes that were sent.
func (d Verdict) OK() bool {
	return d.Lost == 0 && d.Duplicated == 0 && d.AckChecksum == d.ConsumeChecksum
}

// Err is nil when OK, and otherwise says what went wrong.
func (d Verdict) Err() error {
	if d.OK() {
		return nil
	}
	var errs []error
	if d.Lost > 0 {
		errs = append(errs, fmt.Errorf("%d of %d acknowledged events lost (never consumed)", d.Lost, d.Acknowledged))
	}
	if d.Duplicated > 0 {
		errs = append(errs, fmt.Errorf("%d acknowledged events consumed more than once (%d extra copies)", d.Duplicated, d.ExtraCopies))
	}
	if d.AckChecksum != d.ConsumeChecksum {
		errs = append(errs, fmt.Errorf("checksum of acknowledged events %016x as sent, %016x as consumed", d.AckChecksum, d.ConsumeChecksum))
	}
	return fmt.Errorf("bench: verification failed: %w", errors.Join(errs...))
}

// Verify compares acknowledgements with receptions. Call it once every
// result has been delivered; it may be called again after more
// receptions.
func (v *Verifier) Verify() Verdict {
	var d Verdict
	d.AckChecksum = v.ackSum.Load()
	consumeSum := v.firstSum.Load()
	v.mu.Lock()
	defer v.mu.Unlock()
	for seq := range v.n {
		c := int64(v.counts[seq].Load())
		if v.acked[seq/32].Load()&(1<<(seq%32)) == 0 {
			if c > 0 {
				d.UnackedConsumed++
				// Take its first reception out of the consumed sum; its
				// bytes are those sent, unless it was altered, which then
				// shows as a checksum mismatch.
				consumeSum -= v.failed[seq]
			}
			continue
		}
		d.Acknowledged++
		switch {
		case c == 0:
			d.Lost++
		case c > 1:
			d.Duplicated++
			d.ExtraCopies += c - 1
			fallthrough
		default:
			d.Consumed++
		}
	}
	d.ConsumeChecksum = consumeSum
	d.Foreign = v.foreign.Load()
	return d
}

// Pending returns how many acknowledged events have not been consumed yet
// (the Lost of a Verify now). A run drains until it is zero.
func (v *Verifier) Pending() int64 {
	var n int64
	for seq := range v.n {
		if v.acked[seq/32].Load()&(1<<(seq%32)) != 0 && v.counts[seq].Load() == 0 {
			n++
		}
	}
	return n
}
