package transforms

import (
	"context"

	"github.com/segeval/segeval/internal/gate"
	"github.com/segeval/segeval/internal/report"
	"github.com/segeval/segeval/internal/results"
)

// trend returns the model's history as the report shows it, nil when the
// run keeps none (no --history). The report is written before the run is
// recorded (that follows _SUCCESS), so this run's row is added here as it
// will be recorded: blessed unless the gate failed. A history that cannot
// be read fails the run, as recording the run into it would.
func (p *publisher) trend(ctx context.Context, m results.Metrics, baseline *results.Metrics, v *gate.Validation) (*report.History, error) {
	if p.spec.History.Prefix == "" {
		return nil, nil
	}
	rows, err := gate.ReadHistory(ctx, p.store, p.spec.History.Dir())
	if err != nil {
		return nil, err
	}
	// A run published again into the same prefix (--overwrite, same run
	// id) is drawn once, as it is now.
	var runs []gate.HistoryLine
	for _, r := range rows {
		if r.RunID != m.RunID {
			runs = append(runs, r)
		}
	}
	blessed := v == nil || v.OK
	h := &report.History{Runs: append(runs, gate.NewHistoryLine(m, p.spec.Date, p.spec.Path, blessed))}
	if baseline != nil {
		h.BaselineRunID = baseline.RunID
	}
	return h, nil
}
