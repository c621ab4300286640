package kafka

import (
	"errors"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
)

// Metadata (key 3), versions 1 to 8 (9+ are flexible, see header.go). A
// node that runs alone is broker 0, at Options.AdvertisedAddr, and leads
// every partition (replicas and ISR [0]). In a cluster every node whose
// Kafka address is known is a broker (Options.Cluster), and each partition
// names its raft leader, term (as the leader epoch) and replicas.
// A partition in a hub whose policy denies the pipeline has the error
// POLICY_VIOLATION, beside its leader and replicas (docs/kafka.md).
// An unknown topic is created with the
// default spec when Options.AutoCreateTopics is set and the request allows
// auto-creation (always before v4), and the principal may create it. With
// security on, a listing of every topic leaves out those the principal
// may not describe, and a topic asked for by name that it may not
// describe is TOPIC_AUTHORIZATION_FAILED.
const (
	metadataMin = 1
	metadataMax = 8
)

func (c *conn) metadata(req *kmsg.MetadataRequest) kmsg.Response {
	resp := kmsg.NewPtrMetadataResponse()
	resp.SetVersion(req.Version)
	known := map[int32]bool{}
	for _, br := range c.cluster().Brokers() {
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID, b.Host, b.Port = br.ID, br.Host, br.Port
		resp.Brokers = append(resp.Brokers, b)
		known[br.ID] = true
	}
	cid := c.s.opts.ClusterID
	resp.ClusterID = &cid
	resp.ControllerID = c.cluster().Self()

	if req.Topics == nil {
		for _, p := range c.s.node.Pipelines() {
			if c.may(security.Describe, security.PipelineResource(p.Name)) {
				resp.Topics = append(resp.Topics, c.topicMetadata(p.Name, false, known))
			}
		}
		return resp
	}
	allow := req.Version < 4 || req.AllowAutoTopicCreation
	for _, t := range req.Topics {
		if t.Topic == nil {
			mt := kmsg.NewMetadataResponseTopic()
			mt.TopicID = t.TopicID
			mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		if code := c.authorize(security.Describe, security.PipelineResource(*t.Topic)); code != 0 {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic = t.Topic
			mt.ErrorCode = code
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		// Auto-creation needs create on the topic, or on the cluster.
		create := allow && (c.may(security.Create, security.PipelineResource(*t.Topic)) || c.may(security.Create, security.ClusterResource))
		resp.Topics = append(resp.Topics, c.topicMetadata(*t.Topic, create, known))
	}
	return resp
}

func (c *conn) topicMetadata(name string, create bool, known map[int32]bool) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = &name
	parts, code := c.s.node.Partitions(name)
	if code == result.UnknownPipeline && create {
		code = c.create(name)
		if code == result.OK {
			parts, code = c.s.node.Partitions(name)
		}
	}
	if code != result.OK {
		mt.ErrorCode = code.Kafka()
		return mt
	}
	for _, p := range parts {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p.Partition
		c.partitionMetadata(&mp, name, known)
		if p.Denied && mp.ErrorCode == 0 {
			// The hub's policy denies the pipeline: Produce answers
			// POLICY_VIOLATION there. Saying so here keeps clients that
			// pick among partitions without a load error (franz-go's
			// default partitioners, librdkafka's random one) off it;
			// the leader stays, for readers of what remains.
			mp.ErrorCode = kerr.PolicyViolation.Code
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// create makes a pipeline for a topic when auto-creation is on; it returns
// OK, or why not.
func (c *conn) create(name string) result.Code {
	if !c.s.opts.AutoCreateTopics {
		return result.UnknownPipeline
	}
	if err := event.ValidatePipelineName(name); err != nil {
		return result.InvalidPipelineName
	}
	err := c.s.node.CreatePipeline(node.PipelineSpec{Name: name})
	if err != nil && !errors.Is(err, node.ErrPipelineExists) {
		c.log.Error("auto-create topic failed", "topic", name, "err", err)
		return result.StorageError
	}
	if err == nil {
		c.log.Info("created pipeline for Kafka topic", "pipeline", name)
	}
	return result.OK
}

// advertised returns the broker address for Metadata.
func (c *conn) advertised() (string, int32) {
	addr := c.s.opts.AdvertisedAddr
	if addr == "" {
		addr = c.nc.LocalAddr().String()
	}
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 9092
	}
	port, err := strconv.Atoi(ps)
	if err != nil {
		return host, 9092
	}
	return host, int32(port)
}
