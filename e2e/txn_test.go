package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const systemPython = "/usr/bin/python3"

// needPython checks that Debian's python3 imports confluent_kafka; without
// it the test fails under CI and is skipped otherwise (scripts/test.sh
// installs python3-confluent-kafka).
func needPython(t *testing.T) {
	t.Helper()
	if out, err := exec.Command(systemPython, "-c", "import confluent_kafka").CombinedOutput(); err != nil {
		msg := "python3 cannot import confluent_kafka (Debian package python3-confluent-kafka; scripts/test.sh installs it): " + string(out)
		if v := os.Getenv("CI"); v != "" && v != "false" && v != "0" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// txnScript starts kafkaclients/testdata/python/txn.py in a process group
// of its own, killed when the test ends.
func txnScript(t *testing.T, ctx context.Context, args ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.CommandContext(ctx, systemPython, append([]string{filepath.Join("kafkaclients", "testdata", "python", "txn.py")}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	stderr, err := os.Create(filepath.Join(t.TempDir(), "txn.stderr"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		stderr.Close()
		if t.Failed() {
			b, _ := os.ReadFile(stderr.Name())
			t.Logf("txn.py %s stderr:\n%s", args[0], b)
		}
	})
	return cmd, bufio.NewScanner(out)
}

type txnLine struct {
	Type      string `json:"type"`
	Isolation string `json:"isolation"`
	Value     string `json:"value"`
	Offset    int64  `json:"offset"`
}

// A transaction of confluent-kafka-python (librdkafka) is under way, its
// records and offsets stored, when sense serve is killed with SIGKILL.
// After the restart the transaction is aborted: a read_committed consumer
// sees none of its records (read_uncommitted sees them all), and the
// group's offset it sent was never committed. Nothing is half-visible.
func TestKafkaTransactionKilledMidway(t *testing.T) {
	needPython(t)
	n := startNode(t, t.TempDir(), "--log-level", "warn")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const topic, group = "txn-kill", "txn-kill-g"

	hang, out := txnScript(t, ctx, "hang", n.kafka, topic, group, "60")
	produced := false
	for out.Scan() {
		var l txnLine
		if json.Unmarshal(out.Bytes(), &l) == nil && l.Type == "produced" {
			produced = true
			break
		}
	}
	if !produced {
		t.Fatal("txn.py hang ended before its records were stored")
	}
	n.kill()
	syscall.Kill(-hang.Process.Pid, syscall.SIGKILL)
	hang.Wait()
	n.start()

	read, out := txnScript(t, ctx, "read", n.kafka, topic, group, "60")
	var committed, uncommitted []string
	offset := int64(-2)
	for out.Scan() {
		var l txnLine
		if err := json.Unmarshal(out.Bytes(), &l); err != nil {
			t.Fatalf("txn.py printed %q", out.Text())
		}
		switch {
		case l.Type == "record" && l.Isolation == "read_committed":
			committed = append(committed, l.Value)
		case l.Type == "record":
			uncommitted = append(uncommitted, l.Value)
		case l.Type == "committed":
			offset = l.Offset
		}
	}
	if err := read.Wait(); err != nil {
		t.Fatalf("txn.py read: %v", err)
	}
	slices.Sort(uncommitted)
	var want []string
	for i := range 10 {
		want = append(want, "h-"+strconv.Itoa(i))
	}
	slices.Sort(want)
	if len(committed) != 0 {
		t.Fatalf("read_committed sees %v of the transaction cut by the kill", committed)
	}
	if !slices.Equal(uncommitted, want) {
		t.Fatalf("read_uncommitted sees %v, want %v", uncommitted, want)
	}
	if offset >= 0 {
		t.Fatalf("the group's offset %d, sent in the aborted transaction, was committed", offset)
	}
	// Aborted, not left open: the last stable offset of each partition is
	// its high watermark again (an open transaction would hold it at its
	// first record, and read_committed would see nothing either).
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.kafka))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	latest := func(iso int8) [2]int64 {
		req := kmsg.NewPtrListOffsetsRequest()
		req.IsolationLevel = iso
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		for p := range int32(2) {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition, rp.Timestamp = p, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		var out [2]int64
		for _, p := range resp.Topics[0].Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				t.Fatal(err)
			}
			out[p.Partition] = p.Offset
		}
		return out
	}
	if lso, hw := latest(1), latest(0); lso != hw || hw[0] == 0 || hw[1] == 0 {
		t.Fatalf("last stable offsets %v, high watermarks %v: the transaction is still open", lso, hw)
	}
	n.noErrors()
}

// A franz-go producer (transaction version 2) commits a transaction, then
// begins the next one over the same partition (which its coordinator adds
// without a write: the partition was kept from the first) and has its
// records stored, when sense serve is killed with SIGKILL. After the
// restart that transaction is found open in the kept partition and
// aborted: read_committed sees only the first transaction's records (and
// what came after), read_uncommitted both, nothing is left open, and the
// producer cannot commit the cut transaction.
func TestKafkaKeptPartitionsKilled(t *testing.T) {
	n := startNode(t, t.TempDir(), "--log-level", "warn")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic = "kept-kill"
	pr, err := kgo.NewClient(kgo.SeedBrokers(n.kafka), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
		kgo.TransactionalID("kept-kill-1"), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequestRetries(2))
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	produce := func(prefix string) {
		if err := pr.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if err := pr.ProduceSync(ctx, &kgo.Record{Value: []byte(prefix + strconv.Itoa(i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce("a-")
	if err := pr.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	produce("b-") // stored, the transaction not ended
	n.kill()
	n.start()
	ectx, ecancel := context.WithTimeout(ctx, 15*time.Second)
	err = pr.EndTransaction(ectx, kgo.TryCommit)
	ecancel()
	if err == nil {
		t.Fatal("the producer committed the transaction the kill cut")
	}
	// A later record in the same partition, committed, marks the end of
	// what to read: read_committed reaches it only once nothing before it
	// is open.
	after, err := kgo.NewClient(kgo.SeedBrokers(n.kafka), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if err := after.ProduceSync(ctx, &kgo.Record{Value: []byte("end")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	read := func(iso kgo.IsolationLevel) []string {
		cl, err := kgo.NewClient(kgo.SeedBrokers(n.kafka), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(iso),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		rctx, rcancel := context.WithTimeout(ctx, 15*time.Second)
		defer rcancel()
		var got []string
		for !slices.Contains(got, "end") {
			fs := cl.PollFetches(rctx)
			if rctx.Err() != nil {
				t.Fatalf("read %v, and not the end record: a transaction is still open", got)
			}
			fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		}
		return got
	}
	if got, want := read(kgo.ReadCommitted()), []string{"a-0", "a-1", "a-2", "a-3", "a-4", "end"}; !slices.Equal(got, want) {
		t.Fatalf("read_committed: %v, want %v", got, want)
	}
	if got := read(kgo.ReadUncommitted()); len(got) != 11 || !slices.Contains(got, "b-4") {
		t.Fatalf("read_uncommitted: %v, want the records of both transactions and the end", got)
	}
	n.noErrors()
}
