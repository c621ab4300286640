package sensetest

import (
	"encoding/binary"
	"net"
	"sync"
	"testing"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/event"
)

// Rewriter starts a native-protocol proxy to target (a server's native
// address) that replaces each record batch of the DATA and FETCH_RESULT
// frames it passes to clients with what fn makes of it; every other frame
// passes as it is. It returns the proxy's address; the proxy and its
// connections close when the test ends. Tests use it to show readers
// batches a server would not write today (older layouts, damage).
func Rewriter(t testing.TB, target string, fn func(b []byte) []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range open {
			c.Close()
		}
	})
	rewrite := func(batches []byte) []byte {
		var out []byte
		for len(batches) > 0 {
			n, err := batch.Size(batches)
			if err != nil || n > len(batches) {
				return append(out, batches...)
			}
			out = append(out, fn(batches[:n])...)
			batches = batches[n:]
		}
		return out
	}
	pipe := func(dst, src net.Conn, toClient bool) {
		defer dst.Close()
		defer src.Close()
		rd := wire.NewReader(src)
		for {
			f, err := rd.Next()
			if err != nil {
				return
			}
			out := wire.AppendFrame(nil, f.Type, f.Flags, f.Corr, f.Payload)
			switch {
			case toClient && f.Type == wire.TypeData:
				if m, err := wire.DecodeData(f.Payload); err == nil {
					m.Batches = rewrite(m.Batches)
					out = wire.AppendData(nil, f.Corr, m)
				}
			case toClient && f.Type == wire.TypeFetchResult:
				if m, err := wire.DecodeFetchResult(f.Payload); err == nil {
					m.Batches = rewrite(m.Batches)
					out = wire.AppendFetchResult(nil, f.Corr, m)
				}
			}
			if _, err := dst.Write(out); err != nil {
				return
			}
		}
	}
	go func() {
		for {
			cc, err := ln.Accept()
			if err != nil {
				return
			}
			sc, err := net.Dial("tcp", target)
			if err != nil {
				cc.Close()
				continue
			}
			mu.Lock()
			open = append(open, cc, sc)
			mu.Unlock()
			go pipe(sc, cc, false)
			go pipe(cc, sc, true)
		}
	}()
	return ln.Addr().String()
}

// WithRecords returns b's header with codec in its attributes, followed by
// records, with the length and the CRC set: a batch that passes
// batch.Check whatever records holds.
func WithRecords(b []byte, codec int, records []byte) []byte {
	p := append(append([]byte(nil), b[:batch.HeaderSize]...), records...)
	attrs := binary.BigEndian.Uint16(p[batch.OffAttributes:])
	binary.BigEndian.PutUint16(p[batch.OffAttributes:], attrs&^batch.AttrCompressionMask|uint16(codec))
	binary.BigEndian.PutUint32(p[batch.OffLength:], uint32(len(p)-batch.LogOverhead))
	binary.BigEndian.PutUint32(p[batch.OffCRC:], batch.Checksum(p[batch.OffAttributes:]))
	return p
}

// WithoutRouting returns batch b with its records re-encoded without the
// binary routing headers (sense.j, sense.p), as a server stored Kafka
// producers' records before it wrote them, compressed with codec; the
// batch header is b's but for its attributes, length and CRC.
func WithoutRouting(t testing.TB, b []byte, codec int) []byte {
	t.Helper()
	h, err := batch.Check(b)
	if err != nil {
		t.Error(err)
		return b
	}
	records, err := batch.Decompress(nil, b)
	if err != nil {
		t.Error(err)
		return b
	}
	it, err := batch.NewIterRecords(records, h.RecordCount)
	if err != nil {
		t.Error(err)
		return b
	}
	var bl batch.Builder
	bl.Reset(-1, -1, -1)
	for it.Next() {
		r := it.Record()
		var hs []batch.RecordHeader
		hi := r.Headers()
		for k, v, ok := hi.Next(); ok; k, v, ok = hi.Next() {
			if string(k) != event.HeaderMask && string(k) != event.HeaderPriority {
				hs = append(hs, batch.RecordHeader{Key: string(k), Value: v})
			}
		}
		bl.Add(h.BaseTimestamp+r.TimestampDelta, r.Key, r.Value, hs...)
	}
	if it.Err() != nil {
		t.Error(it.Err())
		return b
	}
	compressed, err := batch.Compress(nil, codec, bl.Finish()[batch.HeaderSize:])
	if err != nil {
		t.Error(err)
		return b
	}
	return WithRecords(b, codec, compressed)
}
