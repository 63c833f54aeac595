package pipeline_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/segeval/segeval/internal/gate"
	"github.com/segeval/segeval/internal/storage"
	"github.com/segeval/segeval/transforms"
)

// TestHistoryInReport runs the same dataset three nights under --history
// and --baseline=latest, with a night missed between the second and the
// third, which fails a floor: each report.html has the history section with
// its trend chart and class strip, marking this run and (from the second
// night) the baseline, the third shows the missed night, and
// history.jsonl records the intervals and class IoUs the chart draws. A run
// without --history has no such section.
func TestHistoryInReport(t *testing.T) {
	d := writeDataset(t)
	hist := t.TempDir()
	dates := []string{"2026-11-20", "2026-11-21", "2026-11-23"}
	var outs []string
	for n, date := range dates {
		out := filepath.Join(t.TempDir(), "night")
		cfg := config([]string{filepath.Join(d.dir, "*.tar")}, out)
		cfg.RunID = fmt.Sprintf("night-%d", n+1)
		cfg.Date = date
		cfg.Provenance.StartedAt = date + "T01:00:00Z"
		cfg.Eval.Bootstrap = 40
		cfg.History = transforms.HistorySpec{Prefix: hist, Model: "segformer"}
		cfg.Gate = transforms.GateSpec{Baseline: gate.Latest}
		if n == len(dates)-1 {
			cfg.Gate.Thresholds = gate.Thresholds{MinMIoU: f64(0.99)}
		}
		if _, err := runPipeline(t, cfg); err != nil {
			t.Fatalf("night %d: %v", n+1, err)
		}
		outs = append(outs, out)
	}

	section := regexp.MustCompile(`(?s)<section id="history">(.*?)</section>`)
	chart := regexp.MustCompile(`(?s)<svg class="chart" role="img" aria-label="trend of mIoU and per-image loss over recent runs".*?</svg>`)
	strip := regexp.MustCompile(`(?s)<svg class="chart" role="img" aria-label="per-class IoU of recent runs".*?</svg>`)
	texts := regexp.MustCompile(`<text[^>]*>([^<]*)</text>`)
	for n, out := range outs {
		page, err := os.ReadFile(filepath.Join(out, transforms.ReportFile))
		if err != nil {
			t.Fatal(err)
		}
		sec := section.FindSubmatch(page)
		if sec == nil {
			t.Fatalf("night %d: report.html has no history section", n+1)
		}
		c := chart.Find(sec[1])
		if c == nil || strip.Find(sec[1]) == nil {
			t.Fatalf("night %d: history section lacks the trend chart or the class strip", n+1)
		}
		var drawn []string
		for _, m := range texts.FindAllSubmatch(c, -1) {
			drawn = append(drawn, string(m[1]))
		}
		want := fmt.Sprintf("The last %d runs", n+1)
		if !strings.Contains(string(sec[1]), want) {
			t.Errorf("night %d: the section does not say %q", n+1, want)
		}
		if !slices.Contains(drawn, "this run") {
			t.Errorf("night %d: the chart does not mark this run: %q", n+1, drawn)
		}
		// From the second night on, the last blessed night is the
		// baseline, marked on the chart.
		if got := slices.Contains(drawn, "baseline"); got != (n > 0) {
			t.Errorf("night %d: chart marks a baseline = %v, want %v: %q", n+1, got, n > 0, drawn)
		}
	}
	last, err := os.ReadFile(filepath.Join(outs[2], transforms.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	sec := string(section.FindSubmatch(last)[1])
	if !strings.Contains(sec, "2026-11-20 to 2026-11-23; one night without a run.") {
		t.Errorf("the third night's history does not show the missed night: %.300s", sec)
	}
	for _, day := range []string{"11-20", "11-21", "11-22", "11-23"} {
		if !strings.Contains(string(chart.Find(last)), ">"+day+"<") {
			t.Errorf("the trend chart's axis lacks %s", day)
		}
	}

	rows, err := gate.ReadHistory(t.Context(), storage.New(storage.Options{}), filepath.Join(hist, "segformer"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("history holds %d rows, want 3", len(rows))
	}
	for i, r := range rows {
		if r.Date != dates[i] || r.MIoUInterval == nil || r.LossInterval == nil || len(r.Classes) != classes {
			t.Errorf("row %d: %+v, want date %s, intervals and %d classes", i, r, dates[i], classes)
		}
		if r.Blessed != (i < 2) {
			t.Errorf("row %d blessed = %v", i, r.Blessed)
		}
	}

	// Without --history, no section, and the page still renders whole.
	cfg := config([]string{filepath.Join(d.dir, "*.tar")}, filepath.Join(t.TempDir(), "plain"))
	if _, err := runPipeline(t, cfg); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(filepath.Join(cfg.Output, transforms.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	if section.Match(page) || !strings.Contains(string(page), "</html>") {
		t.Error("a run without --history: want a whole report without a history section")
	}
}
