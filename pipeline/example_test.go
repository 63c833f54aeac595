package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/lovasz"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/pipeline"
)

// Build composes the whole evaluation into a pipeline that any Beam runner
// executes; here prism, Beam's local runner, evaluates the sample dataset
// bundled with the repository and the example reads the metrics.json it
// publishes.
func ExampleBuild() {
	out, err := os.MkdirTemp("", "segeval-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(out)

	cfg := pipeline.Config{
		Inputs: []string{"../testdata/sample/*.tar"},
		Output: out,
		RunID:  "example",
		Eval: evaluate.Options{
			Mode:          evaluate.Multiclass,
			ClassSet:      lovasz.ClassSet{Mode: lovasz.Present},
			Ignore:        255,
			HasIgnore:     true,
			BinsPerOctave: lovasz.DefaultBinsPerOctave,
		},
		Decode: sample.Options{Limits: sample.Limits{
			MaxPixels:      pipeline.DefaultMaxPixels,
			MaxClasses:     pipeline.DefaultMaxClasses,
			MaxMemberBytes: pipeline.DefaultMaxMemberBytes,
		}},
	}
	p, s := beam.NewPipelineWithRoot()
	if err := pipeline.Build(s, cfg); err != nil {
		log.Fatal(err)
	}
	if _, err := beam.Run(context.Background(), "prism", p); err != nil {
		log.Fatal(err)
	}

	data, err := os.ReadFile(filepath.Join(out, results.MetricsFile))
	if err != nil {
		log.Fatal(err)
	}
	var m results.Metrics
	if err := json.Unmarshal(data, &m); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d images, %d classes, mIoU %.4f\n", m.Images, len(m.Classes), *m.MIoU)
	// Output:
	// 12 images, 6 classes, mIoU 0.6401
}
