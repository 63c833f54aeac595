package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/storage"
	"github.com/segeval/segeval/pipeline"
)

// maxLabelValues is the most distinct label values --check lists.
const maxLabelValues = 12

// runCheck is --check: it makes the checks a run makes before launch,
// reads the first sample of the first input and prints what a run would do,
// without running it. It is for setting up a nightly job.
func runCheck(ctx context.Context, stdout, stderr io.Writer, cfg pipeline.Config) int {
	ins, err := pipeline.Inspect(ctx, cfg)
	var none *pipeline.NoMatchError
	switch {
	case errors.As(err, &none):
		fmt.Fprintln(stderr, "segeval:", inputHint(err, cfg))
		return exitUsage
	case err != nil:
		fmt.Fprintln(stderr, "segeval:", err)
		return exitFailed
	}
	if err := pipeline.CheckBaseline(ctx, cfg); err != nil {
		fmt.Fprintln(stderr, "segeval: --baseline:", err)
		return exitUsage
	}
	store := storage.New(cfg.Storage)
	defer store.Close()
	held, err := store.Exists(ctx, storage.Join(cfg.Output, results.SuccessFile))
	if err != nil {
		fmt.Fprintln(stderr, "segeval: --output:", err)
		return exitFailed
	}
	printInspection(stdout, cfg, ins, held)
	return exitOK
}

// printInspection prints what --check found, one fact a line.
func printInspection(w io.Writer, cfg pipeline.Config, ins pipeline.Inspection, outputHeld bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	img := ins.Image
	in := ins.Inputs
	if len(in.Labels) > 0 {
		fmt.Fprintf(tw, "inputs\t%d prediction files and %d label files, %s\n", len(in.Shards), len(in.Labels), byteSize(in.Bytes()))
		fmt.Fprintf(tw, "first sample\t%s: %s and %s\n", ins.Key, ins.File, ins.LabelFile)
	} else {
		fmt.Fprintf(tw, "inputs\t%d shards, %s\n", len(in.Shards), byteSize(in.Bytes()))
		fmt.Fprintf(tw, "first sample\t%s of %s\n", ins.Key, ins.File)
	}
	fmt.Fprintf(tw, "fields\t%s\n", strings.Join(ins.Fields, ", "))
	fmt.Fprintf(tw, "prediction\t%s: %s %v, %s\n", ins.Prediction, dtype(ins.PredictionType), shape(ins.PredictionShape, img), kind(img))
	fmt.Fprintf(tw, "label\t%s: %s, %dx%d; values %s\n", ins.Label, dtype(ins.LabelType), img.Height, img.Width, labelValues(ins.LabelValues))
	fmt.Fprintf(tw, "classes\t%s\n", classCount(cfg, img))
	fmt.Fprintf(tw, "ignore\t%s\n", ignoreSeen(cfg, ins.LabelValues))
	meta := "none (the sample has no json member)"
	if len(ins.MetaFields) > 0 {
		meta = strings.Join(ins.MetaFields, ", ")
	}
	fmt.Fprintf(tw, "--slice_by\tmetadata fields: %s\n", meta)
	out := cfg.Output
	if outputHeld {
		out += " (holds a run: a run needs --overwrite)"
	}
	fmt.Fprintf(tw, "output\t%s\n", out)
	tw.Flush()
	fmt.Fprintln(w, "nothing was evaluated; run without --check to evaluate")
}

// dtype names a NumPy type string ("<f2": float16); other types (png) are
// returned as they are.
func dtype(descr string) string {
	names := map[byte]string{'f': "float", 'i': "int", 'u': "uint"}
	if len(descr) != 3 || names[descr[1]] == "" || descr[2] < '1' || descr[2] > '8' {
		return descr
	}
	return fmt.Sprintf("%s%d (%s)", names[descr[1]], 8*int(descr[2]-'0'), descr)
}

// shape renders the stored shape, or the decoded size of a PNG.
func shape(s []int, img *sample.Image) string {
	if s == nil {
		return fmt.Sprintf("%dx%d", img.Height, img.Width)
	}
	return fmt.Sprint(s)
}

func kind(img *sample.Image) string {
	switch img.Prediction {
	case sample.Probs:
		return fmt.Sprintf("probabilities of %d classes", img.Classes)
	case sample.Logits:
		return fmt.Sprintf("logits of %d classes", img.Classes)
	}
	return "argmax class map"
}

// classCount says how many classes a run would evaluate, and whether that
// agrees with --num_classes.
func classCount(cfg pipeline.Config, img *sample.Image) string {
	want := cfg.Eval.Classes
	switch {
	case cfg.Eval.Mode == evaluate.Binary:
		return "2 (binary)"
	case img.Prediction == sample.ArgmaxMap && want == 0:
		return "unknown: argmax maps need --num_classes"
	case img.Prediction == sample.ArgmaxMap:
		return fmt.Sprintf("%d (--num_classes)", want)
	case want != 0 && want != img.Classes:
		return fmt.Sprintf("--num_classes=%d but the prediction has %d classes: the run would fail", want, img.Classes)
	}
	return fmt.Sprintf("%d, from the prediction", img.Classes)
}

func labelValues(vals []pipeline.LabelValue) string {
	var parts []string
	for i, v := range vals {
		if i == maxLabelValues {
			parts = append(parts, fmt.Sprintf("and %d more", len(vals)-i))
			break
		}
		parts = append(parts, fmt.Sprint(v.Value))
	}
	return strings.Join(parts, " ")
}

// ignoreSeen says whether the ignore value occurs in the sample's labels.
func ignoreSeen(cfg pipeline.Config, vals []pipeline.LabelValue) string {
	if !cfg.Eval.HasIgnore {
		return "none (--ignore_index=none)"
	}
	for _, v := range vals {
		if int(v.Value) == cfg.Eval.Ignore {
			return fmt.Sprintf("%d, on %d pixels of this sample", cfg.Eval.Ignore, v.Pixels)
		}
	}
	return fmt.Sprintf("%d, not seen in this sample", cfg.Eval.Ignore)
}
