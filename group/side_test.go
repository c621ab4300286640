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

// DeleteGroupWith removes a group's offsets and writes side records in one
// batch: after a reopen both are gone together, and other groups stay.
func TestDeleteGroupWith(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "groups")
	s, err := Open(nil, dir, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	live := map[string]bool{}
	s.Watch("processor", func(k, v []byte) { live[string(k)] = v != nil })
	tp := TopicPartition{Topic: "in", Partition: 0}
	if err := s.Write([]SideRecord{{Kind: "processor", Key: []byte("p"), Value: []byte("yaml")}},
		GroupCommits{"processor.p", []OffsetCommit{{tp, CommittedOffset{Offset: 7}}, {TopicPartition{"in", 1}, CommittedOffset{Offset: 3}}}},
		GroupCommits{"other", []OffsetCommit{{tp, CommittedOffset{Offset: 9}}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteGroupWith("processor.p", SideRecord{Kind: "processor", Key: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	if live["p"] || len(s.Committed("processor.p")) != 0 {
		t.Fatalf("after the deletion: watcher %v, offsets %v", live, s.Committed("processor.p"))
	}
	// A group without offsets: the side records alone.
	if err := s.DeleteGroupWith("none", SideRecord{Kind: "processor", Key: []byte("q"), Value: []byte("y")}); err != nil || !live["q"] {
		t.Fatalf("side records without offsets: %v, %v", err, live)
	}
	s.Close()
	s, err = Open(nil, dir, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	again := map[string]bool{}
	s.Watch("processor", func(k, v []byte) { again[string(k)] = v != nil })
	if again["p"] || !again["q"] || len(s.Committed("processor.p")) != 0 || s.Committed("other")[tp].Offset != 9 {
		t.Fatalf("after reopen: side %v, processor.p %v, other %v", again, s.Committed("processor.p"), s.Committed("other"))
	}
	if s.live != 2 {
		t.Fatalf("%d live keys, want 2 (q and other's offset)", s.live)
	}
}
