package report

import (
	"bytes"
	"image"
	"strings"
	"testing"

	"github.com/segeval/segeval/internal/results"
)

func TestRenderComparison(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	m := results.Metrics{RunID: "cand", Mode: "multiclass", NumClasses: 2, MIoU: f(0.5),
		Classes: []results.Class{{ID: 0, Name: "road", IoU: f(0.8)}, {ID: 1, Name: "<sky>", IoU: f(0.2)}}}
	m.Comparison = &results.Comparison{
		BaselineRunID: "night-3", ImagesPaired: 98, ImagesOnlyCandidate: 2,
		MIoUDelta:         results.Delta{Value: f(-0.0412), CI95: &[2]float64{-0.06, -0.02}},
		PerImageLossDelta: results.Delta{Value: f(0.003), CI95: &[2]float64{-0.001, 0.007}},
		Classes: []results.ClassDelta{
			{ID: 0, IoUDelta: results.Delta{Value: f(0.01), CI95: &[2]float64{-0.01, 0.03}}},
			{ID: 1, IoUDelta: results.Delta{}},
		},
		MostRegressed: []results.ImageChange{{Key: "img-17", LossDelta: f(0.2), MIoUDelta: f(-0.3)}, {Key: "img-4", MIoUDelta: f(-0.1)}},
		MostImproved:  []results.ImageChange{},
	}
	png, err := encodePNG(image.NewNRGBA(image.Rect(0, 0, 2, 2)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Render(&out, Input{Metrics: m, Thumbnails: map[string]Thumbnail{"img-17": {Label: png, Prediction: png}}}); err != nil {
		t.Fatal(err)
	}
	page := out.String()
	s := section(t, page, "comparison")
	for _, want := range []string{
		"baseline run <strong>night-3</strong>",
		"98 images in both runs, 2 only in this run, 0 only in the baseline",
		"The runs evaluated different images",
		`<td class="worse">-0.0412</td><td>[-0.0600, -0.0200]</td><td class="l">yes</td>`,
		`<td class="worse">&#43;0.0030</td><td>[-0.0010, 0.0070]</td><td class="l">no</td>`,
		"Per-class IoU Δ (0 of 2 significant)",
		"&lt;sky&gt;",
		"<td class=\"l key\">img-17</td>",
		"<td class=\"l key\">img-4</td>",
		`alt="prediction"`,
		"<h3>Most improved images</h3>",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the comparison lacks %q", want)
		}
	}
	if _, improved, _ := strings.Cut(s, "Most improved images"); !strings.Contains(improved, `<p class="note">None.</p>`) {
		t.Error("an empty list is not shown as none")
	}
	if n := strings.Count(s, "data:image/png;base64,"); n != 2 {
		t.Errorf("%d thumbnails in the comparison, want img-17's label and prediction", n)
	}
	// The comparison comes right after the headline metrics.
	if strings.Index(page, `id="headline"`) > strings.Index(page, `id="comparison"`) {
		t.Error("the comparison is above the headline")
	}

	m.Comparison = nil
	out.Reset()
	if err := Render(&out, Input{Metrics: m}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), `id="comparison"`) {
		t.Error("a run without a baseline shows a comparison")
	}
}
