package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/jurisdiction"
)

// stored is what the test produced: each value's offset and mask.
type stored struct {
	offset int64
	mask   jurisdiction.Mask
}

// TestJurisdictionLimitedConsumers produces records of masks MA, SN and
// MA,SN, and reads them back over Kafka (franz-go), a native subscription
// (the Go client) and HTTP fetch: a principal whose read ACL is limited
// to SN receives exactly the records whose mask holds SN, at their stored
// offsets; one limited to MA and SN only the MA,SN ones; an unlimited one
// all of them.
func TestJurisdictionLimitedConsumers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n := startSecureWith(t, 10*time.Second, "jurisdictions: [MA, SN]\n")
	n.admin(ctx, admin.CreatePipeline{Pipeline: "events", Partitions: 1})
	for _, u := range []string{"sn", "both", "all"} {
		n.admin(ctx, admin.CreateUser{User: u, Password: "pw-" + u})
	}
	n.admin(ctx, admin.CreateACLs{ACLs: []admin.ACLInfo{
		{Principal: "User:sn", ResourceType: "pipeline", Name: "events", Operation: "consume", Jurisdictions: []string{"SN"}},
		{Principal: "User:both", ResourceType: "pipeline", Pattern: "prefixed", Name: "ev", Operation: "consume", Jurisdictions: []string{"MA", "SN"}},
		{Principal: "User:all", ResourceType: "pipeline", Name: "events", Operation: "consume"},
	}})
	// A jurisdiction the registry does not know is refused, clearly.
	c, err := n.dial(ctx, client.Options{Token: n.boot})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Admin(ctx, admin.CreateACLs{ACLs: []admin.ACLInfo{{Principal: "User:sn", ResourceType: "pipeline", Name: "events", Operation: "consume", Jurisdictions: []string{"XX"}}}})
	if err == nil || !strings.Contains(err.Error(), `jurisdiction "XX"`) {
		t.Fatalf("an unknown jurisdiction: %v", err)
	}

	reg, err := c.Registry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ma, _ := reg.Parse("MA")
	sn, _ := reg.Parse("SN")
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "events"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]stored{}
	masks := []jurisdiction.Mask{ma, sn, ma | sn, ma, ma, sn, ma | sn, ma}
	for i := 0; i < 40; i++ {
		m := masks[i%len(masks)]
		v := fmt.Sprintf("r%d", i)
		res := p.Produce(ctx, client.Event{Value: []byte(v), Mask: m})
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		want[v] = stored{res.Offset, m}
	}
	// The last record is of SN and MA: every reader reaches it.
	res := p.Produce(ctx, client.Event{Value: []byte("end"), Mask: ma | sn})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	want["end"] = stored{res.Offset, ma | sn}
	p.Close()

	limits := map[string]func(jurisdiction.Mask) bool{
		"sn":   func(m jurisdiction.Mask) bool { return m&sn != 0 },
		"both": func(m jurisdiction.Mask) bool { return m == ma|sn },
		"all":  func(jurisdiction.Mask) bool { return true },
	}
	readers := map[string]func(t *testing.T, user string) map[string]int64{
		"kafka":  func(t *testing.T, u string) map[string]int64 { return readKafka(ctx, t, n, u) },
		"native": func(t *testing.T, u string) map[string]int64 { return readNative(ctx, t, n, u) },
		"http":   func(t *testing.T, u string) map[string]int64 { return readHTTP(ctx, t, n, u) },
	}
	for edge, read := range readers {
		for user, allows := range limits {
			t.Run(edge+"/"+user, func(t *testing.T) {
				got := read(t, user)
				for v, off := range got {
					s, ok := want[v]
					switch {
					case !ok:
						t.Errorf("received %q, never produced", v)
					case !allows(s.mask):
						t.Errorf("received %q of mask %s, outside the reader's limit", v, reg.Format(s.mask))
					case off != s.offset:
						t.Errorf("received %q at offset %d, stored at %d", v, off, s.offset)
					}
				}
				for v, s := range want {
					if _, ok := got[v]; allows(s.mask) && !ok {
						t.Errorf("did not receive %q (mask %s, offset %d)", v, reg.Format(s.mask), s.offset)
					}
				}
			})
		}
	}
}

// readKafka consumes events with franz-go until the record "end".
func readKafka(ctx context.Context, t *testing.T, n *secureNode, user string) map[string]int64 {
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.srv.KafkaAddr().String()), kgo.SASL(scram.Auth{User: user, Pass: "pw-" + user}.AsSha512Mechanism()),
		kgo.ConsumeTopics("events"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string]int64{}
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("no record \"end\" after %d records", len(got))
		}
		for _, e := range fs.Errors() {
			t.Fatalf("fetch: %v", e.Err)
		}
		for _, r := range fs.Records() {
			got[string(r.Value)] = r.Offset
		}
		if _, ok := got["end"]; ok {
			return got
		}
	}
}

// readNative subscribes with the Go client until the record "end".
func readNative(ctx context.Context, t *testing.T, n *secureNode, user string) map[string]int64 {
	c, err := n.dial(ctx, client.Options{User: user, Password: "pw-" + user})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cs, err := c.NewConsumer(ctx, client.ConsumerOptions{Pipeline: "events", From: client.Earliest})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	got := map[string]int64{}
	for {
		r, err := cs.Next(ctx)
		if err != nil {
			t.Fatalf("after %d records: %v", len(got), err)
		}
		got[string(r.Value)] = r.Offset
		if string(r.Value) == "end" {
			return got
		}
	}
}

// readHTTP fetches over HTTP, following next_offset, until the record
// "end".
func readHTTP(ctx context.Context, t *testing.T, n *secureNode, user string) map[string]int64 {
	got := map[string]int64{}
	off := int64(0)
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s/v1/pipelines/events/events?partition=0&offset=%d&max=7", n.srv.HTTPAddr(), off), nil)
		req.SetBasicAuth(user, "pw-"+user)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("HTTP %d: %s", resp.StatusCode, b)
		}
		var fr struct {
			Records []struct {
				Offset int64   `json:"offset"`
				Value  *string `json:"value"`
			} `json:"records"`
			NextOffset int64 `json:"next_offset"`
		}
		if err := json.Unmarshal(b, &fr); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		for _, r := range fr.Records {
			got[*r.Value] = r.Offset
		}
		if _, ok := got["end"]; ok {
			return got
		}
		if fr.NextOffset <= off {
			t.Fatalf("next_offset %d does not move past %d: %s", fr.NextOffset, off, b)
		}
		off = fr.NextOffset
	}
	t.Fatal(ctx.Err())
	return nil
}
