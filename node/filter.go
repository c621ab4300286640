package node

import (
	"fmt"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/jurisdiction"
)

// MaskFilter removes from record batches the records a reader may not
// receive, by the sense.j mask each stored record carries. A node serving
// another node's reader (a remote read) filters with the jurisdictions of
// that node's hubs, so that no event byte reaches a node outside its mask.
//
// Every batch keeps its place: a batch whose records all pass is kept as
// it is (its bytes, compression and CRC); one that loses records is
// re-encoded, uncompressed, with the same base offset, last offset delta
// and producer fields, so offsets after it are unchanged; one that loses
// them all is kept as an empty batch (its header, no records), which
// readers skip as they skip a batch emptied by compaction. A record
// without a valid mask header is removed: where it may rest cannot be
// proven. Control batches pass.
//
// The zero value is ready; a MaskFilter is not safe for concurrent use.
type MaskFilter struct {
	dec []byte
	it  batch.Iter
	rb  batch.Rebuilder
	// keep marks, for the batch at hand, which of its records pass.
	keep []bool
}

// Filter appends to dst the batches of src with only the records whose
// mask allows passes. It fails on a batch that does not parse.
func (f *MaskFilter) Filter(dst, src []byte, allows func(jurisdiction.Mask) bool) ([]byte, error) {
	for p := src; len(p) > 0; {
		h, err := batch.ParseHeader(p)
		if err != nil || len(p) < h.Size() {
			return dst, fmt.Errorf("node: filtering batches by mask: a batch does not parse (%d bytes left): %v", len(p), err)
		}
		b := p[:h.Size()]
		p = p[h.Size():]
		if h.Attributes&batch.AttrControl != 0 {
			dst = append(dst, b...)
			continue
		}
		records := b[batch.HeaderSize:]
		if h.Compression() != batch.CompressionNone {
			if f.dec, err = batch.Decompress(f.dec[:0], b); err != nil {
				return dst, fmt.Errorf("node: filtering the batch at offset %d: %w", h.BaseOffset, err)
			}
			records = f.dec
		}
		if err := f.it.ResetRecords(records, h.RecordCount); err != nil {
			return dst, fmt.Errorf("node: filtering the batch at offset %d: %w", h.BaseOffset, err)
		}
		f.keep = f.keep[:0]
		all := true
		for f.it.Next() {
			m, ok := storedMask(f.it.Record())
			pass := ok && allows(m)
			f.keep = append(f.keep, pass)
			all = all && pass
		}
		if err := f.it.Err(); err != nil {
			return dst, fmt.Errorf("node: filtering the batch at offset %d: %w", h.BaseOffset, err)
		}
		if all {
			dst = append(dst, b...)
			continue
		}
		f.rb.Reset(&h)
		f.rb.Grow(len(records))
		if err := f.it.ResetRecords(records, h.RecordCount); err != nil {
			return dst, err
		}
		for i := 0; f.it.Next(); i++ {
			if f.keep[i] {
				f.rb.Add(f.it.Record(), nil)
			}
		}
		dst = append(dst, f.rb.Finish()...)
	}
	return dst, nil
}
