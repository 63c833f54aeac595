package sample

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/segeval/segeval/internal/labelpng"
	"github.com/segeval/segeval/internal/npy"
	"github.com/segeval/segeval/internal/shard"
)

// Prediction says what a sample's prediction member holds.
type Prediction int

const (
	// Probs are per-class probabilities (probs.npy).
	Probs Prediction = iota + 1
	// Logits are per-class unnormalized scores (logits.npy).
	Logits
	// ArgmaxMap is one predicted class id per pixel (pred.png or pred.npy).
	ArgmaxMap
)

// Image is one decoded sample.
type Image struct {
	Key           string // the sample's key in its shard
	Height, Width int
	// Labels holds Height*Width raw label values, row-major.
	Labels     []int32
	Prediction Prediction
	// Classes is the class count C of Probs and Logits: 1 for binary
	// logits of shape [H,W] or [1,H,W]. It is 0 for ArgmaxMap.
	Classes int
	// Scores holds Classes*Height*Width values, class-major (all pixels of
	// class 0, then of class 1, ...), for Probs and Logits.
	Scores []float32
	// Pred holds Height*Width predicted class ids, row-major, for
	// ArgmaxMap.
	Pred []int32
	// Meta is the sample's json member, or nil when it has none.
	Meta map[string]any
}

// Limits bounds the samples Decode accepts. Every limit must be positive.
type Limits struct {
	MaxPixels      int64 // largest Height*Width
	MaxClasses     int   // largest Classes
	MaxMemberBytes int64 // largest member that is decoded
}

// Error reports a sample that cannot be decoded, naming the member at fault
// when there is one.
type Error struct {
	Shard  string
	Key    string // the sample's key
	Member string // the member's name, key.field; or ""
	Err    error
}

func (e *Error) Error() string {
	if e.Member == "" {
		return fmt.Sprintf("shard %s, sample %s: %v", e.Shard, e.Key, e.Err)
	}
	return fmt.Sprintf("shard %s, sample %s, member %s: %v", e.Shard, e.Key, e.Member, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Fields that can hold a sample's label and prediction.
var (
	labelFields      = []string{"label.png", "label.npy"}
	predictionFields = []string{"probs.npy", "logits.npy", "pred.png", "pred.npy"}
	predictionKinds  = map[string]Prediction{
		"probs.npy":  Probs,
		"logits.npy": Logits,
		"pred.png":   ArgmaxMap,
		"pred.npy":   ArgmaxMap,
	}
)

// Decoder decodes samples, reusing its buffers from one sample to the next.
// The zero value is ready to use. A Decoder is not safe for concurrent use.
type Decoder struct {
	labels []int32
	scores []float32
	pred   []int32
}

// Decode decodes the label, prediction and metadata of s. The slices of the
// returned Image are valid until the next call to Decode. Errors are of type
// *Error.
func (d *Decoder) Decode(s *shard.Sample, shardName string, lim Limits) (*Image, error) {
	fail := func(field string, err error) error {
		e := &Error{Shard: shardName, Key: s.Key, Err: err}
		if field != "" {
			e.Member = s.Key + "." + field
		}
		return e
	}
	if lim.MaxPixels <= 0 || lim.MaxClasses <= 0 || lim.MaxMemberBytes <= 0 {
		return nil, fail("", fmt.Errorf("every limit must be positive, got %+v", lim))
	}
	labelField, err := pickOne(s, "label", labelFields)
	if err != nil {
		return nil, fail("", err)
	}
	predField, err := pickOne(s, "prediction", predictionFields)
	if err != nil {
		return nil, fail("", err)
	}
	for _, field := range []string{labelField, predField, "json"} {
		if n := int64(len(s.Fields[field])); n > lim.MaxMemberBytes {
			return nil, fail(field, fmt.Errorf("size %d bytes exceeds the limit of %d", n, lim.MaxMemberBytes))
		}
	}

	img := &Image{Key: s.Key}
	img.Labels, img.Height, img.Width, err = decodeIDs(labelField, s.Fields[labelField], lim, d.labels)
	if err != nil {
		return nil, fail(labelField, err)
	}
	d.labels = img.Labels

	var ph, pw int
	img.Prediction = predictionKinds[predField]
	if img.Prediction == ArgmaxMap {
		img.Pred, ph, pw, err = decodeIDs(predField, s.Fields[predField], lim, d.pred)
	} else {
		img.Scores, img.Classes, ph, pw, err = decodeScores(s.Fields[predField], img.Prediction, lim, d.scores)
	}
	if err != nil {
		return nil, fail(predField, err)
	}
	if img.Prediction == ArgmaxMap {
		d.pred = img.Pred
	} else {
		d.scores = img.Scores
	}
	if ph != img.Height || pw != img.Width {
		return nil, fail(predField, fmt.Errorf("prediction is %dx%d (HxW) but label %s.%s is %dx%d", ph, pw, s.Key, labelField, img.Height, img.Width))
	}

	if data, ok := s.Fields["json"]; ok {
		if err := json.Unmarshal(data, &img.Meta); err != nil {
			return nil, fail("json", fmt.Errorf("metadata must be a JSON object: %w", err))
		}
		if img.Meta == nil {
			return nil, fail("json", errors.New("metadata must be a JSON object, not null"))
		}
	}
	return img, nil
}

// pickOne returns the one field of s among candidates, which hold the same
// thing (the label, say) in different formats.
func pickOne(s *shard.Sample, what string, candidates []string) (string, error) {
	var present []string
	for _, field := range candidates {
		if _, ok := s.Fields[field]; ok {
			present = append(present, field)
		}
	}
	switch len(present) {
	case 1:
		return present[0], nil
	case 0:
		have := make([]string, 0, len(s.Fields))
		for field := range s.Fields {
			have = append(have, field)
		}
		slices.Sort(have)
		return "", fmt.Errorf("missing %s: want one of %s; sample has %s",
			what, strings.Join(candidates, ", "), strings.Join(have, ", "))
	}
	return "", fmt.Errorf("more than one %s: %s", what, strings.Join(present, " and "))
}

// decodeIDs decodes a map of class ids, a PNG or an [H,W] .npy array of
// integers, into dst's storage when it is large enough.
func decodeIDs(field string, data []byte, lim Limits, dst []int32) ([]int32, int, int, error) {
	if strings.HasSuffix(field, ".png") {
		return labelpng.Decode(data, lim.MaxPixels, dst)
	}
	shape, err := npyShape(data)
	if err != nil {
		return nil, 0, 0, err
	}
	if len(shape) != 2 {
		return nil, 0, 0, fmt.Errorf("shape %v, want [H,W]", shape)
	}
	h, w := shape[0], shape[1]
	if err := checkSize(h, w, lim); err != nil {
		return nil, 0, 0, err
	}
	ids, _, err := npy.DecodeInt32(data, npy.Limits{MaxElements: int64(h) * int64(w)}, dst)
	return ids, h, w, err
}

// decodeScores decodes a probs.npy or logits.npy array into class-major
// scores, in dst's storage when it is large enough, and returns them with
// the class count, height and width.
func decodeScores(data []byte, kind Prediction, lim Limits, dst []float32) (scores []float32, c, h, w int, err error) {
	shape, err := npyShape(data)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	switch {
	case len(shape) == 3:
		c, h, w = shape[0], shape[1], shape[2]
	case len(shape) == 4 && shape[0] == 1:
		c, h, w = shape[1], shape[2], shape[3]
	case len(shape) == 2 && kind == Logits:
		c, h, w = 1, shape[0], shape[1]
	case kind == Logits:
		return nil, 0, 0, 0, fmt.Errorf("shape %v, want [C,H,W], [1,C,H,W] or, for binary logits, [H,W]", shape)
	default:
		return nil, 0, 0, 0, fmt.Errorf("shape %v, want [C,H,W] or [1,C,H,W]", shape)
	}
	if err := checkSize(h, w, lim); err != nil {
		return nil, 0, 0, 0, err
	}
	if c < 1 || c > lim.MaxClasses {
		return nil, 0, 0, 0, fmt.Errorf("%d classes, want 1 to %d", c, lim.MaxClasses)
	}
	scores, _, err = npy.DecodeFloat32(data, npy.Limits{MaxElements: int64(c) * int64(h) * int64(w)}, dst)
	return scores, c, h, w, err
}

// npyShape returns the shape in a .npy file's header.
func npyShape(data []byte) ([]int, error) {
	h, _, err := npy.ReadHeader(bytes.NewReader(data))
	return h.Shape, err
}

// checkSize checks an image's height and width against the pixel limit.
func checkSize(h, w int, lim Limits) error {
	if h < 1 || w < 1 {
		return fmt.Errorf("empty %dx%d (HxW) image", h, w)
	}
	if int64(h) > lim.MaxPixels/int64(w) {
		return fmt.Errorf("%dx%d (HxW) image has more than the limit of %d pixels", h, w, lim.MaxPixels)
	}
	return nil
}
