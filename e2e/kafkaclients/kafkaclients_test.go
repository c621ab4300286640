// Package kafkaclients tests Sense's Kafka listener with Kafka clients that
// are not Sense's: kcat and confluent-kafka-python (both librdkafka),
// kafka-python and kafkajs, each run as a separate process against an
// in-process server on loopback, and the Go libraries sarama and kafka-go
// in process (golibs_test.go).
//
// The clients are installed by scripts/test.sh (kcat,
// python3-confluent-kafka and python3-kafka from Debian, kafkajs with npm ci in
// testdata/js). A test whose client is missing fails when CI is set and is
// skipped otherwise. Every client process runs under a timeout and is
// killed, with its process group, when it ends or the test does; no test
// checks how long anything took.
package kafkaclients

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/sensetest"
)

// systemPython is Debian's python3, the one python3-confluent-kafka is
// installed for (a python3 earlier on PATH may be another one).
const systemPython = "/usr/bin/python3"

// scriptTimeout is the budget, in seconds, given to the Python and
// JavaScript scripts, after which they fail with a message of their own;
// the process is killed killAfter later.
const (
	scriptTimeout = 60
	killAfter     = 30 * time.Second
)

// inCI reports whether the tests run in CI, where a missing client is a
// failure and not a skip.
func inCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// missing fails (in CI) or skips the test because a client is not there.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...) + "; scripts/test.sh installs it"
	if inCI() {
		t.Fatal(msg)
	}
	t.Skip(msg + " (this would fail with CI set)")
}

// needKcat returns kcat's path.
func needKcat(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		missing(t, "kcat is not on PATH (Debian package kcat)")
	}
	return path
}

// needPython checks that Debian's python3 imports confluent_kafka.
func needPython(t *testing.T) {
	t.Helper()
	out, err := exec.Command(systemPython, "-c", "import confluent_kafka").CombinedOutput()
	if err != nil {
		missing(t, "%s cannot import confluent_kafka (Debian package python3-confluent-kafka): %v %s", systemPython, err, out)
	}
}

// needKafkajs returns the path of node and checks that kafkajs is
// installed in testdata/js.
func needKafkajs(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		missing(t, "node is not on PATH (Debian package nodejs)")
	}
	if _, err := os.Stat(filepath.Join("testdata", "js", "node_modules", "kafkajs", "package.json")); err != nil {
		missing(t, "kafkajs is not installed in testdata/js (npm ci there): %v", err)
	}
	return node
}

// startSense starts a dev-mode server (one hub: every topic has the three
// partitions low, medium, critical) and returns its Kafka address.
func startSense(t *testing.T) string {
	t.Helper()
	srv := sensetest.Start(t, "")
	if srv.KafkaAddr() == nil {
		t.Fatal("the server has no Kafka listener")
	}
	return srv.KafkaAddr().String()
}

// topicName makes a topic name unique to the test (and suffix).
func topicName(t *testing.T, suffix string) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '-'
	}, t.Name()+"-"+suffix)
	return fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
}

// run runs a client process with stdin and returns its stdout. The
// process runs in a process group of its own, which is killed after
// timeout and when the process ends; its stderr is logged.
func run(t *testing.T, timeout time.Duration, stdin string, env []string, name string, args ...string) ([]byte, error) {
	t.Helper()
	return runWatched(t, timeout, stdin, env, nil, name, args...)
}

// runWatched is run that also kills the process at the first line of its
// stderr for which fatal (when not nil) is true.
func runWatched(t *testing.T, timeout time.Duration, stdin string, env []string, fatal func(line string) bool, name string, args ...string) ([]byte, error) {
	t.Helper()
	tctx, cancelTimeout := context.WithTimeout(context.Background(), timeout)
	defer cancelTimeout()
	ctx, cancel := context.WithCancelCause(tctx)
	defer cancel(nil)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	var stdout bytes.Buffer
	stderr := &stderrWatch{fatal: fatal, stop: cancel}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	// Whatever it left behind in its group goes too.
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmdline := filepath.Base(name) + " " + strings.Join(args, " ")
	if errors.Is(tctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("killed after %v: %v", timeout, err)
	} else if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = fmt.Errorf("killed: %v", cause)
	}
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("%s: %v\nstdout:\n%s\nstderr:\n%s", cmdline, err, tail(stdout.String(), 4000), tail(stderr.buf.String(), 4000))
	}
	if s := stderr.buf.String(); s != "" {
		t.Logf("%s: stderr:\n%s", cmdline, tail(s, 4000))
	}
	return stdout.Bytes(), nil
}

// stderrWatch keeps a process's stderr and stops the process at the first
// line that fatal reports.
type stderrWatch struct {
	buf     bytes.Buffer
	partial []byte
	fatal   func(string) bool
	stop    context.CancelCauseFunc
}

// Write is called by one goroutine of exec.Cmd at a time.
func (w *stderrWatch) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if w.fatal == nil {
		return len(p), nil
	}
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(w.partial[:i])
		w.partial = w.partial[i+1:]
		if w.fatal(line) {
			w.stop(fmt.Errorf("stopped at stderr line %q", line))
		}
	}
}

// librdkafkaError reports a librdkafka log line at error level or worse
// ("%3|..." and below): a client that logs one (a protocol parse failure,
// say) would otherwise retry until it is killed.
func librdkafkaError(line string) bool {
	return len(line) > 2 && line[0] == '%' && line[1] >= '0' && line[1] <= '3' && line[2] == '|'
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// jsonLines decodes every line of out as a T.
func jsonLines[T any](t *testing.T, out []byte) []T {
	t.Helper()
	var vs []T
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("output line is not the JSON expected: %q: %v", sc.Text(), err)
		}
		vs = append(vs, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return vs
}

// record is one stored record, as a client reports it.
type record struct {
	Partition int32
	Offset    int64
	Key       string
	Value     string
}

// want is what a test produced: record i has key keyOf(i) and value
// values[i].
type want struct {
	values []string
	keys   []string
}

func newWant(prefix string, n int) want {
	var w want
	for i := range n {
		w.values = append(w.values, fmt.Sprintf("%s-%d", prefix, i))
		w.keys = append(w.keys, fmt.Sprintf("key-%d", i%7))
	}
	return w
}

// checkAll checks that recs are exactly the records of w: each once, with
// its key, each partition's offsets 0, 1, 2, ... in the order they were
// produced, and a key always in the same partition. It returns the
// records by partition.
func checkAll(t *testing.T, w want, recs []record) map[int32][]record {
	t.Helper()
	index := map[string]int{}
	for i, v := range w.values {
		index[v] = i
	}
	seen := map[string]bool{}
	byPart := map[int32][]record{}
	keyPart := map[string]int32{}
	for _, r := range recs {
		i, ok := index[r.Value]
		if !ok {
			t.Fatalf("record %+v was not produced", r)
		}
		if seen[r.Value] {
			t.Fatalf("record %+v came back twice", r)
		}
		seen[r.Value] = true
		if r.Key != w.keys[i] {
			t.Fatalf("record %+v: key %q, want %q", r, r.Key, w.keys[i])
		}
		if p, ok := keyPart[r.Key]; ok && p != r.Partition {
			t.Fatalf("key %q in partitions %d and %d", r.Key, p, r.Partition)
		}
		keyPart[r.Key] = r.Partition
		byPart[r.Partition] = append(byPart[r.Partition], r)
	}
	if len(seen) != len(w.values) {
		for i, v := range w.values {
			if !seen[v] {
				t.Fatalf("%d of %d records came back; record %d (%q) is missing", len(seen), len(w.values), i, v)
			}
		}
	}
	for p, rs := range byPart {
		slices.SortFunc(rs, func(a, b record) int { return int(a.Offset - b.Offset) })
		for j, r := range rs {
			if r.Offset != int64(j) {
				t.Fatalf("partition %d: offsets %v, want 0, 1, 2, ...", p, offsets(rs))
			}
			if j > 0 && index[r.Value] < index[rs[j-1].Value] {
				t.Fatalf("partition %d: %q at offset %d after %q, not in the order produced", p, r.Value, r.Offset, rs[j-1].Value)
			}
		}
	}
	return byPart
}

func offsets(rs []record) []int64 {
	var offs []int64
	for _, r := range rs {
		offs = append(offs, r.Offset)
	}
	return offs
}

// kgoClient is a franz-go client, closed when the test ends.
func kgoClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produceKgo writes w with franz-go, record i to partition i % 3, and
// returns the records by partition, in offset order. The batches are not
// compressed: franz-go would pick snappy, which kafkajs cannot read
// without a codec package.
func produceKgo(t *testing.T, addr, topic string, w want) map[int32][]record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := kgoClient(t, addr, kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	var krs []*kgo.Record
	for i, v := range w.values {
		krs = append(krs, &kgo.Record{Key: []byte(w.keys[i]), Value: []byte(v), Partition: int32(i % 3)})
	}
	if err := cl.ProduceSync(ctx, krs...).FirstErr(); err != nil {
		t.Fatalf("produce with franz-go: %v", err)
	}
	byPart := map[int32][]record{}
	for _, r := range krs {
		byPart[r.Partition] = append(byPart[r.Partition], record{r.Partition, r.Offset, string(r.Key), string(r.Value)})
	}
	return byPart
}

// stored is a record as franz-go reads it back, with its headers.
type stored struct {
	record
	headers map[string]string
	codec   uint8 // the compression of the batch that held it (kgo.RecordAttrs)
}

// readBack reads every record of topic with franz-go: the partitions from
// Metadata, their ends from ListOffsets, then Fetch from offset 0 to the
// ends. opts are given to the clients (kgo.DialTLSConfig for TLS).
func readBack(t *testing.T, addr, topic string, opts ...kgo.Opt) []stored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := kgoClient(t, addr, opts...)

	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	if len(mresp.Topics) != 1 || mresp.Topics[0].ErrorCode != 0 {
		t.Fatalf("metadata for %s: %+v", topic, mresp.Topics)
	}
	lreq := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	for _, p := range mresp.Topics[0].Partitions {
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Partition, lp.Timestamp = p.Partition, -1
		lt.Partitions = append(lt.Partitions, lp)
	}
	lreq.Topics = append(lreq.Topics, lt)
	lresp, err := lreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("list offsets: %v", err)
	}
	ends := map[int32]int64{}
	starts := map[int32]kgo.Offset{}
	total := int64(0)
	for _, p := range lresp.Topics[0].Partitions {
		if p.ErrorCode != 0 {
			t.Fatalf("list offsets %s/%d: error %d", topic, p.Partition, p.ErrorCode)
		}
		ends[p.Partition] = p.Offset
		starts[p.Partition] = kgo.NewOffset().AtStart()
		total += p.Offset
	}
	if total == 0 {
		return nil
	}
	cons := kgoClient(t, addr, append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: starts}))...)
	var out []stored
	for int64(len(out)) < total {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read back %d of %d records of %s: %v", len(out), total, topic, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= ends[r.Partition] {
				t.Fatalf("%s/%d: record at offset %d, past the end %d listed before", topic, r.Partition, r.Offset, ends[r.Partition])
			}
			h := map[string]string{}
			for _, kv := range r.Headers {
				h[kv.Key] = string(kv.Value)
			}
			out = append(out, stored{record{r.Partition, r.Offset, string(r.Key), string(r.Value)}, h, r.Attrs.CompressionType()})
		})
	}
	return out
}

func records(ss []stored) []record {
	var rs []record
	for _, s := range ss {
		rs = append(rs, s.record)
	}
	return rs
}
