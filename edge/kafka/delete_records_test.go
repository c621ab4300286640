package kafka_test

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/edge/kafka"
)

// TestDeleteRecords: kadm's DeleteRecords (DeleteRecords v1). Ten batches
// of ten records are stored in dr/0 (offsets 0, 10, ... 90). Deleting up
// to 30 moves the start there, and reading below it is
// OFFSET_OUT_OF_RANGE; up to 45 (inside a batch) moves it to 40, the
// batch's first offset; -1 to the high watermark, 100. Past it is
// OFFSET_OUT_OF_RANGE (as is -5), a compacted topic POLICY_VIOLATION, a partition
// that does not exist UNKNOWN_TOPIC_OR_PARTITION.
func TestDeleteRecords(t *testing.T) {
	addr, _ := startWith(t, "pipelines:\n  - {name: dr, partitions: 1}\n  - {name: drc, partitions: 1, cleanup_policy: compact}\n", kafka.Options{})
	k := dialKafka(t, addr)
	for i := range 10 {
		var b batch.Builder
		b.Reset(-1, -1, -1)
		for j := range 10 {
			b.Add(time.Now().UnixMilli(), []byte{byte(j)}, []byte{byte(i), byte(j)})
		}
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 10000
		tp := kmsg.NewProduceRequestTopicPartition()
		tp.Records = append([]byte(nil), b.Finish()...)
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic, rt.Partitions = "dr", []kmsg.ProduceRequestTopicPartition{tp}
		req.Topics = []kmsg.ProduceRequestTopic{rt}
		k.send(req, 7)
		resp := kmsg.NewPtrProduceResponse()
		k.recv(resp, 7)
		if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != int64(10*i) {
			t.Fatalf("batch %d: error %d at %d, want 0 at %d", i, p.ErrorCode, p.BaseOffset, 10*i)
		}
	}
	cl := client(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	ctx := ctxFor(t)
	del := func(topic string, offset int64) kadm.DeleteRecordsResponse {
		t.Helper()
		var os kadm.Offsets
		os.Add(kadm.Offset{Topic: topic, Partition: 0, At: offset, LeaderEpoch: -1})
		r, err := adm.DeleteRecords(ctx, os)
		if err != nil {
			t.Fatalf("delete records of %s to %d: %v", topic, offset, err)
		}
		got, ok := r.Lookup(topic, 0)
		if !ok {
			t.Fatalf("no answer for %s/0", topic)
		}
		return got
	}
	start := func() int64 {
		t.Helper()
		l, err := adm.ListStartOffsets(ctx, "dr")
		if err != nil || l.Error() != nil {
			t.Fatalf("list start offsets: %v %v", err, l.Error())
		}
		o, _ := l.Lookup("dr", 0)
		return o.Offset
	}
	for _, c := range []struct{ at, want int64 }{{30, 30}, {45, 40}, {20, 40}, {-1, 100}} {
		if r := del("dr", c.at); r.Err != nil || r.LowWatermark != c.want {
			t.Fatalf("delete records to %d: low watermark %d (%v), want %d", c.at, r.LowWatermark, r.Err, c.want)
		}
		if s := start(); s != c.want {
			t.Fatalf("after deleting to %d the start is %d, want %d", c.at, s, c.want)
		}
		if c.at == 30 {
			// A read below the new start: OFFSET_OUT_OF_RANGE.
			req := kmsg.NewPtrFetchRequest()
			req.ReplicaID, req.MaxWaitMillis, req.MaxBytes = -1, 0, 1<<20
			ft := kmsg.NewFetchRequestTopic()
			ft.Topic = "dr"
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.FetchOffset, fp.PartitionMaxBytes = 10, 1<<20
			ft.Partitions = []kmsg.FetchRequestTopicPartition{fp}
			req.Topics = []kmsg.FetchRequestTopic{ft}
			k.send(req, 11)
			resp := kmsg.NewPtrFetchResponse()
			k.recv(resp, 11)
			if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.OffsetOutOfRange.Code {
				t.Fatalf("fetch at 10 after deleting to 30: error %d, want OFFSET_OUT_OF_RANGE", code)
			}
		}
	}
	if r := del("dr", 101); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
		t.Fatalf("delete records past the high watermark: %v", r.Err)
	}
	if r := del("dr", -5); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
		t.Fatalf("delete records to offset -5 (only -1 has a meaning): %v", r.Err)
	}
	if r := del("drc", 0); !errors.Is(r.Err, kerr.PolicyViolation) {
		t.Fatalf("delete records of a compacted topic: %v", r.Err)
	}
	// A partition that does not exist, asked directly (kadm would not send
	// it: it routes by the partition's leader).
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = "dr"
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = 5, 1
	rt.Partitions = []kmsg.DeleteRecordsRequestTopicPartition{rp}
	req.Topics, req.TimeoutMillis = []kmsg.DeleteRecordsRequestTopic{rt}, 10000
	k.send(req, 1)
	resp := kmsg.NewPtrDeleteRecordsResponse()
	k.recv(resp, 1)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != kerr.UnknownTopicOrPartition.Code || p.LowWatermark != -1 {
		t.Fatalf("delete records of partition 5 (none): error %d, low watermark %d; want UNKNOWN_TOPIC_OR_PARTITION, -1", p.ErrorCode, p.LowWatermark)
	}
	// The log goes on from where it was: the next record is at 100.
	r := cl.ProduceSync(ctx, &kgo.Record{Topic: "dr", Partition: 0, Value: []byte("after")})
	if rec, err := r.First(); err != nil || rec.Offset != 100 {
		t.Fatalf("produce after deleting every record: %v at %d, want offset 100", err, rec.Offset)
	}
}
