// Package cluster is the node-to-node transport of a Sense cluster. It
// moves opaque frames, a kind byte and a payload, from one node to
// another over TCP; it knows nothing of raft, whose messages (of every
// raft group, one per partition) are the main thing it carries.
// docs/cluster.md is the full description; this comment is a summary.
//
// # Connections
//
// Every node has an id ("n1") and one listen address for cluster traffic.
// Connections are one-directional: node A dials peer B and writes the A→B
// frames on that connection; B only reads it. B dials A for B→A frames, so
// each pair of nodes that talk both ways holds two TCP connections. A node
// dials a peer when it first has a frame for it, so a node never opens a
// connection to a peer it has nothing to send to.
//
// # Hello
//
// The dialer's first bytes are a hello (integers are unsigned):
//
//	4 bytes  magic "SNSC"
//	u8       version, 1
//	u8       length of the cluster name, then the name
//	u8       length of the sender's node id, then the id
//	u8       length of the id of the node the sender meant to dial, then the id
//
// The acceptor checks each field against its own configuration and closes
// the connection, with a logged error naming the value it got and the one
// it wanted, on any mismatch.
//
// # TLS
//
// With Config.TLS every connection is mutual TLS 1.3 (ALPN
// "sense-cluster/1") before the hello. Both ends present their node's
// certificate and verify the other's chain against the CA pool of
// Config.TLS; a certificate names a node by a URI SAN sense://node/<id>
// or a DNS SAN equal to the id (tlsconf.NamesNode). The dialer requires
// the server's certificate to name the peer it dialed; the acceptor
// requires the client's to name a configured peer, and then the node its
// hello claims to be from. Any refusal closes the connection and logs
// what to fix; the refused node logs the TLS alert it got.
//
// # Frames
//
// After the hello come frames, back to back (big-endian):
//
//	u32  length   1 + payload length; 1 to Config.MaxFrameBytes
//	u8   kind
//	...  payload  length - 1 bytes
//
// A reader checks the length before it allocates for the frame; a length
// of 0 or above the maximum, or a frame cut short, closes the connection.
//
// # Sending
//
// Send never blocks: it queues the frame for the peer's sender goroutine,
// which writes everything queued with one writev per 4 MiB, or it refuses
// the frame (returns false and counts a drop) when the peer is unknown, the
// frame is too large, the peer's queue is full (Config.MaxQueueBytes), or
// the peer is down. Frames are not kept across a lost connection: raft
// sends again what matters, and a queue that outlived an outage would only
// fill memory with stale messages.
//
// # Receiving
//
// Each accepted connection has a read goroutine that calls
// Handler.HandleFrame once per frame, in order; the payload aliases a
// buffer the next frame reuses. InboundConnected tells whether a peer's
// connection is open: a killed peer's closes at once.
//
// # Members
//
// Members sends this node's NodeInfo (its client addresses and start time,
// frame kind KindNodeInfo) to every peer every interval and keeps what the
// peers send: how Kafka clients learn every broker, and how `sense cluster
// status` and the raft groups' liveness learn which nodes are up.
package cluster
