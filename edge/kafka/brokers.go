package kafka

import (
	"context"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/txn"
)

// Broker is one node as Kafka clients see it.
type Broker struct {
	ID   int32
	Host string
	Port int32
}

// Cluster tells the Kafka edge of a cluster node about the other nodes.
// Broker ids are the nodes' places in the cluster's peer list, which every
// node's config shares, so every node names a broker alike.
type Cluster interface {
	// Brokers returns every node whose Kafka address is known (this one
	// included), in id order.
	Brokers() []Broker
	// BrokerID returns the broker id of the named node; false for an
	// unknown name.
	BrokerID(node string) (int32, bool)
	// Self is this node's broker id.
	Self() int32
	// Coordinator returns the node that coordinates consumer group g:
	// its broker id, or false when none can now (no leader of the
	// replicated offsets, or its Kafka address is not known yet).
	Coordinator(g string) (Broker, bool)
	// AddPartitionsToTxn adds parts to the ongoing transaction (or a new
	// one) of the producer pid at epoch under txnID, at the node that
	// coordinates transactions (Server.AddPartitionsForPeer there), and
	// returns once its log holds them, or the coordinator's error (the
	// txn package's errors, wrapped). Transaction version 2's Produce
	// uses it on a node that does not coordinate transactions.
	AddPartitionsToTxn(ctx context.Context, txnID string, pid int64, epoch int16, parts []txn.TopicPartition) error
}

// single is the Cluster of a node that runs alone: broker 0 at the
// advertised address of the connection.
type single struct{ c *conn }

func (s single) Brokers() []Broker {
	host, port := s.c.advertised()
	return []Broker{{ID: 0, Host: host, Port: port}}
}
func (single) BrokerID(string) (int32, bool) { return 0, true }
func (single) Self() int32                   { return 0 }
func (s single) Coordinator(string) (Broker, bool) {
	return s.Brokers()[0], true
}

// AddPartitionsToTxn is never called on a node alone: it coordinates
// every transaction itself.
func (s single) AddPartitionsToTxn(ctx context.Context, txnID string, pid int64, epoch int16, parts []txn.TopicPartition) error {
	return s.c.s.txns.AddPartitions(ctx, nil, txnID, pid, epoch, parts)
}

// cluster returns the connection's view of the cluster.
func (c *conn) cluster() Cluster {
	if c.s.opts.Cluster != nil {
		return c.s.opts.Cluster
	}
	return single{c}
}

// SplitBroker parses a host:port into a Broker's address fields; the port
// is 9092 when it cannot be read.
func SplitBroker(id int32, addr string) Broker {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return Broker{ID: id, Host: addr, Port: 9092}
	}
	port, err := strconv.Atoi(ps)
	if err != nil {
		return Broker{ID: id, Host: host, Port: 9092}
	}
	return Broker{ID: id, Host: host, Port: int32(port)}
}

// leaderCode returns OK when this node leads the partition (or holds it
// alone), else NOT_LEADER, which Kafka clients answer by refreshing their
// metadata: produce, fetch and ListOffsets go to a partition's leader.
func (c *conn) leaderCode(topic string, partition int32) result.Code {
	if l, ok := c.s.node.Leadership(topic, partition); ok && !l.IsLeader() {
		return result.NotLeader
	}
	return result.OK
}

// partitionMetadata fills the leader, epoch, replicas and ISR of one
// partition. A replicated partition with no leader known, or whose
// leader's Kafka address is not known yet, answers LEADER_NOT_AVAILABLE
// (retriable: clients ask again).
func (c *conn) partitionMetadata(mp *kmsg.MetadataResponseTopicPartition, topic string, known map[int32]bool) {
	cl := c.cluster()
	l, ok := c.s.node.Leadership(topic, mp.Partition)
	if !ok {
		self := cl.Self()
		mp.Leader, mp.LeaderEpoch = self, -1
		mp.Replicas, mp.ISR = []int32{self}, []int32{self}
		return
	}
	mp.LeaderEpoch = int32(l.Term())
	for _, r := range l.Replicas() {
		if id, ok := cl.BrokerID(r); ok {
			mp.Replicas = append(mp.Replicas, id)
		}
	}
	// Sense does not track an in-sync set apart from raft's quorum: every
	// replica is reported in sync, as for acks=all a quorum is.
	mp.ISR = mp.Replicas
	mp.Leader = -1
	if id, ok := cl.BrokerID(l.Leader()); ok && l.Leader() != "" && known[id] {
		mp.Leader = id
		return
	}
	mp.ErrorCode = kerr.LeaderNotAvailable.Code
}
