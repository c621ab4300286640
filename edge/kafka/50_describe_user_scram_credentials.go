package kafka

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/security"
)

// DescribeUserScramCredentials (key 50), version 0 (flexible: decoded by
// decodeDescribeUserSCRAMCredentials, not kmsg). Users null lists every
// user; a named user that does not exist is RESOURCE_NOT_FOUND, a name
// given twice DUPLICATE_RESOURCE, as Kafka answers. The answer is the
// users' mechanisms and iteration counts, never their keys.
const (
	describeUserSCRAMCredentialsMin = 0
	describeUserSCRAMCredentialsMax = 0
)

// Kafka's numbers of the SCRAM mechanisms.
const (
	kafkaScramSHA256 int8 = 1
	kafkaScramSHA512 int8 = 2
)

func kafkaMechanism(m string) int8 {
	switch m {
	case security.ScramSHA256:
		return kafkaScramSHA256
	case security.ScramSHA512:
		return kafkaScramSHA512
	}
	return 0
}

func senseMechanism(m int8) (string, bool) {
	switch m {
	case kafkaScramSHA256:
		return security.ScramSHA256, true
	case kafkaScramSHA512:
		return security.ScramSHA512, true
	}
	return "", false
}

func (c *conn) describeUserSCRAMCredentials(req *kmsg.DescribeUserSCRAMCredentialsRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeUserSCRAMCredentialsResponse()
	resp.SetVersion(req.Version)
	if code := c.authorize(security.Describe, security.ClusterResource); code != 0 {
		resp.ErrorCode = code
		return resp
	}
	users, err := c.kafkaUsers()
	if err != nil {
		resp.ErrorCode = kerr.UnknownServerError.Code
		msg := err.Error()
		resp.ErrorMessage = &msg
		return resp
	}
	byName := map[string]admin.UserInfo{}
	for _, u := range users {
		byName[u.Name] = u
	}
	add := func(u admin.UserInfo) {
		r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		r.User = u.Name
		for _, m := range u.Mechanisms {
			ci := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
			ci.Mechanism, ci.Iterations = kafkaMechanism(m), int32(u.Iterations[m])
			r.CredentialInfos = append(r.CredentialInfos, ci)
		}
		resp.Results = append(resp.Results, r)
	}
	if req.Users == nil {
		for _, u := range users {
			add(u)
		}
		return resp
	}
	seen := map[string]int{}
	for _, u := range req.Users {
		seen[u.Name]++
	}
	for _, ru := range req.Users {
		switch {
		case seen[ru.Name] > 1:
			if seen[ru.Name] < 0 {
				continue // answered once already
			}
			seen[ru.Name] = -1
			r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
			r.User, r.ErrorCode = ru.Name, kerr.DuplicateResource.Code
			msg := fmt.Sprintf("user %q is named more than once", ru.Name)
			r.ErrorMessage = &msg
			resp.Results = append(resp.Results, r)
		case seen[ru.Name] < 0:
		default:
			u, ok := byName[ru.Name]
			if !ok {
				r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
				r.User, r.ErrorCode = ru.Name, kerr.ResourceNotFound.Code
				msg := fmt.Sprintf("no user %q", ru.Name)
				r.ErrorMessage = &msg
				resp.Results = append(resp.Results, r)
				continue
			}
			add(u)
		}
	}
	return resp
}

// kafkaUsers lists the users through the admin API, on behalf of the
// connection's principal.
func (c *conn) kafkaUsers() ([]admin.UserInfo, error) {
	if c.s.opts.Admin == nil {
		return nil, errors.New("this listener keeps no users")
	}
	resp, err := c.adminCall(admin.ListUsers{})
	return resp.Users, err
}

func (c *conn) adminCall(req admin.Request) (admin.Response, error) {
	if ch, ok := c.s.opts.Admin.(admin.ContextHandler); ok {
		return ch.AdminContext(c.ctx, req)
	}
	return c.s.opts.Admin.Admin(req)
}

// decodeDescribeUserSCRAMCredentials decodes a version 0 body: Users, a
// compact nullable array of {Name compact string, tags}, then tags.
func decodeDescribeUserSCRAMCredentials(version int16, b []byte) (kmsg.Request, error) {
	req := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
	req.SetVersion(version)
	r := &kreader{b: b}
	if n := r.array(2); n >= 0 {
		req.Users = make([]kmsg.DescribeUserSCRAMCredentialsRequestUser, 0, n)
		for range n {
			u := kmsg.NewDescribeUserSCRAMCredentialsRequestUser()
			u.Name = r.string()
			r.tags()
			req.Users = append(req.Users, u)
		}
	}
	r.tags()
	return req, r.end()
}
