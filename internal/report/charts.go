package report

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"image/color"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/palette/brewer"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/segeval/segeval/internal/results"
)

// Charts use Liberation Sans, which the page embeds once (see fontFaceCSS)
// rather than once per chart: gonum/plot lays text out with that font's
// metrics, so a substitute would misplace labels.
var chartFont = font.Font{Typeface: "Liberation", Variant: "Sans"}

// chartFamily is chartFont's family name, which vgsvg writes into the
// charts' font-family styles.
const chartFamily = "Liberation Sans"

// fontFaceCSS returns the @font-face rule that embeds chartFont as a data:
// URI, so that the charts' text renders without fetching anything.
var fontFaceCSS = sync.OnceValues(func() (template.CSS, error) {
	face := font.DefaultCache.Lookup(chartFont, 10)
	if face.Face == nil {
		return "", fmt.Errorf("font %s not found", chartFont.Name())
	}
	var ttf bytes.Buffer
	if _, err := face.Face.WriteSourceTo(nil, &ttf); err != nil {
		return "", fmt.Errorf("font %s: %w", chartFont.Name(), err)
	}
	return template.CSS(fmt.Sprintf("@font-face{font-family:%q;src:url(data:font/ttf;base64,%s) format(\"truetype\")}",
		chartFamily, base64.StdEncoding.EncodeToString(ttf.Bytes()))), nil
})

// Chart colors.
var (
	runColor      = color.NRGBA{0x3b, 0x6e, 0xa8, 0xff} // this run
	baselineColor = color.NRGBA{0xb0, 0xb0, 0xb0, 0xff}
	gridColor     = color.NRGBA{0xe4, 0xe4, 0xe4, 0xff}
	absentColor   = color.NRGBA{0xee, 0xee, 0xee, 0xff} // undefined heat map cells
	meanColor     = color.NRGBA{0xc6, 0x28, 0x28, 0xff}
)

// newPlot returns a plot whose text is all in chartFont.
func newPlot() *plot.Plot {
	p := plot.New()
	p.Title.TextStyle.Font = font.From(chartFont, 11)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = font.From(chartFont, 10)
		a.Tick.Label.Font = font.From(chartFont, 9)
	}
	p.Legend.TextStyle.Font = font.From(chartFont, 9)
	return p
}

// textStyle is a chartFont style for labels inside a chart.
func textStyle(size vg.Length, c color.Color) text.Style {
	return text.Style{
		Color:   c,
		Font:    font.From(chartFont, size),
		XAlign:  draw.XCenter,
		YAlign:  draw.YCenter,
		Handler: plot.DefaultTextHandler,
	}
}

// xmlnsAttr matches the namespace declarations vgsvg puts on <svg>. Inline
// SVG in HTML needs none, and the page must not mention any URL, even a
// namespace name.
var xmlnsAttr = regexp.MustCompile(`\s+xmlns(:xlink)?="[^"]*"`)

// renderSVG draws a w x h chart with drawChart and returns it as an inline
// <svg> element (vgsvg escapes the text in it) labeled for screen readers.
func renderSVG(w, h vg.Length, label string, drawChart func(draw.Canvas)) (template.HTML, error) {
	c := vgsvg.New(w, h)
	drawChart(draw.New(c))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return "", err
	}
	// Drop the XML declaration and comment before the element.
	_, svg, ok := strings.Cut(buf.String(), "<svg")
	if !ok {
		return "", errors.New("vgsvg wrote no <svg> element")
	}
	svg = xmlnsAttr.ReplaceAllString(svg, "")
	return template.HTML(`<svg class="chart" role="img" aria-label="` + template.HTMLEscapeString(label) + `"` + svg), nil
}

// bars are a class IoU bar chart's values: IoU (0 where undefined) and
// whether it is defined.
type bars struct {
	iou     plotter.Values
	defined []bool
}

// newBars lays classes out top down: the bar at y = n-1-id is class id.
func newBars(n int, iou func(id int) *float64) bars {
	b := bars{iou: make(plotter.Values, n), defined: make([]bool, n)}
	for id := range n {
		if v := iou(id); v != nil {
			b.iou[n-1-id], b.defined[n-1-id] = *v, true
		}
	}
	return b
}

// classIoUChart draws each class's IoU as a horizontal bar labeled with its
// value ("–" where undefined), with its interval as an error bar when the
// metrics hold one per class, and the baseline's bar (in baselineColor)
// below it when there is a baseline. The page's text says which is which.
func classIoUChart(m results.Metrics, baseline *results.Metrics) (template.HTML, error) {
	n := len(m.Classes)
	names := make([]string, n)
	for i, c := range m.Classes {
		names[n-1-i] = c.Name
	}
	run := newBars(n, func(id int) *float64 { return m.Classes[id].IoU })

	p := newPlot()
	p.X.Label.Text = "IoU"
	p.X.Min, p.X.Max = 0, 1.12 // room for the labels of bars near 1
	p.X.Tick.Marker = plot.ConstantTicks{{Value: 0, Label: "0"}, {Value: 0.2, Label: "0.2"}, {Value: 0.4, Label: "0.4"},
		{Value: 0.6, Label: "0.6"}, {Value: 0.8, Label: "0.8"}, {Value: 1, Label: "1"}}
	lines := plotter.NewGrid()
	lines.Vertical.Color = gridColor
	lines.Horizontal.Width = 0
	p.Add(lines)

	// With a baseline, this run's bar is above the class's tick and the
	// baseline's below; shift is in data units, one per class.
	pitch, thickness, shift := vg.Points(18), vg.Points(12), 0.0
	if n > 40 { // keep a long class list within a few screens
		pitch, thickness = 11, 8
	}
	if baseline != nil {
		pitch, thickness, shift = pitch*1.5, pitch*0.4, 0.2
		base := newBars(n, func(id int) *float64 {
			for _, c := range baseline.Classes {
				if c.ID == id {
					return c.IoU
				}
			}
			return nil
		})
		bc, err := horizontalBars(base.iou, thickness, -shift, baselineColor)
		if err != nil {
			return "", err
		}
		p.Add(bc)
	}
	rc, err := horizontalBars(run.iou, thickness, shift, runColor)
	if err != nil {
		return "", err
	}
	p.Add(rc)

	// Each label goes right of its bar, and of its error bar if any.
	labels := plotter.XYLabels{XYs: make(plotter.XYs, n), Labels: make([]string, n)}
	for i, v := range run.iou {
		labels.XYs[i] = plotter.XY{X: v, Y: float64(i) + shift}
		labels.Labels[i] = "–"
		if run.defined[i] {
			labels.Labels[i] = strconv.FormatFloat(v, 'f', 3, 64)
		}
	}
	if ci := m.Intervals; ci != nil && len(ci.ClassIoU) == n {
		var errBars struct {
			plotter.XYs
			plotter.XErrors
		}
		for id, iv := range ci.ClassIoU {
			v := m.Classes[id].IoU
			if v == nil || iv.Low == nil || iv.High == nil {
				continue
			}
			errBars.XYs = append(errBars.XYs, plotter.XY{X: *v, Y: float64(n-1-id) + shift})
			errBars.XErrors = append(errBars.XErrors, struct{ Low, High float64 }{*v - *iv.Low, *iv.High - *v})
			labels.XYs[n-1-id].X = max(*v, *iv.High)
		}
		if len(errBars.XYs) > 0 {
			eb, err := plotter.NewXErrorBars(errBars)
			if err != nil {
				return "", err
			}
			eb.CapWidth = thickness * 0.6
			eb.LineStyle.Width = 0.8
			eb.LineStyle.Color = color.NRGBA{0x20, 0x20, 0x20, 0xff}
			p.Add(eb)
		}
	}

	lp, err := plotter.NewLabels(labels)
	if err != nil {
		return "", err
	}
	for i := range lp.TextStyle {
		lp.TextStyle[i] = textStyle(8, color.Black)
		lp.TextStyle[i].XAlign = draw.XLeft
	}
	lp.Offset.X = 3
	p.Add(lp)
	p.NominalY(names...)
	p.Y.Min, p.Y.Max = -0.5, float64(n)-0.5

	return renderSVG(460, pitch*vg.Length(n)+44, "per-class IoU", p.Draw)
}

// horizontalBars is a bar chart of vs with bars of the given thickness,
// the first at y = shift.
func horizontalBars(vs plotter.Values, thickness vg.Length, shift float64, c color.Color) (*plotter.BarChart, error) {
	b, err := plotter.NewBarChart(vs, thickness)
	if err != nil {
		return nil, err
	}
	b.Horizontal = true
	b.XMin = shift
	b.Color = c
	b.LineStyle.Width = 0 // so that a zero bar draws nothing
	return b, nil
}

// heatPalette maps [0, 1] from white to dark blue (ColorBrewer's Blues,
// interpolated with linear luminance).
var heatPalette = sync.OnceValues(func() (palette.Palette, error) {
	blues, err := brewer.GetPalette(brewer.TypeSequential, "Blues", 9)
	if err != nil {
		return nil, err
	}
	dark := slices.Clone(blues.Colors()) // NewLuminance wants dark to light
	slices.Reverse(dark)
	cm, err := moreland.NewLuminance(dark)
	if err != nil {
		return nil, err
	}
	cm.SetMin(0)
	cm.SetMax(1)
	// Not palette.Reverse(cm).Palette(101): the luminance map fails at
	// some values on a control point (0.5 among them) and Palette leaves
	// those colors nil, which a heat map draws as nothing (a white cell
	// at 50%). Such a value is taken a hair away from the point instead.
	rev := palette.Reverse(cm)
	colors := make([]color.Color, 101)
	for i := range colors {
		v := float64(i) / 100
		c, err := rev.At(v)
		if err != nil {
			c, err = rev.At(math.Nextafter(v, 0.5))
		}
		if err != nil {
			return nil, fmt.Errorf("heat palette at %v: %w", v, err)
		}
		colors[i] = c
	}
	return heatColors(colors), nil
})

// heatColors is a palette of the given colors.
type heatColors []color.Color

func (h heatColors) Colors() []color.Color { return h }

// heatGrid is a heat map's values on integer coordinates.
type heatGrid struct {
	cols, rows int
	z          func(col, row int) float64
}

func (g heatGrid) Dims() (c, r int)   { return g.cols, g.rows }
func (g heatGrid) Z(c, r int) float64 { return g.z(c, r) }
func (g heatGrid) X(c int) float64    { return float64(c) }
func (g heatGrid) Y(r int) float64    { return float64(r) }

// heatAxes lays out the axes of a heat map of cols x rows cells: tick
// labels without tick marks or axis lines, x labels slanted by rotation
// radians, and the data range fitted to the cells' centres.
func heatAxes(p *plot.Plot, xt, yt plot.ConstantTicks, font vg.Length, rotation float64, cols, rows int) {
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Tick.Length = 0
		a.Width = 0
		a.Padding = 2
		a.Tick.Label.Font.Size = font
	}
	p.X.Tick.Marker, p.Y.Tick.Marker = xt, yt
	p.X.Tick.Label.Rotation = rotation
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	p.X.Min, p.X.Max = -0.5, float64(cols)-0.5
	p.Y.Min, p.Y.Max = -0.5, float64(rows)-0.5
}

// addPercents writes each cell's value of g in percent on the heat map,
// in an ink readable on the palette's colour there; NaN cells stay blank.
func addPercents(p *plot.Plot, g heatGrid, size vg.Length) error {
	var labels plotter.XYLabels
	var styles []text.Style
	for c := range g.cols {
		for r := range g.rows {
			v := g.z(c, r)
			if math.IsNaN(v) {
				continue
			}
			labels.XYs = append(labels.XYs, plotter.XY{X: float64(c), Y: float64(r)})
			labels.Labels = append(labels.Labels, strconv.Itoa(int(math.Round(v*100))))
			ink := color.Color(color.Black)
			if v > 0.55 {
				ink = color.White
			}
			styles = append(styles, textStyle(size, ink))
		}
	}
	if len(styles) == 0 {
		return nil
	}
	lp, err := plotter.NewLabels(labels)
	if err != nil {
		return err
	}
	lp.TextStyle = styles
	p.Add(lp)
	return nil
}

// confusionChart draws the confusion matrix, each row divided by its sum
// (the share of a label class's pixels predicted as each class), with a
// color scale beside it. Rows of classes absent from the labels are gray.
// Cells are annotated with percentages while they are large enough to read.
func confusionChart(m results.Metrics) (template.HTML, error) {
	n := len(m.Confusion)
	names := make([]string, n)
	for i := range names {
		names[i] = strconv.Itoa(i)
		if i < len(m.Classes) {
			names[i] = m.Classes[i].Name
		}
	}
	share := make([][]float64, n)
	for t, row := range m.Confusion {
		share[t] = make([]float64, n)
		var sum int64
		for _, v := range row {
			sum += v
		}
		for p := range share[t] {
			share[t][p] = math.NaN()
			if sum > 0 && p < len(row) {
				share[t][p] = float64(row[p]) / float64(sum)
			}
		}
	}
	pal, err := heatPalette()
	if err != nil {
		return "", err
	}

	// Row r of the grid (counted from the bottom) is label class n-1-r, so
	// that class 0 is on top.
	hm := plotter.NewHeatMap(heatGrid{cols: n, rows: n, z: func(c, r int) float64 { return share[n-1-r][c] }}, pal)
	hm.Min, hm.Max = 0, 1
	hm.NaN = absentColor
	cell := min(max(vg.Points(440)/vg.Length(n), 3), 60)
	// Past 100 classes, one image (a data: URI) is smaller than n² paths.
	hm.Rasterized = n > 100

	p := newPlot()
	p.Add(hm)
	p.X.Label.Text = "predicted"
	p.Y.Label.Text = "label"
	every := (n + 59) / 60 // at most 60 names per axis
	var xt, yt plot.ConstantTicks
	for id := 0; id < n; id += every {
		xt = append(xt, plot.Tick{Value: float64(id), Label: names[id]})
		yt = append(yt, plot.Tick{Value: float64(n - 1 - id), Label: names[id]})
	}
	heatAxes(p, xt, yt, min(9, max(cell*0.8, 5)), math.Pi/3, n, n)
	if cell >= 16 {
		grid := heatGrid{cols: n, rows: n, z: func(c, r int) float64 {
			if v := share[n-1-r][c]; v >= 0.005 {
				return v
			}
			return math.NaN() // under half a percent: left blank
		}}
		if err := addPercents(p, grid, min(cell*0.36, 10)); err != nil {
			return "", err
		}
	}

	// The grid's cells are square: the canvas is the plot's margins (found
	// by laying it out on a probe canvas) plus the grid, plus a narrow heat
	// map of its own to the right as the color scale.
	scale := newPlot()
	scale.Add(plotter.NewHeatMap(heatGrid{cols: 1, rows: 100, z: func(_, r int) float64 { return (float64(r) + 0.5) / 100 }}, pal))
	scale.HideX()
	scale.Y.Tick.Marker = plot.ConstantTicks{{Value: -0.5, Label: "0%"}, {Value: 49.5, Label: "50%"}, {Value: 99.5, Label: "100%"}}
	scale.Y.Min, scale.Y.Max = -0.5, 99.5
	scale.Y.Padding, scale.X.Padding = 0, 0
	scale.Y.Tick.Length = 3
	const probe, gap, barW = 1000, 12, 12
	probeCanvas := draw.Canvas{Rectangle: vg.Rectangle{Max: vg.Point{X: probe, Y: probe}}}
	area := p.DataCanvas(probeCanvas)
	scaleW := gap + probe - scale.DataCanvas(probeCanvas).Size().X + barW
	side := cell * vg.Length(n)
	w := probe - area.Size().X + side + scaleW
	h := probe - area.Size().Y + side
	return renderSVG(w, h, "confusion matrix", func(dc draw.Canvas) {
		main := draw.Crop(dc, 0, -scaleW, 0, 0)
		p.Draw(main)
		area := p.DataCanvas(main)
		scale.Draw(draw.Crop(dc, w-scaleW+gap, 0, area.Min.Y-dc.Min.Y, area.Max.Y-dc.Max.Y))
	})
}

// Bars of the loss histogram: at least minLossBars and at most maxLossBars
// over the range of losses that holds data, aiming at the square root of
// the number of images.
const (
	minLossBars = 10
	maxLossBars = 50
)

// lossBarWidths are the widths, in evaluate.Tally.LossBins' 0.01-wide
// bins, that the loss histogram's bars may take: divisors of 100, so that
// bars aligned on multiples of their width have round edges and never
// straddle 1. Up to 10 is enough for minLossBars bars over [0, 1).
var lossBarWidths = []int{1, 2, 4, 5, 10}

// lossBars are the bars of the loss histogram.
type lossBars struct {
	// bars are drawn left to right: bars of equal width, each the sum of
	// whole neighbouring bins, over the range of the bins that hold data
	// (up to 1 when some loss is 1 or more), then the bar of losses of 1
	// or more when there are any. Empty bars inside the range are kept.
	bars []plotter.HistogramBin
	// step is the width of a bar over [0, 1), in bins.
	step int
	// over tells whether the last bar counts the losses of 1 or more; it
	// is as wide as the others, past 1 after a gap, at overX.
	over  bool
	overX float64
}

// newLossBars merges the 0.01-wide bins of a loss histogram (an
// evaluate.Tally's LossBins) into the bars to draw: the fewest bars of a
// width in lossBarWidths that are at most the square root of the number of
// images, clamped to [minLossBars, maxLossBars].
func newLossBars(bins []int64) lossBars {
	last := len(bins) - 1 // the bin of losses of 1 or more
	var total int64
	lo, hi := -1, -1 // the first and last bin below 1 that hold data
	for i, n := range bins {
		total += n
		if n > 0 && i < last {
			if lo < 0 {
				lo = i
			}
			hi = i
		}
	}
	b := lossBars{step: lossBarWidths[len(lossBarWidths)-1], over: last >= 0 && bins[last] > 0}
	if b.over && lo >= 0 {
		hi = last - 1 // the bars reach 1, where the last bar's losses start
	}
	if lo >= 0 {
		target := min(max(int(math.Round(math.Sqrt(float64(total)))), minLossBars), maxLossBars)
		for _, w := range lossBarWidths {
			if hi/w-lo/w+1 <= target {
				b.step = w
				break
			}
		}
		for start := lo / b.step * b.step; start <= hi; start += b.step {
			var n int64
			for _, c := range bins[start : start+b.step] {
				n += c
			}
			b.bars = append(b.bars, plotter.HistogramBin{
				Min: float64(start) / 100, Max: float64(start+b.step) / 100, Weight: float64(n)})
		}
	}
	if b.over {
		width := float64(b.step) / 100
		x := 1.0
		if len(b.bars) > 0 {
			// Far enough from 1 for the tick labels "1" and "≥ 1" not to
			// meet: 8% of the range, at least a bar.
			x += max(width, 0.08*(1-b.bars[0].Min))
		}
		b.bars = append(b.bars, plotter.HistogramBin{Min: x, Max: x + width, Weight: float64(bins[last])})
		b.overX = x + width/2
	}
	return b
}

// lossHistogram draws the distribution of the per-image losses from their
// 0.01-wide bins (an evaluate.Tally's LossBins, at least one image in
// them), with their mean marked when it is defined.
func lossHistogram(bins []int64, mean *float64, lossLabel string) (template.HTML, error) {
	lb := newLossBars(bins)
	hist := &plotter.Histogram{
		Bins:      lb.bars,
		Width:     float64(lb.step) / 100,
		FillColor: runColor,
		LineStyle: draw.LineStyle{Color: color.White, Width: 0.5},
	}
	var top float64
	for _, b := range lb.bars {
		top = max(top, b.Weight)
	}

	p := newPlot()
	grid := plotter.NewGrid()
	grid.Vertical.Width = 0
	grid.Horizontal.Color = gridColor
	p.Add(grid, hist)
	if mean != nil {
		x := *mean
		if lb.over && x >= 1 { // in the bar of losses of 1 or more
			x = lb.overX
		}
		line, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: top * 1.05}})
		if err != nil {
			return "", err
		}
		line.Color = meanColor
		line.Width = 1.5
		line.Dashes = []vg.Length{4, 3}
		p.Add(line)
		p.Legend.Add("mean "+strconv.FormatFloat(*mean, 'f', 4, 64), line)
		p.Legend.Top = true
	}
	p.X.Label.Text = lossLabel
	if lb.over {
		// The default ticks up to 1, then the last bar's.
		regular := lb.bars[:len(lb.bars)-1]
		p.X.Tick.Marker = plot.TickerFunc(func(_, _ float64) []plot.Tick {
			var ticks []plot.Tick
			if len(regular) > 0 {
				ticks = plot.DefaultTicks{}.Ticks(regular[0].Min, 1)
			}
			return append(ticks, plot.Tick{Value: lb.overX, Label: "≥ 1"})
		})
	}
	p.Y.Label.Text = "images"
	p.Y.Min = 0
	p.Y.Tick.Marker = plot.TickerFunc(countTicks)
	return renderSVG(460, 240, "per-image loss histogram", p.Draw)
}

// countTicks are the default ticks of a count axis, labeled as integers and
// only at integers.
func countTicks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	for i, t := range ticks {
		if t.Label != "" {
			ticks[i].Label = ""
			if t.Value == math.Trunc(t.Value) {
				ticks[i].Label = strconv.FormatFloat(t.Value, 'f', 0, 64)
			}
		}
	}
	return ticks
}
