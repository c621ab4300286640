package group

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
)

// Side records and commits written together survive a reopen and a
// compaction; the watcher sees the live ones, then each new one.
func TestSideRecords(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "groups")
	s, err := Open(nil, dir, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	s.slack = 20
	seen := map[string]string{}
	s.Watch("txn", func(k, v []byte) {
		if v == nil {
			delete(seen, string(k))
			return
		}
		seen[string(k)] = string(v)
	})
	tp := TopicPartition{Topic: "out", Partition: 1}
	for i := range 100 {
		side := []SideRecord{{Kind: "txn", Key: []byte(fmt.Sprint("t", i%5)), Value: []byte(fmt.Sprint(i))}}
		if err := s.Write(side, GroupCommits{"g", []OffsetCommit{{tp, CommittedOffset{Offset: int64(i)}}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Write([]SideRecord{{Kind: "txn", Key: []byte("t4")}}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 4 || seen["t0"] != "95" || seen["t3"] != "98" {
		t.Fatalf("watcher saw %v", seen)
	}
	if s.records > 2*s.live+s.slack {
		t.Fatalf("not compacted: %d records, %d live", s.records, s.live)
	}
	s.Close()
	s, err = Open(nil, dir, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	again := map[string]string{}
	s.Watch("txn", func(k, v []byte) { again[string(k)] = string(v) })
	if fmt.Sprint(again) != fmt.Sprint(seen) {
		t.Fatalf("after reopen %v, want %v", again, seen)
	}
	if got := s.Committed("g")[tp].Offset; got != 99 {
		t.Fatalf("offset %d, want 99", got)
	}
	if err := s.Write([]SideRecord{{Kind: "txn", Key: make([]byte, maxSideRecord+1)}}); err == nil {
		t.Fatal("an oversized side record was accepted")
	}
}
