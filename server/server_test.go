package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/sensetest"
)

// The server wires consumer groups' offsets to the node: the lag metric
// follows a real partition's high watermark, and deleting a pipeline
// forgets the groups' commits on it (and only on it).
func TestGroupOffsetsFollowTheNode(t *testing.T) {
	srv := sensetest.Start(t, "")
	n := srv.Node
	ctx := context.Background()
	for _, pipeline := range []string{"orders", "audit"} {
		req := &node.ProduceRequest{Pipeline: pipeline, ProducerID: -1,
			Events: []node.Event{{Value: []byte("a")}, {Value: []byte("b")}, {Value: []byte("c")}}}
		res := make([]node.Result, len(req.Events))
		if err := n.Produce(ctx, req, res); err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Code != result.OK || r.Partition != res[0].Partition {
				t.Fatalf("produce to %s: %+v", pipeline, res)
			}
		}
		tp := group.TopicPartition{Topic: pipeline, Partition: res[0].Partition}
		if err := srv.Offsets.Commit("g", []group.OffsetCommit{{TopicPartition: tp, CommittedOffset: group.CommittedOffset{Offset: 1}}}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Get("http://" + srv.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `sense_consumer_group_lag{group="g",partition=`) || !strings.Contains(string(body), `pipeline="orders"} 2`) {
		t.Fatalf("no lag of 2 for orders in /metrics:\n%s", grepLines(string(body), "sense_consumer_group_lag"))
	}
	if err := n.DeletePipeline("orders"); err != nil {
		t.Fatal(err)
	}
	got := srv.Offsets.Committed("g")
	if len(got) != 1 {
		t.Fatalf("commits after deleting orders: %+v, want audit's only", got)
	}
	for tp := range got {
		if tp.Topic != "audit" {
			t.Fatalf("commits after deleting orders: %+v", got)
		}
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
