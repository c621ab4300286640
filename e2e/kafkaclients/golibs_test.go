package kafkaclients

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
)

// The two Go Kafka clients most used after franz-go, in process: IBM's
// sarama (its own protocol code, the version it speaks set by the
// application, old ones included) and segmentio's kafka-go (its own
// protocol code and group balancers). Each test bounds itself with a
// context; none checks how long anything took.

// codecName names Kafka's compression attributes 0 to 4 (sarama's and
// kafka-go's codec constants have those values).
var codecName = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// checkCodecs reads the n messages of topic back and checks that each,
// valued "CODEC-i", is stored in a batch of that compression.
func checkCodecs(t *testing.T, addr, topic string, n int) {
	t.Helper()
	back := readBack(t, addr, topic)
	if len(back) != n {
		t.Fatalf("%d messages stored in %s, %d sent", len(back), topic, n)
	}
	for _, s := range back {
		name, _, _ := strings.Cut(s.Value, "-")
		if int(s.codec) >= len(codecName) || codecName[s.codec] != name {
			t.Fatalf("%q is stored in a batch of compression %d, want %s", s.Value, s.codec, name)
		}
	}
}

// saramaConfig is a client of protocol version v that waits for acks=all.
func saramaConfig(v sarama.KafkaVersion) *sarama.Config {
	c := sarama.NewConfig()
	c.Version = v
	c.ClientID = "sense-test"
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Interval = 50 * time.Millisecond
	c.Metadata.Retry.Max = 5
	return c
}

// saramaCollector is a consumer group handler that marks every message it
// gets and counts them by value.
type saramaCollector struct {
	mu   sync.Mutex
	seen map[string]int
	want int
	done chan struct{}
	once sync.Once
}

func newSaramaCollector(want int) *saramaCollector {
	return &saramaCollector{seen: map[string]int{}, want: want, done: make(chan struct{})}
}

func (h *saramaCollector) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *saramaCollector) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *saramaCollector) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.mu.Lock()
		h.seen[string(m.Value)]++
		n := len(h.seen)
		h.mu.Unlock()
		s.MarkMessage(m, "")
		if n >= h.want {
			h.once.Do(func() { close(h.done) })
		}
	}
	return nil
}

// saramaConsume runs a consumer group until it has seen want distinct
// values (or ctx ends) and linger more, closes it (which commits what it
// marked) and returns what it saw.
func saramaConsume(ctx context.Context, t *testing.T, addr string, c *sarama.Config, group, topic string, want int, linger time.Duration) map[string]int {
	t.Helper()
	cg, err := sarama.NewConsumerGroup([]string{addr}, group, c)
	if err != nil {
		t.Fatalf("sarama consumer group: %v", err)
	}
	h := newSaramaCollector(want)
	cctx, cancel := context.WithCancel(ctx)
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for cctx.Err() == nil {
			if err := cg.Consume(cctx, []string{topic}, h); err != nil && cctx.Err() == nil {
				t.Logf("sarama consume: %v", err)
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	select {
	case <-h.done:
		select {
		case <-time.After(linger):
		case <-ctx.Done():
		}
	case <-ctx.Done():
	}
	cancel()
	<-consumed
	if err := cg.Close(); err != nil {
		t.Errorf("sarama close group %s: %v", group, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen
}

// TestSaramaProducerAndGroup: at protocol versions 1.0, 2.1 and 3.6, a
// sarama admin creates a topic of three partitions, idempotent producers
// (acks=all) send 200 keyed messages with each codec the version allows,
// and a consumer group reads every message and commits: the committed
// offsets account for every message, and the group is listed and
// described (Empty, of protocol type consumer).
func TestSaramaProducerAndGroup(t *testing.T) {
	addr := startSense(t)
	for _, tc := range []struct {
		name string
		v    sarama.KafkaVersion
	}{{"1.0", sarama.V1_0_0_0}, {"2.1", sarama.V2_1_0_0}, {"3.6", sarama.V3_6_0_0}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			topic := topicName(t, "s")
			admin, err := sarama.NewClusterAdmin([]string{addr}, saramaConfig(tc.v))
			if err != nil {
				t.Fatalf("sarama admin: %v", err)
			}
			defer admin.Close()
			if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false); err != nil {
				t.Fatalf("create topic: %v", err)
			}
			codecs := []sarama.CompressionCodec{sarama.CompressionNone, sarama.CompressionGZIP, sarama.CompressionSnappy, sarama.CompressionLZ4}
			if tc.v.IsAtLeast(sarama.V2_1_0_0) {
				codecs = append(codecs, sarama.CompressionZSTD)
			}
			sent := 0
			for _, codec := range codecs {
				c := saramaConfig(tc.v)
				c.Producer.Compression = codec
				c.Producer.Idempotent = true
				c.Net.MaxOpenRequests = 1
				p, err := sarama.NewSyncProducer([]string{addr}, c)
				if err != nil {
					t.Fatalf("producer (%v): %v", codec, err)
				}
				var msgs []*sarama.ProducerMessage
				for i := range 200 {
					msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(strconv.Itoa(i % 17)),
						Value: sarama.StringEncoder(fmt.Sprintf("%s-%d", codecName[int(codec)], i))})
				}
				if err := p.SendMessages(msgs); err != nil {
					t.Fatalf("send (%v): %v", codec, err)
				}
				if err := p.Close(); err != nil {
					t.Fatalf("close producer: %v", err)
				}
				sent += len(msgs)
			}
			checkCodecs(t, addr, topic, sent)
			group := topicName(t, "g")
			seen := saramaConsume(ctx, t, addr, saramaConfig(tc.v), group, topic, sent, 0)
			if len(seen) != sent {
				t.Fatalf("the group saw %d distinct messages of %d", len(seen), sent)
			}
			offsets, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2}})
			if err != nil {
				t.Fatalf("list group offsets: %v", err)
			}
			committed := int64(0)
			for p, b := range offsets.Blocks[topic] {
				if b.Err != sarama.ErrNoError || b.Offset < 0 {
					t.Fatalf("partition %d: committed offset %d (%v)", p, b.Offset, b.Err)
				}
				committed += b.Offset
			}
			if committed != int64(sent) {
				t.Fatalf("committed offsets add up to %d, want %d (every message)", committed, sent)
			}
			groups, err := admin.ListConsumerGroups()
			if _, ok := groups[group]; err != nil || !ok {
				t.Fatalf("list groups: %v, %v has no %s", err, groups, group)
			}
			desc, err := admin.DescribeConsumerGroups([]string{group})
			if err != nil || len(desc) != 1 || desc[0].State != "Empty" || desc[0].ProtocolType != "consumer" {
				t.Fatalf("describe group: %v %+v, want one group in state Empty, protocol type consumer", err, desc)
			}
		})
	}
}

// TestSaramaTransactions: a sarama transactional producer (protocol 2.1,
// librdkafka's generation of the protocol) commits two transactions of 50
// messages and aborts two; a read_committed group sees exactly the 100
// committed ones, a read_uncommitted group all 200.
func TestSaramaTransactions(t *testing.T) {
	addr := startSense(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	topic := topicName(t, "tx")
	c := saramaConfig(sarama.V2_1_0_0)
	c.Producer.Idempotent = true
	c.Producer.Transaction.ID = topicName(t, "id")
	c.Net.MaxOpenRequests = 1
	p, err := sarama.NewAsyncProducer([]string{addr}, c)
	if err != nil {
		t.Fatalf("transactional producer: %v", err)
	}
	var errs sync.WaitGroup
	errs.Go(func() {
		for e := range p.Errors() {
			t.Errorf("produce: %v", e)
		}
	})
	errs.Go(func() {
		for range p.Successes() {
		}
	})
	committed := map[string]bool{}
	for tx := range 4 {
		if err := p.BeginTxn(); err != nil {
			t.Fatalf("begin %d: %v", tx, err)
		}
		for i := range 50 {
			v := fmt.Sprintf("t%d-%d", tx, i)
			p.Input() <- &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(v)}
			if tx%2 == 0 {
				committed[v] = true
			}
		}
		if tx%2 == 1 {
			err = p.AbortTxn()
		} else {
			err = p.CommitTxn()
		}
		if err != nil {
			t.Fatalf("end transaction %d: %v", tx, err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	errs.Wait()

	rc := saramaConfig(sarama.V2_1_0_0)
	rc.Consumer.IsolationLevel = sarama.ReadCommitted
	// read_committed: every committed message, and nothing more in the
	// second after it (an aborted message would come among them).
	seen := saramaConsume(ctx, t, addr, rc, topicName(t, "rc"), topic, len(committed), time.Second)
	for v := range seen {
		if !committed[v] {
			t.Fatalf("read_committed group saw %q of an aborted transaction", v)
		}
	}
	if len(seen) != len(committed) {
		t.Fatalf("read_committed group saw %d messages, want the %d committed", len(seen), len(committed))
	}
	all := saramaConsume(ctx, t, addr, saramaConfig(sarama.V2_1_0_0), topicName(t, "ru"), topic, 200, 0)
	if len(all) != 200 {
		t.Fatalf("read_uncommitted group saw %d messages, want 200", len(all))
	}
}

// TestKafkaGoWriterAndReaders: kafka-go creates a topic of six partitions,
// writes 200 messages with each codec, and three readers of one group join
// one after another (each join a rebalance, assigned by kafka-go's own
// balancers) and read until every message was seen, committing each. The
// group's committed offsets then account for every message; ListOffsets,
// DescribeGroups and DeleteTopics answer.
func TestKafkaGoWriterAndReaders(t *testing.T) {
	addr := startSense(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	topic := topicName(t, "k")
	cl := &kafkago.Client{Addr: kafkago.TCP(addr), Timeout: 10 * time.Second}
	created, err := cl.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{Topic: topic, NumPartitions: 6, ReplicationFactor: 1}}})
	if err != nil || created.Errors[topic] != nil {
		t.Fatalf("create topic: %v %v", err, created)
	}
	sent := 0
	for _, codec := range []compress.Compression{compress.None, compress.Gzip, compress.Snappy, compress.Lz4, compress.Zstd} {
		w := &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: topic, Balancer: &kafkago.Hash{}, RequiredAcks: kafkago.RequireAll,
			Compression: codec, BatchTimeout: 2 * time.Millisecond}
		var msgs []kafkago.Message
		for i := range 200 {
			msgs = append(msgs, kafkago.Message{Key: []byte(strconv.Itoa(i)), Value: fmt.Appendf(nil, "%s-%d", codecName[int(codec)], i)})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatalf("write (%v): %v", codec, err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		sent += len(msgs)
	}
	checkCodecs(t, addr, topic, sent)

	group := topicName(t, "g")
	var mu sync.Mutex
	seen := map[string]bool{}
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	var readers sync.WaitGroup
	for k := range 3 {
		readers.Go(func() {
			select { // join one after another: each join rebalances the group
			case <-time.After(time.Duration(k) * 500 * time.Millisecond):
			case <-rctx.Done():
				return
			}
			r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{addr}, GroupID: group, Topic: topic,
				MaxWait: 100 * time.Millisecond, StartOffset: kafkago.FirstOffset, HeartbeatInterval: 200 * time.Millisecond,
				SessionTimeout: 6 * time.Second, RebalanceTimeout: 5 * time.Second,
				GroupBalancers: []kafkago.GroupBalancer{kafkago.RangeGroupBalancer{}, kafkago.RoundRobinGroupBalancer{}}})
			defer r.Close()
			for {
				m, err := r.FetchMessage(rctx)
				if err != nil {
					if rctx.Err() == nil {
						t.Errorf("reader %d: %v", k, err)
					}
					return
				}
				if err := r.CommitMessages(ctx, m); err != nil {
					t.Errorf("reader %d commit: %v", k, err)
				}
				mu.Lock()
				seen[string(m.Value)] = true
				if len(seen) == sent {
					rcancel()
				}
				mu.Unlock()
			}
		})
	}
	readers.Wait()
	if len(seen) != sent {
		t.Fatalf("the readers saw %d distinct messages of %d", len(seen), sent)
	}
	fetched, err := cl.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0, 1, 2, 3, 4, 5}}})
	if err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	committed := int64(0)
	for _, p := range fetched.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("partition %d: %v", p.Partition, p.Error)
		}
		committed += p.CommittedOffset
	}
	if committed != int64(sent) {
		t.Fatalf("committed offsets add up to %d, want %d", committed, sent)
	}
	var reqs []kafkago.OffsetRequest
	for p := range 6 {
		reqs = append(reqs, kafkago.LastOffsetOf(p))
	}
	listed, err := cl.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: reqs}})
	if err != nil {
		t.Fatalf("list offsets: %v", err)
	}
	ends := int64(0)
	for _, p := range listed.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("list offsets, partition %d: %v", p.Partition, p.Error)
		}
		ends += p.LastOffset
	}
	if ends != int64(sent) {
		t.Fatalf("the partitions end at offsets adding up to %d, want %d", ends, sent)
	}
	desc, err := cl.DescribeGroups(ctx, &kafkago.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil || len(desc.Groups) != 1 || desc.Groups[0].Error != nil {
		t.Fatalf("describe group: %v %+v", err, desc)
	}
	deleted, err := cl.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: []string{topic}})
	if err != nil || deleted.Errors[topic] != nil {
		t.Fatalf("delete topic: %v %v", err, deleted)
	}
}
