package kafka_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sensehq/sense/event"
)

// Records produced over Kafka, with every codec, read back over Kafka with
// their values, their own headers, and the routing headers the server
// checked and stored (sense.j: the mask, sense.p: the priority), in the
// batch codec the producer chose.
func TestKafkaRecordsCarryTheirRouting(t *testing.T) {
	addr := start(t, twoHubs)
	for _, codec := range codecs {
		t.Run(codec.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			topic := "routed-" + codec.name
			cl := client(t, addr, kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
				kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(codec.codec))
			value := bytes.Repeat([]byte("compressible "), 100)
			// Partitions 0-2 are tangier's (MA) lanes, 3-5 dakar's (SN);
			// 5 is dakar's critical lane.
			recs := []*kgo.Record{
				{Value: value, Partition: 5, Headers: []kgo.RecordHeader{{Key: "sense.jurisdiction", Value: []byte("SN")}, {Key: "sense.priority", Value: []byte("critical")}, {Key: "app", Value: []byte("a")}}},
				{Value: append(value, '!'), Partition: 5, Headers: []kgo.RecordHeader{{Key: "sense.priority", Value: []byte("critical")}}},
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			consumer := client(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {5: kgo.NewOffset().AtStart()}}))
			var got []*kgo.Record
			for len(got) < 2 {
				fs := consumer.PollFetches(ctx)
				if err := ctx.Err(); err != nil {
					t.Fatalf("consumed %d of 2 records: %v", len(got), err)
				}
				fs.EachError(func(_ string, _ int32, err error) { t.Fatal(err) })
				got = append(got, fs.Records()...)
			}
			wantMask := []string{"SN", "MA,SN"} // the second takes the pipeline's default, *
			for i, r := range got {
				if !bytes.Equal(r.Value, recs[i].Value) {
					t.Fatalf("record %d: value differs", i)
				}
				h := map[string][]byte{}
				for _, kv := range r.Headers {
					h[kv.Key] = kv.Value
				}
				m, err := event.DecodeMaskHeader(h[event.HeaderMask])
				if err != nil {
					t.Fatalf("record %d: %s header: %v (headers %v)", i, event.HeaderMask, err, r.Headers)
				}
				p, err := event.DecodePriorityHeader(h[event.HeaderPriority])
				if err != nil || p != event.Critical {
					t.Fatalf("record %d: priority %v, %v", i, p, err)
				}
				bits := map[string]uint64{"SN": 2, "MA,SN": 3}[wantMask[i]]
				if uint64(m) != bits {
					t.Fatalf("record %d: stored mask %#x, want %s", i, uint64(m), wantMask[i])
				}
				if i == 0 && (string(h["app"]) != "a" || string(h["sense.jurisdiction"]) != "SN") {
					t.Fatalf("record 0 lost the producer's headers: %v", r.Headers)
				}
			}
		})
	}
}
