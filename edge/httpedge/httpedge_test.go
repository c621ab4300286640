package httpedge_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/sensetest"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	srv := sensetest.Start(t, "")
	base := "http://" + srv.HTTPAddr().String()
	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz: %d %q", code, body)
	}
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("readyz: %d", code)
	}
	// Store an event so the counters have something to show.
	res := make([]node.Result, 1)
	srv.Node.Produce(context.Background(), &node.ProduceRequest{Pipeline: "demo", ProducerID: -1, Events: []node.Event{{Value: []byte("x")}}}, res)
	if res[0].Code != result.OK {
		t.Fatal(res[0].Code)
	}
	code, body := get(t, base+"/metrics")
	for _, want := range []string{
		`sense_events_in_total{hub="local",pipeline="demo",priority="low"} 1`,
		"sense_produce_latency_seconds_bucket", "sense_fsync_latency_seconds_count", "sense_ingress_bytes",
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("metrics (%d) lack %q:\n%s", code, want, body)
		}
	}
	resp, err := http.Post(base+"/v1/admin", "application/json", strings.NewReader(`{"op":"pipeline.describe","pipeline":"demo"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"hub":"local"`) {
		t.Fatalf("admin describe: %s", b)
	}
}
