package processor_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/sensetest"
)

// TestFileSinkDeliversEachEventOnce: every event of the pipeline lands in
// exactly one NDJSON file, with the fields of sense consume --output json,
// and the files' offset ranges do not overlap.
func TestFileSinkDeliversEachEventOnce(t *testing.T) {
	dir := t.TempDir()
	srv := sensetest.Start(t, fmt.Sprintf(`
pipelines:
  - {name: logs, partitions: 3}
processors:
  - name: logs-to-files
    from: {pipeline: logs}
    sink: {type: file, dir: %s}
    batch: {max_events: 300, linger: 5ms}
`, dir))
	c := dial(t, srv)
	const n = 3000
	produce(t, c, "logs", n, func(i int) client.Event {
		return client.Event{Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf(`{"i":%d}`, i))}
	})
	want := map[string]bool{}
	for _, r := range readAll(t, c, "logs") {
		want[key(r.Pipeline, r.Partition, r.Offset)] = true
	}
	if len(want) != n {
		t.Fatalf("the pipeline holds %d events, not %d", len(want), n)
	}
	var lines []fileLine
	var names []string
	waitFor(t, "every event in the files", 60*time.Second, func() bool {
		lines, names = readFiles(t, dir)
		return len(lines) >= n
	})
	got := map[string]int{}
	for _, l := range lines {
		got[key(l.Pipeline, l.Partition, l.Offset)]++
		if l.Value == nil || !strings.HasPrefix(*l.Value, `{"i":`) || l.Key == nil {
			t.Fatalf("line %+v lacks its key or value", l)
		}
	}
	exactlyOnce(t, "file sink", got, want)
	for _, name := range names {
		if _, err := os.Stat(filepath.Join(dir, "logs", name)); err != nil {
			t.Fatalf("file %s is not under DIR/PIPELINE: %v", name, err)
		}
	}
	info := describe(t, c, "logs-to-files")
	if info.Delivered != n || info.State != "running" {
		t.Fatalf("describe: %+v", info)
	}
}
