package kafka_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestMetadata(t *testing.T) {
	addr := start(t, twoHubs)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := client(t, addr)
	meta := func(topic string, create bool) *kmsg.MetadataResponse {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = &topic
		req.Topics = append(req.Topics, rt)
		req.AllowAutoTopicCreation = create
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := meta("telemetry", false)
	if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != 0 {
		t.Fatalf("brokers %+v", resp.Brokers)
	}
	if b := resp.Brokers[0]; b.Host != "127.0.0.1" || addr[len("127.0.0.1:"):] != strconv.Itoa(int(b.Port)) {
		t.Errorf("broker at %s:%d, want %s", b.Host, b.Port, addr)
	}
	if code := resp.Topics[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("unknown topic without auto-creation: error %d", code)
	}
	resp = meta("telemetry", true)
	mt := resp.Topics[0]
	if mt.ErrorCode != 0 || len(mt.Partitions) != 6 { // 2 hubs x 3 lanes
		t.Fatalf("auto-created topic: error %d, %d partitions", mt.ErrorCode, len(mt.Partitions))
	}
	for i, p := range mt.Partitions {
		if p.Partition != int32(i) || p.Leader != 0 || len(p.Replicas) != 1 || len(p.ISR) != 1 {
			t.Errorf("partition %+v", p)
		}
	}
	if code := meta("bad name!", true).Topics[0].ErrorCode; code != kerr.InvalidTopicException.Code {
		t.Errorf("invalid name: error %d", code)
	}

	// All topics.
	all := kmsg.NewPtrMetadataRequest()
	r, err := all.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Topics) != 1 || *r.Topics[0].Topic != "telemetry" {
		t.Errorf("all topics: %d", len(r.Topics))
	}
}
