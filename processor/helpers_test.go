package processor_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/server"
)

// dial connects a client to srv's native listener.
func dial(t testing.TB, srv *server.Server) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Addr: srv.NativeAddr().String(), ClientID: "processor-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// produce sends n events made by mk to pipeline and waits for every one.
func produce(t testing.TB, c *client.Client, pipeline string, n int, mk func(i int) client.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: pipeline})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		p.Send(mk(i), func(r client.Result) { errs <- r.Err })
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
}

// readAll reads every record of pipeline from the beginning.
func readAll(t testing.TB, c *client.Client, pipeline string) []client.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, layout, err := c.Describe(ctx, pipeline)
	if result.CodeOf(err) == result.UnknownPipeline {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []client.Record
	for _, p := range layout {
		off := p.Start
		for off < p.HighWatermark {
			f, err := c.Fetch(ctx, pipeline, p.Partition, off, 0)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, f.Records...)
			if f.NextOffset <= off {
				break
			}
			off = f.NextOffset
		}
	}
	return out
}

// describe returns the processor's admin description.
func describe(t testing.TB, c *client.Client, name string) admin.ProcessorInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Admin(ctx, admin.DescribeProcessor{Processor: name})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Processors[0]
}

// waitFor polls cond every 20ms until it holds or the deadline passes (a
// bound on the test, not an assertion on speed).
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fileLine is the part of an NDJSON line the tests look at.
type fileLine struct {
	Pipeline     string            `json:"pipeline"`
	Partition    int32             `json:"partition"`
	Offset       int64             `json:"offset"`
	Key          *string           `json:"key"`
	Value        *string           `json:"value"`
	Headers      map[string]string `json:"headers"`
	Jurisdiction string            `json:"jurisdiction"`
}

// readFiles reads every NDJSON file under dir (temporary files excluded)
// and returns the lines and the file names.
func readFiles(t testing.TB, dir string) ([]fileLine, []string) {
	t.Helper()
	var lines []fileLine
	var names []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".ndjson" || filepath.Base(path)[0] == '.' {
			return nil
		}
		names = append(names, filepath.Base(path))
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var l fileLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			lines = append(lines, l)
		}
		return nil
	})
	sort.Strings(names)
	return lines, names
}

// exactlyOnce checks that the source offsets in got are each of want's
// exactly once, per partition.
func exactlyOnce(t testing.TB, what string, got map[string]int, want map[string]bool) {
	t.Helper()
	var dup, missing, extra []string
	for k, n := range got {
		if n > 1 {
			dup = append(dup, fmt.Sprintf("%s x%d", k, n))
		}
		if !want[k] {
			extra = append(extra, k)
		}
	}
	for k := range want {
		if got[k] == 0 {
			missing = append(missing, k)
		}
	}
	if len(dup)+len(missing)+len(extra) > 0 {
		sort.Strings(dup)
		sort.Strings(missing)
		t.Fatalf("%s: %d duplicated (%.10v), %d missing (%.10v), %d unexpected (%.10v)", what, len(dup), dup, len(missing), missing, len(extra), extra)
	}
}

func key(pipeline string, partition int32, off int64) string {
	return fmt.Sprintf("%s/%d/%d", pipeline, partition, off)
}
