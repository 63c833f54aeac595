package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/segeval/segeval/internal/results"
)

// section returns the <section> element of html with the given id.
func section(t *testing.T, html, id string) string {
	t.Helper()
	_, s, ok := strings.Cut(html, `<section id="`+id+`">`)
	if !ok {
		t.Fatalf("no section %q", id)
	}
	s, _, _ = strings.Cut(s, "</section>")
	return s
}

// tableRow returns the first <tr> element of html whose first cell is first.
func tableRow(t *testing.T, html, first string) string {
	t.Helper()
	_, s, ok := strings.Cut(html, "<tr><td>"+first+"</td>")
	if !ok {
		t.Fatalf("no table row starts with %q", first)
	}
	s, _, _ = strings.Cut(s, "</tr>")
	return s
}

func TestRender(t *testing.T) {
	names := []string{"road", "<script>", "car"}
	plain := fixture("run-1", 1, names)
	plain.MeanDice = nil
	baseline := fixture("run-0", 2, names)
	baseline.MIoU = ptr(0.7212)                     // this run is better by 0.0100
	baseline.LovaszSoftmax.PerImageMean = ptr(0.25) // this run is worse by 0.0341
	baseline.Images = 480
	plain.ImagesRejected = 2
	thumb := thumbnail(t)

	type check struct {
		section string   // section id; "" for the whole page
		row     string   // first cell of a table row in the section; "" for all of it
		want    []string // substrings the row holds
	}
	tests := []struct {
		name   string
		in     Input
		svgs   int // inline <svg> charts
		pngs   int // data:image/png and image/jpeg thumbnails
		want   []check
		absent []string // substrings the page must not hold
	}{{
		name: "plain",
		in:   Input{Metrics: plain, LossBins: lossBins(450)},
		svgs: 3,
		want: []check{
			{"headline", "Images", []string{">500<"}},
			{"headline", "Valid pixels", []string{">" + formatInt(plain.ValidPixels) + "<"}},
			{"headline", "Lovász-Softmax, per-image mean", []string{">0.2841 ± 0.0003<"}},
			{"headline", "Lovász-Softmax, dataset", []string{">0.2617 ± 2.0e-07<"}},
			{"headline", "mIoU", []string{">0.7312<"}},
			{"headline", "Mean accuracy", []string{">0.8123<"}},
			{"headline", "Mean Dice", []string{`<td class="v">–</td>`}},
			{"headline", "Frequency-weighted IoU", []string{">0.8801<"}},
			{"headline", "Per-image mIoU, mean", []string{">0.6543<"}},
			{"losses", "", []string{"450 images; 50 without a loss", "per-image Lovász-Softmax loss", "mean 0.2841"}},
			{"", "", []string{"Run <strong>run-1</strong>", "&lt;script&gt;"}},
		},
		absent: []string{"Baseline", "interval", `id="slices"`, `id="worst"`, "≥ 1", "hinge"},
	}, {
		name: "baseline",
		in:   Input{Metrics: plain, LossBins: lossBins(497), Baseline: &baseline},
		svgs: 3,
		want: []check{
			{"headline", "Images", []string{">500<", ">480<", "<td>&#43;20</td>"}},
			{"headline", "Images rejected", []string{">2<", ">0<", `class="worse">&#43;2<`}},
			{"headline", "mIoU", []string{">0.7312<", ">0.7212<", `class="better">&#43;0.0100<`}},
			{"headline", "Lovász-Softmax, per-image mean", []string{">0.2500 ± 0.0003<", `class="worse">&#43;0.0341<`}},
			{"headline", "Mean Dice", []string{">0.8377<", ">–<"}},
			{"", "", []string{"baseline run <strong>run-0</strong>", "></span>baseline."}},
		},
		absent: []string{"interval"},
	}, {
		name: "intervals, slices and worst images with thumbnails",
		in: Input{Metrics: withExtras(plain), LossBins: lossBins(497), Baseline: &baseline,
			Thumbnails: map[string]Thumbnail{"bremen/000123": thumb, "aachen/000042": {Label: thumb.Label}}},
		svgs: 3,
		pngs: 5, // image, label, prediction and error map, then a label alone
		want: []check{
			{"headline", "mIoU", []string{">[0.7012, 0.7544]<"}},
			{"headline", "Lovász-Softmax, per-image mean", []string{">[0.2711, –]<"}},
			{"headline", "Pixel accuracy", []string{"<td></td>"}}, // no interval computed
			{"worst", "1", []string{"bremen/000123", "shard-00003.tar", ">0.9123<", ">0.1234<", `alt="label"`, `alt="prediction"`}},
			{"worst", "2", []string{"bremen/000456", ">0.8765<", ">–<", `<span class="muted">–</span>`}},
			{"", "", []string{"95% interval", "1,000 replicates", `<td class="l">aachen</td>`, ">0.7455<", ">(missing)<"}},
		},
	}, {
		name: "worst images without thumbnails",
		in:   Input{Metrics: withExtras(plain)},
		svgs: 2,
		want: []check{
			{"worst", "1", []string{"bremen/000123", ">0.9123<"}},
			{"losses", "", []string{"None of the 500 images has a loss."}},
		},
		absent: []string{"Label · Prediction", "<img"},
	}, {
		name: "no images",
		in:   Input{Metrics: results.Metrics{RunID: "<b>empty</b>", Mode: "multiclass", Classes: []results.Class{}}},
		svgs: 0,
		want: []check{
			{"headline", "Images", []string{">0<"}},
			{"headline", "mIoU", []string{">–<"}},
			{"headline", "Lovász-Softmax, per-image mean", []string{">–<"}},
			{"", "", []string{"No classes.", "No confusion matrix", "No images were evaluated.", "&lt;b&gt;empty&lt;/b&gt;"}},
		},
		absent: []string{"<b>empty"},
	}, {
		name: "hinge",
		in: Input{Metrics: results.Metrics{Mode: "binary", Images: 2,
			LovaszHinge: &results.HingeLoss{PerImageMean: ptr(0.5)}},
			LossBins: binsOf(0.4, 0.6)},
		svgs: 1,
		want: []check{
			{"headline", "Lovász hinge, per-image mean", []string{">0.5000<"}},
			{"losses", "", []string{"2 images.", "per-image Lovász hinge loss", "mean 0.5000"}},
		},
		absent: []string{"Lovász-Softmax", "≥ 1"},
	}, {
		// The metrics alone tell the loss, and the bar of hinge losses of
		// 1 or more follows the others.
		name: "hinge of 1 or more, without the mode",
		in: Input{Metrics: results.Metrics{Images: 5, ImagesWithoutValidPixels: 1,
			LovaszHinge: &results.HingeLoss{PerImageMean: ptr(1.375)}},
			LossBins: binsOf(0.2, 0.8, 1, 3.5)},
		svgs: 1,
		want: []check{
			{"headline", "Lovász hinge, per-image mean", []string{">1.3750<"}},
			{"losses", "", []string{"4 images; 1 without a loss", "per-image Lovász hinge loss", ">≥ 1</text>", "mean 1.3750"}},
		},
		absent: []string{"Lovász-Softmax"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Render(&buf, tt.in); err != nil {
				t.Fatal(err)
			}
			html := buf.String()
			if !strings.HasPrefix(html, "<!DOCTYPE html>") {
				t.Errorf("page starts with %.40q", html)
			}
			for _, c := range tt.want {
				scope := html
				if c.section != "" {
					scope = section(t, scope, c.section)
				}
				if c.row != "" {
					scope = tableRow(t, scope, c.row)
				}
				for _, s := range c.want {
					if !strings.Contains(scope, s) {
						t.Errorf("section %q, row %q lacks %q:\n%s", c.section, c.row, s, shorten(scope))
					}
				}
			}
			// Self-contained, without script, with user strings escaped, and
			// nothing that html/template refused.
			for _, s := range append(tt.absent, "http://", "https://", "<script", "ZgotmplZ", "<link", "@import") {
				if strings.Contains(html, s) {
					t.Errorf("page holds %q", s)
				}
			}
			if got := strings.Count(html, `<svg class="chart"`); got != tt.svgs {
				t.Errorf("%d charts, want %d", got, tt.svgs)
			}
			if got := strings.Count(html, `src="data:image/png;base64,`) + strings.Count(html, `src="data:image/jpeg;base64,`); got != tt.pngs {
				t.Errorf("%d thumbnails, want %d", got, tt.pngs)
			}
		})
	}
}

// shorten trims a page for an error message.
func shorten(s string) string {
	if len(s) > 600 {
		return s[:600] + "…"
	}
	return s
}

// TestCharts checks the inline SVG: text in the font that the page embeds,
// class names escaped, no namespace URLs.
func TestCharts(t *testing.T) {
	m := withExtras(fixture("run", 1, []string{"road", "<script>", "a & b"}, 2))
	m.Classes[2].IoU = nil
	var buf bytes.Buffer
	if err := Render(&buf, Input{Metrics: m, LossBins: lossBins(20), Baseline: &m}); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for _, want := range []string{
		`@font-face{font-family:"` + chartFamily + `";src:url(data:font/ttf;base64,`,
		"font-family:" + chartFamily + ";",
		`aria-label="per-class IoU"`, `aria-label="confusion matrix"`, `aria-label="per-image loss histogram"`,
		">&lt;script&gt;</text>", ">a &amp; b</text>",
		">–</text>", // the IoU label of the absent class
	} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{"xmlns", "<?xml", "<!--"} {
		if strings.Contains(html, bad) {
			t.Errorf("page holds %q", bad)
		}
	}
}

// Loss bins that do not fit the metrics are an error, not a wrong chart.
func TestRenderBadLossBins(t *testing.T) {
	m := fixture("run", 1, cityscapesNames) // 500 images
	negative := lossBins(10)
	negative[3] = -1
	tests := []struct {
		name string
		bins []int64
		want string
	}{
		{"short", make([]int64, 100), "100 bins, want 101"},
		{"negative", negative, "bin 3 holds -1 images"},
		{"more images than evaluated", lossBins(501), "of 500 evaluated"},
		{"overflowing", binsAt(math.MaxInt64, 0, 1), "bin 0 holds"},
	}
	for _, tt := range tests {
		err := Render(io.Discard, Input{Metrics: m, LossBins: tt.bins})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Render = %v, want an error mentioning %q", tt.name, err, tt.want)
		}
	}
	if err := Render(io.Discard, Input{Metrics: m, LossBins: lossBins(500)}); err != nil {
		t.Errorf("every image with a loss: %v", err)
	}
}

func TestRenderWriteError(t *testing.T) {
	err := Render(failingWriter{}, Input{Metrics: fixture("run", 1, cityscapesNames)})
	if !errors.Is(err, errWrite) {
		t.Errorf("Render = %v, want %v", err, errWrite)
	}
}

var errWrite = errors.New("disk full")

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestNewDelta(t *testing.T) {
	tests := []struct {
		name    string
		v, base *float64
		better  better
		count   bool
		want    delta
	}{
		{"IoU up", ptr(0.75), ptr(0.70), higher, false, delta{"+0.0500", "better"}},
		{"IoU down", ptr(0.70), ptr(0.75), higher, false, delta{"-0.0500", "worse"}},
		{"loss up", ptr(0.30), ptr(0.25), lower, false, delta{"+0.0500", "worse"}},
		{"loss down", ptr(0.25), ptr(0.30), lower, false, delta{"-0.0500", "better"}},
		{"tiny", ptr(0.7000001), ptr(0.7), higher, false, delta{"0.0000", ""}},
		{"tiny down", ptr(0.7), ptr(0.7000001), higher, false, delta{"0.0000", ""}},
		{"equal", ptr(0.7), ptr(0.7), lower, false, delta{"0.0000", ""}},
		{"no baseline value", ptr(0.7), nil, higher, false, delta{"–", ""}},
		{"no value", nil, ptr(0.7), higher, false, delta{"–", ""}},
		{"count", ptr(1500), ptr(250), neutral, true, delta{"+1,250", ""}},
		{"count down", ptr(250), ptr(1500), neutral, true, delta{"-1,250", ""}},
		{"count equal", ptr(250), ptr(250), neutral, true, delta{"0", ""}},
	}
	for _, tt := range tests {
		if got := newDelta(tt.v, tt.base, tt.better, tt.count); got != tt.want {
			t.Errorf("%s: newDelta = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{formatInt(0), "0"},
		{formatInt(999), "999"},
		{formatInt(1000), "1,000"},
		{formatInt(1234567), "1,234,567"},
		{formatInt(-1234567), "-1,234,567"},
		{formatFrac(nil), "–"},
		{formatFrac(ptr(0)), "0.0000"},
		{formatFrac(ptr(0.123456)), "0.1235"},
		{formatBound(0), "0.0000"},
		{formatBound(0.0012), "0.0012"},
		{formatBound(3e-7), "3.0e-07"},
		{formatInterval(results.Interval{Low: ptr(0.1), High: nil}), "[0.1000, –]"},
		{levelName(0.95), "95%"},
		{levelName(0.999), "99.9%"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%d: got %q, want %q", i, tt.got, tt.want)
		}
	}
}

// TestIntervalCaution checks that the note on the intervals warns they are
// too narrow when the run has fewer than results.FewImagesForIntervals
// images, and only then.
func TestIntervalCaution(t *testing.T) {
	const caution = "Caution: with only"
	tests := []struct {
		name      string
		images    int64
		intervals bool
		want      bool
	}{
		{"15 images", 15, true, true},
		{"just below the threshold", results.FewImagesForIntervals - 1, true, true},
		{"at the threshold", results.FewImagesForIntervals, true, false},
		{"many images", 500, true, false},
		{"no intervals", 15, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := fixture("run-1", 1, []string{"road", "car"})
			if tt.intervals {
				m = withExtras(m)
			} else {
				m.Intervals = nil
			}
			m.Images = tt.images
			var b strings.Builder
			if err := Render(&b, Input{Metrics: m, LossBins: lossBins(int(tt.images))}); err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(b.String(), caution); got != tt.want {
				t.Errorf("%d images, intervals %v: caution shown %v, want %v", tt.images, tt.intervals, got, tt.want)
			}
			if tt.want {
				want := fmt.Sprintf("%s %d images (fewer than %d)", caution, tt.images, results.FewImagesForIntervals)
				if !strings.Contains(b.String(), want) {
					t.Errorf("the caution does not say %q", want)
				}
			}
		})
	}
}
