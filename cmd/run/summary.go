package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/segeval/segeval/internal/results"
)

// printSummary prints the headline metrics and the per-class table of a
// finished run.
func printSummary(w io.Writer, metricsJSON []byte, took time.Duration) error {
	var m results.Metrics
	if err := json.Unmarshal(metricsJSON, &m); err != nil {
		return fmt.Errorf("read metrics.json: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "images\t%d (%d without valid pixels), %d shards, %s\n",
		m.Images, m.ImagesWithoutValidPixels, len(m.Provenance.Shards), took.Round(time.Millisecond))
	fmt.Fprintf(tw, "valid pixels\t%d\n", m.ValidPixels)
	if l := m.LovaszSoftmax; l != nil {
		fmt.Fprintf(tw, "Lovász-Softmax\tper-image mean %s, dataset %s ± %s\n", num(l.PerImageMean), num(l.Dataset), num(l.DatasetErrorBound))
	}
	if l := m.LovaszHinge; l != nil {
		fmt.Fprintf(tw, "Lovász hinge\tper-image mean %s\n", num(l.PerImageMean))
	}
	fmt.Fprintf(tw, "mIoU\t%s (per-image mean %s)\n", num(m.MIoU), num(m.PerImageMIoUMean))
	fmt.Fprintf(tw, "pixel accuracy\t%s, mean accuracy %s, mean dice %s\n", num(m.PixelAccuracy), num(m.MeanAccuracy), num(m.MeanDice))
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "class\tIoU\taccuracy\tdice\tLovász mean\tlabel pixels")
	for _, c := range m.Classes {
		fmt.Fprintf(tw, "%d %s\t%s\t%s\t%s\t%s\t%d\n", c.ID, c.Name, num(c.IoU), num(c.Accuracy), num(c.Dice), num(c.LovaszMean), c.LabelPixels)
	}
	return tw.Flush()
}

// num formats a metric, "-" when undefined.
func num(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.4f", *v)
}
