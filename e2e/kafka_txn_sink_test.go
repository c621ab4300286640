package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/processor"
)

// TestKafkaTransactionalSinkKill9: a node runs a processor with a
// transactional kafka sink into another node's Kafka listener (the topic
// created by the first produce); the first node is killed with SIGKILL
// five times mid-stream, leaving transactions open on the target (the
// restarted producers abort them) and, now and then, a batch the target
// committed and Sense did not, and started again. A read_committed
// consumer (franz-go) of the target then sees every source event exactly
// once. Small batches make that window wide: a sink that did not read its
// progress back fails here in about a third of the runs;
// processor.TestKafkaSinkTransactional stops a processor in the window
// every time.
func TestKafkaTransactionalSinkKill9(t *testing.T) {
	target := startNode(t, t.TempDir())
	cfg := filepath.Join(t.TempDir(), "sense.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
pipelines:
  - {name: stream, partitions: 1}
processors:
  - name: to-kafka-txn
    from: {pipeline: stream}
    sink: {type: kafka, brokers: [%q], topic: copy, transactional: true, timeout: 3s}
    rate: 2000/s
    batch: {max_events: 10, linger: 2ms}
`, target.kafka)), 0o644); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, t.TempDir(), "--config", cfg)
	rng := rand.New(rand.NewPCG(3, 11))
	const rounds, perRound = 6, 1500
	for round := range rounds {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		c, err := client.Dial(ctx, client.Options{Addr: n.native})
		if err != nil {
			t.Fatal(err)
		}
		p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "stream"})
		if err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, perRound)
		for i := range perRound {
			e := client.Event{Key: []byte(fmt.Sprintf("k%d", i%97)), Value: bytes.Repeat([]byte{'v'}, 100), HasPriority: true, Priority: event.Priority(i % 3)}
			p.Send(e, func(r client.Result) { errs <- r.Err })
		}
		for range perRound {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		p.Close()
		c.Close()
		cancel()
		if round == rounds-1 {
			break
		}
		time.Sleep(time.Duration(300+rng.IntN(900)) * time.Millisecond)
		n.kill()
		t.Logf("round %d: killed with SIGKILL; %d events in the target (read_committed)", round, len(readCommitted(t, target.kafka, "copy")))
		n.start()
	}
	want := map[string]bool{}
	for _, r := range n.consumeAll("stream") {
		want[fmt.Sprintf("%s/%d/%d", r.Pipeline, r.Partition, r.Offset)] = true
	}
	if len(want) != rounds*perRound {
		t.Fatalf("the pipeline holds %d events, %d were acknowledged", len(want), rounds*perRound)
	}
	var got map[string]int
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		got = readCommitted(t, target.kafka, "copy")
		if len(got) >= len(want) {
			break
		}
		if time.Now().After(deadline) {
			out, _ := n.sense("", "processor", "describe", "to-kafka-txn")
			logs, _ := os.ReadFile(n.logs[len(n.logs)-1])
			t.Fatalf("the target holds %d of %d events (read_committed) after a minute:\n%s\n%s", len(got), len(want), out, tail(logs, 3000))
		}
	}
	checkOnce(t, "transactional kafka", got, want)
	n.stop()
	target.stop()
}

// readCommitted reads topic from the start with franz-go at read_committed
// until a poll of a second brings nothing, and counts the records by
// their sense.source header.
func readCommitted(t *testing.T, addr, topic string) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := map[string]int{}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			for _, h := range r.Headers {
				if h.Key == processor.HeaderSource {
					out[string(h.Value)]++
				}
			}
		})
		if n == 0 {
			return out
		}
	}
	t.Fatalf("reading %s did not end within a minute", topic)
	return nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
