package kafka

import (
	"fmt"
	"reflect"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/internal/tlsconf"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
)

// Authentication on the Kafka listener (docs/security.md). With
// Options.Auth enabled, a connection may send ApiVersions, SaslHandshake
// and SaslAuthenticate until it has authenticated, each request at most
// preAuthMaxRequest bytes, within Options.AuthTimeout of connecting. Any
// other request before is answered with ILLEGAL_SASL_STATE (in its
// response's top-level error code, where it has one) and the connection
// is closed: a client never waits for an answer that will not come.

// preAuthMaxRequest bounds a request before authentication.
const preAuthMaxRequest = 64 << 10

// authRequired reports whether the connection must still authenticate.
func (c *conn) authRequired() bool {
	return c.s.opts.Auth.Enabled() && !c.authenticated.Load()
}

// beforeAuth reports whether a request of key may come before
// authentication.
func beforeAuth(key int16) bool { return key == 17 || key == 18 || key == 36 }

func (c *conn) remote() string { return c.nc.RemoteAddr().String() }

// unauthenticated answers a request that came before authentication:
// ILLEGAL_SASL_STATE in the response's top-level error code where every
// version has one (topLevelError); the connection is then closed.
func (c *conn) unauthenticated(h header) kmsg.Response {
	reason := fmt.Sprintf("API key %d before authentication: this listener requires SASL (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", h.key)
	c.s.opts.Auth.Record("kafka", c.remote(), "", "", fmt.Errorf("API key %d before authentication", h.key))
	c.closeAfter = reason
	if !topLevelError[h.key] {
		return nil // no field to say it in: the connection closes
	}
	resp := kmsg.ResponseForKey(h.key)
	if resp == nil {
		return nil
	}
	resp.SetVersion(h.version)
	f := reflect.ValueOf(resp).Elem().FieldByName("ErrorCode")
	if !f.IsValid() || f.Kind() != reflect.Int16 || !f.CanSet() {
		return nil // no field to say it in: the connection closes
	}
	f.SetInt(int64(kerr.IllegalSaslState.Code))
	return resp
}

// topLevelError lists the APIs served whose responses have a top-level
// error code in every version (a field added in a later version, such as
// Metadata's, would be dropped when encoding an older one, leaving an
// answer that looks successful).
var topLevelError = map[int16]bool{11: true, 12: true, 13: true, 14: true, 16: true, 22: true, 50: true, 60: true}

// certificateAuth authenticates the connection as the user its verified
// TLS client certificate maps to (security.certificate_user), if any: the
// client then sends no SASL (security.protocol=SSL).
func (c *conn) certificateAuth() {
	auth := c.s.opts.Auth
	id, verified := tlsconf.PeerIdentity(c.nc)
	p, ok, err := auth.Certificate(id, verified)
	if err != nil {
		auth.Record("kafka", c.remote(), security.Certificate, "", err)
		return
	}
	if !ok {
		return
	}
	c.principal = p
	c.ctx = security.NewContext(c.ctx, p)
	c.log = c.log.With("principal", p.User)
	auth.Record("kafka", c.remote(), p.Mechanism, p.User, nil)
	c.authenticated.Store(true)
	c.nc.SetReadDeadline(time.Time{})
	if c.stopping.Load() {
		c.nc.SetReadDeadline(time.Now())
	}
}

// readLimit is the principal's read limit on a pipeline it may read
// (none with security off).
func (c *conn) readLimit(pipeline string) security.ReadLimit {
	if !c.s.opts.Auth.Enabled() {
		return security.ReadLimit{}
	}
	return security.ReadLimitOf(c.s.opts.Authorizer, c.principal, pipeline)
}

// filterRecords removes from fetched batches the records the limit does
// not allow.
func (c *conn) filterRecords(b []byte, limit security.ReadLimit) ([]byte, result.Code) {
	out, err := c.filter.Filter(nil, b, limit.Allows)
	if err != nil {
		c.log.Error("filtering a fetch by jurisdiction failed", "err", err)
		return nil, result.StorageError
	}
	return out, result.OK
}

// may reports whether the principal may do a on r, without logging a
// denial: for listings that leave out what it may not see.
func (c *conn) may(a security.Action, r security.Resource) bool {
	return !c.s.opts.Auth.Enabled() || c.s.opts.Authorizer.Authorize(c.principal, a, r) == nil
}

// authorize asks the authorizer whether the connection's principal may do
// a on r; with security off nothing is asked. It returns the Kafka error
// code of a denial (TOPIC_, GROUP_ or CLUSTER_AUTHORIZATION_FAILED), or 0.
func (c *conn) authorize(a security.Action, r security.Resource) int16 {
	if !c.s.opts.Auth.Enabled() {
		return 0
	}
	err := c.s.opts.Authorizer.Authorize(c.principal, a, r)
	if err == nil {
		return 0
	}
	c.log.Info("Kafka request denied", "action", a.String(), "resource", r.String(), "err", err)
	switch r.Type {
	case security.Pipeline:
		return kerr.TopicAuthorizationFailed.Code
	case security.Group:
		return kerr.GroupAuthorizationFailed.Code
	case security.TransactionalID:
		return kerr.TransactionalIDAuthorizationFailed.Code
	}
	return kerr.ClusterAuthorizationFailed.Code
}
