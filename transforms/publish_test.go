package transforms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/gate"
	"github.com/segeval/segeval/internal/lovasz"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/shard"
	"github.com/segeval/segeval/internal/storage"
	"github.com/segeval/segeval/internal/synth"
)

// publishBackends returns an empty local folder and an empty gs:// prefix
// on a fake Cloud Storage server, to run the same test on both.
func publishBackends(t *testing.T) map[string]string {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "evals"})
	t.Setenv("STORAGE_EMULATOR_HOST", srv.URL())
	return map[string]string{"local": t.TempDir(), "gcs": "gs://evals/root"}
}

// evaluated evaluates n synthetic images in process and writes their rows
// as two parts under spec's temporary prefix, as WriteParts would: it
// returns the last stage's side inputs.
func evaluated(t *testing.T, store *storage.Store, spec OutputSpec, n int) sideInputs {
	t.Helper()
	ev := evaluate.NewEvaluator(testConfig().Eval)
	opt := synth.Options{Classes: testClasses, Height: 8, Width: 12, Regions: 3, Ignore: 255, Confidence: 2}
	var dec sample.Decoder
	lines := [2][]string{}
	var worst []evaluate.Result
	for i := range n {
		im := synth.NewImage(fmt.Sprintf("k%03d", i), opt, uint64(i+1))
		img, err := dec.Decode(synthSample(t, im), "s.tar", testConfig().Decode)
		if err != nil {
			t.Fatal(err)
		}
		res, err := ev.Evaluate(img, "s.tar")
		if err != nil {
			t.Fatal(err)
		}
		worst = append(worst, res)
		line, err := json.Marshal(results.NewImageRow(spec.RunID, evaluate.Multiclass, res))
		if err != nil {
			t.Fatal(err)
		}
		lines[i%2] = append(lines[i%2], string(line)) // keys ascend: each part is sorted
	}
	acc, _, err := ev.Take()
	if err != nil {
		t.Fatal(err)
	}
	in := sideInputs{acc: acc, slices: map[string]*evaluate.Tally{}, worst: worst,
		shards: []results.Shard{{Path: "s.tar"}}, planned: PlanCount{Files: 1, Samples: int64(n)}}
	for i, part := range lines {
		path := storage.Join(spec.TempDir(), "parts", fmt.Sprintf("per_image-%d.jsonl", i))
		if err := store.WriteFile(t.Context(), path, []byte(strings.Join(part, "\n")+"\n")); err != nil {
			t.Fatal(err)
		}
		in.parts = append(in.parts, results.Part{File: results.PerImageFile, Path: path, Lines: int64(len(part))})
	}
	return in
}

// synthSample packs a synthetic image as the sample a shard would hold.
func synthSample(t *testing.T, im synth.Image) *shard.Sample {
	t.Helper()
	var b strings.Builder
	sw := synth.NewShardWriter(&b)
	if err := sw.Write(im); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	smp, err := shard.NewReader(strings.NewReader(b.String()), "s.tar", shard.Limits{MaxMemberBytes: 1 << 20}).Next()
	if err != nil {
		t.Fatal(err)
	}
	return smp
}

func testSpec(root, runID string) OutputSpec {
	return OutputSpec{
		Path: storage.Join(root, "runs", runID), RunID: runID, Date: "2026-11-30", WorstK: 3,
		Settings:   results.Settings{Mode: evaluate.Multiclass, ClassSet: lovasz.ClassSet{Mode: lovasz.Present}, Ignore: 255, HasIgnore: true},
		Provenance: results.Provenance{StartedAt: "2026-11-30T03:00:00Z"},
		History:    HistorySpec{Prefix: storage.Join(root, "history"), Model: "m"},
	}
}

// TestPublishTwice publishes the same run twice, as a runner retrying the
// last stage would: the second time changes nothing, and history and
// LATEST record the run once.
func TestPublishTwice(t *testing.T) {
	for name, root := range publishBackends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			store := storage.New(storage.Options{})
			defer store.Close()
			spec := testSpec(root, "run-1")
			in := evaluated(t, store, spec, 6)
			p := &publisher{spec: spec, store: store}
			if err := p.publish(ctx, in); err != nil {
				t.Fatal(err)
			}
			first := readAll(t, store, spec.Path)
			if got := first[results.SuccessFile]; got != "run-1\n" {
				t.Fatalf("_SUCCESS holds %q", got)
			}
			if rows := strings.Count(first[results.PerImageFile], "\n"); rows != 6 {
				t.Errorf("per_image.jsonl has %d rows, want 6", rows)
			}
			if tmp, _ := store.List(ctx, spec.TempDir()); len(tmp) != 0 {
				t.Errorf("temporary files left: %v", tmp)
			}

			// The retry finds _SUCCESS naming the run: it must not need
			// the parts (gone now) and must not touch the outputs.
			if err := p.publish(ctx, in); err != nil {
				t.Fatalf("retry: %v", err)
			}
			if again := readAll(t, store, spec.Path); fmt.Sprint(again) != fmt.Sprint(first) {
				t.Error("the retry changed the outputs")
			}
			history, err := gate.ReadHistory(ctx, store, spec.History.Dir())
			if err != nil || len(history) != 1 || history[0].RunID != "run-1" {
				t.Errorf("history %+v (%v), want run-1 once", history, err)
			}
			latest, ok, err := gate.ReadLatest(ctx, store, spec.History.Dir())
			if err != nil || !ok || latest.RunID != "run-1" || latest.Output != spec.Path {
				t.Errorf("LATEST %+v %v %v", latest, ok, err)
			}
		})
	}
}

// TestPublishFailedGateTwice fails the job on a regression, twice: the
// retry fails again from the verdict already written, without a second
// history line, and LATEST does not move to the regression.
func TestPublishFailedGateTwice(t *testing.T) {
	for name, root := range publishBackends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			store := storage.New(storage.Options{})
			defer store.Close()
			spec := testSpec(root, "run-2")
			floor := 0.999
			spec.Gate = GateSpec{Thresholds: gate.Thresholds{MinMIoU: &floor}, FailJob: true}
			in := evaluated(t, store, spec, 4)
			p := &publisher{spec: spec, store: store}
			for attempt := range 2 {
				err := p.publish(ctx, in)
				if err == nil || !strings.Contains(err.Error(), "regression gate failed: min_miou") {
					t.Fatalf("attempt %d: %v, want the gate's failure", attempt, err)
				}
			}
			files := readAll(t, store, spec.Path)
			if _, ok := files[gate.NotBlessedFile]; !ok || files[results.SuccessFile] != "run-2\n" {
				t.Errorf("outputs %v: want NOT_BLESSED and _SUCCESS", keys(files))
			}
			history, err := gate.ReadHistory(ctx, store, spec.History.Dir())
			if err != nil || len(history) != 1 || history[0].Blessed {
				t.Errorf("history %+v (%v), want one unblessed line", history, err)
			}
			if _, ok, err := gate.ReadLatest(ctx, store, spec.History.Dir()); ok || err != nil {
				t.Errorf("LATEST set by a regression (%v)", err)
			}
		})
	}
}

// TestPublishTooManyRejections fails the run with rejected.jsonl alone.
func TestPublishTooManyRejections(t *testing.T) {
	for name, root := range publishBackends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			store := storage.New(storage.Options{})
			defer store.Close()
			spec := testSpec(root, "run-3")
			spec.Policy = Policy{MaxRejected: 1}
			in := evaluated(t, store, spec, 2)
			path := storage.Join(spec.TempDir(), "parts", "rejected-0.jsonl")
			data := `{"key":"a","shard":"s.tar","reason":"bad label"}` + "\n" + `{"key":"b","shard":"s.tar","reason":"truncated"}` + "\n"
			if err := store.WriteFile(ctx, path, []byte(data)); err != nil {
				t.Fatal(err)
			}
			in.parts = append(in.parts, results.Part{File: results.RejectedFile, Path: path, Lines: 2})
			in.planned.Samples += 2
			for attempt := range 2 { // the second is a runner's retry, after the parts are gone
				err := (&publisher{spec: spec, store: store}).publish(ctx, in)
				if err == nil || !strings.Contains(err.Error(), "2 samples rejected, more than --max_rejected=1 allows; the first: shard s.tar, sample a: bad label") {
					t.Fatalf("attempt %d: got %v", attempt, err)
				}
			}
			files := readAll(t, store, spec.Path)
			if len(files) != 1 || files[results.RejectedFile] != data {
				t.Errorf("outputs %v, want rejected.jsonl alone", keys(files))
			}
		})
	}
}

// TestPublishRefusesIncompleteRuns checks the plan's count against what
// reached the last stage.
func TestPublishRefusesIncompleteRuns(t *testing.T) {
	for _, tc := range []struct {
		name            string
		files           int
		images, rejects int64
		plan            PlanCount
		want            string
	}{
		{"complete", 2, 5, 1, PlanCount{Files: 2, Samples: 6}, ""},
		{"no file", 0, 0, 0, PlanCount{}, "no input file"},
		{"a shard not planned", 2, 5, 1, PlanCount{Files: 1, Samples: 6}, "1 of 2 input files"},
		{"samples missing", 2, 4, 1, PlanCount{Files: 2, Samples: 6}, "4 samples evaluated and 1 rejected, but 6 planned"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := complete(tc.files, tc.images, tc.rejects, tc.plan)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// readAll returns the files directly under prefix, by name.
func readAll(t *testing.T, store *storage.Store, prefix string) map[string]string {
	t.Helper()
	objs, err := store.List(t.Context(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, o := range objs {
		rel := strings.TrimPrefix(strings.TrimPrefix(o.Path, prefix), "/")
		if strings.Contains(rel, "/") || strings.HasPrefix(filepath.Base(rel), ".") {
			continue
		}
		data, err := store.ReadFile(context.Background(), o.Path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out[rel] = string(data)
	}
	return out
}

func keys(m map[string]string) []string {
	var k []string
	for name := range m {
		k = append(k, name)
	}
	return k
}
