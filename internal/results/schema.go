// Package results defines the files a run writes (metrics.json,
// per_image.jsonl, per_class.csv) as Go types, and builds them from an
// evaluation accumulator. Readers (the CLI summary, a baseline gate, users'
// dashboards) share these types; SchemaVersion changes when a field changes
// meaning or goes away.
//
// Every ratio is a fraction in [0, 1]. A value whose denominator is zero is
// undefined and written as null, never as 0 or 1.
package results

import (
	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/lovasz"
)

// SchemaVersion is the version of the output schema.
const SchemaVersion = 1

// File names under the output prefix.
const (
	MetricsFile  = "metrics.json"
	PerImageFile = "per_image.jsonl"
	PerClassFile = "per_class.csv"
	RejectedFile = "rejected.jsonl"
	SuccessFile  = "_SUCCESS"
)

// Metrics is metrics.json.
type Metrics struct {
	SchemaVersion int        `json:"schema_version"`
	RunID         string     `json:"run_id"`
	Provenance    Provenance `json:"provenance"`

	Mode        string `json:"mode"`
	NumClasses  int    `json:"num_classes"`
	ClassSet    string `json:"class_set"`
	IgnoreIndex *int   `json:"ignore_index"`

	// ImagesRead = Images + ImagesRejected: every sample read is either
	// evaluated or listed in rejected.jsonl.
	ImagesRead               int64 `json:"images_read"`
	Images                   int64 `json:"images"`
	ImagesRejected           int64 `json:"images_rejected"`
	ImagesWithoutValidPixels int64 `json:"images_without_valid_pixels"`
	ValidPixels              int64 `json:"valid_pixels"`

	LovaszSoftmax *SoftmaxLoss `json:"lovasz_softmax,omitempty"`
	LovaszHinge   *HingeLoss   `json:"lovasz_hinge,omitempty"`

	// Dataset-level metrics: counts summed over images, then divided.
	MIoU                 *float64 `json:"miou"`
	PixelAccuracy        *float64 `json:"pixel_accuracy"`
	MeanAccuracy         *float64 `json:"mean_accuracy"`
	MeanDice             *float64 `json:"mean_dice"`
	FrequencyWeightedIoU *float64 `json:"frequency_weighted_iou"`
	// PerImageMIoUMean is a different number from MIoU: each image's mIoU
	// over its classes with a non-empty union, averaged over images.
	PerImageMIoUMean *float64 `json:"per_image_miou_mean"`

	Classes []Class `json:"classes"`
	// Confusion[t][p] counts valid pixels labeled t and predicted p.
	Confusion [][]int64 `json:"confusion"`

	// Intervals are 95% bootstrap confidence intervals, when computed.
	Intervals *Intervals `json:"intervals,omitempty"`
	// Slices hold the metrics of images grouped by a metadata field.
	Slices []Slice `json:"slices,omitempty"`
	// Worst lists the images with the highest loss and the lowest mIoU.
	Worst *WorstImages `json:"worst_images,omitempty"`
	// Comparison compares the run with its baseline, when it has one.
	Comparison *Comparison `json:"comparison,omitempty"`
}

// Interval is a confidence interval [Low, High]; nil bounds are undefined.
type Interval struct {
	Low  *float64 `json:"low"`
	High *float64 `json:"high"`
}

// FewImagesForIntervals is the number of images below which presenters of
// Intervals (the CLI summary, the report) add a caution that they are too
// narrow. Percentile bootstrap intervals over images under-cover with few
// images: a simulation put the coverage of nominal 95% intervals at
// 0.875-0.91 with 15 images. The two-sided coverage error of the percentile
// bootstrap shrinks roughly as 1/n, so at 30 images the shortfall is about
// half that, a few points, and it is the usual size below which resampling
// a mean is not trusted. It is presentation only: metrics.json does not
// record it.
const FewImagesForIntervals = 30

// Intervals are bootstrap confidence intervals over images.
type Intervals struct {
	Replicates   int        `json:"replicates"`
	Level        float64    `json:"level"` // 0.95
	MIoU         Interval   `json:"miou"`
	PerImageLoss Interval   `json:"per_image_loss"`
	ClassIoU     []Interval `json:"class_iou"`
}

// Slice is the metrics of the images whose metadata field Field has the
// value Value ("(missing)" for images without the field). Crossed slicings
// name their fields joined by "+" and values likewise.
type Slice struct {
	Field            string     `json:"field"`
	Value            string     `json:"value"`
	Images           int64      `json:"images"`
	ValidPixels      int64      `json:"valid_pixels"`
	PerImageLossMean *float64   `json:"per_image_loss_mean"`
	MIoU             *float64   `json:"miou"`
	PixelAccuracy    *float64   `json:"pixel_accuracy"`
	MeanAccuracy     *float64   `json:"mean_accuracy"`
	PerImageMIoUMean *float64   `json:"per_image_miou_mean"`
	ClassIoU         []*float64 `json:"class_iou"`
}

// WorstImages are the images a person should look at first.
type WorstImages struct {
	HighestLoss []ImageRef `json:"highest_loss"`
	LowestMIoU  []ImageRef `json:"lowest_miou"`
}

// ImageRef names one image and its headline numbers.
type ImageRef struct {
	Key       string `json:"key"`
	Shard     string `json:"shard"`
	LabelFile string `json:"label_file,omitempty"`
	Offset    int64  `json:"offset,omitempty"` // of the sample in its tar shard
	// Length and Generation let the sample be read again exactly; they
	// are not written.
	Length     int64    `json:"-"`
	Generation int64    `json:"-"`
	Loss       *float64 `json:"loss"`
	MIoU       *float64 `json:"miou"`
}

// SoftmaxLoss is the Lovász-Softmax loss of a dataset.
type SoftmaxLoss struct {
	// PerImageMean is the mean of per-image losses over images with valid
	// pixels (the reference's per_image=True), within
	// PerImageMeanErrorBound of the exact value.
	PerImageMean           *float64 `json:"per_image_mean"`
	PerImageMeanErrorBound *float64 `json:"per_image_mean_error_bound"`
	// Dataset is one Lovász extension over every valid pixel of every image
	// (the reference's per_image=False), within DatasetErrorBound.
	Dataset           *float64 `json:"dataset"`
	DatasetErrorBound *float64 `json:"dataset_error_bound"`
}

// HingeLoss is the Lovász hinge loss of a binary dataset.
type HingeLoss struct {
	PerImageMean *float64 `json:"per_image_mean"`
}

// Class is one class's row of metrics.json and per_class.csv.
type Class struct {
	ID           int      `json:"id"`
	Name         string   `json:"name"`
	IoU          *float64 `json:"iou"`
	Intersection int64    `json:"intersection"`
	Union        int64    `json:"union"`
	LabelPixels  int64    `json:"label_pixels"`
	PredPixels   int64    `json:"pred_pixels"`
	Accuracy     *float64 `json:"accuracy"`
	Dice         *float64 `json:"dice"`
	// LovaszMean is the mean of the class's per-image loss over the images
	// where it counted (under the present class set: where it is present).
	LovaszMean *float64 `json:"lovasz_mean"`
}

// Provenance records what produced a run.
type Provenance struct {
	Tool      string            `json:"tool"`
	Version   string            `json:"version"`
	StartedAt string            `json:"started_at"`
	Flags     map[string]string `json:"flags"`
	Inputs    []string          `json:"inputs"`
	Shards    []Shard           `json:"shards"`
}

// Rejection is one line of rejected.jsonl: a sample (or the unreadable rest
// of a shard, with an empty key) left out of the metrics, and why.
type Rejection struct {
	Key    string `json:"key"`
	Shard  string `json:"shard"`
	Reason string `json:"reason"`
}

// Shard is one input file.
type Shard struct {
	Path       string `json:"path"`
	Size       int64  `json:"size"`
	Generation int64  `json:"generation,omitempty"` // GCS object generation
}

// Settings are the run's settings that shape the summary.
type Settings struct {
	Mode       evaluate.Mode
	ClassSet   lovasz.ClassSet
	Ignore     int
	HasIgnore  bool
	ClassNames []string // optional; missing names default to the id
}

// Run is what a finished evaluation hands to Summarize.
type Run struct {
	// Acc is the whole dataset's accumulator, nil when no image was
	// evaluated.
	Acc *evaluate.Accumulator
	// Slices holds a tally per slice key (see evaluate.SliceKey).
	Slices map[string]*evaluate.Tally
	// Rows are per-image rows the worst images are picked from: all of
	// them, or any set holding the worst WorstK by each measure.
	Rows     []ImageRow
	Rejected int64
	// WorstK is the number of worst images listed (0 for none).
	WorstK int
}

// ImageRow is one line of per_image.jsonl.
type ImageRow struct {
	RunID       string
	Key         string
	Shard       string
	LabelFile   string // paired inputs only
	Offset      int64  // of the sample in its tar shard; not written
	Length      int64  // of the sample in its tar shard; not written
	Generation  int64  // of the shard; not written
	ValidPixels int64
	// LossName is "lovasz_softmax" or "lovasz_hinge": the key the loss is
	// written under.
	LossName      string
	Loss          *float64
	MIoU          *float64
	PixelAccuracy *float64
}
