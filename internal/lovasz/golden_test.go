package lovasz

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

// goldenCase is one case of testdata/lovasz_cases.json: inputs are [B,C,H,W]
// (probs), [B,H,W] (labels, logits, pred).
type goldenCase struct {
	Name     string          `json:"name"`
	Kind     string          `json:"kind"`
	B        int             `json:"B"`
	C        int             `json:"C"`
	H        int             `json:"H"`
	W        int             `json:"W"`
	Classes  json.RawMessage `json:"classes"`
	PerImage bool            `json:"per_image"`
	Ignore   *int            `json:"ignore"`
	Probs    []float32       `json:"probs"`
	Logits   []float32       `json:"logits"`
	Labels   []int32         `json:"labels"`
	Pred     []int32         `json:"pred"`
	Expected float64         `json:"expected"`

	Intersection []float64  `json:"intersection"`
	Union        []float64  `json:"union"`
	IoU          []*float64 `json:"iou"`
	MIoU         float64    `json:"miou"`
	PixelAcc     float64    `json:"pixel_accuracy"`
}

func loadGolden(t *testing.T) []goldenCase {
	t.Helper()
	data, err := os.ReadFile("testdata/lovasz_cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []goldenCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) == 0 {
		t.Fatal("no golden cases")
	}
	return file.Cases
}

func (g goldenCase) options(t *testing.T) Options {
	t.Helper()
	var opt Options
	if g.Ignore != nil {
		opt.Ignore, opt.HasIgnore = *g.Ignore, true
	}
	var mode string
	if err := json.Unmarshal(g.Classes, &mode); err == nil {
		switch mode {
		case "present":
			opt.Classes.Mode = Present
		case "all":
			opt.Classes.Mode = All
		default:
			t.Fatalf("unknown classes %q", mode)
		}
	} else if len(g.Classes) > 0 {
		opt.Classes.Mode = List
		if err := json.Unmarshal(g.Classes, &opt.Classes.IDs); err != nil {
			t.Fatal(err)
		}
	}
	return opt
}

// batchAsOneImage lays B images of [C,H,W] side by side as one [C, B*H*W]
// image, whose loss is the reference's per_image=False value.
func batchAsOneImage(probs []float32, b, c, p int) []float32 {
	out := make([]float32, len(probs))
	for img := range b {
		for k := range c {
			copy(out[k*b*p+img*p:], probs[(img*c+k)*p:(img*c+k+1)*p])
		}
	}
	return out
}

const goldenTolerance = 1e-6

func TestGoldenLovaszSoftmax(t *testing.T) {
	for _, g := range loadGolden(t) {
		if g.Kind != "lovasz_softmax" {
			continue
		}
		t.Run(g.Name, func(t *testing.T) {
			opt := g.options(t)
			p := g.H * g.W
			ev := NewEvaluator()
			hist, err := NewHistogram(g.C, DefaultBinsPerOctave)
			if err != nil {
				t.Fatal(err)
			}
			var sum float64
			for img := range g.B {
				res, err := ev.LovaszSoftmax(g.Probs[img*g.C*p:(img+1)*g.C*p], g.Labels[img*p:(img+1)*p], g.C, g.H, g.W, opt, hist)
				if err != nil {
					t.Fatal(err)
				}
				sum += res.Loss // 0 for an image without valid pixels, as the golden file counts it
			}
			if !g.PerImage {
				// One image made of the whole batch, exactly; and the
				// dataset histogram, within its bound.
				res, err := ev.LovaszSoftmax(batchAsOneImage(g.Probs, g.B, g.C, p), g.Labels, g.C, g.H, g.B*g.W, opt, nil)
				if err != nil {
					t.Fatal(err)
				}
				if d := math.Abs(res.Loss - g.Expected); d > goldenTolerance {
					t.Errorf("batch as one image: got %.12g, want %.12g (diff %.3g)", res.Loss, g.Expected, d)
				}
				ds, err := hist.Loss(opt.Classes)
				if err != nil {
					t.Fatal(err)
				}
				if d := math.Abs(ds.Loss - g.Expected); d > ds.Bound+1e-12 {
					t.Errorf("dataset histogram: got %.12g ± %.3g, want %.12g (diff %.3g)", ds.Loss, ds.Bound, g.Expected, d)
				}
				return
			}
			got := sum / float64(g.B)
			if d := math.Abs(got - g.Expected); d > goldenTolerance {
				t.Errorf("got %.12g, want %.12g (diff %.3g)", got, g.Expected, d)
			}
		})
	}
}

func TestGoldenLovaszHinge(t *testing.T) {
	for _, g := range loadGolden(t) {
		if g.Kind != "lovasz_hinge" {
			continue
		}
		t.Run(g.Name, func(t *testing.T) {
			opt := g.options(t)
			ev := NewEvaluator()
			if !g.PerImage {
				res, err := ev.LovaszHinge(g.Logits, g.Labels, g.B*g.H, g.W, opt)
				if err != nil {
					t.Fatal(err)
				}
				if d := math.Abs(res.Loss - g.Expected); d > goldenTolerance {
					t.Errorf("got %.12g, want %.12g", res.Loss, g.Expected)
				}
				return
			}
			p := g.H * g.W
			var sum float64
			for img := range g.B {
				res, err := ev.LovaszHinge(g.Logits[img*p:(img+1)*p], g.Labels[img*p:(img+1)*p], g.H, g.W, opt)
				if err != nil {
					t.Fatal(err)
				}
				sum += res.Loss
			}
			if got := sum / float64(g.B); math.Abs(got-g.Expected) > goldenTolerance {
				t.Errorf("got %.12g, want %.12g", got, g.Expected)
			}
		})
	}
}

func TestGoldenIoU(t *testing.T) {
	for _, g := range loadGolden(t) {
		if g.Kind != "iou" {
			continue
		}
		t.Run(g.Name, func(t *testing.T) {
			opt := g.options(t)
			total := NewCounts(g.C)
			p := g.H * g.W
			for img := range g.B {
				if err := CountPredictions(g.Pred[img*p:(img+1)*p], g.Labels[img*p:(img+1)*p], g.H, g.W, opt, total); err != nil {
					t.Fatal(err)
				}
			}
			m := total.Metrics()
			for c, s := range m.Classes {
				if float64(s.Intersection) != g.Intersection[c] || float64(s.Union) != g.Union[c] {
					t.Errorf("class %d: I=%d U=%d, want I=%v U=%v", c, s.Intersection, s.Union, g.Intersection[c], g.Union[c])
				}
				switch want := g.IoU[c]; {
				case want == nil && !math.IsNaN(s.IoU):
					t.Errorf("class %d: IoU %v, want undefined", c, s.IoU)
				case want != nil && math.Abs(s.IoU-*want) > 1e-12:
					t.Errorf("class %d: IoU %v, want %v", c, s.IoU, *want)
				}
			}
			if math.Abs(m.MIoU-g.MIoU) > 1e-12 || math.Abs(m.PixelAccuracy-g.PixelAcc) > 1e-12 {
				t.Errorf("miou %v pixel accuracy %v, want %v %v", m.MIoU, m.PixelAccuracy, g.MIoU, g.PixelAcc)
			}
		})
	}
}
