package processor_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/jackc/pgx/v5"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/internal/pgtest"
	"github.com/sensehq/sense/sensetest"
)

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// BenchmarkSinkThroughput: b.N events of 100 bytes are stored first
// (producer batches of 1,000, fsync never), then the processor, paused
// until then, delivers them in batches of 1,000; events/s is b.N over the
// time from resume to the last commit. cpu-µs/event is the whole
// process's (node, processor and, for webhook, the receiver) user+system
// time over that span.
func BenchmarkSinkThroughput(b *testing.B) {
	for _, sink := range []string{"file", "parquet", "webhook", "postgres"} {
		b.Run(sink, func(b *testing.B) {
			var spec string
			switch sink {
			case "file":
				spec = fmt.Sprintf("{type: file, dir: %q}", b.TempDir())
			case "parquet":
				spec = fmt.Sprintf("{type: file, dir: %q, format: parquet}", b.TempDir())
			case "webhook":
				hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
				defer hs.Close()
				spec = fmt.Sprintf("{type: webhook, url: %q}", hs.URL)
			case "postgres":
				spec = fmt.Sprintf("{type: postgres, dsn: %q, table: bench}", pgtest.Start(b))
			}
			srv := sensetest.Start(b, fmt.Sprintf(`
durability: {fsync: never}
pipelines:
  - {name: in, partitions: 4}
processors:
  - name: bench
    from: {pipeline: in}
    sink: %s
    batch: {max_events: 1000, linger: 5ms}
    paused: true
`, spec))
			c := dial(b, srv)
			value := bytes.Repeat([]byte{'x'}, 100)
			ctx := context.Background()
			p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "in", BatchEvents: 1000})
			if err != nil {
				b.Fatal(err)
			}
			var wg sync.WaitGroup
			wg.Add(b.N)
			for i := 0; i < b.N; i++ {
				p.Send(client.Event{Key: []byte(strconv.Itoa(i % 1024)), Value: value}, func(r client.Result) {
					if r.Err != nil {
						b.Error(r.Err)
					}
					wg.Done()
				})
			}
			wg.Wait()
			p.Close()
			b.ReportAllocs()
			cpu0 := cpuSeconds()
			b.ResetTimer()
			t0 := time.Now()
			if _, err := c.Admin(ctx, admin.ResumeProcessor{Processor: "bench"}); err != nil {
				b.Fatal(err)
			}
			for describe(b, c, "bench").Delivered < uint64(b.N) {
				time.Sleep(2 * time.Millisecond)
			}
			el := time.Since(t0)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
			b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N)*1e6, "cpu-µs/event")
		})
	}
}

// BenchmarkEndToEndLatency: events of 100 bytes are produced at 10,000/s
// (every 1ms, 10 at a time, fsync always) for b.N events; each carries
// its send time, and the sink's side records when it got it. webhook: the
// receiver's clock at the request; postgres: the commit seen by a reader
// polling the offsets table every 1ms (so up to 1ms late). Reported:
// p50, p99 and max in ms.
func BenchmarkEndToEndLatency(b *testing.B) {
	for _, sink := range []string{"webhook", "postgres"} {
		b.Run(sink, func(b *testing.B) {
			h := hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3)
			var mu sync.Mutex
			sent := map[string]time.Time{} // key -> send time (postgres)
			var spec, dsn string
			switch sink {
			case "webhook":
				hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					now := time.Now()
					body, _ := io.ReadAll(r.Body)
					mu.Lock()
					defer mu.Unlock()
					for _, line := range bytes.Split(body, []byte("\n")) {
						i := bytes.Index(line, []byte(`"value":"t`))
						if i < 0 {
							continue
						}
						rest := line[i+len(`"value":"t`):]
						ns, err := strconv.ParseInt(string(rest[:bytes.IndexByte(rest, '.')]), 10, 64)
						if err == nil {
							h.RecordValue(now.Sub(time.Unix(0, ns)).Microseconds())
						}
					}
				}))
				defer hs.Close()
				spec = fmt.Sprintf("{type: webhook, url: %q}", hs.URL)
			case "postgres":
				dsn = pgtest.Start(b)
				spec = fmt.Sprintf("{type: postgres, dsn: %q, table: lat}", dsn)
			}
			srv := sensetest.Start(b, fmt.Sprintf(`
pipelines:
  - {name: in, partitions: 1}
processors:
  - name: lat
    from: {pipeline: in}
    sink: %s
    batch: {max_events: 1000, linger: 1ms}
`, spec))
			c := dial(b, srv)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "in", Linger: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			var polled sync.WaitGroup
			if sink == "postgres" {
				// Wait for the processor's tables.
				waitFor(b, "the postgres tables", time.Minute, func() bool { return pgRows(b, dsn, "lat") != nil })
				pc, err := pgx.Connect(ctx, dsn)
				if err != nil {
					b.Fatal(err)
				}
				defer pc.Close(context.Background())
				polled.Add(1)
				go func() {
					defer polled.Done()
					var next int64
					for next < int64(b.N) && ctx.Err() == nil {
						var n int64
						if err := pc.QueryRow(ctx, "SELECT COALESCE(max(next_offset), 0) FROM sense_processor_offsets WHERE processor = 'lat'").Scan(&n); err != nil {
							return
						}
						now := time.Now()
						mu.Lock()
						for o := next; o < n; o++ {
							h.RecordValue(now.Sub(sent[strconv.FormatInt(o, 10)]).Microseconds())
						}
						mu.Unlock()
						next = max(next, n)
						time.Sleep(time.Millisecond)
					}
				}()
			}
			b.ReportAllocs()
			b.ResetTimer()
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			var wg sync.WaitGroup
			for i := 0; i < b.N; {
				<-tick.C
				for j := 0; j < 10 && i < b.N; j, i = j+1, i+1 {
					now := time.Now()
					v := fmt.Sprintf("t%d.%s", now.UnixNano(), bytes.Repeat([]byte{'x'}, 80))
					if sink == "postgres" {
						mu.Lock()
						sent[strconv.Itoa(i)] = now
						mu.Unlock()
					}
					wg.Add(1)
					p.Send(client.Event{Value: []byte(v)}, func(r client.Result) {
						if r.Err != nil {
							b.Error(r.Err)
						}
						wg.Done()
					})
				}
			}
			wg.Wait()
			for describe(b, c, "lat").Delivered < uint64(b.N) {
				time.Sleep(5 * time.Millisecond)
			}
			polled.Wait()
			b.StopTimer()
			mu.Lock()
			b.ReportMetric(float64(h.ValueAtQuantile(50))/1000, "p50-ms")
			b.ReportMetric(float64(h.ValueAtQuantile(99))/1000, "p99-ms")
			b.ReportMetric(float64(h.Max())/1000, "max-ms")
			mu.Unlock()
		})
	}
}
