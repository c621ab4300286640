package batch

import (
	"fmt"
	"hash/crc32"
)

// ProducerSum sums the records one producer id wrote to a log: how many,
// a CRC-32C of their keys and values in log order, and the offsets of
// the first and the last. The migrator compares it with what it copied
// (package server), reading where the copies are stored, so that no event
// byte leaves the nodes that hold it.
type ProducerSum struct {
	Records     int64
	Checksum    uint32
	First, Last int64 // offsets; -1 while Records is 0

	it  Iter
	dec []byte
}

// AddRecord adds one record's key and value to a running CRC-32C, as
// ProducerSum sums them.
func AddRecord(sum uint32, key, value []byte) uint32 {
	sum = crc32.Update(sum, castagnoli, key)
	return crc32.Update(sum, castagnoli, value)
}

// Add sums the records of producer pid in p, whole batches as a log
// returns them; batches below offset from, control batches and other
// producers' batches are skipped. It returns the offset after the last
// batch read.
func (s *ProducerSum) Add(p []byte, pid, from int64) (int64, error) {
	if s.Records == 0 {
		s.First, s.Last = -1, -1
	}
	next := from
	for len(p) > 0 {
		h, err := ParseHeader(p)
		if err != nil {
			return next, err
		}
		if len(p) < h.Size() {
			return next, ErrShort
		}
		raw := p[:h.Size()]
		p = p[h.Size():]
		if h.NextOffset() <= from {
			continue
		}
		next = h.NextOffset()
		if h.ProducerID != pid || h.Attributes&AttrControl != 0 {
			continue
		}
		records := raw[HeaderSize:]
		if h.Compression() != CompressionNone {
			if s.dec, err = Decompress(s.dec[:0], raw); err != nil {
				return next, err
			}
			records = s.dec
		}
		if err := s.it.ResetRecords(records, h.RecordCount); err != nil {
			return next, err
		}
		for s.it.Next() {
			r := s.it.Record()
			off := h.BaseOffset + int64(r.OffsetDelta)
			if s.Records == 0 {
				s.First = off
			}
			s.Last = off
			s.Records++
			s.Checksum = AddRecord(s.Checksum, r.Key, r.Value)
		}
		if err := s.it.Err(); err != nil {
			return next, err
		}
	}
	return next, nil
}

// sumChunk is how much SumLog reads at a time.
const sumChunk = 1 << 20

// SumLog sums the records of producer pid in a log from offset from up to
// end, reading whole batches through read (a log's Read: appending to dst
// the batches from an offset, up to about maxBytes). Records and First
// stay 0 and -1 when there are none.
func SumLog(read func(dst []byte, offset int64, maxBytes int) ([]byte, error), from, end, pid int64) (ProducerSum, error) {
	s := ProducerSum{First: -1, Last: -1}
	var buf []byte
	for off := from; off < end; {
		var err error
		if buf, err = read(buf[:0], off, sumChunk); err != nil {
			return s, err
		}
		if len(buf) == 0 {
			break
		}
		next, err := s.Add(buf, pid, off)
		if err != nil {
			return s, fmt.Errorf("at offset %d: %w", off, err)
		}
		if next <= off {
			break
		}
		off = next
	}
	return s, nil
}
