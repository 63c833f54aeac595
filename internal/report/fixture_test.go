package report

import (
	"fmt"
	"image"
	"image/color"
	"math/rand/v2"
	"testing"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/results"
)

// cityscapesNames are the 19 Cityscapes training classes.
var cityscapesNames = []string{
	"road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
	"terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
}

func ptr(v float64) *float64 { return &v }

// fixture is a realistic run over the named classes, made from a random
// confusion matrix (seeded, so the same every time). Classes whose id is in
// absent have no labeled pixel, and so an undefined IoU.
func fixture(runID string, seed uint64, names []string, absent ...int) results.Metrics {
	rng := rand.New(rand.NewPCG(seed, 7))
	n := len(names)
	conf := make([][]int64, n)
	skip := make(map[int]bool)
	for _, a := range absent {
		skip[a] = true
	}
	for t := range conf {
		conf[t] = make([]int64, n)
		if skip[t] {
			continue
		}
		size := int64(2_000_000 + rng.IntN(40_000_000))
		conf[t][t] = size * int64(60+rng.IntN(38)) / 100
		for range 3 {
			p := rng.IntN(n)
			conf[t][p] += size * int64(1+rng.IntN(12)) / 100
		}
	}
	m := results.Metrics{
		SchemaVersion: results.SchemaVersion,
		RunID:         runID,
		Mode:          "multiclass",
		NumClasses:    n,
		ClassSet:      "present",
		IgnoreIndex:   new(int),
		Confusion:     conf,
		Provenance: results.Provenance{
			Tool: "segeval", Version: "v0.3.0", StartedAt: "2025-03-01T12:00:00Z",
			Flags:  map[string]string{"mode": "multiclass", "classes": fmt.Sprint(n)},
			Inputs: []string{"gs://bucket/preds/shard-*.tar"},
			Shards: []results.Shard{{Path: "gs://bucket/preds/shard-00000.tar", Size: 1 << 30}},
		},
	}
	*m.IgnoreIndex = 255
	var valid, tp int64
	for t := range n {
		var label, pred int64
		for p := range n {
			label += conf[t][p]
			pred += conf[p][t]
		}
		valid += label
		tp += conf[t][t]
		c := results.Class{ID: t, Name: names[t], Intersection: conf[t][t], LabelPixels: label, PredPixels: pred,
			Union: label + pred - conf[t][t]}
		if c.Union > 0 {
			c.IoU = ptr(float64(c.Intersection) / float64(c.Union))
			c.Dice = ptr(2 * float64(c.Intersection) / float64(label+pred))
		}
		if label > 0 {
			c.Accuracy = ptr(float64(c.Intersection) / float64(label))
			c.LovaszMean = ptr(0.1 + 0.5*rng.Float64())
		}
		m.Classes = append(m.Classes, c)
	}
	m.Images, m.ImagesWithoutValidPixels, m.ValidPixels = 500, 3, valid
	m.PixelAccuracy = ptr(float64(tp) / float64(valid))
	m.MIoU, m.MeanAccuracy, m.MeanDice, m.FrequencyWeightedIoU, m.PerImageMIoUMean =
		ptr(0.7312), ptr(0.8123), ptr(0.8377), ptr(0.8801), ptr(0.6543)
	m.LovaszSoftmax = &results.SoftmaxLoss{
		PerImageMean: ptr(0.2841), PerImageMeanErrorBound: ptr(0.0003),
		Dataset: ptr(0.2617), DatasetErrorBound: ptr(2e-7),
	}
	return m
}

// withExtras adds intervals, slices and worst images to m.
func withExtras(m results.Metrics) results.Metrics {
	m.Intervals = &results.Intervals{
		Replicates: 1000, Level: 0.95,
		MIoU:         results.Interval{Low: ptr(0.7012), High: ptr(0.7544)},
		PerImageLoss: results.Interval{Low: ptr(0.2711), High: nil},
	}
	for _, c := range m.Classes {
		iv := results.Interval{}
		if c.IoU != nil {
			iv = results.Interval{Low: ptr(max(0, *c.IoU-0.04)), High: ptr(min(1, *c.IoU+0.03))}
		}
		m.Intervals.ClassIoU = append(m.Intervals.ClassIoU, iv)
	}
	m.Slices = []results.Slice{
		{Field: "city", Value: "aachen", Images: 174, ValidPixels: 300_000_000, PerImageLossMean: ptr(0.2501),
			MIoU: ptr(0.7455), PixelAccuracy: ptr(0.9412), MeanAccuracy: ptr(0.8211), PerImageMIoUMean: ptr(0.6612)},
		{Field: "city", Value: "bremen", Images: 316, ValidPixels: 600_000_000, PerImageLossMean: ptr(0.3021),
			MIoU: ptr(0.7012), PixelAccuracy: ptr(0.9301), MeanAccuracy: nil, PerImageMIoUMean: ptr(0.6401)},
		{Field: "city", Value: "(missing)", Images: 10, ValidPixels: 0},
	}
	m.Worst = &results.WorstImages{
		HighestLoss: []results.ImageRef{
			{Key: "bremen/000123", Shard: "shard-00003.tar", Loss: ptr(0.9123), MIoU: ptr(0.1234)},
			{Key: "bremen/000456", Shard: "shard-00001.tar", Loss: ptr(0.8765), MIoU: nil},
		},
		LowestMIoU: []results.ImageRef{
			{Key: "aachen/000042", Shard: "shard-00000.tar", Loss: ptr(0.7001), MIoU: ptr(0.0571)},
		},
	}
	return m
}

// lossBins are the loss bins (as in evaluate.Tally.LossBins) of n images
// whose losses spread over (0.08, 0.68), more of them low.
func lossBins(n int) []int64 {
	rng := rand.New(rand.NewPCG(3, 4))
	bins := make([]int64, evaluate.LossBinCount)
	for range n {
		u := rng.Float64()
		bins[evaluate.LossBin(0.08+0.6*u*u)]++
	}
	return bins
}

// binsOf are the loss bins of the given losses.
func binsOf(losses ...float64) []int64 {
	bins := make([]int64, evaluate.LossBinCount)
	for _, l := range losses {
		bins[evaluate.LossBin(l)]++
	}
	return bins
}

// sceneMaps are a label map and a prediction of a street scene of h x w
// Cityscapes classes, with ignore (255) along the label's bottom rows.
func sceneMaps(t *testing.T, h, w int) (label, pred []int32) {
	t.Helper()
	label, pred = make([]int32, h*w), make([]int32, h*w)
	for y := range h {
		for x := range w {
			var c int32
			switch {
			case y < h*3/10:
				c = 10 // sky
			case y < h/2 && (x < w/3 || x > w*3/4):
				c = 2 // building
			case y < h/2:
				c = 8 // vegetation
			case y < h*6/10 && x > w/2 && x < w*7/10:
				c = 13 // car
			case y < h*6/10:
				c = 1 // sidewalk
			default:
				c = 0 // road
			}
			p := c
			if c == 13 && x > w*6/10 {
				p = 14 // part of the car predicted as truck
			}
			if c == 8 && y < h*4/10 {
				p = 9 // vegetation as terrain
			}
			if y >= h*95/100 {
				c = 255
			}
			label[y*w+x], pred[y*w+x] = c, p
		}
	}
	return label, pred
}

// thumbnail draws the panels of the scene of sceneMaps, over a picture of
// it: each class's region in a muted tone of its color, with a gradient
// and some texture, as a photograph would have.
func thumbnail(t *testing.T) Thumbnail {
	t.Helper()
	const h, w = 256, 512
	label, pred := sceneMaps(t, h, w)
	pic := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := label[y*w+x]
			if c == 255 {
				c = 0
			}
			base := classColor(c, 19)
			shade := 0.55 + 0.35*float64(y)/h + 0.05*float64((x*7+y*13)%11)/10
			pic.SetNRGBA(x, y, color.NRGBA{uint8(float64(base.R)*shade*0.6 + 40), uint8(float64(base.G)*shade*0.6 + 40), uint8(float64(base.B)*shade*0.6 + 40), 255})
		}
	}
	gridLabels, gridPred := onGrid(t, h, w, 200, label, pred)
	th, err := NewThumbnail(ThumbnailSource{Height: h, Width: w, Labels: gridLabels, Pred: gridPred, Classes: 19, Ignore: 255, HasIgnore: true, Picture: pic}, 200)
	if err != nil {
		t.Fatal(err)
	}
	return th
}
