package replica

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// FuzzDecodeFrame: any bytes from a peer either decode to a message that
// encodes back to a frame decoding the same way, or give an error; never a
// panic.
func FuzzDecodeFrame(f *testing.F) {
	typ, to, from, term := pb.MsgApp, uint64(1), uint64(2), uint64(3)
	good, err := encodeFrame("p/0", &pb.Message{Type: &typ, To: &to, From: &from, Term: &term,
		Entries: []*pb.Entry{{Data: record(1)}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{0, 3, 'p', '/', '0'})
	f.Add([]byte{0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		key, m, err := decodeFrame(p)
		if err != nil {
			return
		}
		again, err := encodeFrame(key, m)
		if err != nil {
			t.Fatalf("a decoded message does not encode: %v", err)
		}
		key2, m2, err := decodeFrame(again)
		if err != nil || key2 != key || m2.GetType() != m.GetType() || m2.GetIndex() != m.GetIndex() || len(m2.GetEntries()) != len(m.GetEntries()) {
			t.Fatalf("round trip changed the frame: %v", err)
		}
	})
}

// FuzzDecodeState: a damaged state file is refused, never half-read.
func FuzzDecodeState(f *testing.F) {
	s := state{term: 4, vote: 7, commit: 9, baseIndex: 2, baseTerm: 1, baseNext: 40, voters: []uint64{1, 2, 3}}
	f.Add(s.encode())
	f.Add([]byte("SRS1"))
	f.Fuzz(func(t *testing.T, p []byte) {
		s, err := decodeState(p)
		if err != nil {
			return
		}
		if !bytes.Equal(s.encode(), p) {
			t.Fatalf("state %+v decoded from bytes it does not encode to", s)
		}
	})
}

// FuzzDecodeForward: forwarded appends and their answers from a peer.
func FuzzDecodeForward(f *testing.F) {
	f.Add(encodeForward(7, "p/h/0", true, record(1)))
	f.Add(encodeForwardResp(7, 42, nil, "n2"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		if id, key, sparse, b, err := decodeForward(p); err == nil {
			id2, key2, sparse2, b2, err := decodeForward(encodeForward(id, key, sparse, b))
			if err != nil || id2 != id || key2 != key || sparse2 != sparse || !bytes.Equal(b2, b) {
				t.Fatalf("forward does not round-trip: %v", err)
			}
		}
		if id, r, err := decodeForwardResp(p); err == nil {
			id2, r2, err := decodeForwardResp(encodeForwardResp(id, r.base, r.err, r.leader))
			if err != nil || id2 != id || r2.base != r.base || r2.leader != r.leader || (r2.err == nil) != (r.err == nil) {
				t.Fatalf("forward answer does not round-trip: %v", err)
			}
		}
	})
}

// FuzzDecodeDigest: any bytes from a peer either decode to a digest
// request or answer that encodes back to the same bytes, or give an error;
// never a panic.
func FuzzDecodeDigest(f *testing.F) {
	f.Add(encodeDigest(7, "payments/tangier/0", 12, 1<<56))
	f.Add(encodeDigestResp(7, Digest{Records: 3, Checksum: 0xdeadbeef, First: 4, Last: 9, End: 12}, nil))
	f.Add(encodeDigestResp(8, Digest{}, errors.New("no replica here")))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		if id, key, from, pid, err := decodeDigest(p); err == nil {
			if again := encodeDigest(id, key, from, pid); !bytes.Equal(again, p) {
				t.Fatalf("a digest request does not encode back: %x, then %x", p, again)
			}
		}
		if id, r, err := decodeDigestResp(p); err == nil {
			id2, r2, err := decodeDigestResp(encodeDigestResp(id, r.d, r.err))
			if err != nil || id2 != id || r2.d != r.d || (r2.err == nil) != (r.err == nil) {
				t.Fatalf("a digest answer does not round-trip: %+v, then %+v (%v)", r, r2, err)
			}
		}
	})
}

// FuzzDecodeSnapshot: a raft snapshot's data from a peer decodes to where
// a log begins, which encodes back to the same bytes, or is refused; never
// a panic, never a log whose readers start before it.
func FuzzDecodeSnapshot(f *testing.F) {
	f.Add(snapData{next: 4096, start: 5000}.encode())
	f.Add(snapData{}.encode())
	f.Add([]byte("SSN1"))
	f.Add(append([]byte("SSN1"), bytes.Repeat([]byte{0xff}, 16)...))              // negative offsets
	f.Add(append([]byte("SSN1"), 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1)) // readers before the log
	f.Add(append(snapData{next: 1, start: 1}.encode(), 0))                        // a byte too many
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		d, err := decodeSnapshot(p)
		if err != nil {
			return
		}
		if d.next < 0 || d.start < d.next {
			t.Fatalf("decoded a log from %d with readers from %d", d.next, d.start)
		}
		if !bytes.Equal(d.encode(), p) {
			t.Fatalf("snapshot data %+v decoded from bytes it does not encode to", d)
		}
		if err := checkSnapshot(&pb.Snapshot{Data: p}); err == nil {
			t.Fatal("a snapshot at index 0 passed the check")
		}
	})
}

// FuzzDecodeRead: a remote read's request and answer from a peer decode or
// are refused, never panic; a request decodes within the read bounds and
// encodes back; an answer, plain or isolated, round-trips, and an
// isolated one never allocates for more aborted transactions than its
// bytes hold.
func FuzzDecodeRead(f *testing.F) {
	f.Add(encodeRead(7, "payments/tangier/0", ReadBatches, ReadUncommitted, Earliest, 1<<20, time.Second))
	f.Add(encodeRead(7, "payments/tangier/0", ReadTime, ReadUncommitted, 1700000000000, 0, 0))
	f.Add(encodeRead(7, "payments/tangier/0", ReadBatches, ReadCommitted, 5, 1<<20, time.Second))
	f.Add(encodeRead(7, "payments/tangier/0", ReadBatches, ReadCommittedKafka, Latest, 0, 0))
	f.Add(append(encodeRead(7, "payments/tangier/0", ReadBatches, ReadUncommitted, 5, 1, 0), 0))    // isolation 0 spelled out
	f.Add(append(encodeRead(7, "payments/tangier/0", ReadBatches, ReadUncommitted, 5, 1, 0), 0xff)) // unknown isolation
	f.Add(append(encodeRead(7, "payments/tangier/0", ReadBatches, ReadCommitted, 5, 1, 0), 1))      // a byte too many
	f.Add(encodeReadResp(7, RemoteRead{Batches: []byte("batches"), Offset: 4, Start: 1, Watermark: 9}, nil, false))
	f.Add(encodeReadResp(8, RemoteRead{}, errors.New("no replica here"), false))
	f.Add(encodeReadResp(9, RemoteRead{Batches: []byte("batches"), Offset: 4, Start: 1, Watermark: 9, Stable: 6,
		Aborted: []AbortedTxn{{ProducerID: 3, FirstOffset: 4, LastOffset: 5}}}, nil, true))
	f.Add(encodeReadResp(9, RemoteRead{}, errors.New("no replica here"), true))
	// An isolated answer claiming 2^32-1 aborted transactions in no bytes.
	huge := encodeReadResp(9, RemoteRead{Offset: 4, Watermark: 9, Stable: 6}, nil, true)
	copy(huge[len(huge)-4:], []byte{0xff, 0xff, 0xff, 0xff})
	f.Add(huge)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		if q, err := decodeRead(p); err == nil {
			if q.maxBytes > MaxRemoteReadBytes || q.wait > MaxRemoteReadWait || q.maxBytes < 0 || q.wait < 0 {
				t.Fatalf("a read request decodes past the bounds: %+v", q)
			}
			if q.iso != ReadUncommitted && q.iso != ReadCommitted && q.iso != ReadCommittedKafka {
				t.Fatalf("a read request decodes with an unknown isolation: %+v", q)
			}
			again := encodeRead(q.id, q.key, q.op, q.iso, q.offset, q.maxBytes, q.wait)
			if q2, err := decodeRead(again); err != nil || q2 != q {
				t.Fatalf("a read request does not round-trip: %+v, then %+v (%v)", q, q2, err)
			}
		}
		for _, isolated := range []bool{false, true} {
			id, r, err := decodeReadResp(p, isolated)
			if err != nil {
				continue
			}
			if len(r.r.Aborted)*abortedTxnLen > len(p) {
				t.Fatalf("an answer of %d bytes decodes %d aborted transactions", len(p), len(r.r.Aborted))
			}
			id2, r2, err := decodeReadResp(encodeReadResp(id, r.r, r.err, isolated), isolated)
			if err != nil || id2 != id || !bytes.Equal(r2.r.Batches, r.r.Batches) || r2.r.Offset != r.r.Offset ||
				r2.r.Start != r.r.Start || r2.r.Watermark != r.r.Watermark || (r2.err == nil) != (r.err == nil) ||
				(isolated && r2.r.Stable != r.r.Stable) || !slices.Equal(r2.r.Aborted, r.r.Aborted) {
				t.Fatalf("a read answer (isolated %v) does not round-trip: %+v, then %+v (%v)", isolated, r, r2, err)
			}
		}
	})
}

// FuzzDecodeHeartbeats: a heartbeats frame from a peer decodes entry by
// entry, each of which encodes back to its bytes, or stops with an error;
// never a panic.
func FuzzDecodeHeartbeats(f *testing.F) {
	p := appendHeartbeat(nil, "payments/tangier/0", hbHeartbeat, 3, 17, nil)
	p = appendHeartbeat(p, "payments/tangier/1", hbAnswer, 3, 0, []byte("ctx"))
	f.Add(p)
	f.Add(p[:len(p)-1])
	f.Add([]byte{0, 1, 'k', 2})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		var again []byte
		err := decodeHeartbeats(p, func(e heartbeatEntry) {
			again = appendHeartbeat(again, e.key, e.typ, e.term, e.commit, e.ctx)
		})
		if !bytes.HasPrefix(p, again) {
			t.Fatalf("decoded entries do not encode back: %x, then %x", p, again)
		}
		if err == nil && len(again) != len(p) {
			t.Fatalf("a frame of %d bytes decoded as %d bytes of entries", len(p), len(again))
		}
	})
}
