package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestNodeInfoRoundTrip(t *testing.T) {
	ni := NodeInfo{ID: "n2", Started: time.UnixMilli(1_700_000_000_123), Kafka: "127.0.0.1:9092", Native: "127.0.0.1:7070", HTTP: ""}
	got, err := DecodeNodeInfo(AppendNodeInfo(nil, ni))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != ni.ID || !got.Started.Equal(ni.Started) || got.Kafka != ni.Kafka || got.Native != ni.Native || got.HTTP != ni.HTTP {
		t.Fatalf("decoded %+v, want %+v", got, ni)
	}
	enc := AppendNodeInfo(nil, ni)
	for i := range len(enc) {
		if _, err := DecodeNodeInfo(enc[:i]); !errors.Is(err, ErrBadNodeInfo) {
			t.Fatalf("cut to %d bytes: %v, want ErrBadNodeInfo", i, err)
		}
	}
	if _, err := DecodeNodeInfo(append(enc, 0)); !errors.Is(err, ErrBadNodeInfo) {
		t.Fatalf("a byte too many: %v", err)
	}
}

// FuzzDecodeNodeInfo: any payload decodes or gives ErrBadNodeInfo, never
// panics, and what decodes encodes back to the same bytes.
func FuzzDecodeNodeInfo(f *testing.F) {
	f.Add(AppendNodeInfo(nil, NodeInfo{ID: "n1", Started: time.UnixMilli(5), Kafka: "h:1"}))
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{1, 0xff, 'n'})                   // id length past the end
	f.Add([]byte{1, 0})                           // empty id
	f.Add([]byte{2, 2, 'n', '1'})                 // version 2
	f.Add([]byte{1, 1, 'n', 0, 0, 0, 0, 0, 0, 0}) // cut start time
	f.Fuzz(func(t *testing.T, p []byte) {
		ni, err := DecodeNodeInfo(p)
		if err != nil {
			if !errors.Is(err, ErrBadNodeInfo) {
				t.Fatalf("error of an undocumented kind: %v", err)
			}
			return
		}
		if re := AppendNodeInfo(nil, ni); !bytes.Equal(re, p) {
			t.Fatalf("re-encoded %x, read from %x", re, p)
		}
	})
}

// loop connects Members directly: a Send is a Handle on the target.
type loop struct {
	mu  sync.Mutex
	ms  map[string]*Members
	cut map[string]bool
}

func (l *loop) from(self string) Sender {
	return senderFunc(func(to string, kind byte, p []byte) bool {
		l.mu.Lock()
		m, cut := l.ms[to], l.cut[to] || l.cut[self]
		l.mu.Unlock()
		if m == nil || cut || kind != KindNodeInfo {
			return false
		}
		m.Handle(self, p)
		return true
	})
}

type senderFunc func(to string, kind byte, p []byte) bool

func (f senderFunc) Send(to string, kind byte, p []byte) bool { return f(to, kind, p) }

// TestMembers: every node learns every other's addresses; a node that
// stops talking is no longer up after the window; a payload naming
// another node than its sender is dropped.
func TestMembers(t *testing.T) {
	l := &loop{ms: map[string]*Members{}, cut: map[string]bool{}}
	nodes := []string{"n1", "n2", "n3"}
	for _, id := range nodes {
		m := NewMembers(NodeInfo{ID: id, Kafka: "kafka-" + id}, nodes, l.from(id), 10*time.Millisecond, nil)
		l.mu.Lock()
		l.ms[id] = m
		l.mu.Unlock()
	}
	for _, m := range l.ms {
		m.Start()
		defer m.Close()
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); {
			if time.Now().After(deadline) {
				t.Fatalf("after 10s: %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("every node knows every Kafka address", func() bool {
		for _, m := range l.ms {
			for _, id := range nodes {
				if mb, ok := m.Get(id); !ok || mb.Kafka != "kafka-"+id {
					return false
				}
			}
		}
		return true
	})
	if list := l.ms["n1"].List(); len(list) != 3 || !list[0].Self || list[1].ID != "n2" {
		t.Fatalf("n1's list: %+v", list)
	}
	if _, ok := l.ms["n1"].Get("n9"); ok {
		t.Fatal("an unknown node is known")
	}
	l.mu.Lock()
	l.cut["n3"] = true
	l.mu.Unlock()
	waitFor("n1 sees n3 down", func() bool {
		mb, _ := l.ms["n1"].Get("n3")
		return !mb.Up(time.Now(), 50*time.Millisecond)
	})
	if mb, _ := l.ms["n1"].Get("n2"); !mb.Up(time.Now(), time.Second) {
		t.Fatal("n2 is not up for n1")
	}
	// n2 claims to be n3: dropped.
	before, _ := l.ms["n1"].Get("n3")
	l.ms["n1"].Handle("n2", AppendNodeInfo(nil, NodeInfo{ID: "n3", Kafka: "evil"}))
	if after, _ := l.ms["n1"].Get("n3"); after.Kafka != before.Kafka {
		t.Fatalf("a payload naming another node than its sender was applied: %+v", after)
	}
}

// sentFrames records what a Members sends.
type sentFrames struct {
	mu   sync.Mutex
	sent []string // "to: node id"
}

func (s *sentFrames) Send(to string, kind byte, payload []byte) bool {
	ni, err := DecodeNodeInfo(payload)
	s.mu.Lock()
	defer s.mu.Unlock()
	if kind != KindNodeInfo || err != nil {
		s.sent = append(s.sent, fmt.Sprintf("%s: bad frame kind %d, %v", to, kind, err))
		return true
	}
	s.sent = append(s.sent, to+": "+ni.ID+" "+ni.Kafka)
	return true
}

// TestMembersAnswerFirstNodeInfo: a peer's first NodeInfo, and the first
// after it restarted, are answered at once with this node's; the periodic
// ones are not.
func TestMembersAnswerFirstNodeInfo(t *testing.T) {
	var s sentFrames
	m := NewMembers(NodeInfo{ID: "n1", Kafka: "kafka-n1"}, []string{"n1", "n2", "n3"}, &s, time.Hour, nil)
	defer m.Close()
	started := time.UnixMilli(1_700_000_000_000)
	info := func(at time.Time) []byte {
		return AppendNodeInfo(nil, NodeInfo{ID: "n2", Started: at, Kafka: "kafka-n2"})
	}
	m.Handle("n2", info(started))
	m.Handle("n2", info(started))
	m.Handle("n2", info(started.Add(time.Minute))) // n2 restarted
	m.Handle("n2", info(started.Add(time.Minute)))
	s.mu.Lock()
	defer s.mu.Unlock()
	if want := []string{"n2: n1 kafka-n1", "n2: n1 kafka-n1"}; !slices.Equal(s.sent, want) {
		t.Fatalf("sent %q, want %q", s.sent, want)
	}
	if mb, _ := m.Get("n2"); mb.Kafka != "kafka-n2" {
		t.Fatalf("n2 known as %+v", mb)
	}
}
