package transforms

import (
	"reflect"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/segeval/segeval/internal/evaluate"
)

func init() {
	beam.RegisterType(reflect.TypeOf((*mergeAccumulatorsFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*mergeTalliesFn)(nil)).Elem())
	// The accumulators cross the shuffle in their own compact encoding
	// (sparse, varints): Beam's schema coder would write every histogram
	// bin and replicate in full, about ten times the bytes at 150 classes.
	beam.RegisterCoder(reflect.TypeOf((*evaluate.Accumulator)(nil)), encodeAccumulator, decodeAccumulator)
	beam.RegisterCoder(reflect.TypeOf((*evaluate.Tally)(nil)), encodeTally, decodeTally)
}

func encodeAccumulator(a *evaluate.Accumulator) ([]byte, error) { return a.MarshalBinary() }

func decodeAccumulator(data []byte) (*evaluate.Accumulator, error) {
	a := new(evaluate.Accumulator)
	return a, a.UnmarshalBinary(data)
}

func encodeTally(t *evaluate.Tally) ([]byte, error) { return t.MarshalBinary() }

func decodeTally(data []byte) (*evaluate.Tally, error) {
	t := new(evaluate.Tally)
	return t, t.UnmarshalBinary(data)
}

// MergeAccumulators merges the partial accumulators of the evaluation (one
// per bundle) into one. Runners that lift combines (prism, Dataflow) merge
// them on each worker before the shuffle, so what crosses it is one
// accumulator per worker bundle, not per shard or image. An input without
// images yields an empty PCollection.
func MergeAccumulators(s beam.Scope, partials beam.PCollection) beam.PCollection {
	s = s.Scope("transforms.MergeAccumulators")
	return beam.Combine(s, &mergeAccumulatorsFn{}, partials)
}

// MergeSlices merges the partial slice tallies (KV<slice key,
// *evaluate.Tally>, one per slice and bundle) into one per slice.
func MergeSlices(s beam.Scope, slices beam.PCollection) beam.PCollection {
	s = s.Scope("transforms.MergeSlices")
	return beam.CombinePerKey(s, &mergeTalliesFn{}, slices)
}

type mergeAccumulatorsFn struct{}

func (mergeAccumulatorsFn) MergeAccumulators(a, b *evaluate.Accumulator) (*evaluate.Accumulator, error) {
	if err := a.Merge(b); err != nil {
		return nil, err
	}
	return a, nil
}

type mergeTalliesFn struct{}

func (mergeTalliesFn) MergeAccumulators(a, b *evaluate.Tally) (*evaluate.Tally, error) {
	if err := a.Merge(b); err != nil {
		return nil, err
	}
	return a, nil
}
