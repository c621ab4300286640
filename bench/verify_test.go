package bench

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/event"
)

func value(t *testing.T, run, seq uint64, size int) []byte {
	t.Helper()
	v, err := AppendValue(nil, Header{RunID: run, Seq: seq, Intended: time.Unix(5, int64(seq)), Priority: event.Priority(seq % 3)}, size)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestValueHeaderRoundTrip(t *testing.T) {
	in := Header{RunID: 42, Seq: 1 << 40, Intended: time.Unix(1700000000, 123456789), Priority: event.Critical}
	v, err := AppendValue([]byte("x"), in, 64)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 65 {
		t.Fatalf("len = %d, want 1+64", len(v))
	}
	out, err := DecodeHeader(v[1:])
	if err != nil {
		t.Fatal(err)
	}
	if out.RunID != in.RunID || out.Seq != in.Seq || !out.Intended.Equal(in.Intended) || out.Priority != in.Priority {
		t.Fatalf("decoded %+v, want %+v", out, in)
	}
	// The body past the header is the event's own pattern.
	for i := HeaderSize; i < 64; i++ {
		if want := byte(in.Seq) + byte(i); v[1+i] != want {
			t.Fatalf("byte %d of the value is %d, want %d", i, v[1+i], want)
		}
	}
	if _, err := AppendValue(nil, in, 24); err == nil || !strings.Contains(err.Error(), "24") {
		t.Fatalf("size 24: err %v, want one naming 24", err)
	}
	if _, err := AppendValue(nil, Header{Priority: 3}, 25); err == nil {
		t.Fatal("priority 3 accepted")
	}
	if _, err := DecodeHeader(make([]byte, 10)); !errors.Is(err, ErrNotBenchEvent) {
		t.Fatalf("short value: err %v", err)
	}
}

func TestVerifierExactlyOnce(t *testing.T) {
	const n = 1000
	v := NewVerifier(7, n)
	var wg sync.WaitGroup
	for seq := range uint64(n) {
		val := value(t, 7, seq, 40)
		if err := v.Acked(seq, Checksum(val)); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { v.Consumed(val) })
	}
	wg.Wait()
	d := v.Verify()
	if !d.OK() || d.Err() != nil || d.Acknowledged != n || d.Consumed != n || v.Pending() != 0 {
		t.Fatalf("verdict %+v, err %v", d, d.Err())
	}
}

func TestVerifierLostDuplicatedUnacked(t *testing.T) {
	v := NewVerifier(7, 10)
	for seq := range uint64(8) {
		if err := v.Acked(seq, Checksum(value(t, 7, seq, 30))); err != nil {
			t.Fatal(err)
		}
	}
	v.Failed(8, Checksum(value(t, 7, 8, 30))) // refused, but stored anyway
	// 9: never produced.
	for seq := range uint64(9) {
		if seq == 2 || seq == 5 { // lost
			continue
		}
		v.Consumed(value(t, 7, seq, 30))
	}
	v.Consumed(value(t, 7, 3, 30)) // duplicated twice
	v.Consumed(value(t, 7, 3, 30))
	v.Consumed(value(t, 7, 8, 30)) // unacked, second copy: not a duplicate
	v.Consumed(value(t, 8, 1, 30)) // another run
	v.Consumed(value(t, 7, 99, 30))
	v.Consumed([]byte("short"))

	if err := v.Acked(1, Checksum(value(t, 7, 1, 30))); err == nil {
		t.Fatal("second ack of 1 accepted")
	}
	if err := v.Acked(10, Checksum(value(t, 7, 10, 30))); err == nil {
		t.Fatal("ack of 10 beyond the plan accepted")
	}
	d := v.Verify()
	want := Verdict{Acknowledged: 8, Consumed: 6, Lost: 2, Duplicated: 1, ExtraCopies: 2, UnackedConsumed: 1, Foreign: 3}
	got := d
	got.AckChecksum, got.ConsumeChecksum = 0, 0
	if got != want {
		t.Fatalf("verdict %+v, want %+v", got, want)
	}
	if d.OK() || v.Pending() != 2 {
		t.Fatalf("OK %v Pending %d; want false, 2", d.OK(), v.Pending())
	}
	msg := d.Err().Error()
	for _, s := range []string{"2 of 8 acknowledged events lost", "1 acknowledged events consumed more than once", "checksum"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q lacks %q", msg, s)
		}
	}
}

func TestVerifierChecksumCatchesAlteredBytes(t *testing.T) {
	v := NewVerifier(1, 3)
	for seq := range uint64(3) {
		_ = v.Acked(seq, Checksum(value(t, 1, seq, 50)))
	}
	v.Failed(3-1+1, Checksum(nil)) // out-of-plan failure is harmless
	for seq := range uint64(3) {
		val := value(t, 1, seq, 50)
		if seq == 1 {
			val[40] ^= 0xff // filler altered in transit
		}
		v.Consumed(val)
	}
	d := v.Verify()
	if d.Lost != 0 || d.Duplicated != 0 || d.OK() || d.AckChecksum == d.ConsumeChecksum {
		t.Fatalf("verdict %+v: want counts clean but checksums differing", d)
	}
	if !strings.Contains(d.Err().Error(), "checksum") {
		t.Fatalf("err %v", d.Err())
	}
}
