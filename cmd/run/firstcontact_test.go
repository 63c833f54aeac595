package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segeval/segeval/internal/npy"
	"github.com/segeval/segeval/internal/synth"
)

// runnerInternals are what a user must not have to read: Beam's plan
// dumps and prism's bundle logs.
var runnerInternals = []string{"DataSource", "caused by", "DoFn[UID", "level=ERROR", "stage-"}

// TestMistakes runs the built binary on a new user's everyday mistakes, on
// too many rejections and on a failed gate: each must say what is wrong and
// where in at most 5 lines of stderr, with no runner internals, and exit
// with README's code.
func TestMistakes(t *testing.T) {
	bins := buildBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root := repoRoot(t)
	sample := filepath.Join(root, "testdata", "sample", "*.tar")

	dir := t.TempDir()
	shard, err := os.ReadFile(filepath.Join(root, "testdata", "sample", "shard-00000.tar"))
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "cut.tar")
	if err := os.WriteFile(truncated, shard[:30000], 0o644); err != nil {
		t.Fatal(err)
	}
	// Three truncated shards beside a good one: three rejections.
	defective := t.TempDir()
	for i, data := range [][]byte{shard[:30000], shard[:30000], shard[:30000], shard} {
		if err := os.WriteFile(filepath.Join(defective, fmt.Sprintf("s%d.tar", i)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string // in stderr
	}{
		{"pattern matching nothing", []string{"--input=" + filepath.Join(root, "testdata", "sampel", "*.tar")}, 2,
			[]string{"--input", "sampel/*.tar matches no file"}},
		{"wrong number of classes", []string{"--input=" + sample, "--num_classes=7"}, 1,
			[]string{"shard-0000", "sample img", "--num_classes=7 but the predictions have 6 classes"}},
		{"truncated shard", []string{"--input=" + truncated}, 1,
			[]string{"cut.tar", "member img000000.probs.npy", "truncated"}},
		{"too many rejections", []string{"--input=" + filepath.Join(defective, "*.tar"), "--max_rejected=1"}, 1,
			[]string{"3 samples rejected", "s0.tar", "rejected.jsonl"}},
		{"failed gate", []string{"--input=" + sample, "--min_miou=0.99"}, 3,
			[]string{"gate NOT_BLESSED: 1 of 1 checks failed", "validation.json", "min_miou: 0.", "threshold 0.99"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			r := runCLI(ctx, t, bins.cli, root, nil, append(tt.args, "--output="+out)...)
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d", r.code, tt.wantCode)
			}
			stderr := strings.TrimSpace(r.stderr)
			if n := strings.Count(stderr, "\n") + 1; n > 5 {
				t.Errorf("%d lines on stderr, want at most 5", n)
			}
			for _, want := range tt.want {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q", want)
				}
			}
			for _, internal := range runnerInternals {
				if strings.Contains(stderr, internal) {
					t.Errorf("stderr shows the runner's %q", internal)
				}
			}
			if tt.wantCode == 1 {
				// The runner's log is kept, and named.
				log := filepath.Join(out, logFile)
				if data, err := os.ReadFile(log); err != nil || !bytes.Contains(data, []byte("caused by")) || !strings.Contains(stderr, log) {
					t.Errorf("runner log %s (named on stderr: %v): %v\n%s", log, strings.Contains(stderr, log), err, data)
				}
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			}
		})
	}
}

// TestCheck runs --check on the bundled sample and on a paired layout: it
// prints what a run would read and evaluates nothing.
func TestCheck(t *testing.T) {
	bins := buildBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root := repoRoot(t)

	paired := t.TempDir()
	const classes, h, w = 3, 4, 5
	labels := make([]int32, h*w)
	probs := make([]float32, classes*h*w)
	for i := range labels {
		labels[i] = int32(i % classes)
		probs[int(labels[i])*h*w+i] = 1
	}
	labels[0] = 255
	png, err := synth.EncodeLabelPNG(labels, h, w)
	if err != nil {
		t.Fatal(err)
	}
	var arr bytes.Buffer
	if err := npy.Write(&arr, "<f4", []int{classes, h, w}, probs); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"a.png": png, "a.probs.npy": arr.Bytes(), "b.png": png, "b.probs.npy": arr.Bytes()} {
		if err := os.WriteFile(filepath.Join(paired, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name string
		args []string
		want []string // in stdout
	}{
		{"sample", nil, []string{
			"2 shards, 1.4 MB", "img000000 of testdata/sample/shard-00000.tar", "json, label.png, probs.npy",
			"float16 (<f2) [6 80 120], probabilities of 6 classes", "6, from the prediction",
			"255, on ", "metadata fields: city, weather", "nothing was evaluated"}},
		{"paired", []string{"--prediction_glob=" + filepath.Join(paired, "*.probs.npy"), "--label_glob=" + filepath.Join(paired, "*.png")}, []string{
			"2 prediction files and 2 label files", "a: " + filepath.Join(paired, "a.probs.npy") + " and " + filepath.Join(paired, "a.png"),
			"float32 (<f4) [3 4 5], probabilities of 3 classes", "values 0 1 2 255", "255, on 1 pixels", "metadata fields: none"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			r := runCLI(ctx, t, bins.cli, root, nil, append(tt.args, "--check", "--output="+out)...)
			if r.code != 0 {
				t.Errorf("exit %d, want 0", r.code)
			}
			for _, want := range tt.want {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks %q", want)
				}
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("--check created %s: %v", out, err)
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			}
		})
	}
}

// TestHelp checks that --help starts with segeval and lists its flags
// before any of Beam's.
func TestHelp(t *testing.T) {
	bins := buildBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := runCLI(ctx, t, bins.cli, t.TempDir(), nil, "--help")
	help := r.stderr
	if r.code != 0 || !strings.HasPrefix(help, "Usage: segeval") {
		t.Fatalf("--help: exit %d, output starts %q", r.code, help[:min(len(help), 40)])
	}
	own, beam := strings.Index(help, "  -input "), strings.Index(help, "  -runner ")
	if own < 0 || beam < own || strings.Index(help, runnerTitle) > beam {
		t.Errorf("--help lists -input at %d, Beam's -runner at %d, after %q:\n%s", own, beam, runnerTitle, help)
	}
}
