package gate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/segeval/segeval/internal/results"
)

func fp(v float64) *float64 { return &v }

// TestHistoryLineFormats reads history rows of the first format (no
// intervals, no classes) and of the current one, and checks what each
// yields: old files must keep working.
func TestHistoryLineFormats(t *testing.T) {
	tests := []struct {
		name string
		row  string
		want HistoryLine
	}{{
		name: "first format",
		row:  `{"date":"2026-11-20","run_id":"a","output":"gs://r/a","miou":0.5,"loss":0.3,"blessed":true}`,
		want: HistoryLine{Date: "2026-11-20", RunID: "a", Output: "gs://r/a", MIoU: fp(0.5), Loss: fp(0.3), Blessed: true},
	}, {
		name: "with intervals and classes",
		row: `{"date":"2026-11-21","run_id":"b","output":"gs://r/b","miou":0.5,"loss":null,"blessed":false,` +
			`"miou_interval":{"low":0.45,"high":0.55},"classes":[{"id":0,"iou":0.9},{"id":1,"iou":null}]}`,
		want: HistoryLine{Date: "2026-11-21", RunID: "b", Output: "gs://r/b", MIoU: fp(0.5),
			MIoUInterval: &results.Interval{Low: fp(0.45), High: fp(0.55)},
			Classes:      []ClassIoU{{ID: 0, IoU: fp(0.9)}, {ID: 1}}},
	}, {
		name: "from a newer version",
		row:  `{"date":"2026-11-22","run_id":"c","output":"o","miou":null,"loss":null,"blessed":true,"something_new":[1,2]}`,
		want: HistoryLine{Date: "2026-11-22", RunID: "c", Output: "o", Blessed: true},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, HistoryFile), []byte(tt.row+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			rows, err := ReadHistory(t.Context(), newStore(t), dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 1 || !reflect.DeepEqual(rows[0], tt.want) {
				t.Errorf("read %+v, want %+v", rows, tt.want)
			}
		})
	}
}

// TestNewHistoryLine checks what a run records: intervals and class IoUs
// when it has them, and a row of the first format's size when it does
// not.
func TestNewHistoryLine(t *testing.T) {
	m := results.Metrics{RunID: "n1", MIoU: fp(0.61),
		LovaszSoftmax: &results.SoftmaxLoss{PerImageMean: fp(0.3)},
		Classes:       []results.Class{{ID: 0, IoU: fp(0.8)}, {ID: 1}},
		Intervals: &results.Intervals{Level: 0.95,
			MIoU:         results.Interval{Low: fp(0.6), High: fp(0.62)},
			PerImageLoss: results.Interval{Low: fp(0.28), High: fp(0.33)}},
	}
	h := NewHistoryLine(m, "2026-11-20", "gs://r/n1", true)
	want := HistoryLine{Date: "2026-11-20", RunID: "n1", Output: "gs://r/n1", MIoU: fp(0.61), Loss: fp(0.3), Blessed: true,
		MIoUInterval: &results.Interval{Low: fp(0.6), High: fp(0.62)},
		LossInterval: &results.Interval{Low: fp(0.28), High: fp(0.33)},
		Classes:      []ClassIoU{{ID: 0, IoU: fp(0.8)}, {ID: 1}}}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("got %+v, want %+v", h, want)
	}

	bare := NewHistoryLine(results.Metrics{RunID: "n2"}, "2026-11-21", "o", false)
	data, err := json.Marshal(bare)
	if err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"interval", "classes"} {
		if strings.Contains(string(data), absent) {
			t.Errorf("a run without intervals or classes writes %s", data)
		}
	}
}
