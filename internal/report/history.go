package report

import (
	"cmp"
	"fmt"
	"html/template"
	"image/color"
	"math"
	"slices"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/segeval/segeval/internal/gate"
	"github.com/segeval/segeval/internal/results"
)

// History is a model's recent runs, for the report's trend section: the
// nightly numbers drawn one after the other, so that a slow drift shows
// before it trips a threshold.
type History struct {
	// Runs are the model's history.jsonl rows in the order they were
	// recorded, this run's row last (it is drawn as "this run").
	Runs []gate.HistoryLine
	// BaselineRunID is the run this one was compared with, marked on the
	// chart; "" for none.
	BaselineRunID string
}

// How much of the history the section shows: the trend chart the last
// trendRuns runs, the heat strip the last stripRuns.
const (
	trendRuns = 30
	stripRuns = 14
)

// historySection is the trend section's content.
type historySection struct {
	Chart, Strip template.HTML
	Note         string
	// Colors of the chart's glyphs, for the legend.
	BlessedColor, NotBlessedColor, GapColor string
}

// trendPoint is a run placed on the trend chart.
type trendPoint struct {
	x       float64 // days since the first run shown, spread within a day
	day     int
	run     gate.HistoryLine
	current bool
}

// Trend chart colors.
var (
	notBlessedColor = color.NRGBA{0xcf, 0x22, 0x2e, 0xff}
	gapColor        = color.NRGBA{0xf1, 0xf1, 0xf1, 0xff}
	intervalColor   = color.NRGBA{0x8c, 0xa9, 0xcc, 0xff}
)

// newHistorySection draws the trend of h's runs (metrics m is this run's,
// for the class names). Runs whose date does not parse cannot be placed on
// a time axis and are left out, as the note says.
func newHistorySection(h *History, m *results.Metrics) (*historySection, error) {
	var points []trendPoint
	var undated int
	for i, r := range h.Runs {
		d, err := time.Parse(time.DateOnly, r.Date)
		if err != nil {
			undated++
			continue
		}
		points = append(points, trendPoint{x: float64(d.Unix() / 86400), run: r, current: i == len(h.Runs)-1})
	}
	// Recorded order is nearly always date order; a backfilled night is
	// drawn where its date puts it.
	slices.SortStableFunc(points, func(a, b trendPoint) int { return cmp.Compare(a.x, b.x) })
	s := &historySection{BlessedColor: hexColor(runColor), NotBlessedColor: hexColor(notBlessedColor), GapColor: hexColor(gapColor)}
	if len(points) > trendRuns {
		points = points[len(points)-trendRuns:]
	}
	if len(points) == 0 {
		s.Note = "No run of this model has a date yet."
		return s, nil
	}
	first := points[0].x
	last := first
	for i := range points {
		points[i].x -= first
		points[i].day = int(points[i].x)
		last = max(last, points[i].x+first)
	}
	spreadSameDay(points)
	days := int(last-first) + 1
	ran := make([]bool, days)
	for _, p := range points {
		if p.day >= 0 && p.day < days {
			ran[p.day] = true
		}
	}
	var gaps []int
	for d, ok := range ran {
		if !ok {
			gaps = append(gaps, d)
		}
	}
	start := time.Unix(int64(first)*86400, 0).UTC()
	s.Note = fmt.Sprintf("The last %s runs, %s to %s", formatInt(int64(len(points))), start.Format(time.DateOnly),
		start.AddDate(0, 0, days-1).Format(time.DateOnly))
	switch len(gaps) {
	case 0:
		s.Note += ", one or more every night."
	case 1:
		s.Note += "; one night without a run."
	default:
		s.Note += fmt.Sprintf("; %d nights without a run.", len(gaps))
	}
	if undated > 0 {
		s.Note += fmt.Sprintf(" %d runs without a date are not shown.", undated)
	}
	var err error
	if s.Chart, err = trendChart(points, gaps, days, start, h.BaselineRunID); err != nil {
		return nil, fmt.Errorf("trend chart: %w", err)
	}
	if len(m.Classes) > 0 {
		if s.Strip, err = classStrip(points, m.Classes, start); err != nil {
			return nil, fmt.Errorf("class IoU strip: %w", err)
		}
	}
	return s, nil
}

// spreadSameDay spreads the runs of one day (reruns) across it, in their
// order, so that none hides another.
func spreadSameDay(points []trendPoint) {
	for i := 0; i < len(points); {
		j := i
		for j < len(points) && points[j].day == points[i].day {
			j++
		}
		if n := j - i; n > 1 {
			for k := i; k < j; k++ {
				points[k].x = float64(points[k].day) - 0.3 + 0.6*float64(k-i)/float64(n-1)
			}
		}
		i = j
	}
}

// trendMetric is one panel of the trend chart.
type trendMetric struct {
	name     string
	value    func(gate.HistoryLine) *float64
	interval func(gate.HistoryLine) *results.Interval
}

// trendChart draws mIoU above the per-image loss, one point per run on a
// daily axis: filled if the run was blessed, hollow and red if not, the
// baseline ringed, intervals as error bars. Consecutive nights are joined
// by a line; a night without a run is a grey band and breaks the line.
func trendChart(points []trendPoint, gaps []int, days int, start time.Time, baseline string) (template.HTML, error) {
	metrics := []trendMetric{
		{"mIoU", func(h gate.HistoryLine) *float64 { return h.MIoU }, func(h gate.HistoryLine) *results.Interval { return h.MIoUInterval }},
		{"per-image loss", func(h gate.HistoryLine) *float64 { return h.Loss }, func(h gate.HistoryLine) *results.Interval { return h.LossInterval }},
	}
	ticks := dayTicks(points, days, start)
	plots := make([][]*plot.Plot, len(metrics))
	for i, tm := range metrics {
		p := newPlot()
		p.Y.Label.Text = tm.name
		p.X.Min, p.X.Max = -0.5, float64(days)-0.5
		p.X.Tick.Marker = ticks
		if i < len(metrics)-1 {
			// The lower panel labels the shared axis.
			unlabeled := slices.Clone(ticks)
			for j := range unlabeled {
				unlabeled[j].Label = ""
			}
			p.X.Tick.Marker = unlabeled
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, pt := range points {
			if v := tm.value(pt.run); v != nil {
				lo, hi = min(lo, *v), max(hi, *v)
			}
			if iv := tm.interval(pt.run); iv != nil && iv.Low != nil && iv.High != nil {
				lo, hi = min(lo, *iv.Low), max(hi, *iv.High)
			}
		}
		if lo > hi { // nothing defined
			lo, hi = 0, 1
		}
		pad := max((hi-lo)*0.15, 0.005)
		p.Y.Min, p.Y.Max = lo-pad, hi+pad
		grid := plotter.NewGrid()
		grid.Vertical.Width = 0
		grid.Horizontal.Color = gridColor
		p.Add(&gapBands{days: gaps}, grid, &trendPlotter{points: points, metric: tm, baseline: baseline})
		plots[i] = []*plot.Plot{p}
	}
	const w, panelH = 640, 150
	h := vg.Length(panelH*len(metrics) + 40)
	return renderSVG(w, h, "trend of mIoU and per-image loss over recent runs", func(dc draw.Canvas) {
		tiles := draw.Tiles{Rows: len(metrics), Cols: 1, PadY: 6, PadTop: 4, PadBottom: 2, PadLeft: 2, PadRight: 8}
		canvases := plot.Align(plots, tiles, dc)
		for i := range plots {
			plots[i][0].Draw(canvases[i][0])
		}
	})
}

// dayTicks labels the daily axis with dates (MM-DD): every day with a run
// while there are few, else every k-th day.
func dayTicks(points []trendPoint, days int, start time.Time) plot.ConstantTicks {
	label := func(d int) string { return start.AddDate(0, 0, d).Format("01-02") }
	var ticks plot.ConstantTicks
	if days <= 16 {
		for d := range days {
			ticks = append(ticks, plot.Tick{Value: float64(d), Label: label(d)})
		}
		return ticks
	}
	every := (days + 11) / 12
	for d := 0; d < days; d++ {
		t := plot.Tick{Value: float64(d)}
		if (days-1-d)%every == 0 { // the last day is always labeled
			t.Label = label(d)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// gapBands shades the days without a run (in increasing order), a run of
// consecutive days as one band, so that no seam shows between them.
type gapBands struct{ days []int }

func (g *gapBands) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	for i := 0; i < len(g.days); {
		j := i + 1
		for j < len(g.days) && g.days[j] == g.days[j-1]+1 {
			j++
		}
		x0, x1 := trX(float64(g.days[i])-0.5), trX(float64(g.days[j-1])+0.5)
		c.FillPolygon(gapColor, c.ClipPolygonXY([]vg.Point{{X: x0, Y: c.Min.Y}, {X: x1, Y: c.Min.Y}, {X: x1, Y: c.Max.Y}, {X: x0, Y: c.Max.Y}}))
		i = j
	}
}

// trendPlotter draws one metric of the runs: intervals, the lines joining
// consecutive nights, then the points and their labels.
type trendPlotter struct {
	points   []trendPoint
	metric   trendMetric
	baseline string
}

func (t *trendPlotter) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	line := draw.LineStyle{Color: runColor, Width: 1.2}
	bar := draw.LineStyle{Color: intervalColor, Width: 1.5}
	for _, pt := range t.points {
		iv := t.metric.interval(pt.run)
		if iv == nil || iv.Low == nil || iv.High == nil {
			continue
		}
		x := trX(pt.x)
		c.StrokeLines(bar, c.ClipLinesY([]vg.Point{{X: x, Y: trY(*iv.Low)}, {X: x, Y: trY(*iv.High)}})...)
		for _, y := range []float64{*iv.Low, *iv.High} {
			c.StrokeLine2(bar, x-3, trY(y), x+3, trY(y))
		}
	}
	var prev *trendPoint
	for i := range t.points {
		pt := &t.points[i]
		v := t.metric.value(pt.run)
		if v == nil {
			prev = nil // an undefined value breaks the line too
			continue
		}
		if prev != nil && pt.day-prev.day <= 1 {
			pv := t.metric.value(prev.run)
			c.StrokeLine2(line, trX(prev.x), trY(*pv), trX(pt.x), trY(*v))
		}
		prev = pt
	}
	// "this run" goes above its point and "baseline" below, so that the
	// two do not collide when they are close (reruns of one night).
	above := textStyle(8, color.NRGBA{0x57, 0x60, 0x6a, 0xff})
	above.YAlign = draw.YBottom
	below := above
	below.YAlign = draw.YTop
	for _, pt := range t.points {
		v := t.metric.value(pt.run)
		if v == nil {
			continue
		}
		at := vg.Point{X: trX(pt.x), Y: trY(*v)}
		if pt.run.RunID == t.baseline && t.baseline != "" {
			c.DrawGlyph(draw.GlyphStyle{Color: color.Black, Radius: 6.5, Shape: draw.RingGlyph{}}, at)
		}
		if pt.run.Blessed {
			c.DrawGlyph(draw.GlyphStyle{Color: runColor, Radius: 3.5, Shape: draw.CircleGlyph{}}, at)
		} else {
			// A thick red ring: a red disc with a white one inside.
			c.DrawGlyph(draw.GlyphStyle{Color: notBlessedColor, Radius: 4, Shape: draw.CircleGlyph{}}, at)
			c.DrawGlyph(draw.GlyphStyle{Color: color.White, Radius: 2.2, Shape: draw.CircleGlyph{}}, at)
		}
		switch {
		case pt.current:
			c.FillText(above, vg.Point{X: at.X, Y: at.Y + 8}, "this run")
		case pt.run.RunID == t.baseline && t.baseline != "":
			c.FillText(below, vg.Point{X: at.X, Y: at.Y - 8}, "baseline")
		}
	}
}

// classStrip draws the IoU of each class (rows) over the last stripRuns
// runs (columns, oldest left), colored on the confusion matrix's scale and
// annotated while the cells are tall enough. A run recorded without class
// IoUs (an older history row), or a class undefined in a run, is a light
// grey cell.
func classStrip(points []trendPoint, classes []results.Class, start time.Time) (template.HTML, error) {
	if len(points) > stripRuns {
		points = points[len(points)-stripRuns:]
	}
	n, runs := len(classes), len(points)
	row := make(map[int]int, n) // class id to row, from the top
	for i, c := range classes {
		row[c.ID] = i
	}
	iou := make([][]float64, runs)
	for j, pt := range points {
		iou[j] = make([]float64, n)
		for i := range iou[j] {
			iou[j][i] = math.NaN()
		}
		for _, c := range pt.run.Classes {
			if i, ok := row[c.ID]; ok && c.IoU != nil {
				iou[j][i] = *c.IoU
			}
		}
	}
	pal, err := heatPalette()
	if err != nil {
		return "", err
	}
	grid := heatGrid{cols: runs, rows: n, z: func(c, r int) float64 { return iou[c][n-1-r] }}
	hm := plotter.NewHeatMap(grid, pal)
	hm.Min, hm.Max = 0, 1
	hm.NaN = absentColor
	cellH := vg.Length(14)
	if n > 30 {
		cellH = max(vg.Length(420)/vg.Length(n), 3)
	}
	hm.Rasterized = n > 100
	const cellW = 30

	p := newPlot()
	p.Add(hm)
	every := (n + 39) / 40 // at most 40 class names
	var xt, yt plot.ConstantTicks
	for j, pt := range points {
		label := start.AddDate(0, 0, pt.day).Format("01-02")
		if pt.current {
			label = "this run"
		}
		xt = append(xt, plot.Tick{Value: float64(j), Label: label})
	}
	for i := 0; i < n; i += every {
		name := classes[i].Name
		if name == "" {
			name = strconv.Itoa(classes[i].ID)
		}
		yt = append(yt, plot.Tick{Value: float64(n - 1 - i), Label: name})
	}
	heatAxes(p, xt, yt, min(9, max(cellH*0.8, 5)), math.Pi/4, runs, n)
	p.X.Tick.Label.Font.Size = 8
	if cellH >= 12 {
		if err := addPercents(p, grid, 7); err != nil {
			return "", err
		}
	}
	// Size the canvas so that the cells are cellW x cellH: the plot's
	// margins, found on a probe canvas, plus the grid.
	const probe = 1000
	area := p.DataCanvas(draw.Canvas{Rectangle: vg.Rectangle{Max: vg.Point{X: probe, Y: probe}}})
	w := probe - area.Size().X + cellW*vg.Length(runs)
	h := probe - area.Size().Y + cellH*vg.Length(n)
	return renderSVG(w, h, "per-class IoU of recent runs", p.Draw)
}

// historyOf returns the section of in's history, nil without one.
func historyOf(in Input) (*historySection, error) {
	if in.History == nil {
		return nil, nil
	}
	return newHistorySection(in.History, &in.Metrics)
}
