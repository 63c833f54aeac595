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
	"github.com/segeval/segeval/internal/npz"
	"github.com/segeval/segeval/internal/shard"
)

// Prediction says what a sample's prediction member holds.
type Prediction int

const (
	// Probs are per-class probabilities (probs.npy or probs.npz).
	Probs Prediction = iota + 1
	// Logits are per-class unnormalized scores (logits.npy or logits.npz).
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
	// class 0, then of class 1, ...), for Probs and Logits, whatever the
	// layout of the file. It is nil when Half holds the scores.
	Scores []float32
	// Half holds float16 probabilities as their bits, class-major as
	// Scores, in place of Scores, when the Decoder's Float16Bits is set.
	// It may alias the sample's member bytes (see Decoder.Float16Bits).
	Half []uint16
	// Pred holds Height*Width predicted class ids, row-major, for
	// ArgmaxMap.
	Pred []int32
	// Meta is the sample's json member, or nil when it has none.
	Meta map[string]any
}

// Limits bounds the samples Decode accepts. Every limit must be positive.
type Limits struct {
	MaxPixels  int64 // largest Height*Width
	MaxClasses int   // largest Classes
	// MaxMemberBytes is the largest member that is decoded, and the largest
	// array inflated from an .npz archive.
	MaxMemberBytes int64
}

// Layout is the order of the axes of a probs or logits array.
type Layout string

const (
	// CHW arrays are channels-first, [C,H,W] or [1,C,H,W], as PyTorch
	// models output them. It is the default.
	CHW Layout = "chw"
	// HWC arrays are channels-last, [H,W,C] or [1,H,W,C], as TensorFlow
	// and JAX models output them.
	HWC Layout = "hwc"
)

// Options are the decoding settings shared by every sample of a run. Fields
// are exported so that they travel inside Beam DoFns.
type Options struct {
	Limits Limits
	// Layout is the axis order of probs and logits; "" means CHW.
	Layout Layout
	// NPZKey names the array to read from probs.npz and logits.npz; "" reads
	// the archive's only array. It is not consulted for other members.
	NPZKey string
}

// Validate reports whether the options are usable: every limit positive and
// the layout known. Decode checks it too, but a run should check it once
// before reading any input.
func (o Options) Validate() error {
	lim := o.Limits
	if lim.MaxPixels <= 0 || lim.MaxClasses <= 0 || lim.MaxMemberBytes <= 0 {
		return fmt.Errorf("every limit must be positive, got %+v", lim)
	}
	if o.Layout != "" && o.Layout != CHW && o.Layout != HWC {
		return fmt.Errorf("unknown layout %q, want %q or %q", o.Layout, CHW, HWC)
	}
	return nil
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
	predictionFields = []string{"probs.npy", "probs.npz", "logits.npy", "logits.npz", "pred.png", "pred.npy"}
	predictionKinds  = map[string]Prediction{
		"probs.npy":  Probs,
		"probs.npz":  Probs,
		"logits.npy": Logits,
		"logits.npz": Logits,
		"pred.png":   ArgmaxMap,
		"pred.npy":   ArgmaxMap,
	}
)

// Decoder decodes samples, reusing its buffers from one sample to the next.
// The zero value is ready to use. A Decoder is not safe for concurrent use.
type Decoder struct {
	// Float16Bits keeps float16 probabilities as their bits in
	// Image.Half instead of converting them into Image.Scores, for a
	// consumer that evaluates the bits (internal/lovasz's Fused.Half).
	// Channels-first little-endian arrays are not even copied: Half then
	// aliases the sample's member bytes, and is valid while they are
	// (as well as until the next Decode). An 80 MB float16 Cityscapes map
	// costs no memory beyond its member, instead of a 160 MB float32 copy.
	Float16Bits bool

	labels []int32
	scores []float32
	half   []uint16
	// hwcHalf holds channels-last float16 bits before they are
	// transposed into half.
	hwcHalf []uint16
	pred    []int32
	// hwc holds channels-last scores before they are transposed into
	// scores.
	hwc []float32
}

// Decode decodes the label, prediction and metadata of s, reading scores in
// opt.Layout and the opt.NPZKey array of an .npz archive. The slices of the
// returned Image are valid until the next call to Decode. Errors are of type
// *Error.
func (d *Decoder) Decode(s *shard.Sample, shardName string, opt Options) (*Image, error) {
	fail := func(field string, err error) error {
		e := &Error{Shard: shardName, Key: s.Key, Err: err}
		if field != "" {
			e.Member = s.Key + "." + field
		}
		return e
	}
	if err := opt.Validate(); err != nil {
		return nil, fail("", err)
	}
	lim := opt.Limits
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
		if err != nil {
			return nil, fail(predField, err)
		}
		d.pred = img.Pred
	} else {
		img.Scores, img.Half, img.Classes, ph, pw, err = d.decodeScores(predField, s.Fields[predField], img.Prediction, opt)
		if err != nil {
			return nil, fail(predField, err)
		}
	}
	if ph != img.Height || pw != img.Width {
		layout := ""
		if img.Prediction != ArgmaxMap {
			layout = " in layout " + string(layoutOf(opt))
		}
		return nil, fail(predField, fmt.Errorf("prediction is %dx%d (HxW)%s but label %s.%s is %dx%d", ph, pw, layout, s.Key, labelField, img.Height, img.Width))
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

// layoutOf returns the layout the options select.
func layoutOf(opt Options) Layout {
	if opt.Layout == "" {
		return CHW
	}
	return opt.Layout
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

// decodeScores decodes a probs or logits member, a .npy file or an .npz
// archive of one, into class-major scores held in d's buffers, and returns
// them with the class count, height and width. Float16 probabilities come
// back as bits in half instead of scores when d.Float16Bits is set.
func (d *Decoder) decodeScores(field string, data []byte, kind Prediction, opt Options) (scores []float32, half []uint16, c, h, w int, err error) {
	if strings.HasSuffix(field, ".npz") {
		var array string
		data, array, err = npz.Member(data, opt.NPZKey, opt.Limits.MaxMemberBytes)
		if err != nil {
			return nil, nil, 0, 0, 0, err
		}
		defer func() {
			if err != nil {
				err = fmt.Errorf("array %s: %w", array, err)
			}
		}()
	}
	layout := layoutOf(opt)
	c, h, w, err = scoresShape(data, kind, layout)
	if err != nil {
		return nil, nil, 0, 0, 0, err
	}
	if err := checkSize(h, w, opt.Limits); err != nil {
		return nil, nil, 0, 0, 0, err
	}
	if c < 1 || c > opt.Limits.MaxClasses {
		return nil, nil, 0, 0, 0, fmt.Errorf("%d classes, want 1 to %d", c, opt.Limits.MaxClasses)
	}
	lim := npy.Limits{MaxElements: int64(c) * int64(h) * int64(w)}
	// One class has the same order in both layouts.
	chw := layout == CHW || c == 1
	if d.Float16Bits && kind == Probs && npy.IsFloat16(data) {
		if view, ok := npy.ViewFloat16(data, lim); ok && chw {
			// No copy: the bits alias the member (see Float16Bits).
			// d.half is left alone, so that no later Decode writes
			// through the view into a member.
			return nil, view, c, h, w, nil
		}
		d.half, d.hwcHalf, err = decodeInto(npy.DecodeFloat16Bits, data, lim, d.half, d.hwcHalf, chw, c)
		if err != nil {
			return nil, nil, 0, 0, 0, err
		}
		return nil, d.half, c, h, w, nil
	}
	d.scores, d.hwc, err = decodeInto(npy.DecodeFloat32, data, lim, d.scores, d.hwc, chw, c)
	if err != nil {
		return nil, nil, 0, 0, 0, err
	}
	return d.scores, nil, c, h, w, nil
}

// decodeInto decodes an array of c classes with decode into dst, class-major:
// directly when chw is set, by way of the channels-last buffer hwc
// otherwise. It returns both buffers, for reuse.
func decodeInto[T any](decode func([]byte, npy.Limits, []T) ([]T, []int, error), data []byte, lim npy.Limits, dst, hwc []T, chw bool, c int) ([]T, []T, error) {
	if chw {
		out, _, err := decode(data, lim, dst)
		if err != nil {
			return dst, hwc, err
		}
		return out, hwc, nil
	}
	raw, _, err := decode(data, lim, hwc)
	if err != nil {
		return dst, hwc, err
	}
	if cap(dst) < len(raw) {
		dst = make([]T, len(raw))
	}
	dst = dst[:len(raw)]
	transposeHWC(dst, raw, c)
	return dst, raw, nil
}

// scoresShape returns the class count, height and width of a probs or logits
// .npy file of the given layout, from its header.
func scoresShape(data []byte, kind Prediction, layout Layout) (c, h, w int, err error) {
	shape, err := npyShape(data)
	if err != nil {
		return 0, 0, 0, err
	}
	if len(shape) == 4 && shape[0] == 1 {
		shape = shape[1:]
	}
	switch {
	case len(shape) == 3 && layout == CHW:
		return shape[0], shape[1], shape[2], nil
	case len(shape) == 3:
		return shape[2], shape[0], shape[1], nil
	case len(shape) == 2 && kind == Logits:
		return 1, shape[0], shape[1], nil
	}
	one, batch := "[C,H,W]", "[1,C,H,W]"
	if layout == HWC {
		one, batch = "[H,W,C]", "[1,H,W,C]"
	}
	if kind == Logits {
		return 0, 0, 0, fmt.Errorf("shape %v, want %s, %s or, for binary logits, [H,W]", shape, one, batch)
	}
	return 0, 0, 0, fmt.Errorf("shape %v, want %s or %s", shape, one, batch)
}

// transposeHWC stores the channels-last scores src, the c scores of pixel 0,
// then those of pixel 1, ..., into dst class-major. It writes dst in order
// and reads src with a stride of c, which is small.
func transposeHWC[T any](dst, src []T, c int) {
	pixels := len(src) / c
	for k := range c {
		plane := dst[k*pixels : (k+1)*pixels]
		for p := range plane {
			plane[p] = src[p*c+k]
		}
	}
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
