package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// KindNodeInfo is the frame kind of a node's self-description (NodeInfo),
// which every node sends each of its peers every Members interval. Kinds
// 1 to 3 are the replica package's (raft messages and forwarded appends).
const KindNodeInfo byte = 4

// nodeInfoVersion is the version byte that opens a NodeInfo payload.
const nodeInfoVersion = 2

// ErrBadNodeInfo: a KindNodeInfo payload does not decode.
var ErrBadNodeInfo = errors.New("cluster: bad node info")

// NodeInfo is what a node tells its peers of itself: the addresses its
// clients reach it at, so that a node can name its peers to clients (Kafka
// Metadata, `sense cluster status`), and when it started.
//
// Its encoding (big-endian):
//
//	u8   version, 2
//	u8   length of the node id, then the id
//	i64  start time, Unix milliseconds (tells a restart from a pause)
//	u8   length, then the Kafka address advertised to clients ("" if none)
//	u8   length, then the native protocol's address ("" if none)
//	u8   length, then the HTTP address ("" if none)
//	u64  the routing table version the node routes with
//
// Nothing may follow. Strings are at most 255 bytes.
type NodeInfo struct {
	ID      string
	Started time.Time
	Kafka   string
	Native  string
	HTTP    string
	// Table is the version of the routing table the node routes with:
	// the offset of the cluster metadata log it has applied.
	Table uint64
}

// AppendNodeInfo appends the encoding of ni to dst. Strings longer than
// 255 bytes are cut (an address never is that long; Config.Validate keeps
// ids shorter).
func AppendNodeInfo(dst []byte, ni NodeInfo) []byte {
	dst = append(dst, nodeInfoVersion)
	dst = appendShort(dst, ni.ID)
	dst = binary.BigEndian.AppendUint64(dst, uint64(ni.Started.UnixMilli()))
	for _, s := range [...]string{ni.Kafka, ni.Native, ni.HTTP} {
		dst = appendShort(dst, s)
	}
	return binary.BigEndian.AppendUint64(dst, ni.Table)
}

func appendShort(dst []byte, s string) []byte {
	if len(s) > maxNameLen {
		s = s[:maxNameLen]
	}
	dst = append(dst, byte(len(s)))
	return append(dst, s...)
}

// DecodeNodeInfo decodes a KindNodeInfo payload. Every length is checked
// against the bytes there; an error wraps ErrBadNodeInfo.
func DecodeNodeInfo(p []byte) (NodeInfo, error) {
	var ni NodeInfo
	if len(p) < 1 || p[0] != nodeInfoVersion {
		return ni, fmt.Errorf("%w: version byte missing or not %d", ErrBadNodeInfo, nodeInfoVersion)
	}
	p = p[1:]
	short := func(field string) (string, error) {
		if len(p) < 1 || len(p) < 1+int(p[0]) {
			return "", fmt.Errorf("%w: %s cut short", ErrBadNodeInfo, field)
		}
		s := string(p[1 : 1+int(p[0])])
		p = p[1+int(p[0]):]
		return s, nil
	}
	var err error
	if ni.ID, err = short("node id"); err != nil {
		return ni, err
	}
	if ni.ID == "" {
		return ni, fmt.Errorf("%w: empty node id", ErrBadNodeInfo)
	}
	if len(p) < 8 {
		return ni, fmt.Errorf("%w: start time cut short", ErrBadNodeInfo)
	}
	ni.Started = time.UnixMilli(int64(binary.BigEndian.Uint64(p)))
	p = p[8:]
	for _, f := range [...]struct {
		name string
		dst  *string
	}{{"Kafka address", &ni.Kafka}, {"native address", &ni.Native}, {"HTTP address", &ni.HTTP}} {
		if *f.dst, err = short(f.name); err != nil {
			return ni, err
		}
	}
	if len(p) < 8 {
		return ni, fmt.Errorf("%w: table version cut short", ErrBadNodeInfo)
	}
	ni.Table = binary.BigEndian.Uint64(p)
	p = p[8:]
	if len(p) != 0 {
		return ni, fmt.Errorf("%w: %d bytes after the last field", ErrBadNodeInfo, len(p))
	}
	return ni, nil
}

// Sender sends one frame to a peer without blocking (Transport.Send).
type Sender interface {
	Send(to string, kind byte, payload []byte) bool
}

// Member is what this node knows of one node of the cluster.
type Member struct {
	NodeInfo
	// LastHeard is when its last NodeInfo arrived; zero if none has (and
	// for this node itself, whose entry is always current).
	LastHeard time.Time
	// Self marks this node's own entry.
	Self bool
}

// Up reports whether m is this node, or was heard from within d of now.
func (m Member) Up(now time.Time, d time.Duration) bool {
	return m.Self || !m.LastHeard.IsZero() && now.Sub(m.LastHeard) <= d
}

// DefaultMembersInterval is how often Members sends this node's NodeInfo
// to every peer.
const DefaultMembersInterval = time.Second

// Members keeps what every node of a cluster has said of itself: it sends
// this node's NodeInfo to each peer every interval and records what the
// peers send (Handle, fed by the transport's handler for KindNodeInfo).
// Its methods are safe for concurrent use.
type Members struct {
	self     NodeInfo
	peers    []string // the other nodes, in config order
	send     Sender
	interval time.Duration
	log      *slog.Logger

	quit chan struct{}
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	started bool
	known   map[string]Member // by id, peers only
}

// NewMembers returns the member list of a cluster of nodes (this node's
// id, self.ID, among them, in config order). Start begins the sending;
// an interval of 0 means DefaultMembersInterval.
func NewMembers(self NodeInfo, nodes []string, send Sender, interval time.Duration, log *slog.Logger) *Members {
	if interval <= 0 {
		interval = DefaultMembersInterval
	}
	if log == nil {
		log = slog.Default()
	}
	m := &Members{self: self, send: send, interval: interval, log: log,
		quit: make(chan struct{}), done: make(chan struct{}), known: map[string]Member{}}
	for _, id := range nodes {
		if id != self.ID {
			m.peers = append(m.peers, id)
			m.known[id] = Member{NodeInfo: NodeInfo{ID: id}}
		}
	}
	return m
}

// Start sends this node's NodeInfo to every peer now and then every
// interval, until Close.
func (m *Members) Start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		return
	}
	select {
	case <-m.quit:
		return // closed before it started
	default:
	}
	m.started = true
	go func() {
		defer close(m.done)
		t := time.NewTicker(m.interval)
		defer t.Stop()
		for {
			m.announce()
			select {
			case <-m.quit:
				return
			case <-t.C:
			}
		}
	}()
}

func (m *Members) announce() {
	m.mu.Lock()
	p := AppendNodeInfo(nil, m.self)
	m.mu.Unlock()
	for _, id := range m.peers {
		m.send.Send(id, KindNodeInfo, p)
	}
}

// Handle records a KindNodeInfo payload from peer from. A payload that
// does not decode, or names another node than the connection's, is logged
// and dropped. The first NodeInfo of a peer (or of a peer that restarted)
// is answered at once with this node's: a node that starts after the
// others, whose NodeInfos to it were dropped while it was down, learns
// them in one round trip instead of one interval later (until then it
// names fewer brokers to Kafka clients).
func (m *Members) Handle(from string, p []byte) {
	ni, err := DecodeNodeInfo(p)
	if err == nil && ni.ID != from {
		err = fmt.Errorf("%w: it names node %q", ErrBadNodeInfo, ni.ID)
	}
	if err != nil {
		m.log.Warn("cluster: node info from a peer dropped", "peer", from, "err", err)
		return
	}
	m.mu.Lock()
	old, ok := m.known[from]
	if !ok {
		m.mu.Unlock()
		return // the transport only delivers configured peers; be safe
	}
	m.known[from] = Member{NodeInfo: ni, LastHeard: time.Now()}
	var reply []byte
	if old.LastHeard.IsZero() || !old.Started.Equal(ni.Started) {
		reply = AppendNodeInfo(nil, m.self)
	}
	m.mu.Unlock()
	if reply != nil {
		m.send.Send(from, KindNodeInfo, reply)
	}
}

// Get returns what is known of node id (this node included); false for a
// node that is not in the cluster.
func (m *Members) Get(id string) (Member, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if id == m.self.ID {
		return Member{NodeInfo: m.self, Self: true}, true
	}
	mb, ok := m.known[id]
	return mb, ok
}

// List returns every node, this one included, sorted by id.
func (m *Members) List() []Member {
	m.mu.Lock()
	out := make([]Member, 0, len(m.known)+1)
	for _, mb := range m.known {
		out = append(out, mb)
	}
	out = append(out, Member{NodeInfo: m.self, Self: true})
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// SetTable records the routing table version this node routes with, for
// its next NodeInfo; it is sent at once when it grows.
func (m *Members) SetTable(v uint64) {
	m.mu.Lock()
	grew := v > m.self.Table
	m.self.Table = max(m.self.Table, v)
	started := m.started
	m.mu.Unlock()
	if grew && started {
		m.announce()
	}
}

// Close stops the sending and waits for it. It is idempotent, and safe
// without Start.
func (m *Members) Close() {
	m.once.Do(func() { close(m.quit) })
	m.mu.Lock()
	started := m.started
	m.mu.Unlock()
	if started {
		<-m.done
	}
}
