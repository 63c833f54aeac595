package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/segeval/segeval/internal/gate"
	"github.com/segeval/segeval/internal/npy"
	"github.com/segeval/segeval/internal/npz"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/shard"
	"github.com/segeval/segeval/internal/storage"
)

// Checks before launch. What can be checked on the launching machine is
// checked there, so that a mistake fails in seconds, before any job starts,
// rather than as a failed job minutes later on a remote runner.

// gcsCheckTimeout bounds a check against Cloud Storage: where the launching
// machine cannot reach the bucket (no credentials, no network), the check
// is skipped and the job, which may run where the bucket is reachable,
// finds out for itself.
const gcsCheckTimeout = 20 * time.Second

// A NoMatchError is an input pattern that matches no file: a typo in a
// nightly job must not pass as an empty evaluation.
type NoMatchError struct {
	Pattern string
}

func (e *NoMatchError) Error() string {
	return fmt.Sprintf("input pattern %s matches no file", e.Pattern)
}

// An UnreachableError is a check that could not be made because the
// storage it needs did not answer; the run itself may still succeed.
type UnreachableError struct {
	Path string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("could not check %s: %v", e.Path, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Inputs are the files a run would read.
type Inputs struct {
	// Shards are the matched tar shards, or the prediction files of a
	// paired layout, sorted by path.
	Shards []storage.Object
	// Labels are the label files of a paired layout.
	Labels []storage.Object
}

// Bytes is the size of all the inputs.
func (in Inputs) Bytes() int64 {
	var n int64
	for _, o := range slices.Concat(in.Shards, in.Labels) {
		n += o.Size
	}
	return n
}

// MatchInputs matches the input patterns of cfg as the run would. A pattern
// that matches nothing is a *NoMatchError; a gs:// pattern whose bucket
// does not answer is an *UnreachableError.
func MatchInputs(ctx context.Context, cfg Config) (Inputs, error) {
	store := storage.New(cfg.Storage)
	defer store.Close()
	var in Inputs
	var err error
	if cfg.Paired != (PairedInputs{}) {
		if in.Shards, err = match(ctx, store, []string{cfg.Paired.Predictions}); err != nil {
			return in, err
		}
		in.Labels, err = match(ctx, store, []string{cfg.Paired.Labels})
		return in, err
	}
	in.Shards, err = match(ctx, store, cfg.Inputs)
	return in, err
}

// match returns the files the patterns match, each once, sorted by path.
func match(ctx context.Context, store *storage.Store, patterns []string) ([]storage.Object, error) {
	seen := map[string]storage.Object{}
	for _, p := range patterns {
		objs, err := matchOne(ctx, store, p)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			seen[o.Path] = o
		}
	}
	out := slices.Collect(maps.Values(seen))
	slices.SortFunc(out, func(a, b storage.Object) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// matchOne matches one pattern, within gcsCheckTimeout on Cloud Storage.
func matchOne(ctx context.Context, store *storage.Store, pattern string) ([]storage.Object, error) {
	gcs := storage.IsGCS(pattern)
	if gcs {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, gcsCheckTimeout)
		defer cancel()
	}
	objs, err := store.Match(ctx, pattern)
	switch {
	case errors.Is(err, fs.ErrNotExist): // no such bucket
		return nil, &NoMatchError{Pattern: pattern}
	case err != nil && gcs && !errors.Is(err, path.ErrBadPattern):
		return nil, &UnreachableError{Path: pattern, Err: err}
	case err != nil:
		return nil, fmt.Errorf("input pattern %s: %w", pattern, err)
	case len(objs) == 0:
		return nil, &NoMatchError{Pattern: pattern}
	}
	return objs, nil
}

// CheckBaseline reads the gate's baseline, when there is one, and returns
// an error naming its path when it is missing or was computed with settings that make the
// run's numbers incomparable with it (mode, class set, ignore value, or the
// number of classes when cfg fixes it). With gate.Latest and no blessed run
// yet there is nothing to check.
func CheckBaseline(ctx context.Context, cfg Config) error {
	path := cfg.Gate.Baseline
	if path == "" {
		return nil
	}
	store := storage.New(cfg.Storage)
	defer store.Close()
	if path == gate.Latest {
		latest, ok, err := gate.ReadLatest(ctx, store, cfg.History.Dir())
		if err != nil || !ok {
			return err
		}
		path = storage.Join(latest.Output, results.MetricsFile)
	}
	data, err := store.ReadFile(ctx, path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s does not exist", path)
	}
	if err != nil {
		return err
	}
	var base results.Metrics
	if err := json.Unmarshal(data, &base); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	cand := results.Metrics{
		Mode:       string(cfg.Eval.Mode),
		ClassSet:   cfg.Eval.ClassSet.String(),
		NumClasses: cfg.Eval.Classes,
	}
	if cand.NumClasses == 0 {
		cand.NumClasses = base.NumClasses // known only once the data is read
	}
	if cfg.Eval.HasIgnore {
		cand.IgnoreIndex = &cfg.Eval.Ignore
	}
	if err := gate.Compatible(cand, base); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Inspection is what a run would read: its inputs and what the first sample
// of the first input holds.
type Inspection struct {
	Inputs Inputs
	// File is the input the sample was read from: a shard, or the
	// prediction file of a pair.
	File string
	// LabelFile is the label file of a pair ("" for a shard).
	LabelFile string
	Key       string
	// Fields are the sample's fields (label.png, probs.npy, json...).
	Fields []string
	// Prediction is the field the prediction was read from and
	// PredictionShape and PredictionType its array's shape and element
	// type as stored (a PNG is reported as its decoded size, "png").
	Prediction      string
	PredictionShape []int
	PredictionType  string
	// Label is the label's field, LabelType its stored element type.
	Label     string
	LabelType string
	// Image is the decoded sample: size, class count, label values.
	Image *sample.Image
	// LabelValues are the distinct raw label values of the sample, sorted,
	// with their pixel counts.
	LabelValues []LabelValue
	// MetaFields are the sample's metadata fields, which --slice_by can
	// name, sorted.
	MetaFields []string
}

// LabelValue is a raw label value and the number of pixels holding it.
type LabelValue struct {
	Value  int32
	Pixels int
}

// Inspect matches the inputs of cfg and decodes the first sample of the
// first input, as a run would, without evaluating it. It reads one sample:
// for a nightly job's set-up, not to validate a dataset.
func Inspect(ctx context.Context, cfg Config) (Inspection, error) {
	var ins Inspection
	if err := cfg.Validate(); err != nil {
		return ins, err
	}
	in, err := MatchInputs(ctx, cfg)
	if err != nil {
		return ins, err
	}
	ins.Inputs = in
	store := storage.New(cfg.Storage)
	defer store.Close()
	var s *shard.Sample
	if cfg.Paired != (PairedInputs{}) {
		s, err = firstPair(ctx, store, cfg, in, &ins)
	} else {
		s, err = firstSample(ctx, store, cfg, in.Shards[0].Path, &ins)
	}
	if err != nil {
		return ins, err
	}
	for f := range s.Fields {
		ins.Fields = append(ins.Fields, f)
	}
	slices.Sort(ins.Fields)
	for _, f := range ins.Fields {
		switch {
		case strings.HasPrefix(f, "label."):
			ins.Label = f
			_, ins.LabelType, _ = arrayInfo(f, s.Fields[f], cfg.Decode)
		case strings.HasPrefix(f, "probs.") || strings.HasPrefix(f, "logits.") || strings.HasPrefix(f, "pred."):
			ins.Prediction = f
			ins.PredictionShape, ins.PredictionType, err = arrayInfo(f, s.Fields[f], cfg.Decode)
			if err != nil {
				return ins, fmt.Errorf("%s, sample %s, member %s: %w", ins.File, s.Key, f, err)
			}
		}
	}
	var dec sample.Decoder
	img, err := dec.Decode(s, ins.File, cfg.Decode)
	if err != nil {
		return ins, err
	}
	ins.Image = img
	counts := map[int32]int{}
	for _, v := range img.Labels {
		counts[v]++
	}
	for v, n := range counts {
		ins.LabelValues = append(ins.LabelValues, LabelValue{Value: v, Pixels: n})
	}
	slices.SortFunc(ins.LabelValues, func(a, b LabelValue) int { return int(a.Value) - int(b.Value) })
	for k := range img.Meta {
		ins.MetaFields = append(ins.MetaFields, k)
	}
	slices.Sort(ins.MetaFields)
	return ins, nil
}

// firstSample reads the first sample of a tar shard.
func firstSample(ctx context.Context, store *storage.Store, cfg Config, file string, ins *Inspection) (*shard.Sample, error) {
	ins.File = file
	rc, err := store.Open(ctx, file)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	s, err := shard.NewReader(rc, file, shard.Limits{MaxMemberBytes: cfg.Decode.Limits.MaxMemberBytes}).Next()
	if err == io.EOF {
		return nil, fmt.Errorf("shard %s holds no sample", file)
	}
	if err != nil {
		return nil, err
	}
	ins.Key = s.Key
	return s, nil
}

// firstPair reads the first prediction file, by path, that has a label.
func firstPair(ctx context.Context, store *storage.Store, cfg Config, in Inputs, ins *Inspection) (*shard.Sample, error) {
	re, err := sample.CompileKeyRegex(cfg.Paired.KeyRegex)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{}
	for _, o := range in.Labels {
		if key, ok := sample.KeyOf(o.Path, re); ok {
			labels[key] = o.Path
		}
	}
	for _, o := range in.Shards {
		key, ok := sample.KeyOf(o.Path, re)
		if !ok || labels[key] == "" {
			continue
		}
		ins.File, ins.LabelFile, ins.Key = o.Path, labels[key], key
		pred, err := store.ReadFile(ctx, o.Path)
		if err != nil {
			return nil, err
		}
		label, err := store.ReadFile(ctx, labels[key])
		if err != nil {
			return nil, err
		}
		return sample.PairedSample(key, labels[key], label, o.Path, pred), nil
	}
	return nil, fmt.Errorf("no prediction file of %s has a label file of %s with the same key", cfg.Paired.Predictions, cfg.Paired.Labels)
}

// arrayInfo returns the stored shape and element type of a field: an npy
// array's header, the array of an npz archive, or "png".
func arrayInfo(field string, data []byte, opt sample.Options) ([]int, string, error) {
	switch {
	case strings.HasSuffix(field, ".png"):
		return nil, "png", nil
	case strings.HasSuffix(field, ".npz"):
		arr, _, err := npz.Member(data, opt.NPZKey, opt.Limits.MaxMemberBytes)
		if err != nil {
			return nil, "", err
		}
		data = arr
	}
	h, _, err := npy.ReadHeader(bytes.NewReader(data))
	if err != nil {
		return nil, "", err
	}
	return h.Shape, h.Descr, nil
}
