package kafka_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/edge/kafka"
)

// produceRequest builds a Produce request of version v: topics named
// t0.., each with parts partitions whose records are a few bytes of their
// own.
func produceRequest(v int16, topics, parts int, txnID *string) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(v)
	req.TransactionID, req.Acks, req.TimeoutMillis = txnID, -1, 5000
	for i := range topics {
		t := kmsg.NewProduceRequestTopic()
		t.Topic = fmt.Sprintf("t%d", i)
		for j := range parts {
			p := kmsg.NewProduceRequestTopicPartition()
			p.Partition = int32(j)
			p.Records = []byte(fmt.Sprintf("records of %d/%d", i, j))
			t.Partitions = append(t.Partitions, p)
		}
		req.Topics = append(req.Topics, t)
	}
	return req
}

// A connection decodes every Produce into one request, reusing its
// slices: each decodes as a new request would, whatever came before it
// (more topics or partitions, fewer, a transactional id or none).
func TestProduceDecodeReuse(t *testing.T) {
	tx := "tx-1"
	shapes := []struct {
		topics, parts int
		txn           *string
	}{{2, 3, nil}, {1, 1, nil}, {3, 2, &tx}, {1, 4, nil}, {0, 0, nil}, {2, 1, &tx}, {1, 1, nil}}
	for _, v := range []int16{3, 8, 9, 11, 12} {
		var d kafka.ProduceDecoder
		for _, sh := range shapes {
			body := produceRequest(v, sh.topics, sh.parts, sh.txn).AppendTo(nil)
			fresh, err := kafka.DecodeOwn(0, v, body)
			if err != nil {
				t.Fatal(err)
			}
			got, err := d.Decode(v, body)
			if err != nil {
				t.Fatalf("v%d %+v: %v", v, sh, err)
			}
			if a, b := got.AppendTo(nil), fresh.AppendTo(nil); !bytes.Equal(a, b) {
				t.Fatalf("v%d %+v: reused decode encodes as %x, a new one as %x", v, sh, a, b)
			}
		}
	}
}

// The server's own encoding of a Produce answer is byte for byte kmsg's,
// at every version served, for what Sense puts in one (and an answer
// with a field only kmsg encodes goes to kmsg).
func TestProduceResponseEncoding(t *testing.T) {
	msg := "a message"
	for v := int16(3); v <= 12; v++ {
		for k, build := range []func(*kmsg.ProduceResponse){
			func(*kmsg.ProduceResponse) {},
			func(r *kmsg.ProduceResponse) {
				for i := range 3 {
					rt := kmsg.NewProduceResponseTopic()
					rt.Topic = fmt.Sprintf("topic-%d", i)
					for j := range i + 1 {
						rp := kmsg.NewProduceResponseTopicPartition()
						rp.Partition, rp.BaseOffset, rp.LogStartOffset = int32(j), int64(1000*i+j), int64(j)
						if j == 1 {
							rp.ErrorCode, rp.ErrorMessage, rp.BaseOffset = 87, &msg, -1
						}
						rt.Partitions = append(rt.Partitions, rp)
					}
					r.Topics = append(r.Topics, rt)
				}
				r.ThrottleMillis = 7
			},
			func(r *kmsg.ProduceResponse) {
				rt := kmsg.NewProduceResponseTopic()
				rt.Topic = "t"
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = 2, 5
				rp.ErrorRecords = append(rp.ErrorRecords, kmsg.ProduceResponseTopicPartitionErrorRecord{RelativeOffset: 1, ErrorMessage: &msg})
				rt.Partitions = append(rt.Partitions, rp)
				r.Topics = append(r.Topics, rt)
			},
		} {
			resp := kmsg.NewPtrProduceResponse()
			resp.SetVersion(v)
			build(resp)
			ours := kafka.AppendProduceResponse(nil, 42, resp)
			ref := kafka.AppendResponseKmsg(nil, 42, resp)
			if !bytes.Equal(ours, ref) {
				t.Fatalf("v%d answer %d: ours %x, kmsg's %x", v, k, ours, ref)
			}
		}
	}
}
