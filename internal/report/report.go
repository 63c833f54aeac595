// Package report renders a run's results as one self-contained HTML page,
// report.html, for people to read: the headline metrics (compared with a
// baseline run when there is one), per-class IoU, the confusion matrix, the
// distribution of per-image losses, the metrics of slices, and the images
// that did worst, with their label and prediction side by side.
//
// The page refers to nothing outside itself: its CSS is inline, its charts
// are inline SVG drawn with gonum/plot, the font of their text and the image
// thumbnails are data: URIs, and it has no script. It reads the same from a
// bucket, a laptop or an email attachment, offline.
//
// An undefined value (nil in package results) shows as "–", never as 0.
package report

import (
	"bytes"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"image/color"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/results"
)

// Input is what a report shows.
type Input struct {
	Metrics results.Metrics
	// LossBins is the distribution of the per-image losses that the loss
	// histogram draws: the run's merged evaluate.Tally.LossBins, of length
	// evaluate.LossBinCount, or nil when no image has a loss. The images of
	// Metrics.Images it does not count have no loss. Whether the loss is
	// the Lovász hinge or the Lovász-Softmax, and its mean, come from
	// Metrics.
	LossBins []int64
	// Baseline, if not nil, is a previous run to compare with.
	Baseline *results.Metrics
	// Thumbnails, by image key, are shown beside the worst images.
	Thumbnails map[string]Thumbnail
	// History, if not nil, is the model's recent runs, shown as a trend.
	History *History
}

// Thumbnail is a worst image's panels as PNG or JPEG files, already drawn (see
// [NewThumbnail]): its input picture, label, prediction and error map. Any
// may be nil. Note, if not empty, says why a panel is missing (an input
// image that could not be decoded, say).
type Thumbnail struct {
	Image, Label, Prediction, Errors []byte
	Note                             string
}

// undefined stands for a nil value.
const undefined = "–"

//go:embed report.html.tmpl
var pageSource string

var pageTemplate = template.Must(template.New("report").Parse(pageSource))

// Render writes the report of in to w as HTML.
func Render(w io.Writer, in Input) error {
	p, err := newPage(in)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, p); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if _, err := buf.WriteTo(w); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// page is the template's data: text already formatted, charts already drawn.
type page struct {
	FontCSS       template.CSS
	RunID         string
	Facts         []fact
	HasBaseline   bool
	BaselineRunID string
	// RunColor and BaselineColor are the bar colors of the class IoU chart.
	RunColor, BaselineColor string
	// Level names the intervals' confidence level ("95%"), "" without
	// intervals.
	Level        string
	IntervalNote string

	Headline []metricRow
	// Comparison is the run's comparison with its baseline, nil without.
	Comparison *comparisonSection

	History *historySection // nil without a history

	Classes        []classRow
	ClassChart     template.HTML
	ClassIntervals bool
	ConfusionChart template.HTML

	LossChart template.HTML
	LossNote  string

	Slices []sliceRow
	Worst  []worstList
	// Thumbs tells whether any worst image has a thumbnail; IgnoredColor
	// is the error maps' color of pixels not evaluated.
	Thumbs       bool
	IgnoredColor string

	Inputs []string
	Shards string
	Flags  []fact
}

// fact is a named value.
type fact struct{ Name, Value string }

// metricRow is a headline metric.
type metricRow struct {
	Name, Value, Interval, Baseline string
	Delta                           delta
}

// delta is a change from the baseline, with the CSS class "better" or
// "worse" when it has a direction.
type delta struct{ Text, Class string }

// classRow is a row of the per-class table.
type classRow struct {
	ID                      int
	Name, Color             string // Color is the class's color in thumbnails
	IoU, Interval, Baseline string
	Delta                   delta
	Accuracy, Dice, Lovasz  string
	LabelPixels, PredPixels string
}

// sliceRow is a row of the slice table.
type sliceRow struct {
	Field, Value, Images, ValidPixels                     string
	Loss, MIoU, PixelAccuracy, MeanAccuracy, PerImageMIoU string
}

// worstList is a table of worst images.
type worstList struct {
	Title  string
	Rows   []worstRow
	Thumbs bool // whether any row has a thumbnail
	Images bool // whether any row has an input picture
}

// worstRow is an image of a worstList.
type worstRow struct {
	Rank                           int
	Key, Shard, Loss, MIoU         string
	Image, Label, Prediction, Errs template.URL // data: URIs, "" when missing
	Note                           string
}

// better tells which way a metric improves.
type better int

const (
	neutral better = iota
	higher
	lower
)

// headline is how one headline metric is read from a run and shown.
type headline struct {
	name     string
	better   better
	count    bool                                       // an integer count, not a fraction
	value    func(*results.Metrics) *float64            // nil if undefined
	bound    func(*results.Metrics) *float64            // the value's error bound, if it has one
	interval func(*results.Intervals) *results.Interval // its bootstrap interval, if one is computed
}

// headlines lists the headline metrics of a run, whose loss is the Lovász
// hinge if binary and Lovász-Softmax otherwise.
func headlines(binary bool) []headline {
	count := func(name string, v func(*results.Metrics) int64) headline {
		return headline{name: name, count: true, value: func(m *results.Metrics) *float64 {
			f := float64(v(m))
			return &f
		}}
	}
	frac := func(name string, v func(*results.Metrics) *float64) headline {
		return headline{name: name, better: higher, value: v}
	}
	rejected := count("Images rejected", func(m *results.Metrics) int64 { return m.ImagesRejected })
	rejected.better = lower
	hs := []headline{
		count("Images", func(m *results.Metrics) int64 { return m.Images }),
		rejected,
		count("Images without valid pixels", func(m *results.Metrics) int64 { return m.ImagesWithoutValidPixels }),
		count("Valid pixels", func(m *results.Metrics) int64 { return m.ValidPixels }),
	}
	perImageLoss := func(iv *results.Intervals) *results.Interval { return &iv.PerImageLoss }
	if binary {
		hs = append(hs, headline{name: "Lovász hinge, per-image mean", better: lower, interval: perImageLoss,
			value: func(m *results.Metrics) *float64 {
				if m.LovaszHinge == nil {
					return nil
				}
				return m.LovaszHinge.PerImageMean
			}})
	} else {
		softmax := func(f func(*results.SoftmaxLoss) *float64) func(*results.Metrics) *float64 {
			return func(m *results.Metrics) *float64 {
				if m.LovaszSoftmax == nil {
					return nil
				}
				return f(m.LovaszSoftmax)
			}
		}
		hs = append(hs,
			headline{name: "Lovász-Softmax, per-image mean", better: lower, interval: perImageLoss,
				value: softmax(func(l *results.SoftmaxLoss) *float64 { return l.PerImageMean }),
				bound: softmax(func(l *results.SoftmaxLoss) *float64 { return l.PerImageMeanErrorBound })},
			headline{name: "Lovász-Softmax, dataset", better: lower,
				value: softmax(func(l *results.SoftmaxLoss) *float64 { return l.Dataset }),
				bound: softmax(func(l *results.SoftmaxLoss) *float64 { return l.DatasetErrorBound })},
		)
	}
	miou := frac("mIoU", func(m *results.Metrics) *float64 { return m.MIoU })
	miou.interval = func(iv *results.Intervals) *results.Interval { return &iv.MIoU }
	return append(hs, miou,
		frac("Pixel accuracy", func(m *results.Metrics) *float64 { return m.PixelAccuracy }),
		frac("Mean accuracy", func(m *results.Metrics) *float64 { return m.MeanAccuracy }),
		frac("Mean Dice", func(m *results.Metrics) *float64 { return m.MeanDice }),
		frac("Frequency-weighted IoU", func(m *results.Metrics) *float64 { return m.FrequencyWeightedIoU }),
		frac("Per-image mIoU, mean", func(m *results.Metrics) *float64 { return m.PerImageMIoUMean }),
	)
}

// show formats a headline metric's value of run m, with its error bound.
func (h headline) show(m *results.Metrics) string {
	v := h.value(m)
	if h.count {
		return formatCount(v)
	}
	s := formatFrac(v)
	if h.bound != nil && v != nil {
		if b := h.bound(m); b != nil {
			s += " ± " + formatBound(*b)
		}
	}
	return s
}

// newPage formats in and draws its charts.
func newPage(in Input) (*page, error) {
	m := &in.Metrics
	fontCSS, err := fontFaceCSS()
	if err != nil {
		return nil, err
	}
	ignore := undefined
	if m.IgnoreIndex != nil {
		ignore = strconv.Itoa(*m.IgnoreIndex)
	}
	p := &page{
		FontCSS: fontCSS,
		RunID:   m.RunID,
		Facts: []fact{
			{"Mode", m.Mode},
			{"Classes", strconv.Itoa(m.NumClasses)},
			{"Class set", m.ClassSet},
			{"Ignore index", ignore},
			{"Started", m.Provenance.StartedAt},
			{"Tool", strings.TrimSpace(m.Provenance.Tool + " " + m.Provenance.Version)},
		},
		Inputs:        m.Provenance.Inputs,
		RunColor:      hexColor(runColor),
		BaselineColor: hexColor(baselineColor),
	}
	if in.Baseline != nil {
		p.HasBaseline, p.BaselineRunID = true, in.Baseline.RunID
	}
	if iv := m.Intervals; iv != nil {
		p.Level = levelName(iv.Level)
		p.IntervalNote = fmt.Sprintf("Intervals: %s bootstrap confidence intervals over images (%s replicates).",
			p.Level, formatInt(int64(iv.Replicates)))
		if m.Images < results.FewImagesForIntervals {
			// Percentile bootstrap intervals under-cover with few images;
			// see results.FewImagesForIntervals.
			p.IntervalNote += fmt.Sprintf(" Caution: with only %s images (fewer than %d) they are too narrow and cover the true value less than %s of the time.",
				formatInt(m.Images), results.FewImagesForIntervals, p.Level)
		}
	}

	for _, h := range headlines(hinge(m)) {
		row := metricRow{Name: h.name, Value: h.show(m)}
		if m.Intervals != nil && h.interval != nil {
			row.Interval = formatInterval(*h.interval(m.Intervals))
		}
		if b := in.Baseline; b != nil {
			row.Baseline = h.show(b)
			row.Delta = newDelta(h.value(m), h.value(b), h.better, h.count)
		}
		p.Headline = append(p.Headline, row)
	}
	p.Comparison = newComparison(m, p.Level, in.Thumbnails)

	if p.History, err = historyOf(in); err != nil {
		return nil, err
	}

	p.Classes, p.ClassIntervals = classRows(m, in.Baseline)
	if len(m.Classes) > 0 {
		if p.ClassChart, err = classIoUChart(*m, in.Baseline); err != nil {
			return nil, fmt.Errorf("class IoU chart: %w", err)
		}
	}
	if len(m.Confusion) > 0 {
		if p.ConfusionChart, err = confusionChart(*m); err != nil {
			return nil, fmt.Errorf("confusion matrix: %w", err)
		}
	}
	if err := p.addLosses(in); err != nil {
		return nil, err
	}
	for _, s := range m.Slices {
		p.Slices = append(p.Slices, sliceRow{
			Field: s.Field, Value: s.Value,
			Images: formatInt(s.Images), ValidPixels: formatInt(s.ValidPixels),
			Loss: formatFrac(s.PerImageLossMean), MIoU: formatFrac(s.MIoU),
			PixelAccuracy: formatFrac(s.PixelAccuracy), MeanAccuracy: formatFrac(s.MeanAccuracy),
			PerImageMIoU: formatFrac(s.PerImageMIoUMean),
		})
	}
	if w := m.Worst; w != nil {
		p.Worst = []worstList{
			worstImages("Highest loss", w.HighestLoss, in.Thumbnails),
			worstImages("Lowest per-image mIoU", w.LowestMIoU, in.Thumbnails),
		}
		p.Thumbs = p.Worst[0].Thumbs || p.Worst[1].Thumbs
		p.IgnoredColor = hexColor(ErrorMapIgnored)
	}

	var size int64
	for _, s := range m.Provenance.Shards {
		size += s.Size
	}
	p.Shards = fmt.Sprintf("%s shards, %s bytes", formatInt(int64(len(m.Provenance.Shards))), formatInt(size))
	for _, k := range slices.Sorted(maps.Keys(m.Provenance.Flags)) {
		p.Flags = append(p.Flags, fact{k, m.Provenance.Flags[k]})
	}
	return p, nil
}

// classRows is the per-class table, and whether it has an interval column.
func classRows(m *results.Metrics, baseline *results.Metrics) ([]classRow, bool) {
	classes := m.NumClasses
	if classes == 0 {
		classes = len(m.Classes)
	}
	var intervals []results.Interval
	if m.Intervals != nil && len(m.Intervals.ClassIoU) == len(m.Classes) {
		intervals = m.Intervals.ClassIoU
	}
	rows := make([]classRow, len(m.Classes))
	for i, c := range m.Classes {
		rows[i] = classRow{
			ID: c.ID, Name: c.Name, Color: hexColor(classColor(int32(c.ID), classes)),
			IoU: formatFrac(c.IoU), Accuracy: formatFrac(c.Accuracy), Dice: formatFrac(c.Dice), Lovasz: formatFrac(c.LovaszMean),
			LabelPixels: formatInt(c.LabelPixels), PredPixels: formatInt(c.PredPixels),
		}
		if intervals != nil {
			rows[i].Interval = formatInterval(intervals[i])
		}
		if baseline != nil {
			var base *float64
			for _, b := range baseline.Classes {
				if b.ID == c.ID {
					base = b.IoU
				}
			}
			rows[i].Baseline = formatFrac(base)
			rows[i].Delta = newDelta(c.IoU, base, higher, false)
		}
	}
	return rows, intervals != nil
}

// hinge reports whether m's loss is the Lovász hinge (binary mode) rather
// than the Lovász-Softmax.
func hinge(m *results.Metrics) bool {
	return m.LovaszHinge != nil || m.Mode == string(evaluate.Binary)
}

// perImageMean is the mean of m's per-image losses, nil if undefined.
func perImageMean(m *results.Metrics) *float64 {
	switch {
	case m.LovaszHinge != nil:
		return m.LovaszHinge.PerImageMean
	case m.LovaszSoftmax != nil:
		return m.LovaszSoftmax.PerImageMean
	}
	return nil
}

// addLosses adds the histogram of the per-image losses, drawn from
// in.LossBins, and the note that says how many images it shows. Bins that
// do not fit the metrics (of another length, negative, or counting more
// images than were evaluated) are an error.
func (p *page) addLosses(in Input) error {
	m := &in.Metrics
	bins := in.LossBins
	if len(bins) != 0 && len(bins) != evaluate.LossBinCount {
		return fmt.Errorf("loss histogram: %d bins, want %d", len(bins), evaluate.LossBinCount)
	}
	var withLoss int64
	for i, n := range bins {
		if n < 0 || n > m.Images-withLoss { // no overflow: withLoss <= m.Images
			return fmt.Errorf("loss histogram: bin %d holds %d images, with %d before it of %d evaluated",
				i, n, withLoss, m.Images)
		}
		withLoss += n
	}
	switch skipped := m.Images - withLoss; {
	case m.Images == 0:
		p.LossNote = "No images were evaluated."
		return nil
	case withLoss == 0:
		p.LossNote = fmt.Sprintf("None of the %s images has a loss.", formatInt(m.Images))
		return nil
	case skipped > 0:
		p.LossNote = fmt.Sprintf("%s images; %s without a loss (no valid pixels) are left out.",
			formatInt(withLoss), formatInt(skipped))
	default:
		p.LossNote = fmt.Sprintf("%s images.", formatInt(withLoss))
	}
	label := "per-image Lovász-Softmax loss"
	if hinge(m) {
		label = "per-image Lovász hinge loss"
	}
	var err error
	if p.LossChart, err = lossHistogram(bins, perImageMean(m), label); err != nil {
		return fmt.Errorf("loss histogram: %w", err)
	}
	return nil
}

// worstImages is one list of worst images, with the thumbnails of those
// that have them.
func worstImages(title string, refs []results.ImageRef, thumbs map[string]Thumbnail) worstList {
	l := worstList{Title: title}
	for i, r := range refs {
		row := worstRow{Rank: i + 1, Key: r.Key, Shard: r.Shard, Loss: formatFrac(r.Loss), MIoU: formatFrac(r.MIoU)}
		if t, ok := thumbs[r.Key]; ok {
			row.Image, row.Label, row.Prediction, row.Errs = dataURI(t.Image), dataURI(t.Label), dataURI(t.Prediction), dataURI(t.Errors)
			row.Note = t.Note
			l.Thumbs = l.Thumbs || row.Label != "" || row.Prediction != "" || row.Errs != ""
			l.Images = l.Images || row.Image != ""
		}
		l.Rows = append(l.Rows, row)
	}
	return l
}

// dataURI is a data: URI of a PNG or JPEG file, "" for none.
func dataURI(img []byte) template.URL {
	if len(img) == 0 {
		return ""
	}
	mime := "image/png"
	if bytes.HasPrefix(img, []byte{0xff, 0xd8}) {
		mime = "image/jpeg"
	}
	return template.URL("data:" + mime + ";base64," + base64.StdEncoding.EncodeToString(img))
}

// newDelta is the change from base to v of a metric that improves in
// direction b.
func newDelta(v, base *float64, b better, count bool) delta {
	if v == nil || base == nil {
		return delta{Text: undefined}
	}
	d := *v - *base
	var text string
	if count {
		text = formatInt(int64(d))
		if d > 0 {
			text = "+" + text
		}
	} else {
		text = strconv.FormatFloat(d, 'f', 4, 64)
		if text == "0.0000" || text == "-0.0000" {
			return delta{Text: "0.0000"}
		}
		if d > 0 {
			text = "+" + text
		}
	}
	switch {
	case d == 0 || b == neutral:
		return delta{Text: text}
	case (d > 0) == (b == higher):
		return delta{Text: text, Class: "better"}
	default:
		return delta{Text: text, Class: "worse"}
	}
}

// formatFrac formats a fraction or loss to 4 decimals.
func formatFrac(v *float64) string {
	if v == nil {
		return undefined
	}
	return strconv.FormatFloat(*v, 'f', 4, 64)
}

// formatBound formats an error bound: to 4 decimals, or in exponent form
// when that would round a nonzero bound to 0.
func formatBound(b float64) string {
	if b != 0 && math.Abs(b) < 0.00005 {
		return strconv.FormatFloat(b, 'e', 1, 64)
	}
	return strconv.FormatFloat(b, 'f', 4, 64)
}

func formatInterval(iv results.Interval) string {
	return "[" + formatFrac(iv.Low) + ", " + formatFrac(iv.High) + "]"
}

func formatCount(v *float64) string {
	if v == nil {
		return undefined
	}
	return formatInt(int64(*v))
}

// formatInt formats n with its digits in groups of three: 1,234,567.
func formatInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	sign := ""
	if n < 0 {
		sign, s = "-", s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return sign + b.String()
}

// hexColor is c in CSS hex notation.
func hexColor(c color.NRGBA) string {
	return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B)
}

// levelName names a confidence level: 0.95 is "95%".
func levelName(level float64) string {
	return strconv.FormatFloat(math.Round(level*1000)/10, 'f', -1, 64) + "%"
}
