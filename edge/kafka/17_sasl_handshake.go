package kafka

import (
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/security"
)

// SaslHandshake (key 17), versions 0 and 1, advertised so because
// librdkafka looks for version 0 in ApiVersions before it uses SASL at all;
// a handshake of version 0, after which Kafka reads the SASL tokens
// outside its framing, is answered UNSUPPORTED_VERSION and the connection
// closed: every client since Kafka 1.0 uses version 1 and SaslAuthenticate. The mechanisms: PLAIN, SCRAM-SHA-256 and
// SCRAM-SHA-512 (kafkaMechanisms). An unknown one is
// UNSUPPORTED_SASL_MECHANISM with the list, and the connection is closed,
// as a Kafka broker does. A second handshake, or one after authentication,
// is ILLEGAL_SASL_STATE.
const (
	saslHandshakeMin = 0
	saslHandshakeMax = 1
)

// kafkaMechanisms are the SASL mechanisms of the Kafka listener. A Kafka
// client authenticates with a Sense token through PLAIN (user "token").
var kafkaMechanisms = []string{security.ScramSHA512, security.ScramSHA256, security.Plain}

func (c *conn) saslHandshake(req *kmsg.SASLHandshakeRequest) kmsg.Response {
	resp := kmsg.NewPtrSASLHandshakeResponse()
	resp.SetVersion(req.Version)
	resp.SupportedMechanisms = kafkaMechanisms
	auth := c.s.opts.Auth
	switch {
	case req.Version == 0:
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		c.closeAfter = "SaslHandshake version 0 (SASL tokens outside Kafka framing) is not supported; use version 1 with SaslAuthenticate"
	case auth == nil:
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		resp.SupportedMechanisms = []string{}
		c.closeAfter = "SaslHandshake on a listener without authentication"
	case c.authenticated.Load() || c.session != nil:
		resp.ErrorCode = kerr.IllegalSaslState.Code
		c.closeAfter = "SaslHandshake after a handshake or authentication"
	case !slices.Contains(kafkaMechanisms, req.Mechanism):
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		err := fmt.Errorf("mechanism %q is not one of %s", truncate(req.Mechanism), strings.Join(kafkaMechanisms, ", "))
		auth.Record("kafka", c.remote(), truncate(req.Mechanism), "", err)
		c.closeAfter = err.Error()
	default:
		s, err := auth.NewSession(req.Mechanism)
		if err != nil { // not reached: the mechanisms are the authenticator's
			resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
			c.closeAfter = err.Error()
			break
		}
		c.session = s
	}
	return resp
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
