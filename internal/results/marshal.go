package results

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/segeval/segeval/internal/evaluate"
)

// MarshalMetrics renders metrics.json, indented for people.
func MarshalMetrics(m Metrics) ([]byte, error) {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// NewImageRow converts a per-image result for output.
func NewImageRow(runID string, mode evaluate.Mode, r evaluate.Result) ImageRow {
	name := "lovasz_softmax"
	if mode == evaluate.Binary {
		name = "lovasz_hinge"
	}
	return ImageRow{
		RunID: runID, Key: r.Key, Shard: r.Shard, LabelFile: r.LabelFile, Offset: r.Offset, Length: r.Length, Generation: r.Generation,
		ValidPixels: r.ValidPixels,
		LossName:    name, Loss: number(r.Loss), MIoU: number(r.MIoU), PixelAccuracy: number(r.PixelAccuracy),
	}
}

// MarshalJSON writes the row with its loss under LossName, fields in a fixed
// order.
func (r ImageRow) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	field := func(name string, v any) error {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		val, err := json.Marshal(v)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%q:%s", name, val)
		return nil
	}
	type kv struct {
		name string
		v    any
	}
	fields := []kv{{"run_id", r.RunID}, {"key", r.Key}, {"shard", r.Shard}}
	if r.LabelFile != "" {
		fields = append(fields, kv{"label_file", r.LabelFile})
	}
	fields = append(fields, kv{"valid_pixels", r.ValidPixels}, kv{r.LossName, r.Loss}, kv{"miou", r.MIoU}, kv{"pixel_accuracy", r.PixelAccuracy})
	for _, f := range fields {
		if err := field(f.name, f.v); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// MarshalClassCSV renders per_class.csv: the class table of m with a header,
// empty cells for undefined values.
func MarshalClassCSV(m Metrics) ([]byte, error) {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write([]string{"run_id", "id", "name", "iou", "intersection", "union", "label_pixels", "pred_pixels", "accuracy", "dice", "lovasz_mean"})
	cell := func(v *float64) string {
		if v == nil {
			return ""
		}
		return strconv.FormatFloat(*v, 'g', -1, 64)
	}
	for _, c := range m.Classes {
		w.Write([]string{
			m.RunID, strconv.Itoa(c.ID), c.Name, cell(c.IoU),
			strconv.FormatInt(c.Intersection, 10), strconv.FormatInt(c.Union, 10),
			strconv.FormatInt(c.LabelPixels, 10), strconv.FormatInt(c.PredPixels, 10),
			cell(c.Accuracy), cell(c.Dice), cell(c.LovaszMean),
		})
	}
	w.Flush()
	return b.Bytes(), w.Error()
}
