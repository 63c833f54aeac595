package evaluate

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/segeval/segeval/internal/exact"
	"github.com/segeval/segeval/internal/lovasz"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/synth"
)

// encodeCase describes images to evaluate into an accumulator.
type encodeCase struct {
	name          string
	mode          Mode
	classes       int
	replicates    int
	binsPerOctave int // 0 for the default
	classSet      lovasz.ClassSet
	images        int
	height, width int
	regions       int
	// Extra images: one whose every pixel is ignored, one stored as an
	// argmax map (no loss).
	allIgnored, argmaxMap bool
}

func (tc encodeCase) options() Options {
	opt := options()
	if tc.mode != "" {
		opt.Mode = tc.mode
	}
	opt.ClassSet = tc.classSet
	opt.Bootstrap = tc.replicates
	if tc.binsPerOctave != 0 {
		opt.BinsPerOctave = tc.binsPerOctave
	}
	opt.SliceBy = [][]string{{"weather"}, {"weather", "city"}}
	if tc.argmaxMap {
		opt.Classes = tc.classes
	}
	return opt
}

// evaluateCase evaluates the case's images and returns what the Evaluator
// accumulated, for the whole and by slice.
func evaluateCase(tb testing.TB, tc encodeCase) (*Accumulator, map[string]*Tally) {
	tb.Helper()
	e := NewEvaluator(tc.options())
	add := func(img *sample.Image) {
		if _, err := e.Evaluate(img, "s.tar"); err != nil {
			tb.Fatal(err)
		}
	}
	for i := range tc.images {
		add(synthImage(tc, fmt.Sprintf("k%d", i), uint64(i)))
	}
	if tc.allIgnored {
		img := synthImage(tc, "ignored", 99)
		for i := range img.Labels {
			img.Labels[i] = 255
		}
		add(img)
	}
	if tc.argmaxMap {
		img := synthImage(tc, "map", 98)
		add(&sample.Image{Key: img.Key, Height: img.Height, Width: img.Width, Labels: img.Labels,
			Prediction: sample.ArgmaxMap, Pred: img.Labels, Meta: img.Meta})
	}
	acc, tallies := take(tb, e)
	if acc == nil {
		tb.Fatal("no accumulator")
	}
	return acc, tallies
}

// synthImage draws one image of the case: class probabilities, or one logit
// per pixel in binary mode.
func synthImage(tc encodeCase, key string, seed uint64) *sample.Image {
	im := synth.NewImage(key, synth.Options{Classes: tc.classes, Height: tc.height, Width: tc.width,
		Regions: tc.regions, Ignore: 255, Confidence: 2, WrongRegions: 0.2}, seed)
	img := &sample.Image{Key: key, Height: im.Height, Width: im.Width, Labels: im.Labels,
		Prediction: sample.Probs, Classes: tc.classes, Scores: im.Probs, Meta: im.Meta}
	if tc.mode == Binary {
		p := im.Height * im.Width
		logits := make([]float32, p)
		for i := range logits {
			logits[i] = 4*im.Probs[p+i] - 2 // class 1's probability as a logit
		}
		img.Prediction, img.Classes, img.Scores = sample.Logits, 1, logits
	}
	return img
}

var encodeCases = []encodeCase{
	{name: "2 classes", classes: 2, images: 3, height: 16, width: 12, regions: 3},
	{name: "binary", mode: Binary, classes: 2, replicates: 20, images: 3, height: 16, width: 12, regions: 3, allIgnored: true},
	{name: "19 classes, all, 200 replicates", classes: 19, replicates: 200, classSet: lovasz.ClassSet{Mode: lovasz.All},
		images: 4, height: 32, width: 24, regions: 6, allIgnored: true, argmaxMap: true},
	{name: "19 classes, 1 bin per octave", classes: 19, replicates: 3, binsPerOctave: 1, images: 2, height: 8, width: 8, regions: 2},
	{name: "150 classes", classes: 150, images: 2, height: 24, width: 24, regions: 5, allIgnored: true},
	{name: "150 classes, all, 200 replicates", classes: 150, replicates: 200, classSet: lovasz.ClassSet{Mode: lovasz.All},
		images: 3, height: 32, width: 32, regions: 8, argmaxMap: true},
}

func TestAccumulatorRoundTrip(t *testing.T) {
	for _, tc := range encodeCases {
		t.Run(tc.name, func(t *testing.T) {
			acc, tallies := evaluateCase(t, tc)
			data, err := acc.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got Accumulator
			if err := got.UnmarshalBinary(data); err != nil {
				t.Fatal(err)
			}
			if d := diffBits("Accumulator", reflect.ValueOf(got), reflect.ValueOf(*acc)); d != "" {
				t.Errorf("decoded accumulator differs: %s", d)
			}
			if again, err := got.MarshalBinary(); err != nil || !bytes.Equal(again, data) {
				t.Errorf("re-encoding gives other bytes (err %v)", err)
			}
			if len(tallies) == 0 {
				t.Fatal("no slices")
			}
			for key, tally := range tallies {
				data, err := tally.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				var got Tally
				if err := got.UnmarshalBinary(data); err != nil {
					t.Fatal(err)
				}
				if d := diffBits("Tally", reflect.ValueOf(got), reflect.ValueOf(*tally)); d != "" {
					t.Errorf("slice %q: decoded tally differs: %s", key, d)
				}
			}
		})
	}
}

// Values evaluation rarely makes survive bit for bit: NaN with a payload,
// infinities, negative zero, extreme integers and sums, sums recording NaN
// and infinities.
func TestAccumulatorRoundTripSpecialValues(t *testing.T) {
	acc, err := NewAccumulator(3, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	nanPayload := math.Float64frombits(0x7ff8_0000_dead_beef)
	negZero := math.Copysign(0, -1)
	acc.Tally.Images = math.MaxInt64
	acc.Tally.ValidPixels = math.MinInt64
	acc.Tally.LossSum = sumOf(nanPayload)
	acc.Tally.LossBoundSum = exact.Sum{Hi: math.MinInt64}
	acc.Tally.MIoUSum = sumOf(math.Inf(-1))
	acc.Tally.ClassLossSum = []exact.Sum{{Hi: math.MaxInt64, Lo: math.MaxUint64}, {}, sumOf(math.Inf(1))}
	acc.Tally.ClassLossImages = []int64{-1, 0, math.MinInt64}
	acc.Tally.LossBins[0] = math.MaxInt64
	acc.Tally.LossBins[LossBinCount-1] = math.MinInt64 // the last bin, sparse
	acc.Tally.Counts.Confusion[4] = math.MaxInt64
	h := acc.Histogram
	h.MaxError = []float64{0, negZero, nanPayload} // a zero among NaNs
	h.FgCount[len(h.FgCount)-1] = 7                // the last element, sparse
	h.FgSum[0] = exact.Sum{Lo: 1}
	for i := range h.BgSum {
		h.BgSum[i] = sumOf(float64(i) + 0.5) // dense
	}
	acc.Bootstrap.LossWeight[1] = math.MinInt64
	acc.Bootstrap.Class[5] = -3
	acc.Bootstrap.LossSum[0] = exact.Sum{Hi: -1, Lo: 1}
	data, err := acc.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got Accumulator
	if err := got.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if d := diffBits("Accumulator", reflect.ValueOf(got), reflect.ValueOf(*acc)); d != "" {
		t.Errorf("decoded accumulator differs: %s", d)
	}
}

// The slice encoding is the smaller of dense and sparse, and decodes back.
func TestSliceEncoding(t *testing.T) {
	negZero := math.Copysign(0, -1)
	big := exact.Sum{Hi: math.MinInt64, Lo: 1 << 63}
	tests := []struct {
		name                     string
		ints                     []int64
		floats                   []float64
		sums                     []exact.Sum
		intTag, floatTag, sumTag byte
	}{
		{"empty", nil, nil, nil, tagDense, tagDense, tagDense},
		{"zeros", make([]int64, 1000), make([]float64, 1000), make([]exact.Sum, 1000), tagSparse, tagSparse, tagSparse},
		{"last nonzero", append(make([]int64, 300), -5), append(make([]float64, 300), 2.5), append(make([]exact.Sum, 300), sumOf(2.5)), tagSparse, tagSparse, tagSparse},
		{"first nonzero", append([]int64{1 << 40}, make([]int64, 300)...), append([]float64{negZero}, make([]float64, 300)...),
			append([]exact.Sum{big}, make([]exact.Sum, 300)...), tagSparse, tagSparse, tagSparse},
		{"all nonzero", []int64{1, -1, math.MaxInt64, math.MinInt64}, []float64{1, negZero, math.NaN(), math.Inf(-1)},
			[]exact.Sum{sumOf(1), sumOf(-0.1), sumOf(math.NaN()), big}, tagDense, tagDense, tagDense},
		// A zero int or sum takes a byte either way; a zero float 8 bytes
		// dense.
		{"one zero", []int64{0}, []float64{0}, []exact.Sum{{}}, tagDense, tagSparse, tagDense},
		{"half zero", []int64{3, 0, 3, 0, 3, 0}, []float64{3, 0, 3, 0, 3, 0}, []exact.Sum{sumOf(3), {}, sumOf(3), {}, sumOf(3), {}},
			tagDense, tagSparse, tagDense},
	}
	for _, tt := range tests {
		ints := appendSlice(nil, tt.ints, int64s)
		gotInts := make([]int64, len(tt.ints))
		if err := decodeAll(ints, func(d *decoder) { readSlice(d, "ints", gotInts, len(gotInts), int64s) }); err != nil {
			t.Errorf("%s: ints: %v", tt.name, err)
		}
		if d := diffBits("ints", reflect.ValueOf(gotInts), reflect.ValueOf(tt.ints)); d != "" {
			t.Errorf("%s: %s", tt.name, d)
		}
		floats := appendSlice(nil, tt.floats, float64s)
		gotFloats := make([]float64, len(tt.floats))
		for i := range gotFloats {
			gotFloats[i] = 42 // a destination starting nonzero, as MaxError does
		}
		if err := decodeAll(floats, func(d *decoder) { readSlice(d, "floats", gotFloats, len(gotFloats), float64s) }); err != nil {
			t.Errorf("%s: floats: %v", tt.name, err)
		}
		if d := diffBits("floats", reflect.ValueOf(gotFloats), reflect.ValueOf(tt.floats)); d != "" {
			t.Errorf("%s: %s", tt.name, d)
		}
		encSums := appendSlice(nil, tt.sums, sums)
		gotSums := make([]exact.Sum, len(tt.sums))
		for i := range gotSums {
			gotSums[i] = sumOf(42)
		}
		if err := decodeAll(encSums, func(d *decoder) { readSlice(d, "sums", gotSums, len(gotSums), sums) }); err != nil {
			t.Errorf("%s: sums: %v", tt.name, err)
		}
		if !slices.Equal(gotSums, tt.sums) && !(len(gotSums) == 0 && len(tt.sums) == 0) {
			t.Errorf("%s: sums %v, want %v", tt.name, gotSums, tt.sums)
		}
		tag := uvarintLen(uint64(len(tt.ints))) // the tag follows the length
		if ints[tag] != tt.intTag || floats[tag] != tt.floatTag || encSums[tag] != tt.sumTag {
			t.Errorf("%s: tags %d for ints, %d for floats and %d for sums, want %d, %d and %d", tt.name,
				ints[tag], floats[tag], encSums[tag], tt.intTag, tt.floatTag, tt.sumTag)
		}
		if dense := tag + 1 + 8*len(tt.floats); len(floats) > dense {
			t.Errorf("%s: %d floats take %d bytes, more than %d dense", tt.name, len(tt.floats), len(floats), dense)
		}
	}
}

// sumOf is the exact sum of xs.
func sumOf(xs ...float64) exact.Sum {
	var s exact.Sum
	for _, x := range xs {
		s.Add(x)
	}
	return s
}

// decodeAll runs read on data, which it must consume exactly.
func decodeAll(data []byte, read func(*decoder)) error {
	d := &decoder{data: data}
	read(d)
	if d.err == nil && d.off != len(data) {
		d.fail("%d trailing bytes", len(data)-d.off)
	}
	return d.err
}

// Encoding commutes with merging: workers may merge before or after a
// shuffle and get the same bytes.
func TestMergeDecodedAccumulators(t *testing.T) {
	tc := encodeCase{classes: 19, replicates: 200, images: 2, height: 24, width: 16, regions: 4}
	var parts []*Accumulator
	var partSlices []map[string]*Tally
	for i := range 3 {
		tc.regions = 3 + i
		acc, tallies := evaluateCase(t, tc)
		parts, partSlices = append(parts, acc), append(partSlices, tallies)
	}
	merge := func(roundTrip bool) ([]byte, map[string][]byte) {
		acc, err := NewAccumulator(19, lovasz.DefaultBinsPerOctave, 200)
		if err != nil {
			t.Fatal(err)
		}
		tallies := map[string]*Tally{}
		for i, p := range parts {
			if roundTrip {
				p = decodeAccumulator(t, encodeAccumulator(t, p))
			}
			if err := acc.Merge(p); err != nil {
				t.Fatal(err)
			}
			for key, tally := range partSlices[i] {
				if roundTrip {
					data, err := tally.MarshalBinary()
					if err != nil {
						t.Fatal(err)
					}
					tally = new(Tally)
					if err := tally.UnmarshalBinary(data); err != nil {
						t.Fatal(err)
					}
				}
				if tallies[key] == nil {
					tallies[key] = NewTally(19)
				}
				if err := tallies[key].Merge(tally); err != nil {
					t.Fatal(err)
				}
			}
		}
		encoded := map[string][]byte{}
		for key, tally := range tallies {
			data, err := tally.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			encoded[key] = data
		}
		return encodeAccumulator(t, acc), encoded
	}
	direct, directSlices := merge(false)
	decoded, decodedSlices := merge(true)
	if !bytes.Equal(direct, decoded) {
		t.Error("merging decoded accumulators gives another accumulator")
	}
	if !reflect.DeepEqual(directSlices, decodedSlices) {
		t.Error("merging decoded slice tallies gives other tallies")
	}
}

func encodeAccumulator(tb testing.TB, acc *Accumulator) []byte {
	tb.Helper()
	data, err := acc.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

func decodeAccumulator(tb testing.TB, data []byte) *Accumulator {
	tb.Helper()
	var acc Accumulator
	if err := acc.UnmarshalBinary(data); err != nil {
		tb.Fatal(err)
	}
	return &acc
}

func TestAccumulatorUnmarshalErrors(t *testing.T) {
	acc, _ := evaluateCase(t, encodeCase{classes: 3, replicates: 2, binsPerOctave: 1, images: 1, height: 6, width: 5, regions: 2})
	valid := encodeAccumulator(t, acc)
	tally, err := acc.Tally.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// header makes an accumulator header followed by rest.
	header := func(classes, binsPerOctave, replicates uint64, rest ...byte) []byte {
		b := []byte{formatVersion, kindAccumulator}
		for _, v := range []uint64{classes, binsPerOctave, replicates} {
			b = binary.AppendUvarint(b, v)
		}
		return append(b, rest...)
	}
	// A tally body starts with 4 varints and 2 sums, then LossBins, then
	// ClassLossSum; zeros take a byte each, and zero loss bins 3 bytes (the
	// length, tagSparse, no nonzero value).
	scalars := make([]byte, 4+2)
	lossBins := func(rest ...byte) []byte { return header(3, 1, 2, slices.Concat(scalars, rest)...) }
	noLoss := []byte{LossBinCount, tagSparse, 0}
	classLossSum := func(rest ...byte) []byte { return lossBins(slices.Concat(noLoss, rest)...) }
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "unexpected end"},
		{"unknown version", append([]byte{4}, valid[1:]...), "unknown format version 4"},
		{"version 2, without loss bins", append([]byte{2}, valid[1:]...), "unknown format version 2"},
		{"version 1, of float sums", append([]byte{1}, valid[1:]...), "unknown format version 1"},
		{"version 0", append([]byte{0}, valid[1:]...), "unknown format version 0"},
		{"a tally", tally, "kind 't', want 'a'"},
		{"no classes", header(0, 1, 0), "at least one class"},
		{"bad resolution", header(3, 3, 2), "bins per octave"},
		{"too large", header(1<<14, 32, 0), "limit"},
		{"huge counts", header(1<<62, 32, 0), "out of range"},
		// valid's header takes 5 bytes.
		{"more replicates", header(3, 1, 3, valid[5:]...), "bootstrap Class holds 18 values, want 27"},
		{"trailing byte", append(append([]byte{}, valid...), 0), "1 trailing bytes"},
		{"wrong slice length", classLossSum(4, tagDense), "ClassLossSum holds 4 values, want 3"},
		{"loss bins of a class count", lossBins(3, tagDense, 0, 0, 0), "LossBins holds 3 values, want 101"},
		{"short loss bins", lossBins(LossBinCount, tagDense, 2, 2), "LossBins: 101 values need at least 101 bytes"},
		{"loss bin past the end", lossBins(LossBinCount, tagSparse, 1, LossBinCount, 2), "LossBins: a value past index 100"},
		{"unknown slice tag", classLossSum(3, 7), "unknown slice encoding 7"},
		{"short dense slice", classLossSum(3, tagDense, 1, 2), "need at least 3 bytes"},
		{"sparse value past the end", classLossSum(3, tagSparse, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0), "past index 2"},
		{"bad sum head", classLossSum(3, tagDense, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), "bad sum head 0x9"},
		{"escaped sum head with Hi bits", classLossSum(3, tagDense, 0x1f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), "bad sum head 0x1f"},
		{"sum short of its Lo bytes", header(3, 1, 2, slices.Concat(scalars[:4], []byte{8, 1, 2})...), "unexpected end"},
		{"too many sparse values", classLossSum(3, tagSparse, 4), "4 nonzero values of 3"},
		{"overlong varint", header(3, 1, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), "varint"},
	}
	for _, tt := range tests {
		acc := mustAcc(t, 4)
		before := encodeAccumulator(t, acc)
		err := acc.UnmarshalBinary(tt.data)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "decoding accumulator: ") {
			t.Errorf("%s: got error %v, want one mentioning %q", tt.name, err, tt.want)
		}
		if !bytes.Equal(encodeAccumulator(t, acc), before) {
			t.Errorf("%s: a failed decoding changed the accumulator", tt.name)
		}
	}
	// Every truncation fails.
	for n := range len(valid) {
		var acc Accumulator
		if err := acc.UnmarshalBinary(valid[:n]); err == nil {
			t.Errorf("decoding the first %d of %d bytes succeeded", n, len(valid))
		}
	}
	for n := range len(tally) {
		var tl Tally
		if err := tl.UnmarshalBinary(tally[:n]); err == nil {
			t.Errorf("decoding the first %d of %d bytes of a tally succeeded", n, len(tally))
		}
	}
	if err := new(Tally).UnmarshalBinary(valid); err == nil || !strings.Contains(err.Error(), "kind 'a', want 't'") {
		t.Errorf("decoding an accumulator as a tally: %v", err)
	}
}

func TestAccumulatorMarshalErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Accumulator)
		want   string
	}{
		{"no histogram", func(a *Accumulator) { a.Histogram = nil }, "no histogram"},
		{"short histogram", func(a *Accumulator) { a.Histogram.FgSum = a.Histogram.FgSum[1:] }, "FgSum holds"},
		{"histogram classes", func(a *Accumulator) { a.Histogram.Classes = 5 }, "histogram of 5 classes"},
		{"confusion classes", func(a *Accumulator) { a.Tally.Counts = *lovasz.NewCounts(3) }, "confusion counts of 3 classes"},
		{"loss bins", func(a *Accumulator) { a.Tally.LossBins = a.Tally.LossBins[1:] }, "LossBins holds 100 values, want 101"},
		{"bootstrap replicates", func(a *Accumulator) { a.Bootstrap.Replicates = 3 }, "bootstrap Class holds"},
		{"resolution", func(a *Accumulator) { a.Histogram.BinsPerOctave = 5 }, "bins per octave"},
	}
	for _, tt := range tests {
		acc := mustAcc(t, 4)
		tt.mutate(acc)
		if _, err := acc.MarshalBinary(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got error %v, want one mentioning %q", tt.name, err, tt.want)
		}
	}
	if _, err := (&Tally{Classes: 2}).MarshalBinary(); err == nil {
		t.Error("encoding a tally without slices succeeded")
	}
	// The zero tally has no loss bins, which every tally has, and does
	// not encode; a tally of no classes does, and decodes with empty class
	// slices.
	if _, err := (&Tally{}).MarshalBinary(); err == nil || !strings.Contains(err.Error(), "LossBins holds 0 values, want 101") {
		t.Errorf("encoding the zero tally: %v", err)
	}
	data, err := NewTally(0).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var tl Tally
	if err := tl.UnmarshalBinary(data); err != nil || tl.Classes != 0 || tl.Counts.Confusion == nil || len(tl.LossBins) != LossBinCount {
		t.Errorf("tally of no classes decoded as %+v, %v", tl, err)
	}
}

// The encoded size of realistic accumulators, beside the dense size of a
// coder writing 8 bytes per field and slice element, as Beam's schema coder
// does for floats. The bounds leave 10% for changes of the evaluation.
func TestAccumulatorEncodedSize(t *testing.T) {
	tests := []struct {
		tc       encodeCase
		maxBytes int
	}{
		{encodeCase{name: "C=150, 200 replicates, one 64x64 image", classes: 150, replicates: 200, images: 1, height: 64, width: 64, regions: 12}, 415_000},
		{encodeCase{name: "C=150, 200 replicates, 16 64x64 images", classes: 150, replicates: 200, images: 16, height: 64, width: 64, regions: 12}, 700_000},
		{encodeCase{name: "C=19, 200 replicates, one 512x512 image", classes: 19, replicates: 200, images: 1, height: 512, width: 512, regions: 20}, 102_000},
	}
	for _, tt := range tests {
		acc, _ := evaluateCase(t, tt.tc)
		data := encodeAccumulator(t, acc)
		tally, err := acc.Tally.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		h, bs := acc.Histogram, acc.Bootstrap
		hist := len(appendSlice(nil, h.FgCount, int64s)) + len(appendSlice(nil, h.BgCount, int64s)) +
			len(appendSlice(nil, h.FgSum, sums)) + len(appendSlice(nil, h.BgSum, sums)) + len(appendSlice(nil, h.MaxError, float64s))
		boot := len(appendSlice(nil, bs.Class, int64s)) + len(appendSlice(nil, bs.LossSum, sums)) + len(appendSlice(nil, bs.LossWeight, int64s))
		dense := denseSize(reflect.ValueOf(*acc))
		t.Logf("%s: %d bytes encoded (tally %d, histogram %d, bootstrap %d), %d dense (%.1f%%)",
			tt.tc.name, len(data), len(tally), hist, boot, dense, 100*float64(len(data))/float64(dense))
		if len(data) > tt.maxBytes {
			t.Errorf("%s: %d bytes encoded, want at most %d", tt.tc.name, len(data), tt.maxBytes)
		}
	}
}

// denseSize is 8 bytes per number of v.
func denseSize(v reflect.Value) int {
	switch v.Kind() {
	case reflect.Pointer:
		return denseSize(v.Elem())
	case reflect.Struct:
		n := 0
		for i := range v.NumField() {
			n += denseSize(v.Field(i))
		}
		return n
	case reflect.Slice:
		return 8 * v.Len()
	}
	return 8
}

// diffBits describes the first difference between x and y, or returns "".
// Floats compare by their bits, so NaN equals NaN and -0 differs from 0; a
// nil slice equals an empty one.
func diffBits(path string, x, y reflect.Value) string {
	if x.Type() != y.Type() {
		return fmt.Sprintf("%s: types %s and %s", path, x.Type(), y.Type())
	}
	switch x.Kind() {
	case reflect.Pointer:
		if x.IsNil() || y.IsNil() {
			if x.IsNil() != y.IsNil() {
				return path + ": nil and not nil"
			}
			return ""
		}
		return diffBits(path, x.Elem(), y.Elem())
	case reflect.Struct:
		for i := range x.NumField() {
			if d := diffBits(path+"."+x.Type().Field(i).Name, x.Field(i), y.Field(i)); d != "" {
				return d
			}
		}
	case reflect.Slice:
		if x.Len() != y.Len() {
			return fmt.Sprintf("%s: lengths %d and %d", path, x.Len(), y.Len())
		}
		for i := range x.Len() {
			if d := diffBits(fmt.Sprintf("%s[%d]", path, i), x.Index(i), y.Index(i)); d != "" {
				return d
			}
		}
	case reflect.Float64:
		if math.Float64bits(x.Float()) != math.Float64bits(y.Float()) {
			return fmt.Sprintf("%s: %v and %v", path, x.Float(), y.Float())
		}
	case reflect.Bool:
		if x.Bool() != y.Bool() {
			return fmt.Sprintf("%s: %v and %v", path, x.Bool(), y.Bool())
		}
	case reflect.Int, reflect.Int32, reflect.Int64:
		if x.Int() != y.Int() {
			return fmt.Sprintf("%s: %d and %d", path, x.Int(), y.Int())
		}
	case reflect.Uint64:
		if x.Uint() != y.Uint() {
			return fmt.Sprintf("%s: %d and %d", path, x.Uint(), y.Uint())
		}
	default:
		return fmt.Sprintf("%s: diffBits does not handle %s", path, x.Kind())
	}
	return ""
}

// FuzzAccumulatorUnmarshal checks that decoding arbitrary bytes as an
// accumulator or a tally fails cleanly or gives a value that encodes and
// decodes to itself.
func FuzzAccumulatorUnmarshal(f *testing.F) {
	for _, tc := range []encodeCase{
		{classes: 3, replicates: 2, binsPerOctave: 1, images: 1, height: 6, width: 5, regions: 2},
		{classes: 2, binsPerOctave: 2, images: 2, height: 4, width: 4, regions: 2, allIgnored: true},
	} {
		acc, tallies := evaluateCase(f, tc)
		f.Add(encodeAccumulator(f, acc))
		for _, tally := range tallies {
			data, err := tally.MarshalBinary()
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	empty, err := NewTally(0).MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(empty)
	f.Add([]byte{})
	f.Add([]byte{formatVersion, kindAccumulator, 1, 1, 0})
	f.Add([]byte{formatVersion, kindTally, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var acc Accumulator
		if acc.UnmarshalBinary(data) == nil {
			again := decodeAccumulator(t, encodeAccumulator(t, &acc))
			if d := diffBits("Accumulator", reflect.ValueOf(*again), reflect.ValueOf(acc)); d != "" {
				t.Errorf("re-decoded accumulator differs: %s", d)
			}
		}
		var tally Tally
		if tally.UnmarshalBinary(data) == nil {
			enc, err := tally.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var again Tally
			if err := again.UnmarshalBinary(enc); err != nil {
				t.Fatal(err)
			}
			if d := diffBits("Tally", reflect.ValueOf(again), reflect.ValueOf(tally)); d != "" {
				t.Errorf("re-decoded tally differs: %s", d)
			}
		}
	})
}

func benchmarkAccumulator(b *testing.B) *Accumulator {
	acc, _ := evaluateCase(b, encodeCase{classes: 150, replicates: 200, images: 4, height: 64, width: 64, regions: 12})
	return acc
}

// BenchmarkAccumulatorMarshal encodes an accumulator of 150 classes and 200
// replicates after four 64x64 images.
func BenchmarkAccumulatorMarshal(b *testing.B) {
	acc := benchmarkAccumulator(b)
	b.ReportAllocs()
	var data []byte
	for b.Loop() {
		var err error
		if data, err = acc.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(data)), "encoded-bytes")
}

// BenchmarkAccumulatorUnmarshal decodes what BenchmarkAccumulatorMarshal
// encodes.
func BenchmarkAccumulatorUnmarshal(b *testing.B) {
	data := encodeAccumulator(b, benchmarkAccumulator(b))
	b.ReportAllocs()
	for b.Loop() {
		var acc Accumulator
		if err := acc.UnmarshalBinary(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(data)), "encoded-bytes")
}
