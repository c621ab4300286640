package kafka

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeCluster (key 60), versions 0 and 1 (2 adds fenced brokers). Every
// version is flexible, so the body is decoded by decodeDescribeCluster, not
// kmsg (see ownDecoders in header.go). The answer is Metadata's: the
// cluster id, this node as the controller, and the brokers. Endpoint type 2 (controllers, v1) is UNSUPPORTED_ENDPOINT_TYPE,
// as a Kafka broker answers it. Sense has no authorization: asked for the
// cluster's authorized operations, it reports those Sense implements on
// the cluster resource (create topics, describe, describe configs,
// idempotent write); not asked, the -2147483648 Kafka sends.
const (
	describeClusterMin = 0
	describeClusterMax = 1
)

// clusterOps is the bit field of ACL operations Sense performs on the
// cluster resource for any client.
const clusterOps = 1<<kmsg.ACLOperationCreate | 1<<kmsg.ACLOperationDescribe |
	1<<kmsg.ACLOperationDescribeConfigs | 1<<kmsg.ACLOperationIdempotentWrite

func (c *conn) describeCluster(req *kmsg.DescribeClusterRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeClusterResponse()
	resp.SetVersion(req.Version)
	resp.EndpointType = req.EndpointType // v1+
	resp.ClusterID = c.s.opts.ClusterID
	if req.Version >= 1 && req.EndpointType != 1 {
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		msg := fmt.Sprintf("endpoint type %d: this Sense node answers DescribeCluster for brokers (1) only", req.EndpointType)
		resp.ErrorMessage = &msg
		return resp
	}
	resp.ControllerID = c.cluster().Self()
	for _, br := range c.cluster().Brokers() {
		b := kmsg.NewDescribeClusterResponseBroker()
		b.NodeID, b.Host, b.Port = br.ID, br.Host, br.Port
		resp.Brokers = append(resp.Brokers, b)
	}
	if req.IncludeClusterAuthorizedOperations {
		resp.ClusterAuthorizedOperations = clusterOps
	}
	return resp
}

var errBodyShort = errors.New("request body truncated")

// decodeDescribeCluster decodes a DescribeCluster v0 or v1 body:
// IncludeClusterAuthorizedOperations (bool), EndpointType (int8, v1), then
// a tagged-field section (none are defined; they are skipped, every count
// and length checked against the bytes left). Bytes after it are an error.
func decodeDescribeCluster(version int16, b []byte) (kmsg.Request, error) {
	req := kmsg.NewPtrDescribeClusterRequest()
	req.SetVersion(version)
	if len(b) < 1 {
		return nil, errBodyShort
	}
	req.IncludeClusterAuthorizedOperations = b[0] != 0
	b = b[1:]
	if version >= 1 {
		if len(b) < 1 {
			return nil, errBodyShort
		}
		req.EndpointType = int8(b[0])
		b = b[1:]
	}
	b, err := skipTags(b)
	if err != nil {
		return nil, errBodyShort
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d bytes after the body", len(b))
	}
	return req, nil
}
