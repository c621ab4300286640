package seglog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/vfs"
)

// FuzzRecover opens a log whose segment file and checkpoint hold arbitrary
// bytes. Opening must never panic; it either fails with an error or yields a
// log whose every readable batch is intact, and which accepts appends.
func FuzzRecover(f *testing.F) {
	var valid []byte
	for i := 0; i < 5; i++ {
		b := mkBatch(fmt.Sprint(i), 2, 20, 1, int32(2*i))
		batch.SetBaseOffset(b, int64(2*i))
		valid = append(valid, b...)
	}
	ck := encodeCheckpoint(4, 0, int64(len(valid))/2, producers{1: &producer{n: 1, ents: [window]seqEntry{{0, 1, 0, 1}}}})
	huge := bytes.Clone(valid)
	binary.BigEndian.PutUint32(huge[batch.OffLength:], 0x7fffffff)
	neg := bytes.Clone(valid)
	binary.BigEndian.PutUint32(neg[batch.OffLength:], 0xffffff00)
	f.Add(valid, []byte(nil))
	f.Add(valid, ck)
	f.Add(valid[:len(valid)-7], ck)
	f.Add(huge, []byte(nil))
	f.Add(neg, ck)
	f.Add([]byte{}, ck)
	f.Add(make([]byte, 100), []byte("SENSECP1"))
	badCk := bytes.Clone(ck)
	binary.BigEndian.PutUint32(badCk[32:], 0xffffffff) // producer count
	f.Add(valid, badCk)
	f.Fuzz(func(t *testing.T, seg, ckpt []byte) {
		mem := vfs.NewMem()
		if err := mem.MkdirAll("/z"); err != nil {
			t.Fatal(err)
		}
		write := func(name string, data []byte) {
			fl, err := mem.Create("/z/" + name)
			if err != nil {
				t.Fatal(err)
			}
			fl.WriteAt(data, 0)
			fl.Sync()
			fl.Close()
		}
		write(segmentName(0, logSuffix), seg)
		if ckpt != nil {
			write(checkpointName, ckpt)
		}
		mem.SyncDir("/z")
		l, err := Open("/z", Options{FS: mem, Logger: quiet, SegmentBytes: 1 << 20})
		if err != nil {
			return
		}
		defer l.Close()
		for off := l.StartOffset(); off < l.HighWatermark(); {
			buf, err := l.Read(nil, off, 1<<16)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("read at %d: %v", off, err)
				}
				return
			}
			for len(buf) > 0 {
				n, err := batch.Size(buf)
				if err != nil {
					t.Fatal(err)
				}
				h, err := batch.Check(buf[:n])
				if err != nil {
					t.Fatalf("read returned a bad batch: %v", err)
				}
				off = h.NextOffset()
				buf = buf[n:]
			}
		}
		next := l.NextOffset()
		base, err := l.Append(mkBatch("after", 1, 5, -1, -1))
		if err != nil || base != next {
			t.Fatalf("append after recovery: base %d (next %d), %v", base, next, err)
		}
	})
}
