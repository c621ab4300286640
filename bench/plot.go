package bench

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"slices"
	"strconv"

	"github.com/HdrHistogram/hdrhistogram-go"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Plot geometry: 12 by 6 inches at 100 dots per inch, 1200x600 pixels.
const (
	plotWidth  = 12 * vg.Inch
	plotHeight = 6 * vg.Inch
	plotDPI    = 100
)

// minPlotMs is the floor of a log latency axis: a latency is at least
// 1µs, and a log axis cannot show zero.
const minPlotMs = 0.001

// maxPercentileX is the end of the percentile axis, 1/(1-q) for
// q = 99.9999%.
const maxPercentileX = 1e6

// palette is the colour of each line in the order lines are added
// (Tableau 10: distinct, and readable on white).
var palette = []color.Color{
	color.RGBA{31, 119, 180, 255},
	color.RGBA{255, 127, 14, 255},
	color.RGBA{214, 39, 40, 255},
	color.RGBA{44, 160, 44, 255},
	color.RGBA{148, 103, 189, 255},
	color.RGBA{140, 86, 75, 255},
	color.RGBA{227, 119, 194, 255},
	color.RGBA{127, 127, 127, 255},
	color.RGBA{188, 189, 34, 255},
	color.RGBA{23, 190, 207, 255},
}

var (
	solid   = []vg.Length{}
	dashed  = []vg.Length{vg.Points(6), vg.Points(3)}
	dotted  = []vg.Length{vg.Points(2), vg.Points(2)}
	dashDot = []vg.Length{vg.Points(6), vg.Points(2), vg.Points(2), vg.Points(2)}
)

// classDashes tell the classes' lines apart where they share a colour.
var classDashes = [len(priorityNames)][]vg.Length{dotted, dashDot, dashed}

// chart is a plot with its legend drawn outside the data area, on the
// right, so the legend never hides a line.
type chart struct {
	p      *plot.Plot
	legend plot.Legend
	// colors counts the colours handed out, drawn the lines with a point.
	colors, drawn int
}

// nextColor returns the next colour of the palette.
func (c *chart) nextColor() color.Color {
	c.colors++
	return palette[(c.colors-1)%len(palette)]
}

func newChart(title, x, y string) *chart {
	c := &chart{p: plot.New(), legend: plot.NewLegend()}
	c.p.Title.Text = title
	c.p.Title.Padding = vg.Points(6)
	c.p.X.Label.Text = x
	c.p.Y.Label.Text = y
	c.p.Add(plotter.NewGrid())
	c.legend.Top, c.legend.Left = true, true
	return c
}

// add draws one named line through pts. A point whose Y is NaN is a gap:
// the line breaks there. With step > 0 each point holds its value for step
// along X (a per-second figure spans its second); else the line joins the
// points, and a point alone between gaps is drawn as a dot. A line without
// a point is left out of the legend.
func (c *chart) add(name string, pts plotter.XYs, style draw.LineStyle, step float64) {
	drawn := false
	for start := 0; start < len(pts); {
		if math.IsNaN(pts[start].Y) {
			start++
			continue
		}
		end := start
		for end < len(pts) && !math.IsNaN(pts[end].Y) {
			end++
		}
		seg := pts[start:end]
		start = end
		if step > 0 {
			last := seg[len(seg)-1]
			seg = append(slices.Clip(seg), plotter.XY{X: last.X + step, Y: last.Y})
		}
		if len(seg) == 1 {
			s, err := plotter.NewScatter(seg)
			if err != nil {
				continue // an infinite value: nothing sensible to draw
			}
			s.GlyphStyle = draw.GlyphStyle{Color: style.Color, Radius: vg.Points(2.5), Shape: draw.CircleGlyph{}}
			c.p.Add(s)
		} else {
			l, err := plotter.NewLine(seg)
			if err != nil {
				continue
			}
			l.LineStyle = style
			if step > 0 {
				l.StepStyle = plotter.PostStep
			}
			c.p.Add(l)
		}
		drawn = true
	}
	if drawn {
		c.drawn++
		c.legend.Add(name, &plotter.Line{LineStyle: style})
	}
}

// logY makes the Y axis logarithmic over whole decades holding the data,
// at least minPlotMs.
func (c *chart) logY() {
	ax := &c.p.Y
	ax.Scale = plot.LogScale{}
	ax.Tick.Marker = decadeTicks
	lo, hi := ax.Min, ax.Max
	if math.IsInf(lo, 0) || math.IsNaN(lo) || lo < minPlotMs {
		lo = minPlotMs
	}
	if math.IsInf(hi, 0) || math.IsNaN(hi) || hi < lo {
		hi = lo
	}
	ax.Min = math.Pow(10, math.Floor(math.Log10(lo)))
	ax.Max = math.Pow(10, math.Ceil(math.Log10(hi)))
	if ax.Max <= ax.Min {
		ax.Max = ax.Min * 10
	}
}

// decadeTicks label each power of ten of a log axis, with minor ticks
// between. (plot.LogTicks misses the lowest label when the axis starts at
// a fraction such as 0.1, whose Log10 rounds towards zero.)
var decadeTicks = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		decade := math.Pow(10, e)
		ts = append(ts, plot.Tick{Value: decade, Label: strconv.FormatFloat(decade, 'f', -1, 64)})
		for i := 2; i < 10; i++ {
			ts = append(ts, plot.Tick{Value: decade * float64(i)})
		}
	}
	return ts
})

// linearY starts the Y axis at zero with a tenth of headroom above the
// data for the mark labels, and gives an empty plot a unit range.
func (c *chart) linearY() {
	ax := &c.p.Y
	ax.Min = 0
	if math.IsInf(ax.Max, 0) || math.IsNaN(ax.Max) || ax.Max <= 0 {
		ax.Max = 1
	}
	ax.Max *= 1.1
}

// timeX spans the X axis from zero to the end of the last slot or mark.
// Each second is drawn as a step over its slot.
func (c *chart) timeX(seconds []Second, marks []Mark) {
	ax := &c.p.X
	lo, hi := 0.0, 1.0
	if n := len(seconds); n > 0 {
		hi = max(hi, seconds[n-1].T+slotWidth(seconds))
	}
	for _, m := range marks {
		lo, hi = min(lo, m.T), max(hi, m.T)
	}
	ax.Min, ax.Max = lo, hi
}

// slotWidth is the timeline's slot width in seconds (1 when it cannot be
// told).
func slotWidth(seconds []Second) float64 {
	if len(seconds) > 1 {
		if w := seconds[1].T - seconds[0].T; w > 0 {
			return w
		}
	}
	return 1
}

// write renders the chart as a plotWidth by plotHeight PNG.
func (c *chart) write(w io.Writer) error {
	img := vgimg.NewWith(vgimg.UseWH(plotWidth, plotHeight), vgimg.UseDPI(plotDPI))
	dc := draw.New(img)
	var legendWidth vg.Length
	if c.drawn == 0 {
		c.p.Add(noData{})
	} else {
		// Shrink the legend's font until every entry fits the height.
		room := plotHeight - vg.Points(60)
		for c.legend.TextStyle.Font.Size > vg.Points(6) &&
			vg.Length(c.drawn)*c.legend.TextStyle.Height("Ag") > room {
			c.legend.TextStyle.Font.Size -= vg.Points(1)
		}
		r := c.legend.Rectangle(dc)
		legendWidth = r.Max.X - r.Min.X + vg.Points(16)
	}
	c.p.Draw(draw.Crop(dc, 0, -legendWidth, 0, 0))
	if legendWidth > 0 {
		area := draw.Crop(dc, plotWidth-legendWidth+vg.Points(8), 0, 0, -vg.Points(40))
		c.legend.Draw(area)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("encoding png: %w", err)
	}
	return nil
}

// noData says so in the middle of an empty plot.
type noData struct{}

func (noData) Plot(c draw.Canvas, p *plot.Plot) {
	sty := p.Title.TextStyle
	sty.XAlign, sty.YAlign = draw.XCenter, draw.YCenter
	c.FillText(sty, c.Center(), "no data")
}

// markLines draws each mark as a vertical line labelled at the top.
type markLines []Mark

func (m markLines) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	line := draw.LineStyle{Color: color.Gray{Y: 90}, Width: vg.Points(1), Dashes: dotted}
	label := draw.TextStyle{
		Color:    color.Gray{Y: 60},
		Font:     p.X.Tick.Label.Font,
		Rotation: -math.Pi / 2,
		XAlign:   draw.XLeft,
		YAlign:   draw.YBottom,
		Handler:  p.TextHandler,
	}
	for _, mk := range m {
		x := trX(mk.T)
		if !c.ContainsX(x) {
			continue
		}
		c.StrokeLine2(line, x, c.Min.Y, x, c.Max.Y)
		c.FillText(label, vg.Point{X: x + vg.Points(2), Y: c.Max.Y - vg.Points(4)}, mk.Label)
	}
}

// timeLine is one line of a plot over time: a figure of each second.
type timeLine struct {
	name   string
	of     func(Second) float64
	width  vg.Length
	dashes []vg.Length
}

// addTimeLines draws lines over the seconds. With gaps, a figure of zero
// or less is a gap (the second had no such figure), else it is drawn.
func (c *chart) addTimeLines(seconds []Second, lines []timeLine, gaps bool) {
	step := slotWidth(seconds)
	for _, l := range lines {
		pts := make(plotter.XYs, len(seconds))
		for i, s := range seconds {
			pts[i] = plotter.XY{X: s.T, Y: l.of(s)}
			if gaps && pts[i].Y <= 0 {
				pts[i].Y = math.NaN()
			}
		}
		c.add(l.name, pts, draw.LineStyle{Color: c.nextColor(), Width: l.width, Dashes: l.dashes}, step)
	}
}

// latencyOverTime plots each second's acknowledgement p50, p99 and max
// and end-to-end p99, and the acknowledgement p99 of each class when more
// than one class has data. A second without a figure is a gap, not a
// zero: a log axis cannot show zero, and a zero latency would be a lie.
func latencyOverTime(r *Report) *chart {
	c := newChart(runTitle("Latency over time", r.Results), "seconds since load start", "latency (ms, log scale)")
	lines := []timeLine{
		{"ack p50", func(s Second) float64 { return s.AckMs.P50 }, vg.Points(1.5), solid},
		{"ack p99", func(s Second) float64 { return s.AckMs.P99 }, vg.Points(2), solid},
		{"ack max", func(s Second) float64 { return s.AckMs.Max }, vg.Points(1), solid},
		{"e2e p99", func(s Second) float64 { return s.E2EMs.P99 }, vg.Points(2), dashed},
	}
	var classes []timeLine
	for class := len(priorityNames) - 1; class >= 0; class-- {
		for _, s := range r.Timeline {
			if s.AckP99ByClass[class] > 0 {
				classes = append(classes, timeLine{"ack p99 " + priorityNames[class],
					func(s Second) float64 { return s.AckP99ByClass[class] }, vg.Points(1), dotted})
				break
			}
		}
	}
	if len(classes) > 1 {
		lines = append(lines, classes...)
	}
	for _, s := range r.Timeline {
		if s.Probe != nil && s.Probe.FsyncCount > 0 {
			lines = append(lines, timeLine{"server fsync max (bucket bound)", func(s Second) float64 {
				if s.Probe == nil {
					return 0
				}
				return s.Probe.FsyncMaxMs
			}, vg.Points(1), dotted})
			break
		}
	}
	c.addTimeLines(r.Timeline, lines, true)
	c.p.Add(markLines(r.Marks))
	c.logY()
	c.timeX(r.Timeline, r.Marks)
	return c
}

// throughputOverTime plots each second's offered rate, publish, consume
// and shed rates, and the rate of other failures when there were any.
func throughputOverTime(r *Report) *chart {
	c := newChart(runTitle("Throughput over time", r.Results), "seconds since load start", "events/s")
	width := slotWidth(r.Timeline)
	rate := func(count func(Second) int64) func(Second) float64 {
		return func(s Second) float64 { return float64(count(s)) / width }
	}
	lines := []timeLine{
		{"target rate", func(s Second) float64 { return s.TargetRate }, vg.Points(1.5), dashed},
		{"published (acked)", rate(func(s Second) int64 { return s.Published }), vg.Points(1.5), solid},
		{"consumed", rate(func(s Second) int64 { return s.Consumed }), vg.Points(1.5), solid},
		{"shed", rate(func(s Second) int64 { return s.Shed }), vg.Points(1.5), solid},
	}
	for _, s := range r.Timeline {
		if s.Errors > s.Shed {
			lines = append(lines, timeLine{"failed, not shed",
				rate(func(s Second) int64 { return s.Errors - s.Shed }), vg.Points(1.5), dotted})
			break
		}
	}
	c.addTimeLines(r.Timeline, lines, false)
	c.p.Add(markLines(r.Marks))
	c.linearY()
	c.timeX(r.Timeline, r.Marks)
	return c
}

// percentileTicks label the percentile axis, whose values are 1/(1-q).
var percentileTicks = []plot.Tick{
	{Value: 2, Label: "50%"},
	{Value: 10, Label: "90%"},
	{Value: 100, Label: "99%"},
	{Value: 1e3, Label: "99.9%"},
	{Value: 1e4, Label: "99.99%"},
	{Value: 1e5, Label: "99.999%"},
	{Value: 1e6, Label: "99.9999%"},
}

// latencyDistribution is the HdrHistogram percentile plot: the latency
// at each percentile, on a log scale of 1/(1-q) so the tail gets room, for
// every series overall and per class that recorded something.
func latencyDistribution(series []*Recorder) *chart {
	c := newChart("Latency by percentile", "percentile", "latency (ms, log scale)")
	for _, s := range series {
		if s == nil {
			continue
		}
		// A series and its classes share a colour; each class has its
		// own dashes.
		all, byClass := s.percentileCurves()
		col := c.nextColor()
		c.add(s.Name(), all, draw.LineStyle{Color: col, Width: vg.Points(2), Dashes: solid}, 0)
		for class := len(priorityNames) - 1; class >= 0; class-- {
			c.add(s.Name()+" "+priorityNames[class], byClass[class],
				draw.LineStyle{Color: col, Width: vg.Points(1), Dashes: classDashes[class]}, 0)
		}
	}
	c.p.X.Scale = plot.LogScale{}
	c.p.X.Tick.Marker = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
		var ts []plot.Tick
		for _, t := range percentileTicks {
			if t.Value >= lo && t.Value <= hi {
				ts = append(ts, t)
			}
		}
		return ts
	})
	c.p.X.Min = 1
	if math.IsInf(c.p.X.Max, 0) || c.p.X.Max < 100 {
		c.p.X.Max = 100
	}
	c.logY()
	return c
}

// percentileCurves returns the percentile curve of the series over every
// event and per class (nil for no data).
func (r *Recorder) percentileCurves() (all plotter.XYs, byClass [3]plotter.XYs) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, h := range r.byClass {
		byClass[i] = percentileCurve(h)
	}
	return percentileCurve(r.all), byClass
}

// percentileCurve samples h at 20 points a decade of 1/(1-q), up to the
// count of values (no finer percentile can be told) or maxPercentileX,
// ending at the maximum.
func percentileCurve(h *hdrhistogram.Histogram) plotter.XYs {
	n := h.TotalCount()
	if n == 0 {
		return nil
	}
	end := min(float64(n), maxPercentileX)
	var pts plotter.XYs
	for k := 0; ; k++ {
		x := math.Pow(10, float64(k)/20)
		if x >= end {
			break
		}
		pts = append(pts, plotter.XY{X: x, Y: usToMS(h.ValueAtQuantile(100 * (1 - 1/x)))})
	}
	last := h.Max()
	if float64(n) > maxPercentileX {
		last = h.ValueAtQuantile(100 * (1 - 1/maxPercentileX))
	}
	pts = append(pts, plotter.XY{X: end, Y: usToMS(last)})
	for i := range pts {
		pts[i].Y = max(pts[i].Y, minPlotMs)
	}
	return pts
}

// runTitle names a plot after the run's profile and protocol.
func runTitle(what string, r *Results) string {
	if r == nil || r.Profile == "" {
		return what
	}
	return fmt.Sprintf("%s: %s over %s", what, r.Profile, orUnknown(r.Protocol))
}
