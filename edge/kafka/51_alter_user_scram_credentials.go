package kafka

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
)

// AlterUserScramCredentials (key 51), version 0 (flexible: decoded by
// decodeAlterUserSCRAMCredentials). An upsertion carries a salted password
// (never the password), from which the server derives StoredKey and
// ServerKey; it creates the user or replaces its credential for that
// mechanism, keeping the other. A deletion removes one mechanism's
// credential, and the user with its last one. A user named twice is
// DUPLICATE_RESOURCE; a bad mechanism UNSUPPORTED_SASL_MECHANISM; too few
// or too many iterations UNACCEPTABLE_CREDENTIAL; an unknown user or
// credential to delete RESOURCE_NOT_FOUND.
const (
	alterUserSCRAMCredentialsMin = 0
	alterUserSCRAMCredentialsMax = 0
)

func (c *conn) alterUserSCRAMCredentials(req *kmsg.AlterUserSCRAMCredentialsRequest) kmsg.Response {
	resp := kmsg.NewPtrAlterUserSCRAMCredentialsResponse()
	resp.SetVersion(req.Version)
	result := func(user string, code int16, msg string) {
		r := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		r.User, r.ErrorCode = user, code
		if msg != "" {
			r.ErrorMessage = &msg
		}
		resp.Results = append(resp.Results, r)
	}
	count := map[string]int{}
	for _, d := range req.Deletions {
		count[d.Name]++
	}
	for _, u := range req.Upsertions {
		count[u.Name]++
	}
	if code := c.authorize(security.Alter, security.ClusterResource); code != 0 {
		for name := range count {
			result(name, code, "not authorized to alter users")
		}
		return resp
	}
	for name, n := range count {
		if n > 1 {
			result(name, kerr.DuplicateResource.Code, fmt.Sprintf("user %q is named more than once in one request", name))
		}
	}
	if c.s.opts.Admin == nil {
		for name, n := range count {
			if n == 1 {
				result(name, kerr.UnknownServerError.Code, "this listener keeps no users")
			}
		}
		return resp
	}
	for _, d := range req.Deletions {
		if count[d.Name] > 1 {
			continue
		}
		code, msg := c.deleteCredential(d.Name, d.Mechanism)
		result(d.Name, code, msg)
	}
	for _, u := range req.Upsertions {
		if count[u.Name] > 1 {
			continue
		}
		code, msg := c.upsertCredential(u)
		result(u.Name, code, msg)
	}
	return resp
}

// kafkaUser returns a user's credentials as the admin API lists them.
func (c *conn) kafkaUser(name string) (admin.UserInfo, bool, error) {
	users, err := c.kafkaUsers()
	if err != nil {
		return admin.UserInfo{}, false, err
	}
	for _, u := range users {
		if u.Name == name {
			return u, true, nil
		}
	}
	return admin.UserInfo{}, false, nil
}

func (c *conn) upsertCredential(u kmsg.AlterUserSCRAMCredentialsRequestUpsertion) (int16, string) {
	mech, ok := senseMechanism(u.Mechanism)
	if !ok {
		return kerr.UnsupportedSaslMechanism.Code, fmt.Sprintf("mechanism %d is not SCRAM-SHA-256 (1) or SCRAM-SHA-512 (2)", u.Mechanism)
	}
	if err := security.ValidUserName(u.Name); err != nil {
		return kerr.UnacceptableCredential.Code, err.Error()
	}
	cred, err := security.CredentialFromSalted(mech, u.SaltedPassword, u.Salt, int(u.Iterations))
	if err != nil {
		return kerr.UnacceptableCredential.Code, err.Error()
	}
	req := admin.CreateUser{User: u.Name, Credentials: []admin.ScramCredential{admin.ScramCredential(cred)}}
	// Keep the user's credential of the other mechanism.
	if cur, ok, err := c.kafkaUser(u.Name); err != nil {
		return kerr.UnknownServerError.Code, err.Error()
	} else if ok {
		for _, kept := range cur.Credentials {
			if kept.Mechanism != mech {
				req.Credentials = append(req.Credentials, kept)
			}
		}
	}
	if _, err := c.adminCall(req); err != nil {
		return adminKafkaCode(err), result.MessageOf(err)
	}
	return 0, ""
}

func (c *conn) deleteCredential(name string, m int8) (int16, string) {
	mech, ok := senseMechanism(m)
	if !ok {
		return kerr.UnsupportedSaslMechanism.Code, fmt.Sprintf("mechanism %d is not SCRAM-SHA-256 (1) or SCRAM-SHA-512 (2)", m)
	}
	cur, ok, err := c.kafkaUser(name)
	if err != nil {
		return kerr.UnknownServerError.Code, err.Error()
	}
	var keep []admin.ScramCredential
	found := false
	for _, cr := range cur.Credentials {
		if cr.Mechanism == mech {
			found = true
		} else {
			keep = append(keep, cr)
		}
	}
	if !ok || !found {
		return kerr.ResourceNotFound.Code, fmt.Sprintf("user %q has no %s credential", name, mech)
	}
	if len(keep) == 0 {
		_, err = c.adminCall(admin.DeleteUser{User: name})
	} else {
		_, err = c.adminCall(admin.CreateUser{User: name, Credentials: keep})
	}
	if err != nil {
		return adminKafkaCode(err), result.MessageOf(err)
	}
	return 0, ""
}

// adminKafkaCode is the Kafka code of a refused admin request.
func adminKafkaCode(err error) int16 {
	switch result.CodeOf(err) {
	case result.Unauthorized:
		return kerr.ClusterAuthorizationFailed.Code
	case result.InvalidRequest:
		return kerr.UnacceptableCredential.Code
	}
	return result.CodeOf(err).Kafka()
}

// decodeAlterUserSCRAMCredentials decodes a version 0 body: Deletions, a
// compact array of {Name, Mechanism int8, tags}; Upsertions, a compact
// array of {Name, Mechanism int8, Iterations int32, Salt compact bytes,
// SaltedPassword compact bytes, tags}; tags.
func decodeAlterUserSCRAMCredentials(version int16, b []byte) (kmsg.Request, error) {
	req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	req.SetVersion(version)
	r := &kreader{b: b}
	if n := r.array(3); n > 0 {
		for range n {
			d := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
			d.Name = r.string()
			d.Mechanism = r.int8()
			r.tags()
			req.Deletions = append(req.Deletions, d)
		}
	}
	if n := r.array(9); n > 0 {
		for range n {
			u := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
			u.Name = r.string()
			u.Mechanism = r.int8()
			u.Iterations = r.int32()
			u.Salt = r.bytes()
			u.SaltedPassword = r.bytes()
			r.tags()
			req.Upsertions = append(req.Upsertions, u)
		}
	}
	r.tags()
	return req, r.end()
}
