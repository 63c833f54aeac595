package main

import (
	"archive/zip"
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/lovasz"
	"github.com/segeval/segeval/internal/npy"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/shard"
)

// TestRootCause extracts a DoFn's message from the runner's error text.
func TestRootCause(t *testing.T) {
	tests := []struct{ name, msg, want string }{
		{"bundle", "job job-001 failed:\nbundle inst001 stage-003 failed:process bundle failed for instruction inst001 using plan stage-003 : while executing Process for Plan[stage-003]:\n" +
			"1: DataSource[S[stage-003_source@localhost:43259], i0] Out:4 Coder:W;cwv_n1<bytes;c3>!GWC \n4: ParDo[transforms.matchShardsFn] Out:[2]\n" +
			"\tcaused by:\nsource failed processing data\n\tcaused by:\nDoFn[UID:4, PID:e2, Name: github.com/segeval/segeval/transforms.matchShardsFn] failed:\n" +
			"shard a.tar, sample k: bad input: the prediction has 21 classes, expected 7",
			"shard a.tar, sample k: bad input: the prediction has 21 classes, expected 7"},
		{"several lines", "x\n\tcaused by:\nDoFn[UID:1] failed:\nfirst\nsecond\n", "first\nsecond"},
		{"no plan", "connection refused", "connection refused"},
	}
	for _, tt := range tests {
		if got := rootCause(tt.msg); got != tt.want {
			t.Errorf("%s: rootCause = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestReportFailure checks that a failure takes at most 5 lines, however
// long its cause, with its hint and the runner log's path.
func TestReportFailure(t *testing.T) {
	runLog := &runnerLog{path: filepath.Join(t.TempDir(), logFile)}
	defer runLog.Close()
	if _, err := runLog.Write([]byte("level=ERROR msg=x\n")); err != nil {
		t.Fatal(err)
	}
	cause := "shard a.tar, sample k: multiclass mode needs at least 2 classes of scores, got 1-class logits\nsecond\nthird\nfourth"
	var buf bytes.Buffer
	reportFailure(&buf, errors.New("job failed:\n\tcaused by:\nDoFn[UID:1] failed:\n"+cause), runLog)
	out := buf.String()
	if n := strings.Count(out, "\n"); n > 5 {
		t.Errorf("%d lines:\n%s", n, out)
	}
	for _, want := range []string{"run failed: shard a.tar, sample k: multiclass", "(2 more lines)", "--mode=binary", runLog.Path()} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
}

// TestFlagHints produces each cause from the package that reports it, as a
// run would, and checks the hint the CLI adds, so that a reworded message
// fails here rather than silently losing its hint.
func TestFlagHints(t *testing.T) {
	const h, w = 2, 2
	probs := func(classes int, v float32) *sample.Image {
		scores := make([]float32, classes*h*w)
		for i := range scores {
			scores[i] = v
		}
		return &sample.Image{Key: "k", Height: h, Width: w, Labels: make([]int32, h*w), Prediction: sample.Probs, Classes: classes, Scores: scores}
	}
	logits := &sample.Image{Key: "k", Height: h, Width: w, Labels: make([]int32, h*w), Prediction: sample.Logits, Classes: 1, Scores: make([]float32, h*w)}
	tests := []struct {
		name string
		opt  evaluate.Options
		img  *sample.Image
		set  string // the flag given
		want string // in the hint; "" for none
	}{
		{"num_classes", evaluate.Options{Mode: evaluate.Multiclass, Classes: 7}, probs(21, 1.0/21), "num_classes", "--num_classes=7 but the predictions have 21 classes"},
		{"num_classes not given", evaluate.Options{Mode: evaluate.Multiclass, Classes: 7}, probs(21, 1.0/21), "", ""},
		{"binary model", evaluate.Options{Mode: evaluate.Multiclass}, logits, "", "--mode=binary"},
		{"multiclass model", evaluate.Options{Mode: evaluate.Binary}, probs(3, 1.0/3), "", "--mode=multiclass"},
		{"argmax map without a class count", evaluate.Options{Mode: evaluate.Multiclass}, &sample.Image{Key: "k", Height: h, Width: w, Labels: make([]int32, h*w), Prediction: sample.ArgmaxMap, Pred: make([]int32, h*w)}, "", "--num_classes"},
		{"logits as probabilities", evaluate.Options{Mode: evaluate.Multiclass, ProbTolerance: 0.01, BinsPerOctave: lovasz.DefaultBinsPerOctave}, probs(3, 0.9), "", "KEY.logits.npy"},
	}
	for _, tt := range tests {
		_, err := evaluate.NewEvaluator(tt.opt).Evaluate(tt.img, "a.tar")
		if err == nil {
			t.Fatalf("%s: no error", tt.name)
		}
		got := hint(err.Error(), func(name string) bool { return name == tt.set })
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("%s: hint %q for %q, want %q", tt.name, got, err, tt.want)
		}
	}
}

// TestFlagHintNPZKey produces the several-arrays cause from the decoder, as
// a run would, from an .npz that numpy.savez would write with two arrays.
func TestFlagHintNPZKey(t *testing.T) {
	var label, npzData bytes.Buffer
	if err := npy.Write(&label, "|u1", []int{1, 1}, []uint8{0}); err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(&npzData)
	for _, name := range []string{"logits.npy", "softmax.npy"} {
		f, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := npy.Write(f, "<f4", []int{2, 1, 1}, []float32{0.5, 0.5}); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	smp := &shard.Sample{Key: "k", Fields: map[string][]byte{"label.npy": label.Bytes(), "probs.npz": npzData.Bytes()}}
	lim := sample.Limits{MaxPixels: 1 << 20, MaxClasses: 16, MaxMemberBytes: 1 << 20}
	var dec sample.Decoder
	_, err := dec.Decode(smp, "a.tar", sample.Options{Limits: lim})
	if err == nil {
		t.Fatal("two arrays and no key decoded")
	}
	got := hint(err.Error(), func(string) bool { return false })
	if want := "--npz_key (one of: logits, softmax)"; !strings.Contains(got, want) {
		t.Errorf("hint %q for %q, want %q", got, err, want)
	}
}
