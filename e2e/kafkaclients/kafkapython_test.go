package kafkaclients

import (
	"encoding/json"
	"os/exec"
	"strconv"
	"testing"
)

// needKafkaPython checks that Debian's python3 imports kafka-python and the
// codec modules it compresses with.
func needKafkaPython(t *testing.T) {
	t.Helper()
	out, err := exec.Command(systemPython, "-c", "import kafka, snappy, lz4.frame, zstandard").CombinedOutput()
	if err != nil {
		missing(t, "%s cannot import kafka-python and its codecs (Debian packages python3-kafka, python3-snappy, python3-lz4, python3-zstandard): %v %s", systemPython, err, out)
	}
}

// TestKafkaPython: kafka-python (the pure-Python client, its own protocol
// code; it probes the broker's version from the APIs offered) creates a
// topic, sends 100 keyed messages with each codec (acks=all), and a
// consumer group reads all 500, committing after each: every message once,
// each stored in a batch of the codec it was sent with, the committed
// offsets at the partitions' ends, and the group started again reads
// nothing. The group is then listed and described as an empty consumer
// group.
func TestKafkaPython(t *testing.T) {
	needKafkaPython(t)
	addr := startSense(t)
	topic := topicName(t, "kp")
	group := topic + "-group"
	out, err := python(t, "kafkapython.py", addr, topic, group, strconv.Itoa(scriptTimeout))
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Probed             []int             `json:"probed"`
		Produced           map[string]string `json:"produced"`
		Consumed           []string          `json:"consumed"`
		Committed          []int64           `json:"committed"`
		Again              []string          `json:"again"`
		ListedProtocolType *string           `json:"listed_protocol_type"`
		State              string            `json:"state"`
		ProtocolType       string            `json:"protocol_type"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("kafkapython.py printed %q: %v", out, err)
	}
	t.Logf("kafka-python probed broker version %v", r.Probed)
	if len(r.Produced) != 500 {
		t.Fatalf("%d messages produced, want 500", len(r.Produced))
	}
	seen := map[string]bool{}
	for _, v := range r.Consumed {
		if _, ok := r.Produced[v]; !ok || seen[v] {
			t.Fatalf("the group read %q, not produced or read twice", v)
		}
		seen[v] = true
	}
	if len(seen) != len(r.Produced) {
		t.Fatalf("the group read %d of %d messages", len(seen), len(r.Produced))
	}
	if len(r.Again) != 0 {
		t.Fatalf("the group started again read %d messages, want none (all committed)", len(r.Again))
	}
	codecs := map[string]uint8{"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
	back := readBack(t, addr, topic)
	ends := map[int32]int64{}
	for _, s := range back {
		codec, ok := r.Produced[s.Value]
		if !ok {
			t.Fatalf("%q stored, not produced", s.Value)
		}
		if s.codec != codecs[codec] {
			t.Fatalf("%q (sent with %s) is stored in a batch of compression %d, want %d", s.Value, codec, s.codec, codecs[codec])
		}
		ends[s.Partition] = max(ends[s.Partition], s.Offset+1)
	}
	if len(back) != len(r.Produced) {
		t.Fatalf("%d messages stored, %d produced", len(back), len(r.Produced))
	}
	if len(r.Committed) != 3 {
		t.Fatalf("committed offsets %v, want one per partition of 3", r.Committed)
	}
	for p, c := range r.Committed {
		if c != ends[int32(p)] {
			t.Fatalf("partition %d: committed %d, the partition ends at %d", p, c, ends[int32(p)])
		}
	}
	if r.ListedProtocolType == nil || *r.ListedProtocolType != "consumer" || r.State != "Empty" || r.ProtocolType != "consumer" {
		t.Fatalf("the group is listed with protocol type %v and described %s/%q, want consumer, Empty/consumer",
			r.ListedProtocolType, r.State, r.ProtocolType)
	}
}
