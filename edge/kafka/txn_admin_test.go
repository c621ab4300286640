package kafka_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sensehq/sense/edge/kafka"
	"github.com/sensehq/sense/security"
	"github.com/sensehq/sense/txn"
)

// initTxnID makes a transactional id with a producer and no transaction
// (state Empty) with a raw InitProducerId, and returns its producer id.
func initTxnID(t *testing.T, addr, id string) int64 {
	t.Helper()
	pid, _ := dialKafka(t, addr).initProducer(id)
	return pid
}

// listed returns the ids a ListTransactions answer lists, sorted.
func listed(resp *kmsg.ListTransactionsResponse) []string {
	var ids []string
	for _, s := range resp.TransactionStates {
		ids = append(ids, s.TransactionalID)
	}
	slices.Sort(ids)
	return ids
}

// DescribeTransactions and ListTransactions, with kadm (as
// kafka-transactions.sh uses them): a transaction over three partitions
// of two topics is described Ongoing with its partitions, listed with and
// without filters (state, producer id, duration, pattern, an unknown
// state), committed, then described CompleteCommit with its start kept
// and no partitions, as Kafka describes it; an unknown id is
// TRANSACTIONAL_ID_NOT_FOUND.
func TestDescribeListTransactions(t *testing.T) {
	addr := start(t, `
pipelines:
  - {name: tx, partitions: 2}
  - {name: other, partitions: 1}
`)
	ctx := ctxFor(t)
	cl := client(t, addr)
	adm := kadm.NewClient(cl)
	emptyPID := initTxnID(t, addr, "adm-empty")

	began := time.Now().UnixMilli()
	p := client(t, addr, kgo.TransactionalID("adm-1"), kgo.TransactionTimeout(30*time.Second),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*kgo.Record{{Topic: "tx", Partition: 0}, {Topic: "tx", Partition: 1}, {Topic: "other", Partition: 0}} {
		r.Value = []byte("v")
		if err := p.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	described, err := adm.DescribeTransactions(ctx, "adm-1")
	if err != nil {
		t.Fatal(err)
	}
	d, err := described.On("adm-1", nil)
	if err != nil || d.Err != nil {
		t.Fatalf("describe adm-1: %v %v", err, d.Err)
	}
	if d.State != "Ongoing" || d.TimeoutMillis != 30000 || d.ProducerID < 0 || d.Coordinator != 0 {
		t.Fatalf("described %+v, want Ongoing, timeout 30000 ms, on broker 0", d)
	}
	if d.StartTimestamp < began || d.StartTimestamp > time.Now().UnixMilli() {
		t.Errorf("start %d, want between %d and now", d.StartTimestamp, began)
	}
	if got := d.Topics.Sorted(); len(got) != 2 || got[0].Topic != "other" || !slices.Equal(got[0].Partitions, []int32{0}) ||
		got[1].Topic != "tx" || !slices.Equal(sortedInt32(got[1].Partitions), []int32{0, 1}) {
		t.Errorf("partitions %+v, want other [0], tx [0 1]", got)
	}
	pid, epoch, start := d.ProducerID, d.ProducerEpoch, d.StartTimestamp

	all, err := adm.ListTransactions(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := all.TransactionalIDs(); !slices.Equal(got, []string{"adm-1", "adm-empty"}) {
		t.Fatalf("listed %v", got)
	}
	if l := all["adm-1"]; l.ProducerID != pid || l.State != "Ongoing" || l.Coordinator != 0 {
		t.Errorf("listed adm-1 as %+v", l)
	}
	if l := all["adm-empty"]; l.ProducerID != emptyPID || l.State != "Empty" {
		t.Errorf("listed adm-empty as %+v", l)
	}

	list := func(version int16, edit func(*kmsg.ListTransactionsRequest)) *kmsg.ListTransactionsResponse {
		t.Helper()
		req := kmsg.NewPtrListTransactionsRequest()
		req.SetVersion(version)
		edit(req)
		k := dialKafka(t, addr)
		resp := kmsg.NewPtrListTransactionsResponse()
		k.do(req, resp, version)
		return resp
	}
	time.Sleep(20 * time.Millisecond) // the transaction has run more than 10 ms
	for _, tc := range []struct {
		name    string
		version int16
		edit    func(*kmsg.ListTransactionsRequest)
		want    []string
		unknown []string
	}{
		{"Ongoing", 0, func(r *kmsg.ListTransactionsRequest) { r.StateFilters = []string{"Ongoing"} }, []string{"adm-1"}, nil},
		{"Empty or CompleteCommit", 0, func(r *kmsg.ListTransactionsRequest) { r.StateFilters = []string{"Empty", "CompleteCommit"} }, []string{"adm-empty"}, nil},
		{"producer id", 0, func(r *kmsg.ListTransactionsRequest) { r.ProducerIDFilters = []int64{pid} }, []string{"adm-1"}, nil},
		{"another producer id", 0, func(r *kmsg.ListTransactionsRequest) { r.ProducerIDFilters = []int64{pid + 1000} }, nil, nil},
		// An unknown state is reported and, Kafka's rule, filters all out.
		{"unknown state", 0, func(r *kmsg.ListTransactionsRequest) { r.StateFilters = []string{"Bogus"} }, nil, []string{"Bogus"}},
		{"unknown and Ongoing", 0, func(r *kmsg.ListTransactionsRequest) { r.StateFilters = []string{"Bogus", "Ongoing"} }, []string{"adm-1"}, []string{"Bogus"}},
		// Kafka's states no id is in here are known, and select nothing.
		{"Dead", 0, func(r *kmsg.ListTransactionsRequest) { r.StateFilters = []string{"Dead", "PrepareEpochFence"} }, nil, nil},
		// Running longer than 10 ms: adm-1; longer than an hour: only
		// adm-empty, which has no transaction (Kafka's start of -1).
		{"duration 10 ms", 1, func(r *kmsg.ListTransactionsRequest) { r.DurationFilterMillis = 10 }, []string{"adm-1", "adm-empty"}, nil},
		{"duration 1 h", 1, func(r *kmsg.ListTransactionsRequest) { r.DurationFilterMillis = 3600000 }, []string{"adm-empty"}, nil},
		{"duration max", 1, func(r *kmsg.ListTransactionsRequest) { r.DurationFilterMillis = 1<<63 - 1 }, []string{"adm-empty"}, nil},
		{"duration ignored in v0", 0, func(r *kmsg.ListTransactionsRequest) { r.DurationFilterMillis = 3600000 }, []string{"adm-1", "adm-empty"}, nil},
		// The pattern matches a whole id.
		{"pattern adm-.*", 2, func(r *kmsg.ListTransactionsRequest) { r.TransactionalIDPattern = kmsg.StringPtr("adm-.*") }, []string{"adm-1", "adm-empty"}, nil},
		{"pattern adm", 2, func(r *kmsg.ListTransactionsRequest) { r.TransactionalIDPattern = kmsg.StringPtr("adm") }, nil, nil},
		{"pattern adm-[0-9]", 2, func(r *kmsg.ListTransactionsRequest) { r.TransactionalIDPattern = kmsg.StringPtr("adm-[0-9]") }, []string{"adm-1"}, nil},
		{"pattern a|adm-1", 2, func(r *kmsg.ListTransactionsRequest) { r.TransactionalIDPattern = kmsg.StringPtr("a|adm-1") }, []string{"adm-1"}, nil},
		{"empty pattern", 2, func(r *kmsg.ListTransactionsRequest) { r.TransactionalIDPattern = kmsg.StringPtr("") }, []string{"adm-1", "adm-empty"}, nil},
	} {
		resp := list(tc.version, tc.edit)
		if resp.ErrorCode != 0 {
			t.Errorf("%s: %v", tc.name, kerr.ErrorForCode(resp.ErrorCode))
		}
		if got := listed(resp); !slices.Equal(got, tc.want) {
			t.Errorf("%s: listed %v, want %v", tc.name, got, tc.want)
		}
		if !slices.Equal(resp.UnknownStateFilters, tc.unknown) {
			t.Errorf("%s: unknown state filters %v, want %v", tc.name, resp.UnknownStateFilters, tc.unknown)
		}
	}
	if resp := list(2, func(r *kmsg.ListTransactionsRequest) { r.TransactionalIDPattern = kmsg.StringPtr("adm-(") }); resp.ErrorCode != kerr.InvalidRegularExpression.Code {
		t.Errorf("an invalid pattern: %v, want INVALID_REGULAR_EXPRESSION", kerr.ErrorForCode(resp.ErrorCode))
	}
	// kadm's pattern filter (v2) and state filter.
	if byPattern, err := adm.ListTransactionsByTxPattern(ctx, nil, []string{"Ongoing"}, "adm-.*"); err != nil || !slices.Equal(byPattern.TransactionalIDs(), []string{"adm-1"}) {
		t.Errorf("kadm by pattern: %v %v", byPattern.TransactionalIDs(), err)
	}

	if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	// The transaction shows as PrepareCommit until its markers, appended
	// before the answer, are durable (a millisecond or so), then as
	// CompleteCommit.
	for range 500 {
		described, err = adm.DescribeTransactions(ctx) // every id, as listed
		if err != nil {
			t.Fatal(err)
		}
		if described["adm-1"].State != "PrepareCommit" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := described.TransactionalIDs(); !slices.Equal(got, []string{"adm-1", "adm-empty"}) {
		t.Fatalf("described %v", got)
	}
	d = described["adm-1"]
	// Transaction version 2: the commit bumped the epoch (KIP-890).
	if d.Err != nil || d.State != "CompleteCommit" || d.ProducerID != pid || d.ProducerEpoch != epoch+1 ||
		d.StartTimestamp != start || len(d.Topics) != 0 {
		t.Errorf("after the commit: %+v, want CompleteCommit, the same producer and start, the epoch bumped, no partitions", d)
	}
	if e := described["adm-empty"]; e.Err != nil || e.State != "Empty" || e.StartTimestamp != -1 || e.TimeoutMillis != 60000 {
		t.Errorf("adm-empty: %+v, want Empty, start -1, timeout 60000 ms", e)
	}
	committed, err := adm.ListTransactions(ctx, nil, []string{"CompleteCommit"})
	if err != nil || !slices.Equal(committed.TransactionalIDs(), []string{"adm-1"}) {
		t.Errorf("CompleteCommit listed %v %v", committed.TransactionalIDs(), err)
	}

	unknown, err := adm.DescribeTransactions(ctx, "never-initialized")
	if err != nil {
		t.Fatal(err)
	}
	if u := unknown["never-initialized"]; !errors.Is(u.Err, kerr.TransactionalIDNotFound) {
		t.Errorf("an unknown id: %+v, want TRANSACTIONAL_ID_NOT_FOUND", u)
	}
}

func sortedInt32(s []int32) []int32 {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// userDirectory is a security.Directory of users with one SCRAM-SHA-512
// password each.
type userDirectory map[string]security.User

func (d userDirectory) User(name string) (security.User, bool) { u, ok := d[name]; return u, ok }
func (userDirectory) TokenKey() []byte                         { return nil }

// With security on, DescribeTransactions and ListTransactions need
// describe on each transactional id: ops may describe every id but
// secret-*, no group, and not the topic hidden. ops lists only open-1,
// finds its coordinator (describe on the id suffices: FindCoordinator key
// type 1 asks no group ACL), describes it without hidden's partition, and
// is refused secret-1, at FindCoordinator and at DescribeTransactions.
func TestTransactionsACL(t *testing.T) {
	dir := userDirectory{}
	for _, name := range []string{"admin", "ops"} {
		cred, err := security.NewCredential(security.ScramSHA512, "pw-"+name, 0)
		if err != nil {
			t.Fatal(err)
		}
		dir[name] = security.User{Name: name, Credentials: []security.Credential{cred}}
	}
	authz := security.AuthorizerFunc(func(p security.Principal, a security.Action, r security.Resource) error {
		denied := p.User == ""
		if p.User == "ops" {
			denied = r.Type == security.TransactionalID && strings.HasPrefix(r.Name, "secret") ||
				r.Type == security.Group || r == security.PipelineResource("hidden")
		}
		if denied {
			return &security.DeniedError{Principal: p, Action: a, Resource: r, Reason: "test"}
		}
		return nil
	})
	addr, _ := startWith(t, `
pipelines:
  - {name: tx, partitions: 1}
  - {name: hidden, partitions: 1}
`, kafka.Options{Auth: security.NewAuthenticator(security.Options{Enabled: true, Directory: dir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}), Authorizer: authz})
	ctx := ctxFor(t)
	as := func(user string, opts ...kgo.Opt) *kgo.Client {
		return client(t, addr, append([]kgo.Opt{kgo.SASL(scram.Auth{User: user, Pass: "pw-" + user}.AsSha512Mechanism())}, opts...)...)
	}
	for _, id := range []string{"open-1", "secret-1"} {
		p := as("admin", kgo.TransactionalID(id), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, topic := range []string{"tx", "hidden"} {
			if err := p.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr(); err != nil {
				t.Fatalf("%s to %s: %v", id, topic, err)
			}
		}
	}

	ops := as("ops")
	adm := kadm.NewClient(ops)
	l, err := adm.ListTransactions(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.TransactionalIDs(); !slices.Equal(got, []string{"open-1"}) {
		t.Errorf("ops listed %v, want [open-1]", got)
	}
	described, err := adm.DescribeTransactions(ctx, "open-1")
	if err != nil {
		t.Fatal(err)
	}
	if d := described["open-1"]; d.Err != nil || d.State != "Ongoing" || len(d.Topics) != 1 || d.Topics["tx"] == nil {
		t.Errorf("ops described open-1 as %+v, want Ongoing with tx only", d)
	}
	if _, err := adm.DescribeTransactions(ctx, "secret-1"); !errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
		t.Errorf("ops describing secret-1 through kadm: %v, want TRANSACTIONAL_ID_AUTHORIZATION_FAILED", err)
	}
	// Straight to the coordinator, without FindCoordinator.
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{"secret-1", "open-1"}
	kr, err := ops.Broker(0).Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	resp := kr.(*kmsg.DescribeTransactionsResponse)
	if len(resp.TransactionStates) != 2 || resp.TransactionStates[0].ErrorCode != kerr.TransactionalIDAuthorizationFailed.Code ||
		resp.TransactionStates[0].State != "" || resp.TransactionStates[1].ErrorCode != 0 {
		t.Errorf("DescribeTransactions [secret-1 open-1]: %+v", resp.TransactionStates)
	}
}

// noCoordinator is a cluster where no node coordinates groups and
// transactions now (the committed offsets have no leader).
type noCoordinator struct{ self kafka.Broker }

func (n noCoordinator) Brokers() []kafka.Broker               { return []kafka.Broker{n.self} }
func (noCoordinator) BrokerID(string) (int32, bool)           { return 0, true }
func (noCoordinator) Self() int32                             { return 0 }
func (noCoordinator) Coordinator(string) (kafka.Broker, bool) { return kafka.Broker{}, false }
func (noCoordinator) AddPartitionsToTxn(context.Context, string, int64, int16, []txn.TopicPartition) error {
	return txn.ErrNotCoordinator
}

// While no node coordinates transactions, both APIs answer
// COORDINATOR_NOT_AVAILABLE (retriable), rather than what this node's
// replica of the state holds.
func TestTransactionsNoCoordinator(t *testing.T) {
	addr, _ := startWith(t, "", kafka.Options{Cluster: noCoordinator{kafka.Broker{ID: 0, Host: "127.0.0.1", Port: 1}}})
	k := dialKafka(t, addr)
	dreq := kmsg.NewPtrDescribeTransactionsRequest()
	dreq.TransactionalIDs = []string{"any"}
	dresp := kmsg.NewPtrDescribeTransactionsResponse()
	k.do(dreq, dresp, 0)
	if len(dresp.TransactionStates) != 1 || dresp.TransactionStates[0].ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Errorf("DescribeTransactions: %+v", dresp.TransactionStates)
	}
	lresp := kmsg.NewPtrListTransactionsResponse()
	k.do(kmsg.NewPtrListTransactionsRequest(), lresp, 1)
	if lresp.ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Errorf("ListTransactions: %v", kerr.ErrorForCode(lresp.ErrorCode))
	}
}
