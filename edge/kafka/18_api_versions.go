package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ApiVersions (key 18), versions 0 to 3 (3 is flexible, decoded by
// decodeApiVersions). A request of another version is answered with
// UNSUPPORTED_VERSION in a version 0 response that lists ApiVersions
// alone, with the versions served, as Kafka answers (KIP-511): the client
// retries with the newest of them. (A response listing every API would
// be taken as the final answer by franz-go, which would then never see
// the features of version 3.)
//
// Version 3 carries features (KIP-584). Sense supports
// transaction.version 0 to 2 on a node alone, 0 to 1 in a cluster, and
// finalizes the level in effect
// (Options.TransactionVersion): at 2 a client runs KIP-890 part 2
// (franz-go switches to it when the level is finalized at 2 and Produce
// 12, EndTxn 5 and TxnOffsetCommit 5 are served). The finalized features'
// epoch is finalizedFeaturesEpoch: the features of a node never change
// while it runs.
const (
	apiVersionsMin = 0
	apiVersionsMax = 3

	// transactionVersionFeature names the transaction version feature.
	transactionVersionFeature = "transaction.version"
	// finalizedFeaturesEpoch is the epoch of the finalized features
	// (any value but -1, which says there are none).
	finalizedFeaturesEpoch = 1
)

func (c *conn) apiVersions(req *kmsg.ApiVersionsRequest, h header) kmsg.Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(h.version)
	if h.unsupported {
		resp.SetVersion(0)
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = 18, apiVersionsMin, apiVersionsMax
		resp.ApiKeys = append(resp.ApiKeys, k)
		return resp
	}
	for _, v := range c.s.versions {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = v.key, v.min, v.max
		resp.ApiKeys = append(resp.ApiKeys, k)
	}
	sf := kmsg.NewApiVersionsResponseSupportedFeature()
	sf.Name, sf.MinVersion, sf.MaxVersion = transactionVersionFeature, 0, 2
	if c.s.opts.Cluster != nil {
		sf.MaxVersion = 1
	}
	resp.SupportedFeatures = append(resp.SupportedFeatures, sf)
	ff := kmsg.NewApiVersionsResponseFinalizedFeature()
	ff.Name, ff.MinVersionLevel, ff.MaxVersionLevel = transactionVersionFeature, int16(c.s.opts.TransactionVersion), int16(c.s.opts.TransactionVersion)
	resp.FinalizedFeatures = append(resp.FinalizedFeatures, ff)
	resp.FinalizedFeaturesEpoch = finalizedFeaturesEpoch
	return resp
}

// decodeApiVersions decodes an ApiVersions body: versions 0 to 2 by kmsg
// (not flexible; 0 has no body, 1 and 2 none either), 3 here:
// ClientSoftwareName and ClientSoftwareVersion (compact strings), then
// tags.
func decodeApiVersions(version int16, b []byte) (kmsg.Request, error) {
	req := kmsg.NewPtrApiVersionsRequest()
	if version < 3 {
		return kmsgBody(req, version, b)
	}
	req.SetVersion(version)
	r := &kreader{b: b}
	req.ClientSoftwareName = r.string()
	req.ClientSoftwareVersion = r.string()
	r.tags()
	if err := r.end(); err != nil {
		return nil, err
	}
	return req, nil
}
