package kafkaclients

import (
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

func python(t *testing.T, script string, args ...string) ([]byte, error) {
	t.Helper()
	// No __pycache__ left in testdata.
	return run(t, scriptTimeout*time.Second+killAfter, "", []string{"PYTHONDONTWRITEBYTECODE=1"}, systemPython,
		append([]string{filepath.Join("testdata", "python", script)}, args...)...)
}

// delivery is a line of produce.py's output.
type delivery struct {
	Index     int    `json:"index"`
	Key       string `json:"key"`
	Value     string `json:"value"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// TestPythonProducer: confluent-kafka-python set up for latency (no
// linger, one message per batch, idempotent, so several one-record batches
// in flight per partition) gets a delivery report for every record, at
// consecutive offsets in produce order, and the records are stored there.
func TestPythonProducer(t *testing.T) {
	needPython(t)
	addr := startSense(t)
	topic := topicName(t, "idem")
	const n = 300
	w := newWant(topic, n)
	out, err := python(t, "produce.py", addr, topic, strconv.Itoa(n), topic, strconv.Itoa(scriptTimeout))
	if err != nil {
		t.Fatal(err)
	}
	ds := jsonLines[delivery](t, out)
	if len(ds) != n {
		t.Fatalf("%d delivery reports, want %d", len(ds), n)
	}
	var reported []record
	at := map[[2]int64]string{}
	for _, d := range ds {
		if d.Index < 0 || d.Index >= n || d.Value != w.values[d.Index] {
			t.Fatalf("delivery report %+v for a record not produced", d)
		}
		reported = append(reported, record{d.Partition, d.Offset, d.Key, d.Value})
		at[[2]int64{int64(d.Partition), d.Offset}] = d.Value
	}
	checkAll(t, w, reported)
	stored := records(readBack(t, addr, topic))
	checkAll(t, w, stored)
	for _, r := range stored {
		if v := at[[2]int64{int64(r.Partition), r.Offset}]; v != r.Value {
			t.Fatalf("%d/%d holds %q, the producer was told %q", r.Partition, r.Offset, r.Value, v)
		}
	}
}

// consumerLine is a line of consume.py's or consume.js's output.
type consumerLine struct {
	Type       string  `json:"type"`
	Partitions []int32 `json:"partitions"`
	Partition  int32   `json:"partition"`
	Offset     int64   `json:"offset"`
	Key        *string `json:"key"`
	Value      *string `json:"value"`
}

// consumerRun is what one consumer process reported.
type consumerRun struct {
	assigned  []int32
	records   []record
	committed map[int32]int64
}

func parseConsumer(t *testing.T, out []byte) consumerRun {
	t.Helper()
	run := consumerRun{committed: map[int32]int64{}}
	for _, l := range jsonLines[consumerLine](t, out) {
		switch l.Type {
		case "assigned":
			run.assigned = l.Partitions
		case "record":
			if l.Key == nil || l.Value == nil {
				t.Fatalf("record %+v without key or value", l)
			}
			run.records = append(run.records, record{l.Partition, l.Offset, *l.Key, *l.Value})
		case "committed":
			run.committed[l.Partition] = l.Offset
		default:
			t.Fatalf("unexpected output line %+v", l)
		}
	}
	return run
}

// checkResume checks a consumer run against the topic's records (by
// partition, in offset order), given where each partition was before the
// run (from), and returns where each partition is after it: each
// partition's records must be the next ones from there, in order, and the
// committed offsets must be right after the last record processed (a
// partition never committed reports a negative offset).
func checkResume(t *testing.T, name string, byPart map[int32][]record, from map[int32]int64, run consumerRun) map[int32]int64 {
	t.Helper()
	next := map[int32]int64{}
	for p, o := range from {
		next[p] = o
	}
	for _, r := range run.records {
		all := byPart[r.Partition]
		o := next[r.Partition]
		if o >= int64(len(all)) {
			t.Fatalf("%s: got %+v, past the end (%d records) of partition %d", name, r, len(all), r.Partition)
		}
		if r != all[o] {
			t.Fatalf("%s: got %+v, want the next record of partition %d, %+v", name, r, r.Partition, all[o])
		}
		next[r.Partition] = o + 1
	}
	for p := range byPart {
		c, ok := run.committed[p]
		if !ok {
			t.Fatalf("%s: no committed offset reported for partition %d (%v)", name, p, run.committed)
		}
		if next[p] == 0 && c < 0 {
			continue // nothing ever committed
		}
		if c != next[p] {
			t.Fatalf("%s: partition %d committed at %d, want %d (after the last record processed)", name, p, c, next[p])
		}
	}
	return next
}

// TestPythonConsumerGroup: a confluent-kafka-python consumer in a group,
// with auto commit off, commits each record after processing it; stopped
// after some records and started again, it resumes right after the last
// committed record, so that over the runs every record is processed once,
// in order per partition; a third run finds nothing left.
func TestPythonConsumerGroup(t *testing.T) {
	needPython(t)
	addr := startSense(t)
	topic := topicName(t, "group")
	group := topic + "-group"
	const n, first = 60, 25
	byPart := produceKgo(t, addr, topic, newWant(topic, n))
	ends := map[int32]int64{}
	for p, rs := range byPart {
		ends[p] = int64(len(rs))
	}

	consume := func(name, stop string) consumerRun {
		out, err := python(t, "consume.py", addr, topic, group, stop, strconv.Itoa(scriptTimeout))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		run := parseConsumer(t, out)
		if !slices.Equal(run.assigned, []int32{0, 1, 2}) {
			t.Fatalf("%s: assigned %v, want all three partitions [0 1 2]", name, run.assigned)
		}
		return run
	}

	run1 := consume("first run", strconv.Itoa(first))
	if len(run1.records) != first {
		t.Fatalf("first run processed %d records, want %d", len(run1.records), first)
	}
	pos := checkResume(t, "first run", byPart, map[int32]int64{}, run1)

	run2 := consume("second run", "eof")
	if len(run2.records) != n-first {
		t.Fatalf("second run processed %d records, want the %d left", len(run2.records), n-first)
	}
	pos = checkResume(t, "second run", byPart, pos, run2)
	for p, end := range ends {
		if pos[p] != end {
			t.Fatalf("after two runs partition %d is at %d, want its end %d", p, pos[p], end)
		}
	}

	run3 := consume("third run", "eof")
	if len(run3.records) != 0 {
		t.Fatalf("third run processed %v, want nothing: every record was committed", run3.records)
	}
	checkResume(t, "third run", byPart, pos, run3)
	t.Logf("first run: %d records, second run: %d", len(run1.records), len(run2.records))
}

// txnLine is a line of txn.py's output.
type txnLine struct {
	Type      string `json:"type"`
	Isolation string `json:"isolation"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Value     string `json:"value"`
}

// txnRead runs txn.py read and returns the values read committed and
// uncommitted (sorted), and the group's committed offset.
func txnRead(t *testing.T, lines []txnLine) (committed, uncommitted []string, offset int64) {
	t.Helper()
	offset = -1
	for _, l := range lines {
		switch {
		case l.Type == "record" && l.Isolation == "read_committed":
			committed = append(committed, l.Value)
		case l.Type == "record":
			uncommitted = append(uncommitted, l.Value)
		case l.Type == "committed":
			offset = l.Offset
		}
	}
	slices.Sort(committed)
	slices.Sort(uncommitted)
	return committed, uncommitted, offset
}

// TestPythonTransactions: confluent-kafka-python commits a transaction
// over two partitions with offsets (send_offsets_to_transaction) and
// aborts another; a read_committed consumer sees exactly the committed
// records, read_uncommitted both, and the group's offset is the
// committed transaction's.
func TestPythonTransactions(t *testing.T) {
	needPython(t)
	addr := startSense(t)
	topic := topicName(t, "txn")
	out, err := python(t, "txn.py", "commit-abort", addr, topic, topic+"-g", strconv.Itoa(scriptTimeout))
	if err != nil {
		t.Fatal(err)
	}
	if ls := jsonLines[txnLine](t, out); len(ls) != 1 || ls[0].Type != "done" {
		t.Fatalf("txn.py commit-abort printed %s", out)
	}
	out, err = python(t, "txn.py", "read", addr, topic, topic+"-g", strconv.Itoa(scriptTimeout))
	if err != nil {
		t.Fatal(err)
	}
	committed, uncommitted, offset := txnRead(t, jsonLines[txnLine](t, out))
	var wantC, wantU []string
	for i := range 10 {
		wantC = append(wantC, "c-"+strconv.Itoa(i))
		wantU = append(wantU, "a-"+strconv.Itoa(i), "c-"+strconv.Itoa(i))
	}
	slices.Sort(wantC)
	slices.Sort(wantU)
	if !slices.Equal(committed, wantC) {
		t.Fatalf("read_committed: %v, want %v", committed, wantC)
	}
	if !slices.Equal(uncommitted, wantU) {
		t.Fatalf("read_uncommitted: %v, want %v", uncommitted, wantU)
	}
	if offset != 5 {
		t.Fatalf("the group's committed offset is %d, want 5 (the committed transaction's)", offset)
	}
}
