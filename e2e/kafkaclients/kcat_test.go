package kafkaclients

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// kcatTimeout bounds one kcat run (kcat has no timeout of its own).
const kcatTimeout = 60 * time.Second

// kcatRun runs kcat, stopping it at the first librdkafka error it logs.
func kcatRun(t *testing.T, kcat, stdin string, args ...string) ([]byte, error) {
	t.Helper()
	return runWatched(t, kcatTimeout, stdin, nil, librdkafkaError, kcat, args...)
}

// kcatMetadata is kcat -L -J's output.
type kcatMetadata struct {
	OriginatingBroker struct {
		ID int32 `json:"id"`
	} `json:"originating_broker"`
	Brokers []struct {
		ID   int32  `json:"id"`
		Name string `json:"name"`
	} `json:"brokers"`
	Topics []struct {
		Topic      string `json:"topic"`
		Error      string `json:"error"`
		Partitions []struct {
			Partition int32  `json:"partition"`
			Leader    int32  `json:"leader"`
			Error     string `json:"error"`
			Replicas  []struct {
				ID int32 `json:"id"`
			} `json:"replicas"`
			ISRs []struct {
				ID int32 `json:"id"`
			} `json:"isrs"`
		} `json:"partitions"`
	} `json:"topics"`
}

// kcatMessage is a line of kcat -C -J's output.
type kcatMessage struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Offset    int64   `json:"offset"`
	Key       *string `json:"key"`
	Payload   *string `json:"payload"`
}

func kcatList(t *testing.T, kcat, addr string, args ...string) kcatMetadata {
	t.Helper()
	out, err := kcatRun(t, kcat, "", append([]string{"-b", addr, "-L", "-J"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	md := jsonLines[kcatMetadata](t, out)
	if len(md) != 1 {
		t.Fatalf("kcat -L -J printed %d JSON lines, want 1:\n%s", len(md), out)
	}
	m := md[0]
	if m.OriginatingBroker.ID != 0 || len(m.Brokers) != 1 || m.Brokers[0].ID != 0 || m.Brokers[0].Name != addr {
		t.Fatalf("kcat -L: brokers %+v (answered by %d), want the one node, id 0, at %s", m.Brokers, m.OriginatingBroker.ID, addr)
	}
	return m
}

// TestKcat: kcat -L lists the node as the only broker; kcat -P produces
// keyed lines, uncompressed and with each codec; franz-go reads them all
// back; kcat -L -t shows the topic's three partitions; kcat -C -e (no
// group) consumes exactly the lines produced and exits at the end.
func TestKcat(t *testing.T) {
	kcat := needKcat(t)
	addr := startSense(t)
	kcatList(t, kcat, addr)

	topic := topicName(t, "lines")
	const perCodec = 100
	var w want
	// Values long and alike, so that every codec shrinks the batches:
	// librdkafka sends a batch uncompressed when compressing does not.
	pad := strings.Repeat("x", 200)
	codecs := []string{"none", "gzip", "snappy", "lz4", "zstd"}
	for _, codec := range codecs {
		part := newWant(topic+"-"+codec+"-"+pad, perCodec)
		var in strings.Builder
		for i, v := range part.values {
			fmt.Fprintf(&in, "%s:%s\n", part.keys[i], v)
		}
		if _, err := kcatRun(t, kcat, in.String(), "-b", addr, "-P", "-t", topic, "-K:", "-z", codec); err != nil {
			t.Fatalf("kcat -P -z %s: %v", codec, err)
		}
		w.values = append(w.values, part.values...)
		w.keys = append(w.keys, part.keys...)
	}
	back := readBack(t, addr, topic)
	checkAll(t, w, records(back))
	// Each codec's batches are stored as kcat compressed them (codec i of
	// the list is Kafka's compression attribute i).
	for _, s := range back {
		want := -1
		for i, codec := range codecs {
			if strings.HasPrefix(s.Value, topic+"-"+codec+"-") {
				want = i
			}
		}
		if want < 0 || int(s.codec) != want {
			t.Fatalf("%.40s... is stored in a batch of compression %d, want %d", s.Value, s.codec, want)
		}
	}

	m := kcatList(t, kcat, addr, "-t", topic)
	if len(m.Topics) != 1 || m.Topics[0].Topic != topic || m.Topics[0].Error != "" || len(m.Topics[0].Partitions) != 3 {
		t.Fatalf("kcat -L -t %s: topics %+v, want %s with 3 partitions", topic, m.Topics, topic)
	}
	for i, p := range m.Topics[0].Partitions {
		if p.Partition != int32(i) || p.Leader != 0 || p.Error != "" || len(p.Replicas) != 1 || p.Replicas[0].ID != 0 || len(p.ISRs) != 1 || p.ISRs[0].ID != 0 {
			t.Fatalf("kcat -L -t %s: partition %+v, want partition %d led by 0, replicas and ISR [0]", topic, p, i)
		}
	}

	out, err := kcatRun(t, kcat, "", "-b", addr, "-C", "-t", topic, "-o", "beginning", "-e", "-J")
	if err != nil {
		t.Fatalf("kcat -C -e: %v", err)
	}
	var got []record
	for _, m := range jsonLines[kcatMessage](t, out) {
		if m.Topic != topic || m.Key == nil || m.Payload == nil {
			t.Fatalf("kcat -C: message %+v, want topic %s with key and payload", m, topic)
		}
		got = append(got, record{m.Partition, m.Offset, *m.Key, *m.Payload})
	}
	checkAll(t, w, got)
	at := map[[2]int64]record{}
	for _, r := range records(back) {
		at[[2]int64{int64(r.Partition), r.Offset}] = r
	}
	for _, r := range got {
		if at[[2]int64{int64(r.Partition), r.Offset}] != r {
			t.Fatalf("kcat -C got %+v, franz-go read %+v there", r, at[[2]int64{int64(r.Partition), r.Offset}])
		}
	}
}

// TestKcatPriorityHeader: the sense.priority header is checked against the
// partition's lane (docs/kafka.md): kcat -P -H sense.priority=critical to
// partition 2 (the critical lane) is stored with its header, to partition 0
// (the low lane) is refused with POLICY_VIOLATION, and kcat exits non-zero.
func TestKcatPriorityHeader(t *testing.T) {
	kcat := needKcat(t)
	addr := startSense(t)
	topic := topicName(t, "prio")
	if _, err := kcatRun(t, kcat, "urgent\n", "-b", addr, "-P", "-t", topic, "-p", "2", "-H", "sense.priority=critical"); err != nil {
		t.Fatalf("critical record to the critical lane: %v", err)
	}
	_, err := kcatRun(t, kcat, "misplaced\n", "-b", addr, "-P", "-t", topic, "-p", "0", "-H", "sense.priority=critical")
	if err == nil || !strings.Contains(err.Error(), "Policy violation") {
		t.Fatalf("critical record to the low lane: %v, want kcat to fail with Policy violation", err)
	}
	recs := readBack(t, addr, topic)
	if len(recs) != 1 || recs[0].Partition != 2 || recs[0].Offset != 0 || recs[0].Value != "urgent" || recs[0].headers["sense.priority"] != "critical" {
		t.Fatalf("stored %+v, want only \"urgent\" at 2/0 with header sense.priority=critical", recs)
	}
}
