package kafkaclients

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func kafkajs(t *testing.T, node, script string, args ...string) ([]byte, error) {
	t.Helper()
	return run(t, scriptTimeout*time.Second+killAfter, "", []string{"KAFKAJS_NO_PARTITIONER_WARNING=1"}, node,
		append([]string{filepath.Join("testdata", "js", script)}, args...)...)
}

// jsSent is a line of produce.js's output.
type jsSent struct {
	Index      *int    `json:"index"`
	Partition  int32   `json:"partition"`
	Offset     int64   `json:"offset"`
	Batch      int     `json:"batch"`
	Partitions []int32 `json:"partitions"`
}

// TestKafkajsProducer: kafkajs sends records one at a time, then the rest
// in one gzip-compressed send; every record is stored once, in order per
// partition, and each single send's reported offset holds its record.
func TestKafkajsProducer(t *testing.T) {
	node := needKafkajs(t)
	addr := startSense(t)
	topic := topicName(t, "send")
	const n = 200
	w := newWant(topic, n)
	out, err := kafkajs(t, node, "produce.js", addr, topic, strconv.Itoa(n), topic, strconv.Itoa(scriptTimeout))
	if err != nil {
		t.Fatal(err)
	}
	at := map[[2]int64]string{}
	batched := 0
	for _, s := range jsonLines[jsSent](t, out) {
		if s.Index == nil {
			batched += s.Batch
			continue
		}
		if *s.Index < 0 || *s.Index >= n {
			t.Fatalf("produce.js reported %+v", s)
		}
		at[[2]int64{int64(s.Partition), s.Offset}] = w.values[*s.Index]
	}
	if len(at) != n/2 || batched != n-n/2 {
		t.Fatalf("produce.js reported %d single sends at distinct offsets and a batch of %d, want %d and %d", len(at), batched, n/2, n-n/2)
	}
	stored := records(readBack(t, addr, topic))
	checkAll(t, w, stored)
	for _, r := range stored {
		if v, ok := at[[2]int64{int64(r.Partition), r.Offset}]; ok && v != r.Value {
			t.Fatalf("%d/%d holds %q, kafkajs was told it holds %q", r.Partition, r.Offset, r.Value, v)
		}
	}
}

// TestKafkajsConsumerGroup: a kafkajs consumer in a group (auto commit
// off, a commit after each record) reads every record once, in order per
// partition, and its commits stick: after more records are produced, a
// new consumer in the same group reads just those.
func TestKafkajsConsumerGroup(t *testing.T) {
	node := needKafkajs(t)
	addr := startSense(t)
	topic := topicName(t, "group")
	group := topic + "-group"
	const n, more = 60, 15

	consume := func(name string, count int, byPart map[int32][]record, from map[int32]int64) map[int32]int64 {
		out, err := kafkajs(t, node, "consume.js", addr, topic, group, strconv.Itoa(count), strconv.Itoa(scriptTimeout))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		run := parseConsumer(t, out)
		if len(run.records) != count {
			t.Fatalf("%s: %d records, want %d", name, len(run.records), count)
		}
		return checkResume(t, name, byPart, from, run)
	}

	w := newWant(topic, n+more)
	byPart := produceKgo(t, addr, topic, want{w.values[:n], w.keys[:n]})
	pos := consume("first run", n, byPart, map[int32]int64{})
	for p, rs := range byPart {
		if pos[p] != int64(len(rs)) {
			t.Fatalf("after the first run partition %d is at %d, want its end %d", p, pos[p], len(rs))
		}
	}

	for p, rs := range produceKgo(t, addr, topic, want{w.values[n:], w.keys[n:]}) {
		byPart[p] = append(byPart[p], rs...)
	}
	consume("second run", more, byPart, pos)
}
