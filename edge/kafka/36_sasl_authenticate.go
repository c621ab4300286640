package kafka

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/security"
)

// SaslAuthenticate (key 36), versions 0 and 1 (2 is flexible; see
// header.go). Each request carries the client's next SASL message for the
// mechanism chosen by SaslHandshake; the answer carries the server's. A
// refused exchange is SASL_AUTHENTICATION_FAILED with a message saying
// why, and the connection is closed; a request without a handshake before
// it is ILLEGAL_SASL_STATE, likewise. Version 1's session lifetime is 0:
// the connection stays authenticated until it closes.
const (
	saslAuthenticateMin = 0
	saslAuthenticateMax = 1
)

func (c *conn) saslAuthenticate(req *kmsg.SASLAuthenticateRequest) kmsg.Response {
	resp := kmsg.NewPtrSASLAuthenticateResponse()
	resp.SetVersion(req.Version)
	if c.session == nil {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		msg := "SaslAuthenticate without a SaslHandshake before it (or after authentication)"
		resp.ErrorMessage = &msg
		c.closeAfter = msg
		return resp
	}
	auth := c.s.opts.Auth
	out, done, err := c.session.Step(req.SASLAuthBytes)
	if err != nil {
		auth.Record("kafka", c.remote(), c.session.Mechanism(), c.session.User(), err)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := err.Error()
		var ae *security.AuthError
		if !errors.As(err, &ae) {
			msg = "authentication failed: " + msg
		}
		resp.ErrorMessage = &msg
		c.closeAfter = msg
		c.session = nil
		return resp
	}
	resp.SASLAuthBytes = out
	if done {
		p := c.session.Principal()
		c.session = nil
		c.principal = p
		c.ctx = security.NewContext(c.ctx, p)
		c.log = c.log.With("principal", p.User)
		auth.Record("kafka", c.remote(), p.Mechanism, p.User, nil)
		// Before the response goes out, so that the reader applies the
		// full request size to what the client sends next.
		c.authenticated.Store(true)
		c.nc.SetReadDeadline(time.Time{})
		if c.stopping.Load() {
			c.nc.SetReadDeadline(time.Now())
		}
	}
	return resp
}
