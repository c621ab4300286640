package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/sensetest"
)

// consumeHubs: partitions 0-2 are tangier's (MA) lanes, 3-5 dakar's (SN).
const consumeHubs = `
jurisdictions: [MA, SN]
groups: {WEST: [MA, SN]}
hubs:
  - {name: tangier, jurisdiction: MA}
  - {name: dakar, jurisdiction: SN}
`

// produceKafka creates the pipeline and sends, with a Kafka producer and
// codec, one record with the text routing headers (WEST, critical) to
// tangier's critical lane and one without headers to dakar's low lane. It
// returns their partitions.
func produceKafka(t *testing.T, addr, kafkaAddr, pipeline string, codec kgo.CompressionCodec) (routed, bare int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Admin(ctx, admin.CreatePipeline{Pipeline: pipeline}); err != nil {
		t.Fatal(err)
	}
	_, layout, err := c.Describe(ctx, pipeline)
	if err != nil {
		t.Fatal(err)
	}
	routed, bare = -1, -1
	for _, l := range layout {
		switch {
		case l.Hub == "tangier" && l.Lane == event.Critical.String():
			routed = l.Partition
		case l.Hub == "dakar" && l.Lane == event.Low.String():
			bare = l.Partition
		}
	}
	kc, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr), kgo.DefaultProduceTopic(pipeline),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(codec))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	value := bytes.Repeat([]byte("compressible "), 50) // so that the codec does compress
	err = kc.ProduceSync(ctx,
		&kgo.Record{Key: []byte("k"), Value: value, Partition: routed, Headers: []kgo.RecordHeader{
			{Key: "sense.jurisdiction", Value: []byte("WEST")}, {Key: "sense.priority", Value: []byte("critical")}}},
		&kgo.Record{Key: []byte("k"), Value: value, Partition: bare},
	).FirstErr()
	if err != nil {
		t.Fatal(err)
	}
	return routed, bare
}

// consumeJSON runs sense consume --output json and decodes its lines by
// partition.
func consumeJSON(t *testing.T, addr, pipeline string) map[int32]map[string]any {
	t.Helper()
	out, err := execute(t, newConsumeCmd(), "", "--pipeline", pipeline, "--addr", addr, "--output", "json")
	if err != nil {
		t.Fatalf("consume: %q, %v", out, err)
	}
	got := map[int32]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got[int32(r["partition"].(float64))] = r
	}
	return got
}

// TestConsumeKafkaCompressed: sense consume prints the records of a
// compressed Kafka batch with the jurisdiction and priority of their text
// routing headers, as JSON and as text.
func TestConsumeKafkaCompressed(t *testing.T) {
	srv := sensetest.Start(t, consumeHubs)
	addr := srv.NativeAddr().String()
	for _, cc := range []struct {
		name  string
		codec kgo.CompressionCodec
	}{{"gzip", kgo.GzipCompression()}, {"snappy", kgo.SnappyCompression()}, {"lz4", kgo.Lz4Compression()}, {"zstd", kgo.ZstdCompression()}} {
		t.Run(cc.name, func(t *testing.T) {
			pipeline := "cli-" + cc.name
			routed, _ := produceKafka(t, addr, srv.KafkaAddr().String(), pipeline, cc.codec)
			r := consumeJSON(t, addr, pipeline)[routed]
			if r == nil || r["jurisdiction"] != "MA,SN" || r["priority"] != "critical" || r["key"] != "k" {
				t.Fatalf("partition %d: %v; want jurisdiction MA,SN, priority critical", routed, r)
			}
			if js, _ := r["jurisdictions"].([]any); len(js) != 2 || js[0] != "MA" || js[1] != "SN" {
				t.Errorf("jurisdictions %v, want [MA SN]", r["jurisdictions"])
			}
			if h, _ := r["headers"].(map[string]any); h["sense.jurisdiction"] != "WEST" || h["sense.priority"] != "critical" {
				t.Errorf("headers %v, want the producer's sense.jurisdiction and sense.priority", r["headers"])
			}
			out, err := execute(t, newConsumeCmd(), "", "--pipeline", pipeline, "--addr", addr)
			if err != nil || !strings.Contains(out, "@0\tk\tcompressible compressible") || !strings.Contains(out, "\tMA,SN\tcritical\n") {
				t.Fatalf("text output %q, %v; want a line ending in MA,SN and critical", out, err)
			}
		})
	}
}

// TestConsumeUnrecorded: a record stored without any routing header shows
// "unrecorded" in the text output and no jurisdiction or priority in JSON;
// one with text headers only shows theirs.
func TestConsumeUnrecorded(t *testing.T) {
	srv := sensetest.Start(t, consumeHubs)
	routed, bare := produceKafka(t, srv.NativeAddr().String(), srv.KafkaAddr().String(), "old", kgo.NoCompression())
	addr := sensetest.Rewriter(t, srv.NativeAddr().String(), func(b []byte) []byte { return sensetest.WithoutRouting(t, b, batch.CompressionZstd) })
	got := consumeJSON(t, addr, "old")
	if r := got[routed]; r["jurisdiction"] != "MA,SN" || r["priority"] != "critical" {
		t.Errorf("partition %d: %v; want jurisdiction MA,SN, priority critical", routed, r)
	}
	r := got[bare]
	if r == nil || r["value"] == nil {
		t.Fatalf("partition %d: %v", bare, r)
	}
	for _, k := range []string{"jurisdiction", "jurisdictions", "priority"} {
		if v, ok := r[k]; ok {
			t.Errorf("partition %d: %s = %v; want it left out", bare, k, v)
		}
	}
	out, err := execute(t, newConsumeCmd(), "", "--pipeline", "old", "--addr", addr)
	if err != nil || !strings.Contains(out, "\tMA,SN\tcritical\n") || !strings.Contains(out, "\tunrecorded\tunrecorded\n") {
		t.Fatalf("text output %q, %v; want one line with MA,SN and critical, one with unrecorded twice", out, err)
	}
}

// TestConsumeUnreadableBatch: a batch the client cannot read ends sense
// consume with an error naming the partition and offset. It used to wait
// forever: the command took every error for "nothing yet" and waited for a
// high watermark the ended subscription would never reach.
func TestConsumeUnreadableBatch(t *testing.T) {
	srv := sensetest.Start(t, consumeHubs)
	routed, bare := produceKafka(t, srv.NativeAddr().String(), srv.KafkaAddr().String(), "bad", kgo.NoCompression())
	addr := sensetest.Rewriter(t, srv.NativeAddr().String(), func(b []byte) []byte {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(b[batch.HeaderSize:])
		zw.Close()
		return sensetest.WithRecords(b, batch.CompressionGzip, z.Bytes()[:z.Len()/2]) // truncated
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"--output", "json"}, // stops at the high watermarks
		{"-n", "5"},          // waits for 5 records
		{"--follow"},
	} {
		type outcome struct {
			out string
			err error
		}
		done := make(chan outcome, 1)
		go func() {
			out, err := execute(t, newConsumeCmd(), "", append([]string{"--pipeline", "bad", "--addr", addr}, args...)...)
			done <- outcome{out, err}
		}()
		select {
		case o := <-done:
			// Either partition's batch may come first.
			want := func(p int32) string {
				return "bad partition " + strconv.Itoa(int(p)) + ": batch at offset 0 cannot be read"
			}
			if o.err == nil || !strings.Contains(o.err.Error(), want(routed)) && !strings.Contains(o.err.Error(), want(bare)) ||
				!strings.Contains(o.err.Error(), "gzip") {
				t.Errorf("consume %v: %q, %v; want an error containing %q or %q", args, o.out, o.err, want(routed), want(bare))
			}
		case <-ctx.Done():
			t.Fatalf("consume %v did not end", args)
		}
	}
}
