package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/seglog"
)

// Transactions in a partition (Kafka's KIP-98, coordinated by package txn).
// A transactional producer's batches carry the transactional attribute;
// the coordinator ends each transaction with a marker in every partition it
// wrote to (AppendMarker): a control batch of the producer's id whose
// record says commit or abort. Until its marker, a transaction is open.
//
// The last stable offset (LSO) of a partition is the first offset of its
// oldest open transaction, else its high watermark: below it every record
// is decided. Read-committed readers read below it only, and skip the
// records of aborted transactions: Kafka clients with the aborted list
// Fetch gives them, Sense's own readers because Fetch empties those
// batches for them.
//
// The node keeps, per buffer, a txnIndex of the open transactions and the
// aborted ones, built from the log itself: it reads the batches it has not
// indexed yet, up to the high watermark, whenever it is asked (the first
// question after a start reads the whole log's batches once). So it is
// always exactly the log's, after a crash, a truncation or a failover
// alike, and never trails an acknowledged batch.

// AbortedTxn is an aborted transaction of a partition: its producer, its
// first offset and the offset of its abort marker.
type AbortedTxn struct {
	ProducerID  int64
	FirstOffset int64
	LastOffset  int64
}

// txnIndex is the transaction state of one buffer (see above).
type txnIndex struct {
	mu      sync.Mutex
	next    int64             // the log is indexed below this offset
	open    map[int64]openTxn // producer id -> its open transaction
	aborted []AbortedTxn      // by LastOffset
}

// openTxn is a producer's open transaction in a buffer: its first offset
// and the producer epoch of its first batch.
type openTxn struct {
	first int64
	epoch int16
}

// txnFreeBuffer is a Buffer that knows an offset from which it holds no
// transactional or control batch (seglog.Log.TxnFreeFrom).
type txnFreeBuffer interface {
	TxnFreeFrom() int64
}

// txnIndexReadBytes bounds one read of the index's catch-up.
const txnIndexReadBytes = 1 << 20

var readBufs = sync.Pool{New: func() any { return new([]byte) }}

// txnIndex returns buffer l's index.
func (n *Node) txnIndex(l Buffer) *txnIndex {
	if x, ok := n.txnIdx.Load(l); ok {
		return x.(*txnIndex)
	}
	x, _ := n.txnIdx.LoadOrStore(l, &txnIndex{next: -1, open: map[int64]openTxn{}})
	return x.(*txnIndex)
}

// catchUp indexes l up to its high watermark and returns the last stable
// offset. The caller holds x.mu.
func (x *txnIndex) catchUp(l Buffer) (int64, error) {
	start := l.StartOffset()
	if x.next < start {
		// A new index, or the log's start moved past it (a trim, a
		// snapshot): transactions that began below the start are gone.
		x.next = start
		clear(x.open)
	}
	if i := slices.IndexFunc(x.aborted, func(a AbortedTxn) bool { return a.LastOffset >= start }); i > 0 {
		x.aborted = slices.Delete(x.aborted, 0, i)
	} else if i < 0 {
		x.aborted = x.aborted[:0]
	}
	hw := l.HighWatermark()
	// Past the buffer's TxnFreeFrom nothing is transactional: the index
	// reads up to it only (a log without transactions is never read).
	end := hw
	if tf, ok := l.(txnFreeBuffer); ok {
		end = min(hw, max(tf.TxnFreeFrom(), x.next))
	}
	if x.next < end {
		bp := readBufs.Get().(*[]byte)
		defer readBufs.Put(bp)
		for x.next < end {
			buf, err := l.Read((*bp)[:0], x.next, txnIndexReadBytes)
			*bp = buf[:0]
			if errors.Is(err, seglog.ErrOffsetOutOfRange) && l.StartOffset() > x.next {
				x.next = l.StartOffset()
				clear(x.open)
				continue
			}
			if err != nil {
				return -1, err
			}
			if len(buf) == 0 {
				break
			}
			if err := x.index(buf); err != nil {
				return -1, err
			}
		}
		if cap(*bp) > 2*txnIndexReadBytes {
			*bp = nil
		}
	}
	if x.next >= end {
		x.next = max(x.next, hw)
	}
	lso := x.next
	for _, o := range x.open {
		lso = min(lso, o.first)
	}
	return lso, nil
}

// index notes the transactional batches and markers of whole batches read
// at x.next.
func (x *txnIndex) index(p []byte) error {
	for len(p) > 0 {
		h, err := batch.ParseHeader(p)
		if err != nil || h.Size() > len(p) {
			return fmt.Errorf("node: indexing transactions at offset %d: a batch does not parse: %v", x.next, err)
		}
		b := p[:h.Size()]
		p = p[h.Size():]
		if h.NextOffset() <= x.next {
			continue // the start of the batch holding x.next, already indexed
		}
		switch {
		case h.Attributes&batch.AttrControl != 0:
			m, ok, err := batch.ParseMarker(b)
			if err != nil {
				return fmt.Errorf("node: indexing transactions: the control batch at offset %d: %w", h.BaseOffset, err)
			}
			if ok {
				if o, open := x.open[m.ProducerID]; open {
					delete(x.open, m.ProducerID)
					if !m.Commit {
						x.aborted = append(x.aborted, AbortedTxn{ProducerID: m.ProducerID, FirstOffset: o.first, LastOffset: h.BaseOffset})
					}
				}
			}
		case h.Attributes&batch.AttrTransactional != 0 && h.ProducerID >= 0:
			if _, open := x.open[h.ProducerID]; !open {
				x.open[h.ProducerID] = openTxn{first: h.BaseOffset, epoch: h.ProducerEpoch}
			}
		}
		x.next = h.NextOffset()
	}
	return nil
}

// abortedIn returns the aborted transactions that hold offsets in [from,
// to). The caller holds x.mu.
func (x *txnIndex) abortedIn(dst []AbortedTxn, from, to int64) []AbortedTxn {
	i, _ := slices.BinarySearchFunc(x.aborted, from, func(a AbortedTxn, off int64) int {
		switch {
		case a.LastOffset < off:
			return -1
		case a.LastOffset > off:
			return 1
		}
		return 0
	})
	for _, a := range x.aborted[i:] {
		if a.FirstOffset < to {
			dst = append(dst, a)
		}
	}
	return dst
}

// stable returns buffer l's last stable offset, and with want the aborted
// transactions that hold offsets in [from, to).
//
// For a buffer held on other nodes, a node that holds it answers the last
// stable offset; the aborted transactions come only with the batches of a
// read (FetchIsolated with ReadCommittedKafka), so want is refused with
// NOT_LEADER: Kafka clients read from the leader (docs/kafka.md,
// "Transactions").
func (n *Node) stable(l Buffer, from, to int64, want bool) (int64, []AbortedTxn, error) {
	if rr, ok := l.(RemoteReader); ok {
		if want {
			return -1, nil, result.New(result.NotLeader, "the aborted transactions of a buffer held on other nodes come with its batches only: read it from one of its replicas")
		}
		ctx, cancel := context.WithTimeout(context.Background(), remoteOffsetsTimeout)
		defer cancel()
		r, err := rr.ReadFrom(ctx, Latest, 0, 0, ReadCommittedKafka)
		return r.LSO, nil, err
	}
	x := n.txnIndex(l)
	x.mu.Lock()
	defer x.mu.Unlock()
	lso, err := x.catchUp(l)
	if err != nil || !want {
		return lso, nil, err
	}
	return lso, x.abortedIn(nil, from, to), nil
}

// StableOffset returns a partition's last stable offset: the first offset
// of its oldest open transaction, else its high watermark.
func (n *Node) StableOffset(pipeline string, partition int32) (int64, result.Code) {
	l, code := n.buffer(pipeline, partition)
	if code != result.OK {
		return -1, code
	}
	lso, _, err := n.stable(l, 0, 0, false)
	if err != nil {
		return -1, n.readCode(pipeline, partition, err)
	}
	return lso, result.OK
}

// OpenTransaction reports whether producer pid has a transaction open in a
// partition of this node: a transactional batch with no marker after it
// (below the high watermark), and the offset and producer epoch of its
// first batch. A partition that does not exist holds none. For a buffer
// held on other nodes it answers an error (the coordinator asks only on a
// node alone).
func (n *Node) OpenTransaction(pipeline string, partition int32, pid int64) (open bool, first int64, epoch int16, err error) {
	l, err := n.localBuffer(pipeline, partition, "which transactions are open")
	if l == nil || err != nil {
		return false, -1, -1, err
	}
	x := n.txnIndex(l)
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, err := x.catchUp(l); err != nil {
		return false, -1, -1, err
	}
	o, open := x.open[pid]
	if !open {
		return false, -1, -1, nil
	}
	return true, o.first, o.epoch, nil
}

// NextOffset returns the offset the next batch appended to a partition of
// this node takes; -1 and nil for a partition that does not exist, an
// error for a buffer held on other nodes.
func (n *Node) NextOffset(pipeline string, partition int32) (int64, error) {
	l, err := n.localBuffer(pipeline, partition, "its next offset")
	if l == nil || err != nil {
		return -1, err
	}
	return l.NextOffset(), nil
}

// localBuffer returns a partition's buffer held on this node (what names
// the question in an error); nil and nil for a partition that does not
// exist.
func (n *Node) localBuffer(pipeline string, partition int32, what string) (Buffer, error) {
	l, code := n.buffer(pipeline, partition)
	switch code {
	case result.OK:
	case result.UnknownPipeline, result.UnknownPartition:
		return nil, nil
	default:
		return nil, result.New(code, fmt.Sprintf("node: %s of %s/%d", what, pipeline, partition))
	}
	if _, ok := l.(RemoteReader); ok {
		return nil, result.New(result.NotLeader, fmt.Sprintf("node: %s/%d is held on other nodes: %s is known at its leader", pipeline, partition, what))
	}
	return l, nil
}

// AbortedTransactions returns a partition's last stable offset and its
// aborted transactions that hold offsets in [from, to): a Kafka
// read_committed fetch's list, by which the client drops their records.
func (n *Node) AbortedTransactions(pipeline string, partition int32, from, to int64) (int64, []AbortedTxn, result.Code) {
	l, code := n.buffer(pipeline, partition)
	if code != result.OK {
		return -1, nil, code
	}
	lso, aborted, err := n.stable(l, from, to, true)
	if err != nil {
		return -1, nil, n.readCode(pipeline, partition, err)
	}
	return lso, aborted, result.OK
}

// AppendMarker writes a transaction marker to a partition and returns once
// it is durable. Markers are the broker's to write (AppendRaw refuses
// control batches from producers): package txn's coordinator calls this.
// On a cluster node that does not lead the partition, the marker goes to
// its leader. A partition that no longer exists needs no marker: nil.
func (n *Node) AppendMarker(ctx context.Context, pipeline string, partition int32, m batch.Marker) error {
	ack, err := n.startMarker(pipeline, partition, m)
	if err != nil || ack == nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		_, err := ack.Wait()
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("node: write the transaction marker to %s/%d: %w", pipeline, partition, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("node: write the transaction marker to %s/%d: %w", pipeline, partition, ctx.Err())
	}
}

// StartMarker is AppendMarker without the wait: it appends the marker and
// returns its Ack, which resolves once the marker is durable (a later
// append's group commit covers it, or the Ack's Wait runs one). A
// partition that no longer exists needs no marker: a nil Ack, and an Ack
// whose partition is deleted before the marker is durable resolves
// without an error.
func (n *Node) StartMarker(pipeline string, partition int32, m batch.Marker) (Ack, error) {
	ack, err := n.startMarker(pipeline, partition, m)
	if ack == nil {
		return nil, err
	}
	return &markerAck{Ack: ack, n: n, pipeline: pipeline, partition: partition}, nil
}

// markerAck is the Ack of a marker (StartMarker).
type markerAck struct {
	Ack
	n         *Node
	pipeline  string
	partition int32
}

// Wait is the Ack's, but a marker whose partition was deleted meanwhile
// needs nothing more: it resolves without an error.
func (a *markerAck) Wait() (int64, error) {
	off, err := a.Ack.Wait()
	if err == nil {
		return off, nil
	}
	switch _, _, _, code := a.n.resolve(a.n.st.Load(), a.pipeline, a.partition); code {
	case result.UnknownPipeline, result.UnknownPartition:
		return -1, nil
	}
	return off, fmt.Errorf("node: write the transaction marker to %s/%d: %w", a.pipeline, a.partition, err)
}

func (n *Node) startMarker(pipeline string, partition int32, m batch.Marker) (Ack, error) {
	p, partition, _, code := n.resolve(n.st.Load(), pipeline, partition)
	switch code {
	case result.UnknownPipeline, result.UnknownPartition:
		return nil, nil
	}
	if p.refused != nil {
		return nil, p.refused.err
	}
	ack, err := p.bufs[partition].Append(batch.TxnMarker(time.Now().UnixMilli(), m), AppendChecked)
	if err != nil {
		return nil, fmt.Errorf("node: write the transaction marker to %s/%d: %w", pipeline, partition, err)
	}
	return ack, nil
}

// Isolation says what a read returns of transactions.
type Isolation uint8

const (
	// ReadCommitted returns only what lies below the last stable offset,
	// with the aborted transactions' batches emptied (their header, no
	// records), so that a reader that skips empty and control batches
	// sees committed records only. The default of Sense's own readers.
	ReadCommitted Isolation = iota
	// ReadCommittedKafka returns only what lies below the last stable
	// offset, aborted batches as they are: a Kafka read_committed client
	// drops them itself, by the aborted list (AbortedTransactions).
	ReadCommittedKafka
	// ReadUncommitted returns everything up to the high watermark.
	ReadUncommitted
)

// Isolate applies iso to whole batches read at offset from l, a buffer
// this node holds (a replica it serves to a node that holds none, as
// FetchIsolated applies it to its own readers), in place: it cuts them at
// the last stable offset and, for ReadCommitted, empties the aborted
// transactions' batches. It returns the batches kept, the last stable
// offset and, for ReadCommittedKafka, the aborted transactions that hold
// offsets in the batches kept, the list a Kafka fetch answers with them.
func (n *Node) Isolate(l Buffer, iso Isolation, b []byte, offset int64) ([]byte, int64, []AbortedTxn, error) {
	if iso == ReadUncommitted {
		return b, l.HighWatermark(), nil, nil
	}
	kept, lso, aborted, err := n.isolate(l, iso, b, 0, offset)
	if err != nil || iso != ReadCommittedKafka {
		return kept, lso, nil, err
	}
	end := batchesEnd(kept)
	aborted = slices.DeleteFunc(aborted, func(a AbortedTxn) bool { return a.FirstOffset >= end })
	return kept, lso, aborted, nil
}

// BufferStableOffset returns the last stable offset of l, a buffer this
// node holds.
func (n *Node) BufferStableOffset(l Buffer) (int64, error) {
	lso, _, err := n.stable(l, 0, 0, false)
	return lso, err
}

// batchesEnd returns the offset after the last of whole batches b (-1
// when there are none).
func batchesEnd(b []byte) int64 {
	end := int64(-1)
	for len(b) > 0 {
		h, err := batch.ParseHeader(b)
		if err != nil || h.Size() > len(b) {
			break
		}
		end = h.NextOffset()
		b = b[h.Size():]
	}
	return end
}

// committed cuts batches read at offset (from a local buffer) at the last
// stable offset and, for ReadCommitted, empties the aborted transactions'
// batches. It returns the batches kept (in place, or appended to dst's
// start).
func (n *Node) committed(l Buffer, iso Isolation, dst []byte, start int, offset int64) ([]byte, error) {
	out, _, _, err := n.isolate(l, iso, dst, start, offset)
	return out, err
}

// isolate is committed; it also returns the last stable offset and the
// aborted transactions that hold offsets in the batches read.
func (n *Node) isolate(l Buffer, iso Isolation, dst []byte, start int, offset int64) ([]byte, int64, []AbortedTxn, error) {
	read := dst[start:]
	end := offset
	for p := read; len(p) > 0; {
		h, err := batch.ParseHeader(p)
		if err != nil || h.Size() > len(p) {
			return dst[:start], -1, nil, fmt.Errorf("node: a batch read does not parse: %v", err)
		}
		end = h.NextOffset()
		p = p[h.Size():]
	}
	lso, aborted, err := n.stable(l, offset, end, true)
	if err != nil {
		return dst[:start], -1, nil, err
	}
	keep := 0 // bytes of read kept
	out := read[:0]
	var emptied []byte
	for p := read; len(p) > 0; {
		h, _ := batch.ParseHeader(p)
		b := p[:h.Size()]
		p = p[h.Size():]
		if h.BaseOffset >= lso {
			break
		}
		if iso == ReadCommitted && h.Attributes&(batch.AttrTransactional|batch.AttrControl) == batch.AttrTransactional &&
			slices.ContainsFunc(aborted, func(a AbortedTxn) bool {
				return a.ProducerID == h.ProducerID && a.FirstOffset <= h.BaseOffset && h.BaseOffset < a.LastOffset
			}) {
			emptied = batch.Emptied(emptied[:0], b)
			out = append(out[:keep], emptied...)
		} else {
			out = append(out[:keep], b...)
		}
		keep = len(out)
	}
	return dst[:start+keep], lso, aborted, nil
}
