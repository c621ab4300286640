package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/result"
)

// The ACL conformance suite: one table of who may do what, run against
// the native, Kafka and HTTP edges of one node with security enabled.

// aclOp is one operation of the matrix on a target (a pipeline, group,
// hub or user name).
type aclOp struct {
	name   string // produce, consume, create, delete, describe, group, hub, user
	target string
}

// edgeDriver runs an operation as a user over one edge. It reports
// whether the edge refused it as unauthorized; any other failure is an
// error. supported is false for operations the edge has no way to ask.
type edgeDriver interface {
	edge() string
	do(ctx context.Context, user string, op aclOp) (denied, supported bool, err error)
}

// aclMatrixACLs are the grants of the matrix.
var aclMatrixACLs = []admin.ACLInfo{
	// alice produces and consumes orders (literal), consumes with groups
	// alice-* (prefixed).
	{Principal: "User:alice", ResourceType: "pipeline", Name: "orders", Operation: "produce", Permission: "allow"},
	{Principal: "User:alice", ResourceType: "pipeline", Name: "orders", Operation: "consume", Permission: "allow"},
	{Principal: "User:alice", ResourceType: "group", Pattern: "prefixed", Name: "alice-", Operation: "read", Permission: "allow"},
	// bob reads every pipeline ("*"), but nobody touches secret* (deny
	// wins, User:* wildcard).
	{Principal: "User:bob", ResourceType: "pipeline", Name: "*", Operation: "read", Permission: "allow"},
	{Principal: "User:*", ResourceType: "pipeline", Pattern: "prefixed", Name: "secret", Operation: "all", Permission: "deny"},
	// carol administers: the cluster (hubs, users) and pipelines tmp-*.
	{Principal: "User:carol", ResourceType: "cluster", Operation: "alter", Permission: "allow"},
	{Principal: "User:carol", ResourceType: "pipeline", Pattern: "prefixed", Name: "tmp-", Operation: "all", Permission: "allow"},
	// Everyone may describe (not read) the pipeline "public".
	{Principal: "User:*", ResourceType: "pipeline", Name: "public", Operation: "describe", Permission: "allow"},
	// bob is denied consuming orders-eu explicitly, although "*" allows.
	{Principal: "User:bob", ResourceType: "pipeline", Name: "orders-eu", Operation: "read", Permission: "deny"},
}

// aclMatrix is the expectation: allowed[user] for each operation.
var aclMatrix = []struct {
	op      aclOp
	allowed map[string]bool // users absent are denied
}{
	{aclOp{"produce", "orders"}, map[string]bool{"alice": true}},
	{aclOp{"produce", "orders-eu"}, nil},
	{aclOp{"consume", "orders"}, map[string]bool{"alice": true, "bob": true}},
	{aclOp{"consume", "orders-eu"}, nil},                       // bob: deny wins
	{aclOp{"consume", "secret-x"}, map[string]bool{}},          // bob: User:* deny wins over "*"
	{aclOp{"consume", "public"}, map[string]bool{"bob": true}}, // describe alone does not read
	{aclOp{"describe", "orders"}, map[string]bool{"alice": true, "bob": true}},
	{aclOp{"describe", "public"}, map[string]bool{"alice": true, "bob": true, "carol": true, "dave": true}},
	{aclOp{"describe", "secret-x"}, map[string]bool{}},
	{aclOp{"create", "tmp-%s-%s"}, map[string]bool{"carol": true}},
	{aclOp{"create", "orders-new-%s-%s"}, nil},
	{aclOp{"delete", "tmp-%s-%s"}, map[string]bool{"carol": true}},
	{aclOp{"group", "alice-%s"}, map[string]bool{"alice": true}},
	{aclOp{"group", "bob-%s"}, nil},
	{aclOp{"hub", "local"}, map[string]bool{"carol": true}},
	{aclOp{"user", "made-by-%s-%s"}, map[string]bool{"carol": true}},
}

var aclUsers = []string{"alice", "bob", "carol", "dave"}

func TestACLMatrix(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n := startSecure(t, 10*time.Second)
	for _, u := range aclUsers {
		n.admin(ctx, admin.CreateUser{User: u, Password: "pw-" + u})
	}
	for _, p := range []string{"orders", "orders-eu", "secret-x", "public"} {
		n.admin(ctx, admin.CreatePipeline{Pipeline: p, Partitions: 1})
		boot, err := n.dial(ctx, client.Options{Token: n.boot})
		if err != nil {
			t.Fatal(err)
		}
		if err := produceOne(ctx, boot, p); err != nil {
			t.Fatalf("bootstrap produce to %s: %v", p, err)
		}
		boot.Close()
	}
	resp := n.admin(ctx, admin.CreateACLs{ACLs: aclMatrixACLs})
	if len(resp.ACLs) != len(aclMatrixACLs) {
		t.Fatalf("created %d ACLs, want %d", len(resp.ACLs), len(aclMatrixACLs))
	}
	drivers := []edgeDriver{
		&nativeDriver{n: n},
		&kafkaDriver{addr: n.srv.KafkaAddr().String()},
		&httpDriver{base: "http://" + n.srv.HTTPAddr().String()},
	}
	for _, d := range drivers {
		t.Run(d.edge(), func(t *testing.T) {
			for _, row := range aclMatrix {
				for _, u := range aclUsers {
					op := row.op
					if strings.Contains(op.target, "%s") {
						op.target = strings.ReplaceAll(op.target, "%s-%s", d.edge()+"-"+u)
						op.target = strings.ReplaceAll(op.target, "%s", d.edge()+"-"+u)
					}
					denied, supported, err := d.do(ctx, u, op)
					if !supported {
						continue
					}
					if err != nil {
						t.Errorf("%s %s %s: %v", u, op.name, op.target, err)
						continue
					}
					if want := row.allowed[u]; denied == want {
						t.Errorf("%s %s %s over %s: denied %v, want allowed %v", u, op.name, op.target, d.edge(), denied, want)
					}
				}
			}
		})
	}
	// Every change went to the security audit log.
	audit := n.admin(ctx, admin.SecurityAudit{})
	changes := 0
	for _, e := range audit.SecurityEvents {
		if e.Op == "acl.create" && e.Principal == "sense:bootstrap" {
			changes++
		}
	}
	if changes != len(aclMatrixACLs) {
		t.Errorf("the audit log holds %d ACL creations, want %d", changes, len(aclMatrixACLs))
	}
}

// nativeDriver runs the matrix over the native protocol (the Go client).
type nativeDriver struct{ n *secureNode }

func (nativeDriver) edge() string { return "native" }

func (d *nativeDriver) do(ctx context.Context, user string, op aclOp) (bool, bool, error) {
	if op.name == "delete" || op.name == "group" {
		return false, false, nil // no such request on the native protocol
	}
	c, err := d.n.dial(ctx, client.Options{User: user, Password: "pw-" + user})
	if err != nil {
		return false, true, err
	}
	defer c.Close()
	switch op.name {
	case "produce":
		err = produceOne(ctx, c, op.target)
	case "consume":
		var res client.FetchResult
		res, err = c.Fetch(ctx, op.target, 0, 0, 1<<20)
		if err == nil && len(res.Records) == 0 {
			err = errors.New("fetched no record")
		}
	case "create":
		_, err = c.Admin(ctx, admin.CreatePipeline{Pipeline: op.target, Partitions: 1})
	case "describe":
		_, err = c.Admin(ctx, admin.DescribePipeline{Pipeline: op.target})
	case "hub":
		_, err = c.Admin(ctx, admin.SetHubStatus{Hub: op.target, Status: "up"})
	case "user":
		_, err = c.Admin(ctx, admin.CreateUser{User: op.target, Password: "x"})
	}
	if result.CodeOf(err) == result.Unauthorized {
		return true, true, nil
	}
	return false, true, err
}

// httpDriver runs the matrix over HTTP, with Basic credentials.
type httpDriver struct{ base string }

func (httpDriver) edge() string { return "http" }

func (d *httpDriver) do(ctx context.Context, user string, op aclOp) (bool, bool, error) {
	var method, path, body string
	adminReq := func(r admin.Request) {
		b, _ := admin.Encode(r)
		method, path, body = "POST", "/v1/admin", string(b)
	}
	switch op.name {
	case "produce":
		method, path, body = "POST", "/v1/pipelines/"+op.target+"/events", `{"value":"v"}`+"\n"
	case "consume":
		method, path = "GET", "/v1/pipelines/"+op.target+"/events?partition=0&offset=0"
	case "create":
		adminReq(admin.CreatePipeline{Pipeline: op.target, Partitions: 1})
	case "describe":
		adminReq(admin.DescribePipeline{Pipeline: op.target})
	case "hub":
		adminReq(admin.SetHubStatus{Hub: op.target, Status: "up"})
	case "user":
		adminReq(admin.CreateUser{User: op.target, Password: "x"})
	default:
		return false, false, nil
	}
	req, _ := http.NewRequestWithContext(ctx, method, d.base+path, strings.NewReader(body))
	req.SetBasicAuth(user, "pw-"+user)
	if op.name == "produce" {
		req.Header.Set("Content-Type", "application/x-ndjson")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, true, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusForbidden {
		return true, true, nil
	}
	if resp.StatusCode >= 300 {
		return false, true, fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	if path == "/v1/admin" {
		if _, err := admin.DecodeResponse(b); err != nil {
			if result.CodeOf(err) == result.Unauthorized {
				return true, true, nil
			}
			return false, true, err
		}
	}
	if op.name == "consume" {
		var fr struct{ Records []json.RawMessage }
		if err := json.Unmarshal(b, &fr); err != nil || len(fr.Records) == 0 {
			return false, true, fmt.Errorf("fetched no record: %s", b)
		}
	}
	return false, true, nil
}

// kafkaDriver runs the matrix over Kafka, with franz-go and SCRAM.
type kafkaDriver struct{ addr string }

func (kafkaDriver) edge() string { return "kafka" }

func isAuthzCode(code int16) bool {
	switch code {
	case kerr.TopicAuthorizationFailed.Code, kerr.GroupAuthorizationFailed.Code, kerr.ClusterAuthorizationFailed.Code,
		kerr.TransactionalIDAuthorizationFailed.Code:
		return true
	}
	return false
}

// kafkaErr is the verdict of a request franz-go could not send: refused
// when a request it made first (FindCoordinator) was.
func kafkaErr(err error) (bool, bool, error) {
	var ke *kerr.Error
	if errors.As(err, &ke) && isAuthzCode(ke.Code) {
		return true, true, nil
	}
	return false, true, err
}

func (d *kafkaDriver) do(ctx context.Context, user string, op aclOp) (bool, bool, error) {
	if op.name == "hub" {
		return false, false, nil // hubs are not Kafka's
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(d.addr), kgo.SASL(scram.Auth{User: user, Pass: "pw-" + user}.AsSha512Mechanism()),
		kgo.DisableIdempotentWrite(), kgo.RecordRetries(1), kgo.RequestRetries(1))
	if err != nil {
		return false, true, err
	}
	defer cl.Close()
	code := int16(0)
	switch op.name {
	case "produce":
		err = cl.ProduceSync(ctx, &kgo.Record{Topic: op.target, Value: []byte("v")}).FirstErr()
		var ke *kerr.Error
		if errors.As(err, &ke) && isAuthzCode(ke.Code) {
			return true, true, nil
		}
		return false, true, err
	case "consume":
		req := kmsg.NewPtrFetchRequest()
		req.Version, req.MaxBytes, req.MaxWaitMillis = 11, 1<<20, 10
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = op.target
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.PartitionMaxBytes = 1 << 20
		ft.Partitions = append(ft.Partitions, fp)
		req.Topics = append(req.Topics, ft)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return kafkaErr(err)
		}
		p := resp.Topics[0].Partitions[0]
		code = p.ErrorCode
		if code == 0 && len(p.RecordBatches) == 0 {
			return false, true, errors.New("fetched no record")
		}
	case "create":
		req := kmsg.NewPtrCreateTopicsRequest()
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic, t.NumPartitions, t.ReplicationFactor = op.target, 1, 1
		req.Topics = append(req.Topics, t)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return kafkaErr(err)
		}
		code = resp.Topics[0].ErrorCode
	case "delete":
		req := kmsg.NewPtrDeleteTopicsRequest()
		req.TopicNames = []string{op.target}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return kafkaErr(err)
		}
		code = resp.Topics[0].ErrorCode
	case "describe":
		req := kmsg.NewPtrMetadataRequest()
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(op.target)
		req.Topics = append(req.Topics, mt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return kafkaErr(err)
		}
		code = resp.Topics[0].ErrorCode
	case "group":
		// Commit an offset of orders outside a generation, then join
		// (MEMBER_ID_REQUIRED is the first answer of a real join).
		oc := kmsg.NewPtrOffsetCommitRequest()
		oc.Group, oc.Generation, oc.MemberID = op.target, -1, ""
		ot := kmsg.NewOffsetCommitRequestTopic()
		ot.Topic = "orders"
		otp := kmsg.NewOffsetCommitRequestTopicPartition()
		otp.Offset = 1
		ot.Partitions = append(ot.Partitions, otp)
		oc.Topics = append(oc.Topics, ot)
		ocr, err := oc.RequestWith(ctx, cl)
		if err != nil {
			return kafkaErr(err)
		}
		if code = ocr.Topics[0].Partitions[0].ErrorCode; code != 0 {
			break
		}
		jr := kmsg.NewPtrJoinGroupRequest()
		jr.Group, jr.SessionTimeoutMillis, jr.RebalanceTimeoutMillis, jr.ProtocolType = op.target, 30000, 30000, "consumer"
		jp := kmsg.NewJoinGroupRequestProtocol()
		jp.Name, jp.Metadata = "range", []byte{}
		jr.Protocols = append(jr.Protocols, jp)
		resp, err := jr.RequestWith(ctx, cl)
		if err != nil {
			return kafkaErr(err)
		}
		if resp.ErrorCode != kerr.MemberIDRequired.Code {
			code = resp.ErrorCode
		}
	case "user":
		req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
		up := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
		up.Name, up.Mechanism, up.Iterations = op.target, 2, 4096
		up.Salt, up.SaltedPassword = []byte("0123456789abcdef"), make([]byte, 64)
		req.Upsertions = append(req.Upsertions, up)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return kafkaErr(err)
		}
		code = resp.Results[0].ErrorCode
	}
	if isAuthzCode(code) {
		return true, true, nil
	}
	if code != 0 {
		return false, true, kerr.ErrorForCode(code)
	}
	return false, true, nil
}
