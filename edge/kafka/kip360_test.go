package kafka_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// InitProducerId 2 to 5 over the wire (flexible, KIP-360, KIP-588): a
// transactional producer that names its producer id and epoch keeps the
// id with a new epoch, a retry of that request gets the same epoch, a
// wrong epoch is fenced with the code the version knows, a producer id
// without an epoch is an invalid request, and an idempotent producer gets
// a new producer id whatever it names. AddPartitionsToTxn 3 and
// AddOffsetsToTxn 3 and 4 (flexible) work with the recovered epoch.
func TestInitProducerIDRecover(t *testing.T) {
	addr := start(t, `
pipelines:
  - {name: kip360-out, partitions: 1}
`)
	k := dialKafka(t, addr)
	const tid = "kip360"
	init := func(version int16, id *string, pid int64, epoch int16) *kmsg.InitProducerIDResponse {
		t.Helper()
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID, req.TransactionTimeoutMillis = id, 60000
		req.ProducerID, req.ProducerEpoch = pid, epoch
		resp := kmsg.NewPtrInitProducerIDResponse()
		k.do(req, resp, version)
		return resp
	}
	first := init(2, kmsg.StringPtr(tid), -1, -1)
	if first.ErrorCode != 0 {
		t.Fatalf("InitProducerId v2: %v", kerr.ErrorForCode(first.ErrorCode))
	}
	pid, epoch := first.ProducerID, first.ProducerEpoch

	rec := init(4, kmsg.StringPtr(tid), pid, epoch)
	if rec.ErrorCode != 0 || rec.ProducerID != pid || rec.ProducerEpoch != epoch+1 {
		t.Fatalf("recover v4: pid %d epoch %d %v, want pid %d epoch %d", rec.ProducerID, rec.ProducerEpoch, kerr.ErrorForCode(rec.ErrorCode), pid, epoch+1)
	}
	if again := init(5, kmsg.StringPtr(tid), pid, epoch); again.ErrorCode != 0 || again.ProducerID != pid || again.ProducerEpoch != epoch+1 {
		t.Fatalf("retry v5: pid %d epoch %d %v, want the same epoch %d", again.ProducerID, again.ProducerEpoch, kerr.ErrorForCode(again.ErrorCode), epoch+1)
	}
	if r := init(4, kmsg.StringPtr(tid), pid, epoch+9); r.ErrorCode != kerr.ProducerFenced.Code {
		t.Fatalf("a wrong epoch at v4: %v, want PRODUCER_FENCED", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := init(3, kmsg.StringPtr(tid), pid, epoch+9); r.ErrorCode != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("a wrong epoch at v3: %v, want INVALID_PRODUCER_EPOCH", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := init(4, kmsg.StringPtr(tid), pid, -1); r.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("a producer id without an epoch: %v, want INVALID_REQUEST", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := init(4, nil, pid, epoch); r.ErrorCode != 0 || r.ProducerID == pid || r.ProducerEpoch != 0 {
		t.Fatalf("idempotent with a producer id: pid %d epoch %d %v, want a new producer id at epoch 0", r.ProducerID, r.ProducerEpoch, kerr.ErrorForCode(r.ErrorCode))
	}

	// The flexible versions of the APIs that build a transaction, with
	// the recovered epoch; the old epoch is fenced.
	add := func(e int16) int16 {
		t.Helper()
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch = tid, pid, e
		rt := kmsg.NewAddPartitionsToTxnRequestTopic()
		rt.Topic, rt.Partitions = "kip360-out", []int32{0}
		req.Topics = append(req.Topics, rt)
		resp := kmsg.NewPtrAddPartitionsToTxnResponse()
		k.do(req, resp, 3)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("AddPartitionsToTxn v3 answered %+v", resp)
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	if code := add(epoch); code != kerr.ProducerFenced.Code {
		t.Fatalf("AddPartitionsToTxn v3 with the old epoch: %v, want PRODUCER_FENCED", kerr.ErrorForCode(code))
	}
	if code := add(epoch + 1); code != 0 {
		t.Fatalf("AddPartitionsToTxn v3: %v", kerr.ErrorForCode(code))
	}
	for _, v := range []int16{3, 4} {
		req := kmsg.NewPtrAddOffsetsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = tid, pid, epoch+1, "kip360-group"
		resp := kmsg.NewPtrAddOffsetsToTxnResponse()
		k.do(req, resp, v)
		if resp.ErrorCode != 0 {
			t.Fatalf("AddOffsetsToTxn v%d: %v", v, kerr.ErrorForCode(resp.ErrorCode))
		}
	}
	end := kmsg.NewPtrEndTxnRequest()
	end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = tid, pid, epoch+1, false
	endResp := kmsg.NewPtrEndTxnResponse()
	k.do(end, endResp, 3)
	if endResp.ErrorCode != 0 {
		t.Fatalf("EndTxn v3: %v", kerr.ErrorForCode(endResp.ErrorCode))
	}
}
