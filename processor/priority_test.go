package processor_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/sensetest"
)

// TestCriticalGoesFirstWhenLagging: a processor bound by its rate (1,000
// events/s) resumes with a backlog of 5,000 low and 500 critical events:
// the critical ones are all delivered before a fair share of low ones (a
// rate split evenly would deliver about 500 low ones meanwhile).
func TestCriticalGoesFirstWhenLagging(t *testing.T) {
	var mu sync.Mutex
	var lowDone, critDone int
	lowAtLastCritical := -1
	const lows, crits = 5000, 500
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sc := bufio.NewScanner(bytes.NewReader(body))
		mu.Lock()
		defer mu.Unlock()
		for sc.Scan() {
			var l struct {
				Priority string `json:"priority"`
			}
			json.Unmarshal(sc.Bytes(), &l)
			if l.Priority == "critical" {
				critDone++
				if critDone == crits {
					lowAtLastCritical = lowDone
				}
			} else {
				lowDone++
			}
		}
	}))
	defer hs.Close()
	srv := sensetest.Start(t, fmt.Sprintf(`
pipelines:
  - {name: alerts, partitions: 1}
processors:
  - name: hook
    from: {pipeline: alerts}
    sink: {type: webhook, url: %q}
    rate: 1000/s
    batch: {max_events: 100, linger: 2ms}
    paused: true
`, hs.URL))
	c := dial(t, srv)
	produce(t, c, "alerts", lows, func(i int) client.Event {
		return client.Event{Value: []byte(fmt.Sprintf("low %d", i)), HasPriority: true, Priority: event.Low}
	})
	produce(t, c, "alerts", crits, func(i int) client.Event {
		return client.Event{Value: []byte(fmt.Sprintf("critical %d", i)), HasPriority: true, Priority: event.Critical}
	})
	if _, err := c.Admin(t.Context(), admin.ResumeProcessor{Processor: "hook"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every event delivered", 2*time.Minute, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return lowDone == lows && critDone == crits
	})
	mu.Lock()
	defer mu.Unlock()
	if lowAtLastCritical > crits/2 {
		t.Fatalf("the last critical event was delivered after %d low ones: the low lane was not kept waiting", lowAtLastCritical)
	}
	t.Logf("the %d critical events were delivered when %d of %d low ones were", crits, lowAtLastCritical, lows)
}
