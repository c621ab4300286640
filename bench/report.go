package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Names of the files Report.Write writes besides ResultsFile and the
// .hgrm files of its series.
const (
	TimelineFile           = "timeline.json"
	ReportFile             = "report.md"
	LatencyOverTimePlot    = "latency_over_time.png"
	LatencyDistribution    = "latency_distribution.png"
	ThroughputOverTimePlot = "throughput_over_time.png"
)

// Report is everything a run leaves behind: its results, its per-second
// timeline and marks, and its latency series.
type Report struct {
	Results  *Results
	Timeline []Second
	Marks    []Mark
	// Series are the run's latency recorders (ack, e2e); each writes its
	// .hgrm files and draws its lines in the distribution plot.
	Series []*Recorder
	// Extra are further recorders (the bursty profile's per-spike series)
	// that write their .hgrm files but stay out of the plots.
	Extra []*Recorder
	// Command is the exact command line that produced the run.
	Command string
}

// TimelineData is the content of timeline.json.
type TimelineData struct {
	Seconds []Second `json:"seconds"`
	Marks   []Mark   `json:"marks"`
}

// Write creates dir and writes into it results.json, timeline.json, the
// .hgrm files of every series, the three plots and report.md, in that
// order. It returns the paths written, also those written before an
// error.
func (r *Report) Write(dir string) ([]string, error) {
	if r.Results == nil {
		return nil, fmt.Errorf("bench: report for %s has no results", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: report directory %q: %w", dir, err)
	}
	var paths []string
	path, err := r.Results.WriteJSON(dir)
	if err != nil {
		return paths, err
	}
	paths = append(paths, path)

	tl := TimelineData{Seconds: r.Timeline, Marks: r.Marks}
	if tl.Seconds == nil {
		tl.Seconds = []Second{}
	}
	if tl.Marks == nil {
		tl.Marks = []Mark{}
	}
	path = filepath.Join(dir, TimelineFile)
	if err := writeFile(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(&tl)
	}); err != nil {
		return paths, err
	}
	paths = append(paths, path)

	var hgrm []string
	for _, s := range slices.Concat(r.Series, r.Extra) {
		if s == nil {
			continue
		}
		written, err := s.WriteFiles(dir)
		paths = append(paths, written...)
		hgrm = append(hgrm, written...)
		if err != nil {
			return paths, err
		}
	}

	plots := []struct {
		name string
		draw func(io.Writer) error
	}{
		{LatencyOverTimePlot, func(w io.Writer) error { return latencyOverTime(r).write(w) }},
		{LatencyDistribution, func(w io.Writer) error { return latencyDistribution(r.Series).write(w) }},
		{ThroughputOverTimePlot, func(w io.Writer) error { return throughputOverTime(r).write(w) }},
	}
	for _, p := range plots {
		path := filepath.Join(dir, p.name)
		if err := writeFile(path, p.draw); err != nil {
			return paths, err
		}
		paths = append(paths, path)
	}

	path = filepath.Join(dir, ReportFile)
	if err := writeFile(path, func(w io.Writer) error { return r.markdown(w, hgrm) }); err != nil {
		return paths, err
	}
	return append(paths, path), nil
}

// writeFile writes path through a temporary file in the same directory,
// renamed into place once written and closed, so a reader never sees a
// half-written file under the final name.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("bench: creating %s: %w", path, err)
	}
	bw := bufio.NewWriter(f)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("bench: writing %s: %w", path, err)
	}
	return nil
}

// WriteSummary writes r's figures to w as aligned plain text for a
// terminal: rates and latency percentiles, per class, errors and shed
// events, and the verification verdict.
func WriteSummary(w io.Writer, r *Results) error {
	ew := &errWriter{w: w}
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	for i, t := range slices.Concat(summaryTables(r), profileTables(r)) {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		t.text(tw)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, verdict(r))
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("bench: writing summary: %w", err)
	}
	if ew.err != nil {
		return fmt.Errorf("bench: writing summary: %w", ew.err)
	}
	return nil
}

// table is a block of figures rendered both as terminal text and as
// markdown, so the two renderings cannot disagree.
type table struct {
	title  string
	header []string
	// labels is the number of leading text columns; the others are
	// figures, right-aligned in markdown.
	labels int
	rows   [][]string
	// none is said instead of an empty table.
	none string
}

func (t table) text(w io.Writer) {
	if len(t.rows) == 0 {
		fmt.Fprintf(w, "%s: %s\n", t.title, t.none)
		return
	}
	fmt.Fprintln(w, t.title)
	for _, row := range append([][]string{t.header}, t.rows...) {
		fmt.Fprintln(w, "  "+strings.Join(row, "\t"))
	}
}

func (t table) markdown(w io.Writer, level string) {
	fmt.Fprintf(w, "%s %s\n\n", level, t.title)
	if len(t.rows) == 0 {
		fmt.Fprintf(w, "%s\n\n", t.none)
		return
	}
	row := func(cells []string) {
		escaped := make([]string, len(cells))
		for i, c := range cells {
			escaped[i] = strings.ReplaceAll(c, "|", `\|`)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(escaped, " | "))
	}
	row(t.header)
	rule := make([]string, len(t.header))
	for i := range rule {
		rule[i] = "---:"
		if i < t.labels {
			rule[i] = "---"
		}
	}
	row(rule)
	for _, r := range t.rows {
		row(r)
	}
	fmt.Fprintln(w)
}

// percentileHeader heads the latency columns of percentileCells.
var percentileHeader = []string{"p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "p99.99 ms", "max ms"}

func percentileCells(p Percentiles) []string {
	return []string{fmtFloat(p.P50), fmtFloat(p.P90), fmtFloat(p.P99), fmtFloat(p.P999), fmtFloat(p.P9999), fmtFloat(p.Max)}
}

// fmtFloat formats a rate or a latency with a precision that suits its
// size: 3 decimals below 1, none from 100 up.
func fmtFloat(v float64) string {
	prec := 0
	switch a := max(v, -v); {
	case a == 0:
	case a < 1:
		prec = 3
	case a < 10:
		prec = 2
	case a < 100:
		prec = 1
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

func fmtInt(v int64) string { return strconv.FormatInt(v, 10) }

// summaryTables are the figures WriteSummary prints and report.md shows:
// rates and latencies, per class, errors by code, shed by class.
func summaryTables(r *Results) []table {
	tables := []table{{
		title:  "Summary",
		header: append([]string{"series", "events/s"}, percentileHeader...),
		labels: 1,
		rows: [][]string{
			append([]string{"publish, ack latency", fmtFloat(r.PublishRate)}, percentileCells(r.AckLatencyMs.Percentiles)...),
			append([]string{"consume, e2e latency", fmtFloat(r.ConsumeRate)}, percentileCells(r.E2ELatencyMs.Percentiles)...),
		},
	}}

	tables = append(tables, cpuTable(r))

	byClass := table{
		title:  "By priority",
		header: append([]string{"class", "series"}, percentileHeader...),
		labels: 2,
		none:   "no class recorded latencies",
	}
	ack, e2e := classPercentiles(r.AckLatencyMs.ByPriority), classPercentiles(r.E2ELatencyMs.ByPriority)
	for c := len(priorityNames) - 1; c >= 0; c-- {
		for _, s := range []struct {
			name string
			p    Percentiles
		}{{"ack", ack[c]}, {"e2e", e2e[c]}} {
			if s.p.Max > 0 {
				byClass.rows = append(byClass.rows, append([]string{priorityNames[c], s.name}, percentileCells(s.p)...))
			}
		}
	}
	if len(byClass.rows) > 0 {
		tables = append(tables, byClass)
	}

	errs := table{title: "Errors by code", header: []string{"code", "events"}, labels: 1, none: "none"}
	for _, code := range slices.Sorted(maps.Keys(r.Errors)) {
		errs.rows = append(errs.rows, []string{code, fmtInt(r.Errors[code])})
	}

	shed := table{title: "Shed by class", header: []string{"class", "events"}, labels: 1, none: "none"}
	for _, class := range shedClasses(r.ShedByPriority) {
		shed.rows = append(shed.rows, []string{class, fmtInt(r.ShedByPriority[class])})
	}
	if r.Shed > 0 || len(shed.rows) > 0 {
		shed.rows = append(shed.rows, []string{"total", fmtInt(r.Shed)})
	}

	verify := table{
		title:  "Verification",
		header: []string{"acknowledged", "consumed", "lost", "duplicated", "unacked_consumed"},
		rows: [][]string{{fmtInt(r.Acknowledged), fmtInt(r.Consumed), fmtInt(r.Lost),
			fmtInt(r.Duplicated), fmtInt(r.UnackedConsumed)}},
	}
	return append(tables, errs, shed, verify)
}

// cpuTable is the server's CPU time per acknowledged event, or why it
// was not measured.
func cpuTable(r *Results) table {
	t := table{
		title:  "Server CPU (user + system, first send to end of drain)",
		header: []string{"µs/event", "user s", "system s", "acknowledged"},
		none:   r.ServerCPUNote,
	}
	if t.none == "" {
		t.none = "not measured"
	}
	if r.ServerCPUUsPerEvent != nil && r.ServerCPUUserS != nil && r.ServerCPUSystemS != nil {
		t.rows = [][]string{{fmtFloat(*r.ServerCPUUsPerEvent), fmtFloat(*r.ServerCPUUserS),
			fmtFloat(*r.ServerCPUSystemS), fmtInt(r.Acknowledged)}}
	}
	return t
}

func classPercentiles(b ByPriority) [3]Percentiles {
	return [3]Percentiles{b.Low, b.Medium, b.Critical}
}

// shedClasses returns the classes of m that shed something, the known
// ones from critical to low, then any other in name order.
func shedClasses(m map[string]int64) []string {
	var out []string
	for c := len(priorityNames) - 1; c >= 0; c-- {
		if m[priorityNames[c]] != 0 {
			out = append(out, priorityNames[c])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] != 0 && !slices.Contains(priorityNames[:], k) {
			out = append(out, k)
		}
	}
	return out
}

// verdict is the one-line outcome of the exactly-once verification.
func verdict(r *Results) string {
	if r.Lost == 0 && r.Duplicated == 0 {
		if r.Acknowledged == 0 {
			return "PASS: every acknowledged event consumed exactly once (no event was acknowledged)"
		}
		return "PASS: every acknowledged event consumed exactly once"
	}
	var what []string
	if r.Lost > 0 {
		what = append(what, fmt.Sprintf("%d acknowledged events lost", r.Lost))
	}
	if r.Duplicated > 0 {
		what = append(what, fmt.Sprintf("%d events consumed more than once", r.Duplicated))
	}
	return "FAIL: " + strings.Join(what, ", ") + fmt.Sprintf(" (of %d acknowledged)", r.Acknowledged)
}

// runFacts describe the run, the command aside: where and how it ran.
func runFacts(r *Results) [][2]string {
	m := r.Machine
	return [][2]string{
		{"machine", fmt.Sprintf("%d cores, %s, %s, %s", m.Cores, orUnknown(m.CPUModel), orUnknown(m.OS), orUnknown(m.GoVersion))},
		{"durability (fsync)", orUnknown(r.Fsync)},
		{"profile", orUnknown(r.Profile)},
		{"protocol", orUnknown(r.Protocol)},
		{"event size", fmt.Sprintf("%d bytes", r.EventSize)},
		{"producers / consumers", fmt.Sprintf("%d / %d", r.Producers, r.Consumers)},
		{"duration", fmtFloat(r.DurationS) + " s"},
		{"target rate", fmtFloat(r.TargetRate) + " events/s"},
		{"CPU steal (hypervisor)", fmt.Sprintf("mean %s%%, worst second %s%%", fmtFloat(r.StealPctMean), fmtFloat(r.StealPctMax))},
		{"server fsyncs", fsyncFact(r)},
	}
}

func fsyncFact(r *Results) string {
	if r.ServerFsyncs == 0 {
		return "not observed (no metrics URL)"
	}
	return fmt.Sprintf("%d, slowest <= %s ms (histogram bucket bound)", r.ServerFsyncs, fmtFloat(r.ServerFsyncMaxMs))
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// profileTables are the profile's own figures, each present only when the
// run has them: spikes, faults, the maximum-rate search.
func profileTables(r *Results) []table {
	var tables []table
	if len(r.Spikes) > 0 {
		t := table{title: "Spikes", labels: 1,
			header: []string{"spike", "start s", "end s", "rate events/s", "ack p99 ms", "e2e p99 ms", "recovery s"}}
		for i, s := range r.Spikes {
			recovery := fmtFloat(s.RecoveryS)
			if s.RecoveryS < 0 {
				recovery = "not recovered"
			}
			t.rows = append(t.rows, []string{strconv.Itoa(i + 1), fmtFloat(s.StartS), fmtFloat(s.EndS),
				fmtFloat(s.Rate), fmtFloat(s.AckP99Ms), fmtFloat(s.E2EP99Ms), recovery})
		}
		tables = append(tables, t)
	}
	if len(r.Faults) > 0 {
		t := table{title: "Faults", labels: 1,
			header: []string{"fault", "killed at s", "restarted at s", "down s"}}
		for i, f := range r.Faults {
			t.rows = append(t.rows, []string{strconv.Itoa(i + 1), fmtFloat(f.KilledAtS),
				fmtFloat(f.RestartedAtS), fmtFloat(f.RestartedAtS - f.KilledAtS)})
		}
		tables = append(tables, t)
	}
	if r.Search != nil {
		t := table{title: fmt.Sprintf("Maximum-rate search (max %s events/s)", fmtFloat(r.Search.Max)),
			header: []string{"rate events/s", "publish events/s", "ack p99 ms", "sustained"},
			none:   "no trials"}
		cpu := slices.ContainsFunc(r.Search.Trials, func(tr Trial) bool { return tr.ServerCPUUsPerEvent != nil })
		if cpu {
			t.header = append(t.header, "server CPU µs/event")
		}
		for _, tr := range r.Search.Trials {
			sustained := "no"
			if tr.Sustained {
				sustained = "yes"
			}
			row := []string{fmtFloat(tr.Rate), fmtFloat(tr.PublishRate), fmtFloat(tr.AckP99Ms), sustained}
			if cpu {
				c := "-"
				if tr.ServerCPUUsPerEvent != nil {
					c = fmtFloat(*tr.ServerCPUUsPerEvent)
				}
				row = append(row, c)
			}
			t.rows = append(t.rows, row)
		}
		tables = append(tables, t)
	}
	return tables
}

// markdown writes report.md; hgrm are the paths of the .hgrm files.
func (r *Report) markdown(w io.Writer, hgrm []string) error {
	res := r.Results
	bw := &errWriter{w: w}
	fmt.Fprintf(bw, "# sense bench: %s over %s\n\n", orUnknown(res.Profile), orUnknown(res.Protocol))
	fmt.Fprintf(bw, "Command:\n\n```\n%s\n```\n\n", r.Command)

	fmt.Fprint(bw, "## Run\n\n")
	for _, f := range runFacts(res) {
		fmt.Fprintf(bw, "- %s: %s\n", f[0], f[1])
	}
	fmt.Fprintln(bw)

	for _, t := range summaryTables(res) {
		t.markdown(bw, "##")
	}
	fmt.Fprintf(bw, "**%s**\n\n", verdict(res))

	for _, t := range profileTables(res) {
		t.markdown(bw, "##")
	}

	fmt.Fprint(bw, "## Plots\n\n")
	for _, p := range []struct{ alt, file string }{
		{"Latency over time", LatencyOverTimePlot},
		{"Latency by percentile", LatencyDistribution},
		{"Throughput over time", ThroughputOverTimePlot},
	} {
		fmt.Fprintf(bw, "![%s](%s)\n\n", p.alt, p.file)
	}

	fmt.Fprint(bw, "## Files\n\n")
	for _, f := range append([]string{ResultsFile, TimelineFile}, hgrm...) {
		name := filepath.Base(f)
		fmt.Fprintf(bw, "- [%s](%s)\n", name, name)
	}
	return bw.err
}

// errWriter keeps the first write error so a long run of Fprintf calls
// is checked once at the end.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
