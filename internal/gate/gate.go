// Package gate decides whether a run is good enough to ship, by comparing its
// metrics with a baseline run's and with absolute floors, and keeps the
// per-model history that nightly runs append to. Thresholds are in the units
// of metrics.json: fractions, so 0.01 is one point of mIoU.
package gate

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/segeval/segeval/internal/results"
)

// File names written by the gate, beside metrics.json and under the history
// prefix.
const (
	ValidationFile = "validation.json"
	BlessedFile    = "BLESSED"
	NotBlessedFile = "NOT_BLESSED"
	HistoryFile    = "history.jsonl"
	LatestFile     = "LATEST"
	// Latest as a baseline means the model's last blessed run.
	Latest = "latest"
)

// Thresholds are the gate's limits; a nil limit is not applied.
type Thresholds struct {
	MaxMIoUDrop     *float64 // baseline miou - candidate miou
	MaxLossIncrease *float64 // candidate - baseline lovasz_softmax.per_image_mean
	MaxClassIoUDrop *float64 // per class, baseline iou - candidate iou
	MinMIoU         *float64 // floor on the candidate's miou
	// Basis says what the three limits on a change from the baseline are
	// held to (see Basis); "" is DefaultBasis. Floors are always held to
	// the value.
	Basis Basis
}

// Any reports whether some threshold is set.
func (t Thresholds) Any() bool {
	return t.MaxMIoUDrop != nil || t.MaxLossIncrease != nil || t.MaxClassIoUDrop != nil || t.MinMIoU != nil
}

// Check is one comparison of validation.json.
type Check struct {
	Name      string   `json:"name"`
	Baseline  *float64 `json:"baseline"`
	Candidate *float64 `json:"candidate"`
	Delta     *float64 `json:"delta"` // candidate - baseline
	// CI95 is the paired 95% interval of the change, when the run was
	// compared with this baseline, and Basis what the limit was applied to
	// (see Basis): a check asked to use an interval it does not have falls
	// back to the point delta and says so.
	CI95      *[2]float64 `json:"ci95,omitempty"`
	Basis     Basis       `json:"basis,omitempty"`
	Threshold float64     `json:"threshold"`
	OK        bool        `json:"ok"`
}

// Validation is validation.json.
type Validation struct {
	RunID string `json:"run_id"`
	OK    bool   `json:"ok"`
	// MissingBaseline is true when there is no baseline to compare with:
	// the Latest baseline before the model's first blessed run, or a gate of
	// floors only. Then only floors apply.
	MissingBaseline bool    `json:"missing_baseline"`
	Baseline        string  `json:"baseline,omitempty"` // path of the baseline metrics.json
	BaselineRunID   string  `json:"baseline_run_id,omitempty"`
	Checks          []Check `json:"checks"`
}

// Compatible returns an error when the two runs cannot be compared: other
// classes, ignore value, class set or mode give numbers of another kind.
func Compatible(candidate, baseline results.Metrics) error {
	var errs []error
	if candidate.NumClasses != baseline.NumClasses {
		errs = append(errs, fmt.Errorf("%d classes against the baseline's %d", candidate.NumClasses, baseline.NumClasses))
	}
	if ignore(candidate) != ignore(baseline) {
		errs = append(errs, fmt.Errorf("ignore index %s against the baseline's %s", ignore(candidate), ignore(baseline)))
	}
	if candidate.ClassSet != baseline.ClassSet {
		errs = append(errs, fmt.Errorf("class set %s against the baseline's %s", candidate.ClassSet, baseline.ClassSet))
	}
	if candidate.Mode != baseline.Mode {
		errs = append(errs, fmt.Errorf("mode %s against the baseline's %s", candidate.Mode, baseline.Mode))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("the baseline was computed differently: %w", err)
	}
	return nil
}

func ignore(m results.Metrics) string {
	if m.IgnoreIndex == nil {
		return "none"
	}
	return strconv.Itoa(*m.IgnoreIndex)
}

// Evaluate compares a candidate run with its baseline (nil when there is
// none yet) under the thresholds. A metric the candidate cannot define
// (no mIoU at all) fails its check: a gate must not pass for want of data.
func Evaluate(candidate results.Metrics, baseline *results.Metrics, th Thresholds) (Validation, error) {
	v := Validation{RunID: candidate.RunID, OK: true, MissingBaseline: baseline == nil, Checks: []Check{}}
	if baseline != nil {
		if err := Compatible(candidate, *baseline); err != nil {
			return Validation{}, err
		}
		v.BaselineRunID = baseline.RunID
	}
	add := func(c Check) {
		v.Checks = append(v.Checks, c)
		v.OK = v.OK && c.OK
	}
	if th.MinMIoU != nil {
		add(Check{Name: "min_miou", Candidate: candidate.MIoU, Threshold: *th.MinMIoU,
			OK: candidate.MIoU != nil && *candidate.MIoU >= *th.MinMIoU})
	}
	if baseline == nil {
		return v, nil
	}
	basis, err := th.Basis.resolve()
	if err != nil {
		return Validation{}, err
	}
	// The paired intervals, when the run was compared with this baseline.
	cmp := candidate.Comparison
	if cmp != nil && cmp.BaselineRunID != baseline.RunID {
		cmp = nil
	}
	interval := func(d func(*results.Comparison) *[2]float64) *[2]float64 {
		if cmp == nil {
			return nil
		}
		return d(cmp)
	}
	if th.MaxMIoUDrop != nil {
		ci := interval(func(c *results.Comparison) *[2]float64 { return c.MIoUDelta.CI95 })
		add(drop("max_miou_drop", baseline.MIoU, candidate.MIoU, *th.MaxMIoUDrop, basis, ci))
	}
	if th.MaxLossIncrease != nil {
		ci := interval(func(c *results.Comparison) *[2]float64 { return c.PerImageLossDelta.CI95 })
		add(rise("max_loss_increase", perImageLoss(*baseline), perImageLoss(candidate), *th.MaxLossIncrease, basis, ci))
	}
	if th.MaxClassIoUDrop != nil {
		// Classes are matched by id, as the report matches them, not by
		// their place in the list.
		base := map[int]results.Class{}
		for _, b := range baseline.Classes {
			base[b.ID] = b
		}
		for _, c := range candidate.Classes {
			b, ok := base[c.ID]
			if !ok || b.IoU == nil {
				continue // nothing to hold the class to
			}
			ci := interval(func(cmp *results.Comparison) *[2]float64 { return classInterval(cmp, c.ID) })
			add(drop(fmt.Sprintf("max_class_iou_drop/%d %s", c.ID, c.Name), b.IoU, c.IoU, *th.MaxClassIoUDrop, basis, ci))
		}
	}
	return v, nil
}

// classInterval is the paired interval of class id's IoU change, if any.
func classInterval(cmp *results.Comparison, id int) *[2]float64 {
	for _, c := range cmp.Classes {
		if c.ID == id {
			return c.IoUDelta.CI95
		}
	}
	return nil
}

// drop checks that a higher-is-better metric fell by at most limit.
func drop(name string, base, cand *float64, limit float64, basis Basis, ci *[2]float64) Check {
	return compare(name, base, cand, limit, basis, ci, -1)
}

// rise checks that a lower-is-better metric rose by at most limit.
func rise(name string, base, cand *float64, limit float64, basis Basis, ci *[2]float64) Check {
	return compare(name, base, cand, limit, basis, ci, +1)
}

// compare fills a check of a change whose worse direction is the sign
// worse (-1: a drop is worse, +1: a rise). Without a baseline value there
// is nothing to hold the candidate to, and it passes; a candidate that lost
// a value the baseline had fails.
func compare(name string, base, cand *float64, limit float64, basis Basis, ci *[2]float64, worse float64) Check {
	c := Check{Name: name, Baseline: base, Candidate: cand, Threshold: limit, OK: base == nil}
	if base == nil || cand == nil {
		return c
	}
	d := *cand - *base
	c.Delta = &d
	// past reports whether a change is worse than the limit allows.
	past := func(change float64) bool { return worse*change > limit }
	c.CI95 = ci
	if ci == nil || basis == Point {
		c.Basis, c.OK = Point, !past(d)
		return c
	}
	c.Basis = basis
	// The interval's ends, nearest to no change and worse, in the worse
	// direction.
	worseEnd, nearEnd := ci[0], ci[1]
	if worse > 0 {
		worseEnd, nearEnd = ci[1], ci[0]
	}
	switch basis {
	case Significant:
		// Fails when the change is past the limit and worse than no
		// change at all with 95% confidence (the interval excludes 0 on
		// the worse side).
		c.OK = !(past(d) && worse*nearEnd > 0)
	case Bound:
		c.OK = !past(worseEnd)
	}
	return c
}

func perImageLoss(m results.Metrics) *float64 {
	switch {
	case m.LovaszSoftmax != nil:
		return m.LovaszSoftmax.PerImageMean
	case m.LovaszHinge != nil:
		return m.LovaszHinge.PerImageMean
	}
	return nil
}
