package httpedge_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sensehq/sense/sensetest"
)

// BenchmarkHTTPProduce posts NDJSON over h2c: 1000 events of 100-byte
// values per request, from several concurrent requests on one connection,
// to a dev-mode node with the default durability (fsync always, group
// commit). One op is one request; events/s is the figure to compare.
func BenchmarkHTTPProduce(b *testing.B) {
	srv := sensetest.Start(b, "")
	c := clients()["HTTP/2.0"]
	url := base(srv.HTTPAddr()) + "/v1/pipelines/bench/events"
	const perRequest = 1000
	var body bytes.Buffer
	value := strings.Repeat("v", 100)
	for i := range perRequest {
		fmt.Fprintf(&body, `{"key":"k%d","value":"%s"}`+"\n", i, value)
	}
	payload := body.Bytes()
	b.SetBytes(int64(perRequest * 100))
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Post(url, "application/x-ndjson", bytes.NewReader(payload))
			if err != nil {
				b.Error(err)
				return
			}
			var sink [512]byte
			for {
				if _, err := resp.Body.Read(sink[:]); err != nil {
					break
				}
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*perRequest)/b.Elapsed().Seconds(), "events/s")
}
