package replica

import (
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
)

func TestCoalesceAppends(t *testing.T) {
	app := func(to, term, index, commit uint64, ents int) *pb.Message {
		m := &pb.Message{Type: pb.MsgApp.Enum(), To: &to, Term: &term, Index: &index, Commit: &commit}
		for range ents {
			m.Entries = append(m.Entries, &pb.Entry{})
		}
		return m
	}
	hb := func(to uint64) *pb.Message { return &pb.Message{Type: pb.MsgHeartbeat.Enum(), To: &to} }
	type want struct {
		to, index, commit uint64
		ents              int
	}
	for _, c := range []struct {
		name string
		in   []*pb.Message
		want []want
	}{
		{"entries then commit", []*pb.Message{app(2, 5, 10, 8, 3), app(3, 5, 10, 8, 3), app(2, 5, 13, 10, 0), app(3, 5, 13, 10, 0)},
			[]want{{2, 10, 10, 3}, {3, 10, 10, 3}}},
		{"commit then entries", []*pb.Message{app(2, 5, 10, 9, 0), hb(2), app(2, 5, 10, 9, 2)},
			[]want{{2, 10, 9, 2}, {2, 0, 0, -1}}},
		{"not contiguous", []*pb.Message{app(2, 5, 10, 8, 3), app(2, 5, 12, 10, 0)},
			[]want{{2, 10, 8, 3}, {2, 12, 10, 0}}},
		{"other term", []*pb.Message{app(2, 5, 10, 8, 3), app(2, 6, 13, 10, 0)},
			[]want{{2, 10, 8, 3}, {2, 13, 10, 0}}},
		{"both with entries", []*pb.Message{app(2, 5, 10, 8, 3), app(2, 5, 13, 8, 1)},
			[]want{{2, 10, 8, 3}, {2, 13, 8, 1}}},
	} {
		got := coalesceAppends(c.in)
		if len(got) != len(c.want) {
			t.Fatalf("%s: %d messages, want %d", c.name, len(got), len(c.want))
		}
		for i, w := range c.want {
			m := got[i]
			if w.ents < 0 {
				if m.GetType() != pb.MsgHeartbeat {
					t.Errorf("%s: message %d is %s, want a heartbeat", c.name, i, m.GetType())
				}
				continue
			}
			if m.GetType() != pb.MsgApp || m.GetTo() != w.to || m.GetIndex() != w.index || m.GetCommit() != w.commit || len(m.GetEntries()) != w.ents {
				t.Errorf("%s: message %d: %s to %d index %d commit %d, %d entries; want to %d index %d commit %d, %d entries",
					c.name, i, m.GetType(), m.GetTo(), m.GetIndex(), m.GetCommit(), len(m.GetEntries()), w.to, w.index, w.commit, w.ents)
			}
		}
	}
}
