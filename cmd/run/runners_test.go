package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/segeval/segeval/internal/results"
)

// sampleImages is the number of images in testdata/sample.
const sampleImages = 12

// TestPortableJobServer runs the sample through Beam's portable job API on a
// standalone prism job server, with the SDK harness in the CLI (LOOPBACK) and
// in workers started by a worker pool from the staged CLI binary (EXTERNAL,
// as on Flink), reading the shards from GCS there. Both must agree with the
// embedded runner.
func TestPortableJobServer(t *testing.T) {
	bins := buildBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root := repoRoot(t)

	gcs, env := fakeGCS(t, "bucket")
	shards, err := filepath.Glob(filepath.Join(root, "testdata", "sample", "*.tar"))
	if err != nil || len(shards) == 0 {
		t.Fatalf("sample shards: %v %v", shards, err)
	}
	for _, path := range shards {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		gcs.CreateObject(fakestorage.Object{
			ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "bucket", Name: "sample/" + filepath.Base(path)},
			Content:     data,
		})
	}

	jobPort := freePort(t)
	prism := startServer(t, "prism", exec.Command(bins.prism, "--job_port="+jobPort, "--serve_http=false"))
	endpoint := "localhost:" + jobPort
	prism.waitListening(ctx, t, endpoint)
	poolAddr, pool := startWorkerPool(ctx, t, bins.boot, env)

	sample := filepath.Join(root, "testdata", "sample", "*.tar")
	runs := []struct {
		name   string
		args   []string
		output string // local path or gs://bucket/...
	}{
		{name: "embedded", args: []string{"--input=" + sample}, output: filepath.Join(t.TempDir(), "embedded")},
		{name: "loopback", args: []string{"--input=" + sample,
			"--runner=universal", "--endpoint=" + endpoint, "--environment_type=LOOPBACK",
		}, output: filepath.Join(t.TempDir(), "loopback")},
		// The workers' /tmp is private: input and output are in GCS.
		{name: "external", args: []string{"--input=gs://bucket/sample/*.tar",
			"--runner=universal", "--endpoint=" + endpoint,
			"--environment_type=EXTERNAL", "--environment_config=" + poolAddr, "--worker_binary=" + bins.cli,
		}, output: "gs://bucket/runs/external"},
		// Without --worker_binary the CLI stages itself, as a launcher with
		// neither Go nor the source must (Beam would cross-compile).
		{name: "external, own binary", args: []string{"--input=gs://bucket/sample/*.tar",
			"--runner=universal", "--endpoint=" + endpoint,
			"--environment_type=EXTERNAL", "--environment_config=" + poolAddr,
		}, output: "gs://bucket/runs/external-own"},
	}
	// Runs agree on everything but their id, provenance and where they read
	// the shards from, which metrics.json also names (worst images...).
	shardDir := strings.NewReplacer(filepath.Dir(sample)+"/", "", "gs://bucket/sample/", "")
	var want string
	for i, run := range runs {
		// Outside the module, as on a launcher: Beam cannot cross-compile the
		// CLI from its source there.
		r := runCLI(ctx, t, bins.cli, t.TempDir(), env, append(run.args, "--output="+run.output)...)
		if r.code != 0 {
			t.Fatalf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", run.name, r.code, r.stdout, r.stderr)
		}
		var data []byte
		if name, ok := strings.CutPrefix(run.output, "gs://bucket/"); ok {
			obj, err := gcs.GetObject("bucket", name+"/"+results.MetricsFile)
			if err != nil {
				t.Fatalf("%s: %v", run.name, err)
			}
			data = obj.Content
		} else if data, err = os.ReadFile(filepath.Join(run.output, results.MetricsFile)); err != nil {
			t.Fatalf("%s: %v", run.name, err)
		}
		var m results.Metrics
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("%s: metrics.json: %v", run.name, err)
		}
		if m.Images != sampleImages || len(m.Provenance.Shards) != len(shards) {
			t.Errorf("%s: %d images from %d shards, want %d from %d", run.name, m.Images, len(m.Provenance.Shards), sampleImages, len(shards))
		}
		m.RunID, m.Provenance = "", results.Provenance{}
		normalized, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := shardDir.Replace(string(normalized)); i == 0 {
			want = got
		} else if got != want {
			t.Errorf("%s: metrics differ from the embedded run's:\n%s\nwant\n%s", run.name, got, want)
		}
	}
	// The EXTERNAL run really ran in the pool's workers.
	if out := pool.output(); !strings.Contains(out, "starting worker") {
		t.Errorf("the worker pool started no worker:\n%s", out)
	}
}

// TestDataflowDryRun translates the job for Dataflow without submitting it.
// The runner first checks the staging bucket: a fake GCS server answers.
func TestDataflowDryRun(t *testing.T) {
	bins := buildBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	gcs, env := fakeGCS(t, "bucket")
	// The CLI checks that the input pattern matches before it submits.
	gcs.CreateObject(fakestorage.Object{
		ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "bucket", Name: "sample/shard-00000.tar"},
		Content:     []byte("not read by a dry run"),
	})
	r := runCLI(ctx, t, bins.cli, repoRoot(t), env,
		"--runner=dataflow", "--dry_run",
		"--project=p", "--region=us-central1",
		"--temp_location=gs://bucket/tmp", "--staging_location=gs://bucket/staging",
		"--worker_binary="+bins.cli, "--num_workers=3",
		"--input=gs://bucket/sample/*.tar", "--output=gs://bucket/runs/dry")
	if r.code != 0 || strings.Contains(r.stderr, "panic") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "job submitted") {
		t.Errorf("stdout does not say the job was submitted:\n%s", r.stdout)
	}
	job, err := loggedJob(r.stderr)
	if err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, r.stderr)
	}
	if job.ProjectID != "p" || job.Type != "JOB_TYPE_BATCH" {
		t.Errorf("job of project %q, type %q; want p, JOB_TYPE_BATCH", job.ProjectID, job.Type)
	}
	pools := job.Environment.WorkerPools
	if len(pools) != 1 || pools[0].NumWorkers != 3 {
		t.Fatalf("worker pools %+v, want one of 3 workers", pools)
	}
	if pkgs := pools[0].Packages; len(pkgs) != 1 || pkgs[0].Name != "worker" ||
		!strings.HasPrefix(pkgs[0].Location, "gs://bucket/staging/") || !strings.HasSuffix(pkgs[0].Location, "/worker") {
		t.Errorf("worker packages %+v, want the worker binary staged under gs://bucket/staging/", pkgs)
	}
	opts := job.Environment.SDKPipelineOptions.GoOptions.Options
	for name, want := range map[string]string{"input": "gs://bucket/sample/*.tar", "output": "gs://bucket/runs/dry", "worker_binary": bins.cli} {
		if opts[name] != want {
			t.Errorf("pipeline option %s = %q, want %q", name, opts[name], want)
		}
	}
}

// dataflowJob is the part of a Dataflow job request the tests check.
type dataflowJob struct {
	ProjectID   string `json:"projectId"`
	Type        string `json:"type"`
	Environment struct {
		SDKPipelineOptions struct {
			GoOptions struct {
				Options map[string]string `json:"options"`
			} `json:"beam:option:go_options:v1"`
		} `json:"sdkPipelineOptions"`
		WorkerPools []struct {
			NumWorkers int `json:"numWorkers"`
			Packages   []struct {
				Name     string `json:"name"`
				Location string `json:"location"`
			} `json:"packages"`
		} `json:"workerPools"`
	} `json:"environment"`
}

// loggedJob finds the job a Dataflow dry run prints: a JSON document as the
// quoted msg of a log/slog text line.
func loggedJob(stderr string) (dataflowJob, error) {
	for line := range strings.Lines(stderr) {
		_, rest, ok := strings.Cut(line, " msg=")
		if !ok {
			continue
		}
		quoted, err := strconv.QuotedPrefix(rest)
		if err != nil {
			continue
		}
		msg, err := strconv.Unquote(quoted)
		if err != nil || !strings.HasPrefix(msg, "{") {
			continue
		}
		var job dataflowJob
		if err := json.Unmarshal([]byte(msg), &job); err == nil && job.ProjectID != "" {
			return job, nil
		}
	}
	return dataflowJob{}, errors.New("the dry run printed no Dataflow job")
}

// TestCLIBasics checks the CLI's contract: flags, exit codes and the output
// folder.
func TestCLIBasics(t *testing.T) {
	bins := buildBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root := repoRoot(t)

	// A baseline computed in binary mode, against the default multiclass.
	binary := filepath.Join(t.TempDir(), "metrics.json")
	if err := os.WriteFile(binary, []byte(`{"mode":"binary","num_classes":2,"class_set":"present","ignore_index":255}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// Runs that end before the pipeline: nothing may be written.
	flagTests := []struct {
		name     string
		args     []string
		wantCode int
		wantText string // in stdout or stderr
	}{
		{"version", []string{"--version"}, 0, "segeval " + version + "\n"},
		{"class set", []string{"--classes=x"}, 2, "--classes=x"},
		{"repeated class", []string{"--classes=0,0,1"}, 2, "class 0 appears more than once"},
		{"mode", []string{"--mode=foo"}, 2, "--mode=foo"},
		{"ignore index", []string{"--ignore_index=abc"}, 2, "--ignore_index=abc"},
		{"not a number", []string{"--num_classes=x"}, 2, "-num_classes"},
		{"unknown flag", []string{"--no_such_flag"}, 2, "-no_such_flag"},
		{"input matching nothing", []string{"--input=testdata/nope/*.tar"}, 2, "--input: testdata/nope/*.tar matches no file"},
		{"paired glob matching nothing", []string{"--prediction_glob=testdata/nope/*.npy", "--label_glob=testdata/sample/*.tar"}, 2, "--prediction_glob: testdata/nope/*.npy matches no file"},
		{"unreadable label map", []string{"--label_map=testdata/nope.json"}, 2, "--label_map"},
		{"unreadable class names", []string{"--class_names=testdata/nope.txt"}, 2, "--class_names"},
		{"missing baseline", []string{"--baseline=testdata/nope/metrics.json"}, 2, "testdata/nope/metrics.json does not exist"},
		{"incompatible baseline", []string{"--baseline=" + binary}, 2, "mode multiclass against the baseline's binary"},
	}
	for _, tt := range flagTests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			r := runCLI(ctx, t, bins.cli, root, nil, append(tt.args, "--output="+out)...)
			if r.code != tt.wantCode || !strings.Contains(r.stdout+r.stderr, tt.wantText) {
				t.Errorf("exit %d, want %d with %q\nstdout:\n%s\nstderr:\n%s", r.code, tt.wantCode, tt.wantText, r.stdout, r.stderr)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("%s was created: %v", out, err)
			}
		})
	}

	// Runs of the default input into one output folder, in order.
	out := filepath.Join(t.TempDir(), "out")
	steps := []struct {
		name     string
		args     []string
		wantCode int
		wantText string
		newRun   bool // metrics.json is from this run
	}{
		{"first run", nil, 0, "images", true},
		{"same output", nil, 2, "--overwrite", false},
		{"overwrite", []string{"--overwrite"}, 0, "images", true},
	}
	var runID string
	for _, step := range steps {
		r := runCLI(ctx, t, bins.cli, root, nil, append(step.args, "--output="+out)...)
		if r.code != step.wantCode || !strings.Contains(r.stdout+r.stderr, step.wantText) {
			t.Fatalf("%s: exit %d, want %d with %q\nstdout:\n%s\nstderr:\n%s", step.name, r.code, step.wantCode, step.wantText, r.stdout, r.stderr)
		}
		data, err := os.ReadFile(filepath.Join(out, results.MetricsFile))
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		var m results.Metrics
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("%s: metrics.json: %v", step.name, err)
		}
		if m.Images != sampleImages {
			t.Errorf("%s: %d images, want %d", step.name, m.Images, sampleImages)
		}
		if replaced := m.RunID != runID; replaced != step.newRun {
			t.Errorf("%s: metrics.json of run %s after run %s; want it replaced: %v", step.name, m.RunID, runID, step.newRun)
		}
		runID = m.RunID
	}
}
