package cluster

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

// TestHelloLayout pins the hello byte by byte (docs/cluster.md).
func TestHelloLayout(t *testing.T) {
	h := hello{Cluster: "sense", From: "n1", To: "n22"}
	b := appendHello(nil, h)
	want := []byte("SNSC\x01\x05sense\x02n1\x03n22")
	if !bytes.Equal(b, want) {
		t.Fatalf("hello %q, want %q", b, want)
	}
	if helloLen(h) != len(want) {
		t.Errorf("helloLen %d, want %d", helloLen(h), len(want))
	}
	r := bytes.NewReader(append(b, "rest"...))
	got, err := readHello(iotest.OneByteReader(r))
	if err != nil || got != h {
		t.Fatalf("readHello: %+v, %v", got, err)
	}
	if r.Len() != 4 {
		t.Errorf("readHello read %d bytes past the hello", 4-r.Len())
	}
	for i := range len(want) {
		_, err := readHello(bytes.NewReader(want[:i]))
		wantErr := io.ErrUnexpectedEOF
		if i == 0 {
			wantErr = io.EOF
		}
		if err != wantErr {
			t.Errorf("hello cut at %d: %v, want %v", i, err, wantErr)
		}
	}
}

// TestFrameLayout pins a frame byte by byte.
func TestFrameLayout(t *testing.T) {
	b := appendFrame(nil, 7, []byte("abc"))
	if want := []byte{0, 0, 0, 4, 7, 'a', 'b', 'c'}; !bytes.Equal(b, want) {
		t.Fatalf("frame %v, want %v", b, want)
	}
	fr := newFrameReader(bytes.NewReader(append(b, appendFrame(nil, 0, nil)...)), 4)
	if k, p, err := fr.next(); err != nil || k != 7 || string(p) != "abc" {
		t.Fatalf("first frame: %d %q %v", k, p, err)
	}
	if k, p, err := fr.next(); err != nil || k != 0 || len(p) != 0 {
		t.Fatalf("empty frame: %d %q %v", k, p, err)
	}
	if _, _, err := fr.next(); err != io.EOF {
		t.Fatalf("at the end: %v", err)
	}
	fr = newFrameReader(bytes.NewReader(b), 3)
	if _, _, err := fr.next(); !errors.Is(err, ErrFrameSize) {
		t.Fatalf("a 4-byte frame with a maximum of 3: %v", err)
	}
}

// TestReadBufferShrinks: a huge frame grows the read buffer to its size
// only; small frames between large ones keep it (no buffer per large
// frame), and a run of shrinkAfter small frames lets it go.
func TestReadBufferShrinks(t *testing.T) {
	var stream []byte
	stream = appendFrame(stream, 1, make([]byte, 100))
	stream = appendFrame(stream, 2, make([]byte, 1<<20))
	stream = appendFrame(stream, 3, make([]byte, 100))
	stream = appendFrame(stream, 4, make([]byte, 1<<19))
	for range shrinkAfter {
		stream = appendFrame(stream, 5, make([]byte, 100))
	}
	fr := newFrameReader(bytes.NewReader(stream), 2<<20)
	caps := []int{}
	for range 4 + shrinkAfter {
		if _, _, err := fr.next(); err != nil {
			t.Fatal(err)
		}
		caps = append(caps, cap(fr.buf))
	}
	if caps[0] > keepReadBuf || caps[1] != 1<<20+1 || caps[2] != caps[1] || caps[3] != caps[1] {
		t.Errorf("buffer capacities %v: want the large frame's buffer kept across a small frame and a smaller large one", caps[:4])
	}
	if last := caps[len(caps)-1]; last > keepReadBuf || caps[len(caps)-2] != caps[1] {
		t.Errorf("after %d small frames the buffer is %d bytes (before the last: %d), want it back to at most %d", shrinkAfter, last, caps[len(caps)-2], keepReadBuf)
	}
	small := newFrameReader(bytes.NewReader(appendFrame(nil, 1, make([]byte, 10))), 64)
	if _, _, err := small.next(); err != nil || cap(small.buf) > 64 {
		t.Errorf("a 64-byte maximum allocated %d bytes (%v)", cap(small.buf), err)
	}
}

// TestQueue: the pieces of a queue are its frames' bytes in order; small
// payloads share blocks; framesWithin counts whole frames; mem counts the
// frames and the blocks' unused tails.
func TestQueue(t *testing.T) {
	q := queue{blockSize: minBlock}
	var want []byte
	var ends []int
	big := bytes.Repeat([]byte("B"), smallPayload+1)
	for i := range 300 {
		p := bytes.Repeat([]byte{byte(i)}, i%40)
		switch i % 100 {
		case 50, 51:
			p = big
		case 70:
			p = make([]byte, smallPayload) // the largest copied
		}
		q.add(byte(i), p)
		want = appendFrame(want, byte(i), p)
		ends = append(ends, len(want))
	}
	if q.frames != 300 || q.wire != len(want) {
		t.Fatalf("frames %d wire %d, want 300 and %d", q.frames, q.wire, len(want))
	}
	used := 0
	for i, b := range q.blocks {
		if cap(b) != minBlock {
			t.Fatalf("block %d has capacity %d", i, cap(b))
		}
		used += len(b)
	}
	full := (len(q.blocks) - 1) * minBlock
	if tail := len(q.blocks[len(q.blocks)-1]); q.mem != len(want)+full-(used-tail) {
		t.Errorf("mem %d: wire %d, %d bytes of full blocks holding %d", q.mem, len(want), full, used-tail)
	}
	segs := q.segments(nil)
	if max := len(q.blocks) + 2*len(q.big); len(segs) > max {
		t.Errorf("%d pieces from %d blocks and %d big payloads", len(segs), len(q.blocks), len(q.big))
	}
	if got := bytes.Join(segs, nil); !bytes.Equal(got, want) {
		t.Fatal("the pieces are not the frames")
	}
	for _, n := range []int{0, 1, ends[0] - 1, ends[0], ends[1], ends[50] - 1, ends[50], ends[51], ends[70], len(want) - 1, len(want)} {
		whole := 0
		for _, e := range ends {
			if e <= n {
				whole++
			}
		}
		if got := q.framesWithin(int64(n)); got != whole {
			t.Errorf("framesWithin(%d) = %d, want %d", n, got, whole)
		}
	}

	// Chunks of any size put the same bytes back together.
	for _, limit := range []int{1, 7, 1000, smallPayload, len(want)} {
		segs := q.segments(nil)
		var out []byte
		for len(segs) > 0 {
			chunk, rest := takeChunk(segs, limit)
			n := 0
			for _, c := range chunk {
				out = append(out, c...)
				n += len(c)
			}
			if n > limit || n == 0 {
				t.Fatalf("limit %d: a chunk of %d bytes", limit, n)
			}
			for i := range chunk {
				chunk[i] = nil // as writing a net.Buffers consumes it
			}
			segs = rest()
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("limit %d: chunks differ from the frames", limit)
		}
	}

	blocks := len(q.blocks)
	q.reset()
	if q.frames != 0 || q.wire != 0 || q.mem != 0 || len(q.blocks) != 0 || len(q.big) != 0 || len(q.segments(nil)) != 0 {
		t.Errorf("after reset: %+v", q)
	}
	if len(q.spare) != min(blocks, keepBlocks) {
		t.Errorf("%d spare blocks after reset", len(q.spare))
	}
	q.add(1, []byte("again"))
	if got := bytes.Join(q.segments(nil), nil); !bytes.Equal(got, appendFrame(nil, 1, []byte("again"))) || len(q.spare) != keepBlocks-1 {
		t.Errorf("reuse: %q, %d spare", got, len(q.spare))
	}
}

// TestQueueBound: a peer's queue, filled with frames of every size until
// Send refuses, holds no more memory than MaxQueueBytes plus the free
// space of its last block.
func TestQueueBound(t *testing.T) {
	const limit = 256 << 10
	tr, err := New(Config{Self: "n1", Listen: "127.0.0.1:0", Peers: []Peer{{ID: "n1"}, {ID: "n2"}},
		Handler: &recorder{}, MaxQueueBytes: limit, MaxFrameBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	// Not started: nothing drains the queue.
	p := tr.peers["n2"]
	for _, size := range []int{0, 1, 100, smallPayload, smallPayload + 1, 16<<10 - 1} {
		for tr.Send("n2", 1, make([]byte, size)) {
		}
	}
	held := 0
	for _, b := range p.q.blocks {
		held += cap(b)
	}
	for _, b := range p.q.big {
		held += len(b.p)
	}
	if held > limit+p.q.blockSize {
		t.Errorf("the queue holds %d bytes; limit %d, blocks of %d", held, limit, p.q.blockSize)
	}
	if p.q.mem > limit {
		t.Errorf("mem %d above the limit %d", p.q.mem, limit)
	}
}

// TestDocExamples: the hello and frame shown in docs/cluster.md are what
// the encoders produce.
func TestDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	hexHello := hex.EncodeToString(appendHello(nil, hello{Cluster: "sense", From: "n1", To: "n2"}))
	found := false
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.ReplaceAll(line, " ", "") == hexHello {
			found = true
		}
	}
	if !found {
		t.Errorf("docs/cluster.md does not show the hello %s", hexHello)
	}
	frame := appendFrame(nil, 7, []byte("abc"))
	var b strings.Builder
	for i, c := range frame {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(hex.EncodeToString([]byte{c}))
	}
	if !strings.Contains(string(doc), "`"+b.String()+"`") {
		t.Errorf("docs/cluster.md does not show the frame %s", b.String())
	}
}
