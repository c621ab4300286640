package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/edge/kafka"
)

// KIP-447 over raw requests: TxnOffsetCommit v3 and OffsetFetch v7. While
// a transaction holds offsets for a partition of a group, OffsetFetch with
// RequireStable answers it UNSTABLE_OFFSET_COMMIT, without it the offset
// committed before; once the transaction commits, its offset. A member id
// or generation that is not the group's is refused.
func TestKIP447RequireStable(t *testing.T) {
	addr := start(t, `
pipelines:
  - {name: k-in, partitions: 2}
`)
	const id, grp, topic = "tx-447", "g-447", "k-in"
	pid := initTxnID(t, addr, id)
	k := dialKafka(t, addr)

	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Group, oc.Generation = grp, -1
	oct := kmsg.NewOffsetCommitRequestTopic()
	oct.Topic = topic
	for p := range int32(2) {
		ocp := kmsg.NewOffsetCommitRequestTopicPartition()
		ocp.Partition, ocp.Offset = p, 5
		oct.Partitions = append(oct.Partitions, ocp)
	}
	oc.Topics = append(oc.Topics, oct)
	ocr := kmsg.NewPtrOffsetCommitResponse()
	k.do(oc, ocr, 7)
	if c := ocr.Topics[0].Partitions[0].ErrorCode; c != 0 {
		t.Fatalf("OffsetCommit: %v", kerr.ErrorForCode(c))
	}

	ao := kmsg.NewPtrAddOffsetsToTxnRequest()
	ao.TransactionalID, ao.ProducerID, ao.ProducerEpoch, ao.Group = id, pid, 0, grp
	aor := kmsg.NewPtrAddOffsetsToTxnResponse()
	k.do(ao, aor, 2)
	if aor.ErrorCode != 0 {
		t.Fatalf("AddOffsetsToTxn: %v", kerr.ErrorForCode(aor.ErrorCode))
	}

	txnCommit := func(member string, generation int32, offset int64) (*kmsg.TxnOffsetCommitResponse, int16) {
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = id, grp, pid, 0
		req.MemberID, req.Generation = member, generation
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = 1, offset
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := kmsg.NewPtrTxnOffsetCommitResponse()
		k.do(req, resp, 3)
		return resp, resp.Topics[0].Partitions[0].ErrorCode
	}
	// Membership checked (the group has no members, generation 0).
	if _, c := txnCommit("nobody", -1, 9); c != kerr.UnknownMemberID.Code {
		t.Fatalf("TxnOffsetCommit v3 by an unknown member: %v, want UNKNOWN_MEMBER_ID", kerr.ErrorForCode(c))
	}
	if _, c := txnCommit("", 4, 9); c != kerr.IllegalGeneration.Code {
		t.Fatalf("TxnOffsetCommit v3 at generation 4: %v, want ILLEGAL_GENERATION", kerr.ErrorForCode(c))
	}
	if resp, c := txnCommit("", -1, 10); c != 0 || resp.GetVersion() != 3 {
		t.Fatalf("TxnOffsetCommit v3: %v, version %d", kerr.ErrorForCode(c), resp.GetVersion())
	}

	fetch := func(stable bool, version int16) []kmsg.OffsetFetchResponseTopicPartition {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Group, req.RequireStable = grp, stable
		rt := kmsg.NewOffsetFetchRequestTopic()
		rt.Topic, rt.Partitions = topic, []int32{0, 1}
		req.Topics = append(req.Topics, rt)
		resp := kmsg.NewPtrOffsetFetchResponse()
		k.do(req, resp, version)
		if resp.ErrorCode != 0 {
			t.Fatalf("OffsetFetch v%d: %v", version, kerr.ErrorForCode(resp.ErrorCode))
		}
		return resp.Topics[0].Partitions
	}
	check := func(what string, ps []kmsg.OffsetFetchResponseTopicPartition, want1 int64, code1 int16) {
		t.Helper()
		if ps[0].ErrorCode != 0 || ps[0].Offset != 5 {
			t.Errorf("%s: partition 0 offset %d %v, want 5", what, ps[0].Offset, kerr.ErrorForCode(ps[0].ErrorCode))
		}
		if ps[1].ErrorCode != code1 || ps[1].Offset != want1 {
			t.Errorf("%s: partition 1 offset %d %v, want %d %v", what, ps[1].Offset, kerr.ErrorForCode(ps[1].ErrorCode), want1, kerr.ErrorForCode(code1))
		}
	}
	check("v7 stable, transaction open", fetch(true, 7), -1, kerr.UnstableOffsetCommit.Code)
	check("v7 not stable, transaction open", fetch(false, 7), 5, 0)
	check("v6, transaction open", fetch(false, 6), 5, 0)
	check("v5, transaction open", fetch(false, 5), 5, 0)

	et := kmsg.NewPtrEndTxnRequest()
	et.TransactionalID, et.ProducerID, et.ProducerEpoch, et.Commit = id, pid, 0, true
	etr := kmsg.NewPtrEndTxnResponse()
	k.do(et, etr, 2)
	if etr.ErrorCode != 0 {
		t.Fatalf("EndTxn: %v", kerr.ErrorForCode(etr.ErrorCode))
	}
	check("v7 stable, committed", fetch(true, 7), 10, 0)
}

// A GroupTransactSession consume-transform-produce loop commits every
// transaction, and the broker answers TxnOffsetCommit at version 3, so
// franz-go no longer sleeps 500 ms after each committed transaction.
func TestKIP447GroupTransactSession(t *testing.T) {
	addr := start(t, `
pipelines:
  - {name: s-in, partitions: 1}
  - {name: s-out, partitions: 1}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src := client(t, addr, kgo.DefaultProduceTopic("s-in"))
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(addr), kgo.TransactionalID("s-tx"),
		kgo.ConsumerGroup("s-g"), kgo.ConsumeTopics("s-in"), kgo.DefaultProduceTopic("s-out"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	const n = 6
	for i := range n {
		if err := src.ProduceSync(ctx, kgo.StringRecord(fmt.Sprintf("v-%d", i))).FirstErr(); err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for len(recs) == 0 && ctx.Err() == nil {
			sess.PollFetches(ctx).EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
		}
		if err := sess.Begin(); err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			sess.Produce(ctx, &kgo.Record{Value: r.Value}, nil)
		}
		committed, err := sess.End(ctx, kgo.TryCommit)
		if err != nil || !committed {
			t.Fatalf("transaction %d: committed %v, %v", i, committed, err)
		}
	}
	// The version the client negotiates for TxnOffsetCommit: at 3 and
	// above, franz-go's End no longer sleeps 500 ms after a commit
	// (kgo/txn.go; the benchmark BenchmarkConsumeTransformProduce shows
	// the time); at 5, transaction version 2, the group is added
	// implicitly.
	toc := kmsg.NewPtrTxnOffsetCommitRequest()
	toc.TransactionalID, toc.Group, toc.Generation = "s-tx", "s-g", -1
	resp, err := sess.Client().Request(ctx, toc)
	if err != nil {
		t.Fatal(err)
	}
	if _, hi, _ := kafka.VersionRange(28); resp.GetVersion() != hi || hi < 3 {
		t.Errorf("TxnOffsetCommit answered at version %d, want %d", resp.GetVersion(), hi)
	}
	if got := readAll(t, ctx, addr, "s-out", true); len(got) != n {
		t.Errorf("read_committed: %d records, want %d", len(got), n)
	}
	// The group's committed offsets are past every input record, on
	// whichever partition it went to (a client
	// retries UNSTABLE_OFFSET_COMMIT, and so does this test).
	var off int64 = -1
	code := int16(-1)
	for deadline := time.Now().Add(5 * time.Second); off != n && time.Now().Before(deadline); {
		oreq := kmsg.NewPtrOffsetFetchRequest()
		oreq.Group, oreq.RequireStable = "s-g", true
		oresp := kmsg.NewPtrOffsetFetchResponse()
		dialKafka(t, addr).do(oreq, oresp, 7)
		off, code = 0, 0
		for _, tp := range oresp.Topics {
			for _, p := range tp.Partitions {
				if tp.Topic == "s-in" {
					off += p.Offset
					code = max(code, p.ErrorCode)
				}
			}
		}
		if off != n {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if off != n {
		t.Errorf("committed offsets of s-in sum to %d (%v), want %d", off, kerr.ErrorForCode(code), n)
	}
}
