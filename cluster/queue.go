package cluster

import "encoding/binary"

const (
	// smallPayload: a payload up to this size is copied into the queue's
	// blocks behind its header, so that many small frames (heartbeats,
	// acks) go out as a few contiguous runs of bytes; a larger one is kept
	// by reference and spliced in when the queue is written.
	smallPayload = 2 << 10
	// Block sizes: MaxQueueBytes/16, within these bounds. A block holds
	// at least one header and small payload.
	minBlock = 4 << 10
	maxBlock = 64 << 10
	// keepBlocks: emptied blocks a queue keeps for reuse.
	keepBlocks = 4
	// writeChunk bounds the bytes of one write; each write has its own
	// deadline.
	writeChunk = 4 << 20
)

// blockSizeFor returns the block size of the queues of a transport whose
// queue limit is maxQueue.
func blockSizeFor(maxQueue int) int { return min(max(maxQueue/16, minBlock), maxBlock) }

// queue holds frames, in order, encoded for the wire. Headers and small
// payloads are copied into fixed-size blocks, never split across two;
// each big payload belongs right after the header that ends at its
// (block, off). mem counts the memory held, as the limit on a peer's
// queue sees it: the frames' bytes plus the unused tails of the blocks
// left behind. So the memory of a queue is mem, plus its last block's
// free space and its spare blocks.
type queue struct {
	blockSize int
	blocks    [][]byte
	big       []bigPayload
	spare     [][]byte // emptied blocks, for reuse
	frames    int
	wire      int // wire bytes of the frames
	mem       int
}

type bigPayload struct {
	block, off int
	p          []byte
}

// inBlock is the part of a frame with an n-byte payload copied into a
// block.
func inBlock(n int) int {
	if n <= smallPayload {
		return frameHeaderLen + n
	}
	return frameHeaderLen
}

// needsBlock reports whether a frame with an n-byte payload starts a new
// block.
func (q *queue) needsBlock(n int) bool {
	return len(q.blocks) == 0 || q.blockSize-len(q.blocks[len(q.blocks)-1]) < inBlock(n)
}

// cost is what adding a frame with an n-byte payload adds to mem.
func (q *queue) cost(n int) int {
	c := frameHeaderLen + n
	if len(q.blocks) > 0 && q.needsBlock(n) {
		c += q.blockSize - len(q.blocks[len(q.blocks)-1])
	}
	return c
}

// add appends one frame.
func (q *queue) add(kind byte, payload []byte) {
	q.mem += q.cost(len(payload))
	if q.needsBlock(len(payload)) {
		var b []byte
		if n := len(q.spare); n > 0 {
			b, q.spare = q.spare[n-1], q.spare[:n-1]
		} else {
			b = make([]byte, 0, q.blockSize)
		}
		q.blocks = append(q.blocks, b)
	}
	last := len(q.blocks) - 1
	var h [frameHeaderLen]byte
	putFrameHeader(h[:], kind, len(payload))
	b := append(q.blocks[last], h[:]...)
	if len(payload) <= smallPayload {
		b = append(b, payload...)
	} else {
		q.big = append(q.big, bigPayload{block: last, off: len(b), p: payload})
	}
	q.blocks[last] = b
	q.frames++
	q.wire += frameHeaderLen + len(payload)
}

// reset empties q, keeping a few blocks for reuse.
func (q *queue) reset() {
	for _, b := range q.blocks {
		if len(q.spare) < keepBlocks {
			q.spare = append(q.spare, b[:0])
		}
	}
	clear(q.blocks)
	clear(q.big) // let the payloads go
	q.blocks, q.big = q.blocks[:0], q.big[:0]
	q.frames, q.wire, q.mem = 0, 0, 0
}

// segments appends to dst the pieces of q in wire order.
func (q *queue) segments(dst [][]byte) [][]byte {
	j := 0
	for bi, b := range q.blocks {
		prev := 0
		for ; j < len(q.big) && q.big[j].block == bi; j++ {
			if off := q.big[j].off; off > prev {
				dst = append(dst, b[prev:off])
				prev = off
			}
			dst = append(dst, q.big[j].p)
		}
		if prev < len(b) {
			dst = append(dst, b[prev:])
		}
	}
	return dst
}

// framesWithin returns how many of q's frames lie wholly in its first n
// wire bytes.
func (q *queue) framesWithin(n int64) int {
	var wire int64
	count := 0
	for _, b := range q.blocks {
		for pos := 0; pos < len(b); count++ {
			size := int(binary.BigEndian.Uint32(b[pos:])) - 1
			pos += inBlock(size)
			wire += int64(frameHeaderLen + size)
			if wire > n {
				return count
			}
		}
	}
	return count
}

// takeChunk splits segs into a first part of at most limit bytes (it
// splits a segment that straddles the limit) and the rest. It returns the
// chunk and a function that returns the rest, to be called once the chunk
// has been written: the two share segs' array, and writing a net.Buffers
// consumes its elements.
func takeChunk(segs [][]byte, limit int) (chunk [][]byte, rest func() [][]byte) {
	total := 0
	for i, s := range segs {
		if total+len(s) <= limit {
			total += len(s)
			continue
		}
		k := limit - total
		if k == 0 {
			return segs[:i], func() [][]byte { return segs[i:] }
		}
		tail := s[k:]
		segs[i] = s[:k]
		return segs[:i+1], func() [][]byte {
			segs[i] = tail
			return segs[i:]
		}
	}
	return segs, func() [][]byte { return nil }
}
