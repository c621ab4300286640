package bench

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/event"
)

// testRun is a ten-second bursty run with known figures: acknowledgement
// latencies of 1..100 ms (p99 is 99 ms), shed low events, a spike, a kill
// and a restart.
func testRun(t *testing.T) *Report {
	t.Helper()
	start := time.Unix(1_700_000_000, 0)
	at := func(s float64) time.Time { return start.Add(time.Duration(s * float64(time.Second))) }
	tl := NewTimeline(start, time.Second)
	ack, e2e := NewRecorder("ack"), NewRecorder("e2e")
	for i := 1; i <= 100; i++ {
		p := event.Low
		if i%2 == 0 {
			p = event.Critical
		}
		d := time.Duration(i) * time.Millisecond
		when := at(float64(i-1) / 10)
		ack.Record(p, d)
		e2e.Record(p, d+time.Millisecond)
		tl.Acked(when, p, d)
		tl.Received(when, d+time.Millisecond)
	}
	for s := range 10 {
		rate := 10.0
		if s == 4 || s == 5 {
			rate = 50
		}
		tl.Target(at(float64(s)), rate)
	}
	for range 5 {
		tl.Failed(at(4.5), true)
	}
	tl.Failed(at(7.2), false)
	tl.Mark(at(4), "spike 1")
	tl.Mark(at(6), "spike 1 end")
	tl.Mark(at(7), "kill 1")
	tl.Mark(at(7.8), "restart 1")

	res := &Results{
		Profile: "bursty", Protocol: "native", Fsync: "batch", EventSize: 256, DurationS: 10,
		PublishRate: 1000, ConsumeRate: 987.6,
		AckLatencyMs: ack.Report(), E2ELatencyMs: e2e.Report(),
		Errors: map[string]int64{"SHED": 5, "TIMEOUT": 1},
		Shed:   5, ShedByPriority: map[string]int64{"low": 5, "medium": 0, "critical": 0},
		Acknowledged: 100, Consumed: 100, UnackedConsumed: 1,
		Machine:    Machine{Cores: 2, CPUModel: "Test CPU @ 3GHz", OS: "linux", GoVersion: "go1.26"},
		TargetRate: 10, Producers: 2, Consumers: 1,
		Spikes: []Spike{{StartS: 4, EndS: 6, Rate: 50, AckP99Ms: 60, E2EP99Ms: 61, RecoveryS: 1.5}},
		Faults: []Fault{{KilledAtS: 7, RestartedAtS: 7.8}},
		// 1.25s of CPU over 100 events.
		ServerCPUUsPerEvent: new(12500.0), ServerCPUUserS: new(1.0), ServerCPUSystemS: new(0.25),
		Search: &Search{Max: 10, Trials: []Trial{
			{Rate: 10, PublishRate: 10, AckP99Ms: 99, Sustained: true, ServerCPUUsPerEvent: new(8.5)},
			{Rate: 20, PublishRate: 12, AckP99Ms: 400},
		}},
	}
	return &Report{
		Results:  res,
		Timeline: tl.Seconds(),
		Marks:    tl.Marks(),
		Series:   []*Recorder{ack, e2e},
		Command:  "sense bench --profile bursty --protocol native --duration 10s",
	}
}

// writeReport writes rep into a fresh directory and checks that every
// promised file was written, is not empty, and that each plot is a PNG of
// the plot's size.
func writeReport(t *testing.T, rep *Report, hgrm ...string) (dir string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "out")
	paths, err := rep.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]string{ResultsFile, TimelineFile}, hgrm...)
	want = append(want, LatencyOverTimePlot, LatencyDistribution, ThroughputOverTimePlot, ReportFile)
	var got []string
	for _, p := range paths {
		got = append(got, filepath.Base(p))
		if filepath.Dir(p) != dir {
			t.Errorf("path %s is not in %s", p, dir)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() == 0 {
			t.Errorf("%s is empty", p)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("wrote %v, want %v", got, want)
	}
	for _, name := range []string{LatencyOverTimePlot, LatencyDistribution, ThroughputOverTimePlot} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 600 {
			t.Errorf("%s is %dx%d, want 1200x600", name, b.Dx(), b.Dy())
		}
	}
	// No temporary file is left behind.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(want) {
		t.Errorf("%s holds %d files, want %d", dir, len(entries), len(want))
	}
	return dir
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReportWrite(t *testing.T) {
	rep := testRun(t)
	dir := writeReport(t, rep, "ack_latency.hgrm", "ack_latency.low.hgrm", "ack_latency.critical.hgrm",
		"e2e_latency.hgrm", "e2e_latency.low.hgrm", "e2e_latency.critical.hgrm")

	var res Results
	if err := json.Unmarshal(readFile(t, filepath.Join(dir, ResultsFile)), &res); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&res, rep.Results) {
		t.Errorf("results.json reads back as\n%+v\nwant\n%+v", res, *rep.Results)
	}

	var tl TimelineData
	if err := json.Unmarshal(readFile(t, filepath.Join(dir, TimelineFile)), &tl); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tl.Seconds, rep.Timeline) || !reflect.DeepEqual(tl.Marks, rep.Marks) {
		t.Errorf("timeline.json reads back as\n%+v\nwant\n%+v %+v", tl, rep.Timeline, rep.Marks)
	}
	if len(tl.Seconds) != 10 || len(tl.Marks) != 4 {
		t.Errorf("timeline has %d seconds and %d marks, want 10 and 4", len(tl.Seconds), len(tl.Marks))
	}

	md := string(readFile(t, filepath.Join(dir, ReportFile)))
	for _, want := range []string{
		"![Latency over time](latency_over_time.png)",
		"![Latency by percentile](latency_distribution.png)",
		"![Throughput over time](throughput_over_time.png)",
		"\n" + rep.Command + "\n",
		"- machine: 2 cores, Test CPU @ 3GHz, linux, go1.26",
		"- durability (fsync): batch",
		"- event size: 256 bytes",
		"- producers / consumers: 2 / 1",
		// p50, p90 and p99 of 1..100 ms at 3 significant figures.
		"| publish, ack latency | 1000 | 50.0 | 90.0 | 99.0 |",
		"| consume, e2e latency | 988 | 51.0 | 91.0 | 100 |",
		"| critical | ack |",
		"| low | e2e |",
		"| SHED | 5 |",
		"| TIMEOUT | 1 |",
		"| low | 5 |",
		"| total | 5 |",
		"| 100 | 100 | 0 | 0 | 1 |",
		"**PASS: every acknowledged event consumed exactly once**",
		"| 1 | 4.00 | 6.00 | 50.0 | 60.0 | 61.0 | 1.50 |",
		"| 1 | 7.00 | 7.80 | 0.800 |",
		"## Maximum-rate search (max 10.0 events/s)",
		"| 10.0 | 10.0 | 99.0 | yes | 8.50 |",
		"| 20.0 | 12.0 | 400 | no | - |",
		"## Server CPU (user + system, first send to end of drain)",
		"| µs/event | user s | system s | acknowledged |",
		"| 12500 | 1.00 | 0.250 | 100 |",
		"- [ack_latency.critical.hgrm](ack_latency.critical.hgrm)",
		"- [e2e_latency.hgrm](e2e_latency.hgrm)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "| medium |") {
		t.Errorf("report.md shows the medium class, which has no data:\n%s", md)
	}
}

func TestReportFail(t *testing.T) {
	rep := testRun(t)
	rep.Results.Lost = 3
	rep.Results.Acknowledged = 103
	dir := writeReport(t, rep, "ack_latency.hgrm", "ack_latency.low.hgrm", "ack_latency.critical.hgrm",
		"e2e_latency.hgrm", "e2e_latency.low.hgrm", "e2e_latency.critical.hgrm")
	md := string(readFile(t, filepath.Join(dir, ReportFile)))
	want := "**FAIL: 3 acknowledged events lost (of 103 acknowledged)**"
	if !strings.Contains(md, want) || strings.Contains(md, "PASS") {
		t.Errorf("report.md lacks %q or says PASS:\n%s", want, md)
	}

	rep.Results.Lost, rep.Results.Duplicated = 0, 2
	if got, want := verdict(rep.Results), "FAIL: 2 events consumed more than once (of 103 acknowledged)"; got != want {
		t.Errorf("verdict = %q, want %q", got, want)
	}
}

func TestWriteSummary(t *testing.T) {
	rep := testRun(t)
	var b bytes.Buffer
	if err := WriteSummary(&b, rep.Results); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Summary\n",
		"PASS: every acknowledged event consumed exactly once\n",
		"Errors by code\n",
		"Shed by class\n",
		"Server CPU (user + system, first send to end of drain)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	// Rows hold the figures, in order, whitespace-separated.
	for _, want := range [][]string{
		{"publish,", "ack", "latency", "1000", "50.0", "90.0", "99.0"},
		{"consume,", "e2e", "latency", "988", "51.0", "91.0", "100"},
		{"critical", "ack"},
		{"SHED", "5"},
		{"TIMEOUT", "1"},
		{"total", "5"},
		{"100", "100", "0", "0", "1"},
		{"µs/event", "user", "s", "system", "s", "acknowledged"},
		{"12500", "1.00", "0.250", "100"},
	} {
		found := false
		for line := range strings.Lines(out) {
			f := strings.Fields(line)
			found = found || (len(f) >= len(want) && slices.Equal(f[:len(want)], want))
		}
		if !found {
			t.Errorf("summary has no row starting %q:\n%s", want, out)
		}
	}
	// The table is aligned: the p99 column starts at one offset in the
	// header and in both rows, and no line ends in blanks.
	var cols []int
	for line := range strings.Lines(out) {
		if strings.TrimRight(line, " \t\n") != strings.TrimSuffix(line, "\n") {
			t.Errorf("line %q ends in blanks", line)
		}
		for _, prefix := range []string{"  series ", "  publish,", "  consume,"} {
			if strings.HasPrefix(line, prefix) {
				cols = append(cols, strings.Index(line, map[string]string{
					"  series ": " p99 ms", "  publish,": " 99.0", "  consume,": " 100"}[prefix]))
			}
		}
	}
	if len(cols) != 3 || cols[0] != cols[1] || cols[1] != cols[2] {
		t.Errorf("p99 column starts at %v, want one offset thrice:\n%s", cols, out)
	}

	rep.Results.Lost = 3
	b.Reset()
	if err := WriteSummary(&b, rep.Results); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "FAIL: 3 acknowledged events lost") {
		t.Errorf("summary of a lossy run lacks the FAIL line:\n%s", b.String())
	}
}

// TestReportEmptyRun writes the report of a run that saw no event at all.
func TestReportEmptyRun(t *testing.T) {
	rep := &Report{
		Results: &Results{Profile: "uniform", Protocol: "kafka"},
		Series:  []*Recorder{NewRecorder("ack"), NewRecorder("e2e")},
	}
	dir := writeReport(t, rep, "ack_latency.hgrm", "e2e_latency.hgrm")
	var tl TimelineData
	if err := json.Unmarshal(readFile(t, filepath.Join(dir, TimelineFile)), &tl); err != nil {
		t.Fatal(err)
	}
	if tl.Seconds == nil || tl.Marks == nil || len(tl.Seconds)+len(tl.Marks) != 0 {
		t.Errorf("timeline of an empty run = %+v, want empty lists", tl)
	}
	md := string(readFile(t, filepath.Join(dir, ReportFile)))
	for _, want := range []string{"## Errors by code\n\nnone\n", "(no event was acknowledged)"} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	var b bytes.Buffer
	if err := WriteSummary(&b, rep.Results); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Errors by code: none\n") || !strings.Contains(b.String(), "Server CPU (user + system, first send to end of drain): not measured\n") {
		t.Errorf("summary of an empty run:\n%s", b.String())
	}
}

// TestReportSparseRun plots edge cases: a single second, a series without
// data beside one with a single value, seconds without acknowledgements,
// and marks outside the seconds.
func TestReportSparseRun(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	tl := NewTimeline(start, time.Second)
	ack := NewRecorder("ack")
	ack.Record(event.Medium, 0) // counted as 1µs
	tl.Acked(start, event.Medium, 0)
	tl.Failed(start, false)
	tl.Mark(start.Add(-time.Second), "before")
	tl.Mark(start.Add(5*time.Second), "after")
	rep := &Report{
		Results:  &Results{AckLatencyMs: ack.Report()},
		Timeline: tl.Seconds(),
		Marks:    tl.Marks(),
		Series:   []*Recorder{ack, NewRecorder("e2e"), nil},
	}
	writeReport(t, rep, "ack_latency.hgrm", "ack_latency.medium.hgrm", "e2e_latency.hgrm")

	// Seconds without acknowledgements between two that have some.
	tl.Acked(start.Add(4*time.Second), event.Low, time.Hour)
	rep.Timeline = tl.Seconds()
	writeReport(t, rep, "ack_latency.hgrm", "ack_latency.medium.hgrm", "e2e_latency.hgrm")
}

func TestReportWriteErrorNamesPath(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := &Report{Results: &Results{}}
	if _, err := rep.Write(filepath.Join(file, "out")); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("Write under a file: err = %v, want one naming %s", err, file)
	}
	if _, err := (&Report{}).Write(t.TempDir()); err == nil {
		t.Error("Write without results succeeded")
	}
}

func TestFmtFloat(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 0.0123: "0.012", 1.234: "1.23", 12.34: "12.3", 123.4: "123", 99999.9: "100000", -0.5: "-0.500"} {
		if got := fmtFloat(v); got != want {
			t.Errorf("fmtFloat(%v) = %q, want %q", v, got, want)
		}
	}
}
