package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/segeval/segeval/internal/gate"
	"github.com/segeval/segeval/internal/httpfault"
	"github.com/segeval/segeval/internal/lovasz"
	"github.com/segeval/segeval/internal/storage"
	"github.com/segeval/segeval/transforms"
)

func f64(v float64) *float64 { return &v }

// TestGateAndHistory runs the same dataset three nights in a row under a
// history: the first night has no baseline yet, the second passes against
// it, the third fails a floor. LATEST must stay on the last blessed run and
// the history must hold every night.
func TestGateAndHistory(t *testing.T) {
	d := writeDataset(t)
	hist := t.TempDir()
	night := func(n int, th func(*transforms.GateSpec)) string {
		out := filepath.Join(t.TempDir(), "night")
		cfg := config([]string{filepath.Join(d.dir, "*.tar")}, out)
		cfg.RunID = "night-" + string(rune('0'+n))
		cfg.Date = "2026-11-2" + string(rune('0'+n))
		cfg.Provenance.StartedAt = cfg.Date + "T01:00:00Z"
		cfg.History = transforms.HistorySpec{Prefix: hist, Model: "segformer"}
		cfg.Gate = transforms.GateSpec{Baseline: gate.Latest, Thresholds: gate.Thresholds{MaxMIoUDrop: f64(0.01)}}
		if th != nil {
			th(&cfg.Gate)
		}
		if _, err := runPipeline(t, cfg); err != nil {
			t.Fatalf("night %d: %v", n, err)
		}
		return out
	}
	readValidation := func(out string) gate.Validation {
		var v gate.Validation
		data, err := os.ReadFile(filepath.Join(out, gate.ValidationFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	exists := func(path string) bool { _, err := os.Stat(path); return err == nil }

	first := night(1, nil)
	if v := readValidation(first); !v.OK || !v.MissingBaseline {
		t.Errorf("first night: %+v, want a pass with missing_baseline", v)
	}
	second := night(2, nil)
	if v := readValidation(second); !v.OK || v.MissingBaseline || v.BaselineRunID != "night-1" {
		t.Errorf("second night: %+v, want a pass against night-1", v)
	}
	third := night(3, func(g *transforms.GateSpec) { g.Thresholds.MinMIoU = f64(0.99) })
	v := readValidation(third)
	if v.OK || v.BaselineRunID != "night-2" {
		t.Errorf("third night: %+v, want a failure against night-2", v)
	}
	if !exists(filepath.Join(third, gate.NotBlessedFile)) || exists(filepath.Join(third, gate.BlessedFile)) {
		t.Error("third night is not marked NOT_BLESSED")
	}
	latest, ok, err := gate.ReadLatest(context.Background(), storage.New(storage.Options{}), filepath.Join(hist, "segformer"))
	if err != nil || !ok || latest.Output != second {
		t.Errorf("LATEST = %+v (%v), want the second night %s", latest, err, second)
	}
	data, err := os.ReadFile(filepath.Join(hist, "segformer", gate.HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	var blessed []bool
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var h gate.HistoryLine
		if err := json.Unmarshal([]byte(line), &h); err != nil {
			t.Fatal(err)
		}
		blessed = append(blessed, h.Blessed)
	}
	if len(blessed) != 3 || !blessed[0] || !blessed[1] || blessed[2] {
		t.Errorf("history blessed %v, want [true true false]", blessed)
	}
}

func TestGateFailsTheJobWhenAsked(t *testing.T) {
	d := writeDataset(t)
	cfg := config([]string{filepath.Join(d.dir, "*.tar")}, filepath.Join(t.TempDir(), "out"))
	cfg.Gate = transforms.GateSpec{Thresholds: gate.Thresholds{MinMIoU: f64(0.99)}, FailJob: true}
	_, err := runPipeline(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "regression gate failed: min_miou") {
		t.Fatalf("got %v, want the job to fail on the gate", err)
	}
	// The verdict is still written, for whoever looks.
	if _, err := os.Stat(filepath.Join(cfg.Output, gate.NotBlessedFile)); err != nil {
		t.Error(err)
	}
	// A later ungated run into the same prefix (--overwrite) must not leave
	// the old verdict beside its own results.
	cfg.Gate = transforms.GateSpec{}
	cfg.RunID = "again"
	if _, err := runPipeline(t, cfg); err != nil {
		t.Fatal(err)
	}
	for _, stale := range []string{gate.NotBlessedFile, gate.ValidationFile} {
		if _, err := os.Stat(filepath.Join(cfg.Output, stale)); !os.IsNotExist(err) {
			t.Errorf("%s of the earlier run survived: %v", stale, err)
		}
	}
}

func TestIncompatibleBaselineIsAnError(t *testing.T) {
	d := writeDataset(t)
	base := config([]string{filepath.Join(d.dir, "*.tar")}, filepath.Join(t.TempDir(), "base"))
	if _, err := runPipeline(t, base); err != nil {
		t.Fatal(err)
	}
	cfg := config([]string{filepath.Join(d.dir, "*.tar")}, filepath.Join(t.TempDir(), "out"))
	cfg.Eval.ClassSet = lovasz.ClassSet{Mode: lovasz.All} // another class set: numbers of another kind
	cfg.Gate = transforms.GateSpec{Baseline: filepath.Join(base.Output, "metrics.json")}
	_, err := runPipeline(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "baseline was computed differently") {
		t.Fatalf("got %v", err)
	}
}

// TestHistoryLostResponsesOverGCS runs two nights into gs:// through a
// proxy that lets each night's first history write land and loses its
// response: both runs succeed, and history.jsonl holds each night once, in
// order.
func TestHistoryLostResponsesOverGCS(t *testing.T) {
	d := writeDataset(t)
	srv := startFakeGCS(t)
	lossy := httpfault.NewLoseResponses(srv.HTTPHandler(), false)
	front := httptest.NewServer(lossy)
	t.Cleanup(front.Close)
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(front.URL, "http://"))
	store := storage.New(storage.Options{})
	defer store.Close()
	d.upload(t, store, "gs://evals/preds/")

	for _, n := range []int{1, 2} {
		lossy.Arm("history/segformer/history.jsonl")
		cfg := config([]string{"gs://evals/preds/*.tar"}, fmt.Sprintf("gs://evals/runs/night-%d", n))
		cfg.RunID = fmt.Sprintf("night-%d", n)
		cfg.Date = fmt.Sprintf("2026-11-2%d", n)
		cfg.Provenance.StartedAt = cfg.Date + "T03:00:00Z"
		cfg.History = transforms.HistorySpec{Prefix: "gs://evals/history", Model: "segformer"}
		if _, err := runPipeline(t, cfg); err != nil {
			t.Fatalf("night %d: %v", n, err)
		}
	}
	if lost := lossy.Lost(); lost != 2 {
		t.Errorf("%d responses lost, want one per night", lost)
	}
	history, err := gate.ReadHistory(t.Context(), store, "gs://evals/history/segformer")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, h := range history {
		ids = append(ids, h.RunID)
	}
	if !slices.Equal(ids, []string{"night-1", "night-2"}) {
		t.Errorf("history holds %q, want night-1 then night-2, once each", ids)
	}
	latest, ok, err := gate.ReadLatest(t.Context(), store, "gs://evals/history/segformer")
	if err != nil || !ok || latest.RunID != "night-2" {
		t.Errorf("LATEST %+v (%v), want night-2", latest, err)
	}
}
