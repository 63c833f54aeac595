package results

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/lovasz"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/synth"
)

// part is what evaluating one image accumulates.
type part struct {
	acc    *evaluate.Accumulator
	slices map[string]*evaluate.Tally
}

// metricsOf summarizes a merged run as metrics.json and per_class.csv.
func metricsOf(t *testing.T, p part, rows []ImageRow, set Settings) []byte {
	t.Helper()
	m, err := Summarize(Run{Acc: p.acc, Slices: p.slices, Rows: rows, WorstK: 5}, set, "run", Provenance{Tool: "segeval"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := MarshalMetrics(m)
	if err != nil {
		t.Fatal(err)
	}
	csv, err := MarshalClassCSV(m)
	if err != nil {
		t.Fatal(err)
	}
	return append(data, csv...)
}

// metrics.json is the same, byte for byte, whatever order a run's images
// are evaluated and merged in and however they are grouped: one shard or
// eight, a local run or one on GCS.
func TestMetricsIdenticalInAnyMergeOrder(t *testing.T) {
	const classes = 19
	opt := evaluate.Options{Mode: evaluate.Multiclass, Ignore: 255, HasIgnore: true,
		ClassSet: lovasz.ClassSet{Mode: lovasz.All}, BinsPerOctave: lovasz.DefaultBinsPerOctave,
		Bootstrap: 200, SliceBy: [][]string{{"weather"}, {"weather", "city"}}}
	set := Settings{Mode: opt.Mode, ClassSet: opt.ClassSet, Ignore: opt.Ignore, HasIgnore: opt.HasIgnore}
	e := evaluate.NewEvaluator(opt)
	var parts []part
	var rows []ImageRow
	for i := range 30 {
		key := fmt.Sprintf("img%03d", i)
		im := synth.NewImage(key, synth.Options{Classes: classes, Height: 24, Width: 20, Regions: 6, Ignore: 255,
			Confidence: 2, WrongRegions: 0.2}, uint64(i))
		res, err := e.Evaluate(&sample.Image{Key: key, Height: im.Height, Width: im.Width, Labels: im.Labels,
			Prediction: sample.Probs, Classes: classes, Scores: im.Probs, Meta: im.Meta}, "s.tar")
		if err != nil {
			t.Fatal(err)
		}
		acc, slices := e.Take()
		parts = append(parts, part{acc, slices})
		rows = append(rows, NewImageRow("run", opt.Mode, res))
	}
	r := rand.New(rand.NewPCG(3, 4))
	var want []byte
	for trial := range 20 {
		r.Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i] })
		r.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		got := metricsOf(t, mergeTree(t, r, parts), rows, set)
		if trial == 0 {
			want = got
		} else if !bytes.Equal(got, want) {
			t.Fatalf("merge %d gives another metrics.json than merge 0: %s", trial, firstDiff(got, want))
		}
	}
}

// firstDiff describes the first line where a and b differ.
func firstDiff(a, b []byte) string {
	la, lb := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := range min(len(la), len(lb)) {
		if !bytes.Equal(la[i], lb[i]) {
			return fmt.Sprintf("line %d is %q, not %q", i+1, bytes.TrimSpace(la[i]), bytes.TrimSpace(lb[i]))
		}
	}
	return fmt.Sprintf("%d lines, not %d", len(la), len(lb))
}

// mergeTree merges copies of parts along a random binary tree: the parts are
// split at a random point, each side is merged the same way, and one side
// is merged into the other, either way round.
func mergeTree(t *testing.T, r *rand.Rand, parts []part) part {
	t.Helper()
	if len(parts) == 1 {
		h := parts[0].acc.Histogram
		acc, err := evaluate.NewAccumulator(h.Classes, h.BinsPerOctave, parts[0].acc.Bootstrap.Replicates)
		if err == nil {
			err = acc.Merge(parts[0].acc)
		}
		if err != nil {
			t.Fatal(err)
		}
		c := part{acc: acc, slices: map[string]*evaluate.Tally{}}
		for key, tl := range parts[0].slices {
			c.slices[key] = evaluate.NewTally(tl.Classes)
			if err := c.slices[key].Merge(tl); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}
	k := 1 + r.IntN(len(parts)-1)
	a, b := mergeTree(t, r, parts[:k]), mergeTree(t, r, parts[k:])
	if r.IntN(2) == 0 {
		a, b = b, a
	}
	if err := a.acc.Merge(b.acc); err != nil {
		t.Fatal(err)
	}
	for key, tl := range b.slices {
		if a.slices[key] == nil {
			a.slices[key] = tl
		} else if err := a.slices[key].Merge(tl); err != nil {
			t.Fatal(err)
		}
	}
	return a
}
