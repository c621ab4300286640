package cluster

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/sensehq/sense/internal/tlsconf"
)

// Peer is one node of the cluster.
type Peer struct {
	// ID is the node's id, unique in the cluster: 1 to 255 bytes.
	ID string
	// Addr is the host:port the node's transport listens on. It may be
	// empty for a peer whose address is not known yet (SetPeerAddr gives
	// it later): such a peer is not dialed, and frames for it are dropped.
	Addr string
}

// Handler receives frames.
type Handler interface {
	// HandleFrame is called from the read goroutine of a connection, one
	// frame at a time per connection; payload is valid only during the
	// call (the transport reuses the buffer). Close waits for calls in
	// progress, so HandleFrame must not wait for Close.
	HandleFrame(from string, kind byte, payload []byte)
}

// HandlerFunc is a function used as a Handler.
type HandlerFunc func(from string, kind byte, payload []byte)

// HandleFrame calls f.
func (f HandlerFunc) HandleFrame(from string, kind byte, payload []byte) { f(from, kind, payload) }

// Defaults of Config.
const (
	DefaultClusterName   = "sense"
	DefaultMaxQueueBytes = 64 << 20
	DefaultMaxFrameBytes = 32 << 20
	DefaultDialTimeout   = time.Second
	DefaultWriteTimeout  = 5 * time.Second
)

// maxFrameLimit bounds Config.MaxFrameBytes: the length field is a u32,
// and a frame buffer must be allocatable.
const maxFrameLimit = 1 << 30

// Config configures a Transport. Self, Peers and Handler are required;
// every other field has a default.
type Config struct {
	// Self is this node's id; it must be among Peers.
	Self string
	// Listen is the host:port to listen on ("127.0.0.1:0" picks a port);
	// default: Self's Addr in Peers.
	Listen string
	// Peers lists every node, this one included (its entry is not dialed).
	// Ids are unique.
	Peers []Peer
	// Handler receives the frames from every peer.
	Handler Handler
	// Logger; default slog.Default().
	Logger *slog.Logger
	// ClusterName is sent and checked in the hello: nodes with different
	// names refuse each other. Default "sense"; at most 255 bytes.
	ClusterName string
	// MaxQueueBytes bounds the memory of the frames queued for, or being
	// written to, one peer: their bytes on the wire, and the unused ends of
	// the blocks small frames are copied into. Default 64 MiB.
	MaxQueueBytes int
	// MaxFrameBytes is the largest frame, kind byte plus payload, sent or
	// accepted: the largest payload is one byte less. Default 32 MiB; at
	// most 1 GiB, and it must fit in MaxQueueBytes with its header.
	MaxFrameBytes int
	// DialTimeout bounds a connection attempt; default 1s.
	DialTimeout time.Duration
	// WriteTimeout bounds the write of the hello and of each 4 MiB of a
	// batch of frames; a write that misses it closes the connection.
	// Default 5s.
	WriteTimeout time.Duration
	// TLS, when set, runs every connection over mutual TLS 1.3 (see the
	// package comment, "TLS"): this node presents TLS's certificate and
	// verifies each peer's against TLS's CA pool, and a peer's
	// certificate must name its node id (tlsconf.NamesNode). Nil: plain
	// TCP.
	TLS *tlsconf.Source
}

// Validate fills in the defaults of c and checks it; the error names the
// field and the value at fault.
func (c *Config) Validate() error {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ClusterName == "" {
		c.ClusterName = DefaultClusterName
	}
	if len(c.ClusterName) > maxNameLen {
		return fmt.Errorf("cluster: ClusterName %q is %d bytes; at most %d", c.ClusterName, len(c.ClusterName), maxNameLen)
	}
	if c.Handler == nil {
		return fmt.Errorf("cluster: Handler is nil; give the receiver of the peers' frames")
	}
	if err := checkID("Self", c.Self); err != nil {
		return err
	}
	seen := make(map[string]int, len(c.Peers))
	self := -1
	for i, p := range c.Peers {
		field := fmt.Sprintf("Peers[%d]", i)
		if err := checkID(field+".ID", p.ID); err != nil {
			return err
		}
		if j, dup := seen[p.ID]; dup {
			return fmt.Errorf("cluster: %s.ID %q is also the id of Peers[%d]; ids must be unique", field, p.ID, j)
		}
		seen[p.ID] = i
		if p.ID == c.Self {
			self = i
			continue
		}
		if p.Addr != "" {
			if _, _, err := net.SplitHostPort(p.Addr); err != nil {
				return fmt.Errorf("cluster: %s.Addr %q (peer %s) is not host:port: %v", field, p.Addr, p.ID, err)
			}
		}
	}
	if self < 0 {
		return fmt.Errorf("cluster: Self %q is not among Peers; list every node, this one included", c.Self)
	}
	if c.Listen == "" {
		c.Listen = c.Peers[self].Addr
	}
	if c.Listen == "" {
		return fmt.Errorf("cluster: Listen is empty and so is Peers[%d].Addr (%s, this node); give the address to listen on", self, c.Self)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("cluster: Listen %q is not host:port: %v", c.Listen, err)
	}
	if c.MaxQueueBytes == 0 {
		c.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if c.MaxQueueBytes < frameHeaderLen {
		return fmt.Errorf("cluster: MaxQueueBytes %d cannot hold a frame; use at least %d, or 0 for the default (%d)", c.MaxQueueBytes, frameHeaderLen, DefaultMaxQueueBytes)
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = min(DefaultMaxFrameBytes, c.MaxQueueBytes-frameHeaderLen+1)
	}
	if c.MaxFrameBytes < 1 || c.MaxFrameBytes > maxFrameLimit {
		return fmt.Errorf("cluster: MaxFrameBytes %d is out of range; use 1 to %d, or 0 for the default (%d)", c.MaxFrameBytes, maxFrameLimit, DefaultMaxFrameBytes)
	}
	if wire := c.MaxFrameBytes + frameHeaderLen - 1; wire > c.MaxQueueBytes {
		return fmt.Errorf("cluster: MaxFrameBytes %d does not fit in MaxQueueBytes %d with its %d-byte header; lower MaxFrameBytes or raise MaxQueueBytes",
			c.MaxFrameBytes, c.MaxQueueBytes, frameHeaderLen-1)
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.DialTimeout < 0 {
		return fmt.Errorf("cluster: DialTimeout %v is negative; use 0 for the default (%v)", c.DialTimeout, DefaultDialTimeout)
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.WriteTimeout < 0 {
		return fmt.Errorf("cluster: WriteTimeout %v is negative; use 0 for the default (%v)", c.WriteTimeout, DefaultWriteTimeout)
	}
	if c.TLS != nil && (c.TLS.Certificate() == nil || c.TLS.CAs() == nil) {
		return fmt.Errorf("cluster: TLS needs a certificate and a CA file, got %+v; give both (cluster.tls)", c.TLS.Files())
	}
	return nil
}

// checkID checks a node id: it is sent after a one-byte length.
func checkID(field, id string) error {
	if id == "" {
		return fmt.Errorf("cluster: %s is empty; give a node id such as n1", field)
	}
	if len(id) > maxNameLen {
		return fmt.Errorf("cluster: %s %q is %d bytes; at most %d", field, id, len(id), maxNameLen)
	}
	return nil
}
