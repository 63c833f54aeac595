package gate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/storage"
)

// A model's history lives in one folder, dir (PREFIX/MODEL), on local disk
// or Cloud Storage:
//
//   - history.jsonl holds one HistoryLine per recorded run, in the order
//     they were recorded, each run once;
//   - LATEST names the model's last blessed run, the baseline of
//     the Latest baseline (see LatestRun for its format).
//
// Publishing a run must be safe to repeat, since runners retry a failed
// work item and restart failed jobs: recording a run that is already
// recorded, or advancing LATEST to a run it already names, changes
// nothing. Both are read-modify-writes through storage.Store.Update, so
// concurrent runs of one model lose nothing either.

// HistoryLine is one line of a model's history.jsonl: what the report's
// trend chart shows of a past run.
//
// The format only grows: fields added later are omitted when empty, and a
// row written before them reads with them nil, so old history files keep
// working (the report draws what a row has). Added since the first format:
// the intervals of mIoU and of the per-image loss, and the IoU of each
// class.
type HistoryLine struct {
	Date    string   `json:"date"` // YYYY-MM-DD
	RunID   string   `json:"run_id"`
	Output  string   `json:"output"`
	MIoU    *float64 `json:"miou"`
	Loss    *float64 `json:"loss"` // the per-image loss, mean over images
	Blessed bool     `json:"blessed"`
	// MIoUInterval and LossInterval are the run's bootstrap intervals
	// (results.Intervals), nil when it computed none.
	MIoUInterval *results.Interval `json:"miou_interval,omitempty"`
	LossInterval *results.Interval `json:"loss_interval,omitempty"`
	// Classes holds each class's dataset IoU, in class id order.
	Classes []ClassIoU `json:"classes,omitempty"`
}

// ClassIoU is one class's IoU in a HistoryLine; IoU is nil where it is
// undefined (the class neither labeled nor predicted).
type ClassIoU struct {
	ID  int      `json:"id"`
	IoU *float64 `json:"iou"`
}

// NewHistoryLine records a finished run.
func NewHistoryLine(m results.Metrics, date, output string, blessed bool) HistoryLine {
	h := HistoryLine{Date: date, RunID: m.RunID, Output: output, MIoU: m.MIoU, Loss: perImageLoss(m), Blessed: blessed}
	if iv := m.Intervals; iv != nil {
		h.MIoUInterval, h.LossInterval = definedInterval(iv.MIoU), definedInterval(iv.PerImageLoss)
	}
	for _, c := range m.Classes {
		h.Classes = append(h.Classes, ClassIoU{ID: c.ID, IoU: c.IoU})
	}
	return h
}

// definedInterval is iv, or nil when neither bound is defined.
func definedInterval(iv results.Interval) *results.Interval {
	if iv.Low == nil && iv.High == nil {
		return nil
	}
	return &iv
}

// RecordRun appends line to dir/history.jsonl, creating the file if
// needed, unless a row with the same RunID is already there: a retried
// publish, or a write whose response was lost, records the run once.
//
// Every existing row must be a JSON object with a non-empty run_id (blank
// lines aside). A malformed row is an error naming the file and its line
// number, and nothing is written: skipping it could miss the very row of
// this run and record it twice, and the corruption would go unnoticed
// until the history was needed.
func RecordRun(ctx context.Context, store *storage.Store, dir string, line HistoryLine) error {
	if line.RunID == "" {
		return errors.New("record run: no run id")
	}
	row, err := json.Marshal(line)
	if err != nil {
		return fmt.Errorf("record run %s: %w", line.RunID, err)
	}
	path := storage.Join(dir, HistoryFile)
	err = store.Update(ctx, path, func(old []byte, _ bool) ([]byte, bool, error) {
		rows, err := parseHistory(old)
		if err != nil {
			return nil, false, err
		}
		for _, r := range rows {
			if r.RunID == line.RunID {
				return nil, false, nil
			}
		}
		data := make([]byte, 0, len(old)+len(row)+2)
		data = append(data, old...)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			data = append(data, '\n')
		}
		data = append(data, row...)
		return append(data, '\n'), true, nil
	})
	if err != nil {
		return fmt.Errorf("record run %s: %w", line.RunID, err)
	}
	return nil
}

// ReadHistory returns the rows of dir/history.jsonl in file order, or none
// if there is no history yet. A malformed row is an error naming the file
// and its line number, as for RecordRun.
func ReadHistory(ctx context.Context, store *storage.Store, dir string) ([]HistoryLine, error) {
	path := storage.Join(dir, HistoryFile)
	data, err := store.ReadFile(ctx, path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	rows, err := parseHistory(data)
	if err != nil {
		return nil, fmt.Errorf("read history %s: %w", path, err)
	}
	return rows, nil
}

// parseHistory decodes the rows of history.jsonl, skipping blank lines.
// Fields it does not know are ignored, so that rows written by a newer
// version still count.
func parseHistory(data []byte) ([]HistoryLine, error) {
	var rows []HistoryLine
	for i, text := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		var row HistoryLine
		if err := json.Unmarshal(text, &row); err != nil {
			return nil, fmt.Errorf("line %d: malformed row: %w", i+1, err)
		}
		if row.RunID == "" {
			return nil, fmt.Errorf("line %d: malformed row: no run_id", i+1)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// LatestRun is what a model's LATEST file says: the run that
// the Latest baseline compares with.
//
// LATEST is text. Its first line is the run's output prefix, all that
// readers of the first format used (they took the whole file, trimmed).
// Its second line is the run's start time in RFC 3339 (UTC, with
// fractional seconds when there are any), a space, and the run id; it
// orders runs, so that LATEST only ever moves forward. Further lines are
// ignored, room for later additions. A LATEST of the first format has only
// the first line; it reads as a LatestRun with a zero StartedAt and no
// RunID.
type LatestRun struct {
	// Output is the run's output prefix, where its metrics.json is.
	Output string
	// StartedAt is when the run started.
	StartedAt time.Time
	// RunID identifies the run.
	RunID string
}

// after reports whether run l comes after run m in the order of LATEST:
// it started later, or at the same time with a greater run id, so that
// any two runs are ordered the same way whichever writes first.
func (l LatestRun) after(m LatestRun) bool {
	if !l.StartedAt.Equal(m.StartedAt) {
		return l.StartedAt.After(m.StartedAt)
	}
	return l.RunID > m.RunID
}

// check reports what would make l unreadable once written.
func (l LatestRun) check() error {
	switch {
	case l.Output == "":
		return errors.New("no output path")
	case l.Output != strings.TrimSpace(l.Output) || strings.ContainsAny(l.Output, "\r\n"):
		return fmt.Errorf("output path %q has surrounding spaces or line breaks", l.Output)
	case l.RunID == "":
		return errors.New("no run id")
	case l.RunID != strings.TrimSpace(l.RunID) || strings.ContainsAny(l.RunID, "\r\n"):
		return fmt.Errorf("run id %q has surrounding spaces or line breaks", l.RunID)
	case l.StartedAt.IsZero():
		// Without a start time the run cannot be ordered against others.
		return errors.New("no start time")
	}
	return nil
}

// marshal renders l as the content of LATEST.
func (l LatestRun) marshal() []byte {
	return fmt.Appendf(nil, "%s\n%s %s\n", l.Output, l.StartedAt.UTC().Format(time.RFC3339Nano), l.RunID)
}

// parseLatest decodes the content of LATEST, in either format.
func parseLatest(data []byte) (LatestRun, error) {
	lines := strings.Split(string(data), "\n")
	l := LatestRun{Output: strings.TrimSpace(lines[0])}
	if l.Output == "" {
		return LatestRun{}, errors.New("malformed: the first line names no output path")
	}
	if len(lines) < 2 || strings.TrimSpace(lines[1]) == "" {
		return l, nil // the first format
	}
	started, runID, ok := strings.Cut(strings.TrimSpace(lines[1]), " ")
	runID = strings.TrimSpace(runID)
	if !ok || runID == "" {
		return LatestRun{}, fmt.Errorf("malformed: line 2 is %q, want a start time and a run id", lines[1])
	}
	t, err := time.Parse(time.RFC3339Nano, started)
	if err != nil {
		return LatestRun{}, fmt.Errorf("malformed: line 2: %w", err)
	}
	l.StartedAt, l.RunID = t, runID
	return l, nil
}

// AdvanceLatest points dir/LATEST at run l, unless it already names l or
// a run that comes after l: a slower run that started earlier and finishes
// after a newer one must not make the older run the baseline again. Runs
// are ordered by start time, and by run id between runs that started at
// the same time. A LATEST of the first format, which records no start
// time, comes before any run and is replaced.
//
// l must have an output path and a run id without line breaks or
// surrounding spaces, and a start time. A LATEST that cannot be parsed is
// an error, and is left as it is for someone to look at.
func AdvanceLatest(ctx context.Context, store *storage.Store, dir string, l LatestRun) error {
	if err := l.check(); err != nil {
		return fmt.Errorf("advance %s: %w", LatestFile, err)
	}
	path := storage.Join(dir, LatestFile)
	err := store.Update(ctx, path, func(old []byte, exists bool) ([]byte, bool, error) {
		if !exists {
			return l.marshal(), true, nil
		}
		cur, err := parseLatest(old)
		if err != nil {
			return nil, false, err
		}
		if cur.RunID == l.RunID || cur.RunID != "" && !l.after(cur) {
			return nil, false, nil
		}
		return l.marshal(), true, nil
	})
	if err != nil {
		return fmt.Errorf("advance %s to run %s: %w", LatestFile, l.RunID, err)
	}
	return nil
}

// ReadLatest returns the run that dir/LATEST names, and false without an
// error when there is no LATEST: the model has no blessed run yet. A
// LATEST of the first format yields only the Output.
func ReadLatest(ctx context.Context, store *storage.Store, dir string) (LatestRun, bool, error) {
	path := storage.Join(dir, LatestFile)
	data, err := store.ReadFile(ctx, path)
	if errors.Is(err, fs.ErrNotExist) {
		return LatestRun{}, false, nil
	}
	if err != nil {
		return LatestRun{}, false, fmt.Errorf("read latest run: %w", err)
	}
	l, err := parseLatest(data)
	if err != nil {
		return LatestRun{}, false, fmt.Errorf("read %s: %w", path, err)
	}
	return l, true, nil
}
