package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/sensetest"
)

// TestClusterJurisdictionViewKafka: a franz-go producer that knows nothing
// of hubs writes keyed and keyless records to "payments.MA" on the
// three-hub cluster with its default partitioner: every record is
// acknowledged, stored only in the MA hubs with the mask MA, and read back
// through the view by a consumer; the audit of every node finds no
// violation.
func TestClusterJurisdictionViewKafka(t *testing.T) {
	c := sensetest.StartCluster(t, 3, sovereignHubs)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm, err := kgo.NewClient(kgo.SeedBrokers(c.KafkaAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	// payments: 3 hubs x 3 lanes x 1 partition; the MA view is tangier's
	// and dakhla's 6.
	deadline := time.Now().Add(30 * time.Second)
	for {
		md, err := kadm.NewClient(adm).Metadata(ctx, "payments.MA")
		if err == nil && md.Topics["payments.MA"].Err == nil && len(md.Topics["payments.MA"].Partitions) == 6 {
			ok := true
			for _, p := range md.Topics["payments.MA"].Partitions {
				ok = ok && p.Leader >= 0
			}
			if ok {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("metadata of payments.MA after 30s: %+v %v", md.Topics["payments.MA"], err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The default partitioner picks any partition of the view; a record
	// without a priority header takes its partition's lane.
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.KafkaAddrs()...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordRetries(50), kgo.RetryTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	const n = 300
	for i := range n {
		r := &kgo.Record{Topic: "payments.MA", Value: fmt.Appendf(nil, "v%d", i)}
		if i%2 == 0 {
			r.Key = fmt.Appendf(nil, "k%d", i)
		}
		if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.KafkaAddrs()...), kgo.ConsumeTopics("payments.MA"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	seen := map[string]bool{}
	for len(seen) < n {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("%d of %d records read back through payments.MA: %v", len(seen), n, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if seen[string(r.Value)] {
				t.Errorf("record %s read twice", r.Value)
			}
			seen[string(r.Value)] = true
		})
	}
	for i := range c.Nodes {
		// A follower's high watermark follows the leader's by a message.
		var resp admin.Response
		for deadline := time.Now().Add(10 * time.Second); ; {
			resp, err = adminAt(t, c, i, admin.Audit{Pipeline: "payments"})
			if err != nil {
				t.Fatal(err)
			}
			held := int64(0)
			for _, h := range resp.Audit.Hubs {
				held += h.Records
			}
			if held >= n || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		ma := int64(0)
		for _, h := range resp.Audit.Hubs {
			if h.Jurisdiction == "MA" {
				ma += h.Records
			}
			if h.Violations != 0 || h.Corrupt != 0 {
				t.Fatalf("n%d hub %s: %+v", i+1, h.Hub, h)
			}
			if h.Hub == "dakar" && h.Records != 0 {
				t.Fatalf("n%d: %d records of payments.MA in dakar (SN)", i+1, h.Records)
			}
			for m := range h.Masks {
				if m != "MA" {
					t.Fatalf("n%d hub %s holds a record of mask %s; payments.MA's records take MA", i+1, h.Hub, m)
				}
			}
		}
	}
}
