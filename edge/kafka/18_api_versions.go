package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ApiVersions (key 18), versions 0 to 2 (3+ are flexible, see header.go;
// clients fall back to 2 after the answer below). A request of
// another version is answered with UNSUPPORTED_VERSION and the supported
// versions in a version 0 response, so the client can retry.
const (
	apiVersionsMin = 0
	apiVersionsMax = 2
)

func (c *conn) apiVersions(req *kmsg.ApiVersionsRequest, h header) kmsg.Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(h.version)
	if h.unsupported {
		resp.SetVersion(0)
		resp.ErrorCode = kerr.UnsupportedVersion.Code
	}
	for _, v := range supported {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = v.key, v.min, v.max
		resp.ApiKeys = append(resp.ApiKeys, k)
	}
	return resp
}
