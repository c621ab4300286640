package kafka

import (
	"encoding/binary"
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

// kreader reads the compact encodings of flexible Kafka bodies with a
// sticky error, checking every length against the bytes left.
type kreader struct {
	b   []byte
	err error
}

var errTruncated = errors.New("request body truncated")

func (r *kreader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errTruncated
		return 0
	}
	r.b = r.b[n:]
	return v
}

// compactLen reads a compact length (N+1; 0 is null, returned as -1).
func (r *kreader) compactLen() int {
	v := r.uvarint()
	if r.err != nil {
		return -1
	}
	if v > uint64(len(r.b))+1 {
		r.err = fmt.Errorf("length %d exceeds the %d bytes left", v-1, len(r.b))
		return -1
	}
	return int(v) - 1
}

func (r *kreader) bytes() []byte {
	n := r.compactLen()
	if n < 0 || r.err != nil {
		return nil
	}
	out := append([]byte(nil), r.b[:n]...)
	r.b = r.b[n:]
	return out
}

func (r *kreader) string() string {
	n := r.compactLen()
	if n < 0 {
		if r.err == nil {
			r.err = errors.New("null string where one is required")
		}
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *kreader) int8() int8 {
	if r.err != nil || len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := int8(r.b[0])
	r.b = r.b[1:]
	return v
}

func (r *kreader) int32() int32 {
	if r.err != nil || len(r.b) < 4 {
		r.fail()
		return 0
	}
	v := int32(binary.BigEndian.Uint32(r.b))
	r.b = r.b[4:]
	return v
}

func (r *kreader) fail() {
	if r.err == nil {
		r.err = errTruncated
	}
}

// array reads a compact array's count (-1: null), bounding it by the
// bytes left at min bytes an element.
func (r *kreader) array(min int) int {
	n := r.compactLen()
	if r.err == nil && n > len(r.b)/min {
		r.err = fmt.Errorf("array of %d elements in %d bytes", n, len(r.b))
		return -1
	}
	return n
}

func (r *kreader) tags() {
	if r.err != nil {
		return
	}
	b, err := skipTags(r.b)
	if err != nil {
		r.err = err
		return
	}
	r.b = b
}

func (r *kreader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d bytes after the body", len(r.b))
	}
	return r.err
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
