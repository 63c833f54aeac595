package gate

import "fmt"

// Basis is what a limit on a change from the baseline (max_miou_drop,
// max_loss_increase, max_class_iou_drop) is held to. A run compared with
// its baseline (metrics.json's comparison) has a paired 95% bootstrap
// interval for each change: both runs weigh an image the same way in each
// bootstrap replicate, so the image-to-image noise the two runs share
// cancels, and the interval is much narrower than either run's own.
type Basis string

const (
	// Significant fails a check only when the change is past the limit
	// and its paired interval excludes zero on the worse side: the run
	// is worse than the baseline with 95% confidence (a one-sided test at
	// 2.5%), not merely by a noisy point estimate. It is the default: a
	// nightly gate on a test set of a few hundred images would otherwise
	// fail on noise alone, and a failure that comes back whenever it is
	// re-run on other images teaches people to ignore it.
	Significant Basis = "significant"
	// Point holds the limit to the point change alone, as gates without
	// intervals do.
	Point Basis = "point"
	// Bound holds the limit to the interval's worse end: the run passes
	// only when the data show the change is within the limit with 95%
	// confidence (a non-inferiority test with the limit as its margin).
	// It is the strict choice, for releases: too few images fail it.
	Bound Basis = "bound"
)

// DefaultBasis is the basis of Thresholds whose Basis is "".
const DefaultBasis = Significant

// Bases lists the valid bases, default first.
var Bases = []Basis{Significant, Point, Bound}

// resolve returns the basis to apply: the default for "", an error for an
// unknown one.
func (b Basis) resolve() (Basis, error) {
	switch b {
	case "":
		return DefaultBasis, nil
	case Significant, Point, Bound:
		return b, nil
	}
	return "", fmt.Errorf("unknown gate basis %q: want significant, point or bound", string(b))
}

// Validate reports an unknown basis; "" is valid (the default).
func (b Basis) Validate() error {
	_, err := b.resolve()
	return err
}
