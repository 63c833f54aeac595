package pipeline_test

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/lovasz"
	"github.com/segeval/segeval/internal/npy"
	"github.com/segeval/segeval/internal/storage"
	"github.com/segeval/segeval/internal/synth"
)

// TestBinaryMode evaluates one-logit-per-pixel predictions: the Lovász hinge
// per image, and IoU over classes 0 and 1 from logit > 0.
func TestBinaryMode(t *testing.T) {
	const h, w = 12, 16
	r := rand.New(rand.NewPCG(3, 4))
	var buf bytes.Buffer
	sw := synth.NewShardWriter(&buf)
	ev := lovasz.NewEvaluator()
	opt := lovasz.Options{Ignore: 255, HasIgnore: true}
	var lossSum float64
	total := lovasz.NewCounts(2)
	for _, key := range []string{"m1", "m2", "m3"} {
		labels := make([]int32, h*w)
		logits := make([]float32, h*w)
		for i := range labels {
			labels[i] = int32(r.IntN(2))
			if r.IntN(10) == 0 {
				labels[i] = 255
			}
			logits[i] = float32(r.NormFloat64() + 1.5*float64(2*(labels[i]&1)-1))
		}
		png, err := synth.EncodeLabelPNG(labels, h, w)
		if err != nil {
			t.Fatal(err)
		}
		var arr bytes.Buffer
		if err := npy.Write(&arr, "<f4", []int{h, w}, logits); err != nil {
			t.Fatal(err)
		}
		if err := sw.Member(key+".label.png", png); err != nil {
			t.Fatal(err)
		}
		if err := sw.Member(key+".logits.npy", arr.Bytes()); err != nil {
			t.Fatal(err)
		}
		loss, err := ev.LovaszHinge(logits, labels, h, w, opt)
		if err != nil {
			t.Fatal(err)
		}
		lossSum += loss.Loss
		if err := lovasz.CountPredictions(lovasz.BinaryPrediction(logits, nil), labels, h, w, opt, total); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "masks.tar"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config([]string{filepath.Join(dir, "*.tar")}, filepath.Join(t.TempDir(), "out"))
	cfg.Eval.Mode = evaluate.Binary
	if _, err := runPipeline(t, cfg); err != nil {
		t.Fatal(err)
	}
	got := readOutput(t, storage.New(storage.Options{}), cfg.Output)
	m := got.metrics
	if m.LovaszSoftmax != nil || m.LovaszHinge == nil || m.LovaszHinge.PerImageMean == nil {
		t.Fatalf("binary run reports %+v / %+v", m.LovaszSoftmax, m.LovaszHinge)
	}
	if want := lossSum / 3; math.Abs(*m.LovaszHinge.PerImageMean-want) > 1e-12 {
		t.Errorf("hinge per-image mean %v, want %v", *m.LovaszHinge.PerImageMean, want)
	}
	if want := total.Metrics().MIoU; m.NumClasses != 2 || m.MIoU == nil || math.Abs(*m.MIoU-want) > 1e-12 {
		t.Errorf("binary miou %v over %d classes, want %v over 2", m.MIoU, m.NumClasses, want)
	}
	if _, ok := got.rows[0]["lovasz_hinge"]; !ok {
		t.Errorf("per-image row without lovasz_hinge: %v", got.rows[0])
	}
}
