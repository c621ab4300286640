package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/sensetest"
)

// describeAt asks node i's own Kafka listener for a topic's configs, by
// name: value and source.
func describeAt(t *testing.T, ctx context.Context, c *sensetest.Cluster, i int, topic string) (map[string]kmsg.DescribeConfigsResponseResourceConfig, error) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.KafkaAddrs()[i]))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDescribeConfigsRequest()
	r := kmsg.NewDescribeConfigsRequestResource()
	r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeTopic, topic
	req.Resources = append(req.Resources, r)
	// The seed broker is node i itself: kgo would send to any broker.
	kresp, err := cl.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		return nil, err
	}
	resp := kresp.(*kmsg.DescribeConfigsResponse)
	if len(resp.Resources) != 1 || resp.Resources[0].ErrorCode != 0 {
		return nil, errors.New("no answer for the topic")
	}
	out := map[string]kmsg.DescribeConfigsResponseResourceConfig{}
	for _, cfg := range resp.Resources[0].Configs {
		out[cfg.Name] = cfg
	}
	return out, nil
}

// TestClusterAlterPipeline: a change of a pipeline's settings made on one
// node, through its Kafka listener or its admin API, goes through the
// metadata log to every node: each describes the new values (Kafka
// DescribeConfigs, the admin API) and routes by the new defaults. Changes
// of different settings made on different nodes both stand. A node that
// was down during a change applies it from the log when it comes back,
// and a restarted node keeps them. A pipeline of the config file is
// refused on every node.
func TestClusterAlterPipeline(t *testing.T) {
	c := sensetest.StartCluster(t, 3, sovereignHubs)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kc, err := kgo.NewClient(kgo.SeedBrokers(c.KafkaAddrs()[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	adm := kadm.NewClient(kc)
	if _, err := adm.CreateTopic(ctx, 3, -1, nil, "orders"); err != nil {
		t.Fatalf("CreateTopics: %v", err)
	}

	type want struct{ retentionMs, retentionBytes, priority, jurisdiction string }
	// everywhere waits until every running node describes orders as w,
	// through its Kafka listener and its admin API, and routes by it.
	everywhere := func(what string, w want) {
		t.Helper()
		for i := range c.Nodes {
			if c.Nodes[i] == nil {
				continue
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				var got want
				cfgs, kerr := describeAt(t, ctx, c, i, "orders")
				if kerr == nil {
					val := func(name string) string {
						if v := cfgs[name].Value; v != nil {
							return *v
						}
						return ""
					}
					got = want{val("retention.ms"), val("retention.bytes"), val("sense.default.priority"), val("sense.default.jurisdiction")}
				}
				resp, aerr := adminAt(t, c, i, admin.DescribePipeline{Pipeline: "orders"})
				routes := c.Nodes[i].Node.Table().Pipeline("orders")
				if kerr == nil && got == w && aerr == nil && routes != nil &&
					resp.Pipelines[0].DefaultPriority == w.priority && resp.Pipelines[0].DefaultJurisdiction == w.jurisdiction &&
					routes.Spec().DefaultPriority.String() == w.priority {
					if cfgs["sense.default.priority"].ReadOnly || cfgs["retention.ms"].ReadOnly {
						t.Fatalf("%s: n%d describes orders' settings as read-only", what, i+1)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: n%d describes orders as %+v (%v), admin %+v (%v), after 20s; want %+v", what, i+1, got, kerr, resp.Pipelines, aerr, w)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	everywhere("created", want{"-1", "-1", "low", "*"})

	// Through n1's Kafka listener.
	rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("3600000")},
		{Op: kadm.SetConfig, Name: "sense.default.priority", Value: kadm.StringPtr("critical")},
	}, "orders")
	if err != nil || rs[0].Err != nil {
		t.Fatalf("IncrementalAlterConfigs on n1: %v %+v", err, rs)
	}
	everywhere("altered through Kafka on n1", want{"3600000", "-1", "critical", "*"})

	// Through n2's admin API: other settings; n1's change stands.
	if _, err := adminAt(t, c, 1, admin.AlterPipeline{Pipeline: "orders", RetentionBytes: "1GiB", DefaultJurisdiction: "SN"}); err != nil {
		t.Fatalf("admin alter on n2: %v", err)
	}
	everywhere("altered through the admin API on n2", want{"3600000", "1073741824", "critical", "SN"})
	// Every node routes an event naming neither jurisdiction nor
	// priority by the new defaults: SN (bit 1), critical.
	for i := range c.Nodes {
		routes := c.Nodes[i].Node.Table().Pipeline("orders").Spec()
		if routes.DefaultMask != 2 || routes.DefaultPriority != event.Critical {
			t.Errorf("n%d routes orders with default mask %v and priority %v, want SN's and critical", i+1, routes.DefaultMask, routes.DefaultPriority)
		}
	}

	// n3 is down during the next change and applies it from the log when
	// it is back.
	c.Stop(2)
	if _, err := adminAt(t, c, 0, admin.AlterPipeline{Pipeline: "orders", DefaultPriority: "medium", Retention: "forever"}); err != nil {
		t.Fatalf("admin alter on n1 while n3 is down: %v", err)
	}
	c.Start(2)
	everywhere("n3 back", want{"-1", "1073741824", "medium", "SN"})

	// A restarted node keeps them.
	c.Stop(1)
	c.Start(1)
	everywhere("n2 restarted", want{"-1", "1073741824", "medium", "SN"})

	// A pipeline of the config file: refused on every node, with what to
	// do.
	for i := range c.Nodes {
		_, err := adminAt(t, c, i, admin.AlterPipeline{Pipeline: "payments", DefaultPriority: "critical"})
		if result.CodeOf(err) != result.InvalidRequest || !strings.Contains(err.Error(), "config file") {
			t.Errorf("n%d: alter of payments: %v, want INVALID_REQUEST naming the config file", i+1, err)
		}
	}
	rs, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("1")}}, "payments")
	if err != nil || !errors.Is(rs[0].Err, kerr.PolicyViolation) {
		t.Errorf("IncrementalAlterConfigs of payments: %v %+v, want POLICY_VIOLATION", err, rs)
	}
}
