package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/metrics"

	"github.com/segeval/segeval/internal/results"
)

// fullTableClasses is the most classes whose full table is printed; beyond
// it only the worst classes are, so that the summary stays short.
const fullTableClasses = 30

// worstClasses is how many of the lowest-IoU classes the summary names.
const worstClasses = 5

// printSummary prints a finished run's headline metrics and class table,
// within 100 columns.
func printSummary(w io.Writer, metricsJSON []byte, took time.Duration) error {
	var m results.Metrics
	if err := json.Unmarshal(metricsJSON, &m); err != nil {
		return fmt.Errorf("read metrics.json: %w", err)
	}
	iv := m.Intervals
	if iv == nil {
		iv = &results.Intervals{}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "images\t%d evaluated, %d rejected, %d without valid pixels; %d files; %s\n",
		m.Images, m.ImagesRejected, m.ImagesWithoutValidPixels, len(m.Provenance.Shards), took.Round(time.Millisecond))
	if l := m.LovaszSoftmax; l != nil {
		fmt.Fprintf(tw, "Lovász-Softmax\t%s%s per image; %s ± %s over the dataset\n",
			num(l.PerImageMean), interval(iv.PerImageLoss), num(l.Dataset), bound(l.DatasetErrorBound))
	}
	if l := m.LovaszHinge; l != nil {
		fmt.Fprintf(tw, "Lovász hinge\t%s%s per image\n", num(l.PerImageMean), interval(iv.PerImageLoss))
	}
	fmt.Fprintf(tw, "mIoU\t%s%s (per-image mean %s)\n", num(m.MIoU), interval(iv.MIoU), num(m.PerImageMIoUMean))
	if m.Intervals != nil && m.Images < results.FewImagesForIntervals {
		// Below this many images the bootstrap intervals above are too
		// narrow; see results.FewImagesForIntervals.
		fmt.Fprintf(tw, "caution\tonly %d images: the intervals are too narrow (cover less than %g%% of the time)\n",
			m.Images, 100*m.Intervals.Level)
	}
	fmt.Fprintf(tw, "accuracy\tpixel %s, mean %s; mean dice %s; fwIoU %s\n",
		num(m.PixelAccuracy), num(m.MeanAccuracy), num(m.MeanDice), num(m.FrequencyWeightedIoU))
	if worst := lowestIoU(m.Classes, worstClasses); len(worst) > 0 {
		var names []string
		for _, c := range worst {
			names = append(names, fmt.Sprintf("%s %s", className(c), num(c.IoU)))
		}
		fmt.Fprintf(tw, "worst classes\t%s\n", strings.Join(names, ", "))
	}
	if c := m.Comparison; c != nil {
		printComparison(tw, m, c)
	}
	if len(m.Classes) <= fullTableClasses {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "class\tIoU\taccuracy\tdice\tLovász\tlabel pixels")
		for _, c := range m.Classes {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", className(c), num(c.IoU), num(c.Accuracy), num(c.Dice), num(c.LovaszMean), c.LabelPixels)
		}
	}
	return tw.Flush()
}

// changedImages is how many of the most regressed and most improved images
// the summary names.
const changedImages = 3

// changedWidth is the most columns their list takes, beside its label.
const changedWidth = 80

// printComparison prints the run's changes from its baseline, each with
// its paired 95% interval, whether that interval excludes zero, the
// classes that changed significantly and the images that changed most.
func printComparison(tw io.Writer, m results.Metrics, c *results.Comparison) {
	fmt.Fprintf(tw, "baseline\trun %s: %d images in both, %d only in this run, %d only in the baseline\n",
		c.BaselineRunID, c.ImagesPaired, c.ImagesOnlyCandidate, c.ImagesOnlyBaseline)
	if c.ImagesOnlyCandidate+c.ImagesOnlyBaseline > 0 {
		fmt.Fprintf(tw, "caution\tdifferent images: the mIoU and class changes include the change of images\n")
	}
	fmt.Fprintf(tw, "Δ mIoU\t%s\n", change(c.MIoUDelta))
	fmt.Fprintf(tw, "Δ loss per image\t%s (mean over the images in both)\n", change(c.PerImageLossDelta))
	names := map[int]results.Class{}
	for _, cl := range m.Classes {
		names[cl.ID] = cl
	}
	var significant []string
	for _, cl := range c.Classes {
		if cl.IoUDelta.Significant() {
			significant = append(significant, fmt.Sprintf("%s %s", className(names[cl.ID]), signedDelta(cl.IoUDelta.Value)))
		}
	}
	if len(significant) > worstClasses {
		significant = append(significant[:worstClasses], "…")
	}
	if len(significant) == 0 {
		significant = []string{"none significant"}
	}
	fmt.Fprintf(tw, "Δ class IoU\t%s\n", strings.Join(significant, ", "))
	for _, list := range []struct {
		name   string
		images []results.ImageChange
	}{{"most regressed", c.MostRegressed}, {"most improved", c.MostImproved}} {
		// As many as fit the line (the first always), keys cut to 30.
		var line string
		for i, img := range list.images[:min(changedImages, len(list.images))] {
			key := img.Key
			if len(key) > 30 {
				key = key[:29] + "…"
			}
			item := fmt.Sprintf("%s (loss %s, mIoU %s)", key, signedDelta(img.LossDelta), signedDelta(img.MIoUDelta))
			if i > 0 && len(line)+2+len(item) > changedWidth {
				break
			}
			if i > 0 {
				line += ", "
			}
			line += item
		}
		if line != "" {
			fmt.Fprintf(tw, "%s\t%s\n", list.name, line)
		}
	}
}

// change formats a change, its paired interval and whether the interval
// excludes zero.
func change(d results.Delta) string {
	if d.Value == nil {
		return "-"
	}
	if d.CI95 == nil {
		return signedDelta(d.Value) + " (no paired interval)"
	}
	s := fmt.Sprintf("%s [%+.4f, %+.4f]", signedDelta(d.Value), d.CI95[0], d.CI95[1])
	if d.Significant() {
		return s + " significant"
	}
	return s + " not significant"
}

// signedDelta formats a change with its sign, "-" when undefined.
func signedDelta(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%+.4f", *v)
}

// lowestIoU returns up to n classes with the lowest defined IoU.
func lowestIoU(classes []results.Class, n int) []results.Class {
	var defined []results.Class
	for _, c := range classes {
		if c.IoU != nil {
			defined = append(defined, c)
		}
	}
	slices.SortStableFunc(defined, func(a, b results.Class) int { return cmp.Compare(*a.IoU, *b.IoU) })
	return defined[:min(n, len(defined))]
}

func className(c results.Class) string {
	name := fmt.Sprintf("%d %s", c.ID, c.Name)
	if c.Name == fmt.Sprint(c.ID) {
		name = c.Name
	}
	if len(name) > 24 {
		name = name[:23] + "…"
	}
	return name
}

// interval formats a 95% interval as " [low, high]", or nothing.
func interval(iv results.Interval) string {
	if iv.Low == nil || iv.High == nil {
		return ""
	}
	return fmt.Sprintf(" [%.4f, %.4f]", *iv.Low, *iv.High)
}

// bound formats an error bound, which is usually far below 1e-4.
func bound(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1e", *v)
}

// num formats a metric, "-" when undefined.
func num(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.4f", *v)
}

// printWork prints how the run's work was split, from its counters: what
// planning read, how many restrictions the shards were evaluated as, and
// the partial accumulators that left the evaluation (what a runner that
// does not lift combines would shuffle).
func printWork(w io.Writer, m metrics.Results) {
	c := map[string]int64{}
	for _, r := range m.AllMetrics().Counters() {
		if r.Key.Namespace == "segeval" {
			c[r.Key.Name] += r.Committed
		}
	}
	if c["shards"] == 0 {
		return // paired files, or a runner that reports no counters
	}
	fmt.Fprintf(w, "work: %d shards planned with %d requests (%s); %d restrictions; %d partial accumulators (%s); last stage %.1f s\n",
		c["shards"], c["plan_requests"], byteSize(c["plan_bytes"]), c["restrictions"], c["partial_accumulators"], byteSize(c["partial_accumulator_bytes"]),
		float64(c["publish_millis"])/1000)
}

// byteSize formats a byte count in KB or MB of 10^3 and 10^6 bytes.
func byteSize(n int64) string {
	switch {
	case n >= 10e6:
		return fmt.Sprintf("%.0f MB", float64(n)/1e6)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1f KB", float64(n)/1e3)
}
