// Package lovasz computes the Lovász-Softmax loss, the Lovász hinge and the
// segmentation counts behind IoU for one image at a time, and merges them into
// dataset-level metrics.
//
// Definitions follow Berman, Rannen Triki and Blaschko, "The Lovász-Softmax
// loss" (CVPR 2018) and the reference implementation, with its known defects
// fixed: the class set is compared by value, a single valid pixel works, and an
// image without valid pixels has no loss instead of an empty tensor.
//
// The package is pure Go with no I/O: callers hand it decoded slices and shapes.
// Images are laid out classes first: scores[c*P+i] is class c at pixel i, with
// P = H*W pixels in row-major order.
//
// Per-image losses come from a binned "moment histogram" (counts and sums of
// the errors per bin) rather than a sort. The loss depends only on the multiset
// of (error, foreground) pairs, and within one bin the unknown order moves the
// value by a computable amount; when that bound exceeds Options.Tolerance the
// class is binned again four times finer, and only then sorted. See bins.go
// and softmax.go; histogram.go holds the dataset-level histogram.
package lovasz

import (
	"errors"
	"fmt"
	"math"
)

// ClassMode selects the classes a Lovász-Softmax loss averages over.
type ClassMode int

const (
	// Present averages over classes that have at least one valid pixel in the
	// labels (the reference's default).
	Present ClassMode = iota
	// All averages over every class in [0, C); an absent class costs its
	// largest probability.
	All
	// List averages over the class ids in ClassSet.IDs.
	List
)

// ClassSet is the set of classes a loss is averaged over.
type ClassSet struct {
	Mode ClassMode
	IDs  []int // used when Mode is List
}

// String renders the set as the flag syntax parses it: "present", "all" or
// "0,3,7".
func (s ClassSet) String() string {
	switch s.Mode {
	case Present:
		return "present"
	case All:
		return "all"
	}
	out := ""
	for i, id := range s.IDs {
		if i > 0 {
			out += ","
		}
		out += fmt.Sprint(id)
	}
	return out
}

// DefaultTolerance is the largest per-class error bound the histogram path may
// report before the class is recomputed exactly.
const DefaultTolerance = 1e-7

// Options configures a per-image evaluation.
type Options struct {
	Classes ClassSet
	// Ignore is the label value of pixels left out of every statistic, when
	// HasIgnore is set.
	Ignore    int
	HasIgnore bool
	// Tolerance bounds the error the histogram path may leave per class;
	// 0 means DefaultTolerance, a negative value forces the exact sort path.
	Tolerance float64
}

func (o Options) tolerance() float64 {
	if o.Tolerance == 0 {
		return DefaultTolerance
	}
	return o.Tolerance
}

// ErrBadInput marks every error caused by the input values or shapes rather
// than by the package; test with errors.Is.
var ErrBadInput = errors.New("bad input")

func badInput(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadInput, fmt.Sprintf(format, args...))
}

// checkShape verifies that scores hold classes*height*width values and labels
// height*width.
func checkShape(scores []float32, labels []int32, classes, height, width int) error {
	if height <= 0 || width <= 0 {
		return badInput("image size %dx%d is empty", height, width)
	}
	p := height * width
	if len(labels) != p {
		return badInput("labels hold %d values, want %d (%dx%d)", len(labels), p, height, width)
	}
	if len(scores) != classes*p {
		return badInput("scores hold %d values, want %d (%d classes x %dx%d)", len(scores), classes*p, classes, height, width)
	}
	return nil
}

// checkClassSet validates explicit class ids against the number of classes.
func checkClassSet(s ClassSet, classes int) error {
	if s.Mode != List {
		return nil
	}
	if len(s.IDs) == 0 {
		return badInput("the class list is empty")
	}
	for _, id := range s.IDs {
		if id < 0 || id >= classes {
			return badInput("class %d of the class list is outside [0, %d)", id, classes)
		}
	}
	return nil
}

// pixelAt formats pixel i of a width-wide image as "(row, col)".
func pixelAt(i, width int) string {
	return fmt.Sprintf("(%d, %d)", i/width, i%width)
}

// finite reports whether f is neither NaN nor infinite.
func finite(f float32) bool {
	return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0)
}
