package lovasz

import (
	"fmt"
	"math"

	"github.com/segeval/segeval/internal/exact"
)

// DefaultBinsPerOctave is the dataset histogram's default resolution: with
// 26 octaves plus one bin below them, 833 bins per class of two 8-byte
// counts and two 16-byte sums, 6.0 MB at 150 classes and 0.76 MB at 19.
const DefaultBinsPerOctave = 32

// Histogram accumulates, per class, the binned errors of every valid pixel of
// many images. Histograms of disjoint image sets merge by addition, and the
// merged histogram yields the reference's per_image=False loss over all of
// them (one Lovász extension over every pixel of the dataset), which no sort
// can compute at dataset scale, with a computed bound on its error. Every
// addition is exact, so the histogram and its loss are the same bit for bit
// whatever the order images are added and histograms merged in.
//
// Fields are exported so that the histogram can travel in a Beam accumulator;
// use NewHistogram to make one.
type Histogram struct {
	Classes       int
	BinsPerOctave int
	// Per class c and bin k, at index c*bins+k: foreground and background
	// pixel counts, and the sums of (error - bin low edge). Sums of bin 0 are
	// not kept: its errors lie in [0, 2^-24).
	//
	// The sums are exact.Sums. For float32 inputs, each image's sum for a
	// bin is computed in float64, in a fixed order, then added exactly,
	// rounded to a multiple of 2^-64: that moves an image's sum by at most
	// 2^-65, negligible beside the bin widths (2^-32 at the least) that the
	// loss's error bound comes from. Float16 errors are added without any
	// rounding (halfFold), so their sums do not depend on how images were
	// grouped.
	FgCount []int64
	BgCount []int64
	FgSum   []exact.Sum
	BgSum   []exact.Sum
	// MaxError[c] is the largest error of class c over images where it is
	// absent: the loss of a class absent from the whole dataset under All or
	// a list. NaN until such an image was added under All or a list (under
	// Present it is not needed and not computed).
	MaxError []float64

	// touched lists, while tracked is set, the bins made non-empty since
	// the last Reset; every other bin is empty. A histogram of one image,
	// reset and merged once per image, then costs the bins the image
	// reached instead of all of them: at C=19, clearing and merging the
	// 16k bins took longer than evaluating a 32x32 image. Reset sets
	// tracked; the float16 fold lists the bins it fills, and every other
	// writer clears tracked (addFine, Merge into h). Code that writes the
	// exported slices itself must do so on a histogram it has not Reset.
	touched []int32
	tracked bool
}

// NewHistogram returns an empty histogram for the given number of classes and
// resolution (a power of two from 1 to 256 bins per octave).
func NewHistogram(classes, binsPerOctave int) (*Histogram, error) {
	if classes < 1 {
		return nil, fmt.Errorf("histogram needs at least one class, got %d", classes)
	}
	l, err := layoutOf(binsPerOctave)
	if err != nil {
		return nil, err
	}
	n := classes * l.bins()
	h := &Histogram{
		Classes:       classes,
		BinsPerOctave: binsPerOctave,
		FgCount:       make([]int64, n),
		BgCount:       make([]int64, n),
		FgSum:         make([]exact.Sum, n),
		BgSum:         make([]exact.Sum, n),
		MaxError:      make([]float64, classes),
	}
	for c := range h.MaxError {
		h.MaxError[c] = math.NaN()
	}
	return h, nil
}

func layoutOf(binsPerOctave int) (*layout, error) {
	for _, l := range layouts {
		if l.perOctave == binsPerOctave {
			return l, nil
		}
	}
	return nil, fmt.Errorf("bins per octave must be a power of two from 1 to %d, got %d", 1<<maxHistogramBits, binsPerOctave)
}

// Reset empties the histogram.
func (h *Histogram) Reset() {
	if h.tracked {
		for _, i := range h.touched {
			h.FgCount[i], h.BgCount[i] = 0, 0
			h.FgSum[i], h.BgSum[i] = exact.Sum{}, exact.Sum{}
		}
	} else {
		clear(h.FgCount)
		clear(h.BgCount)
		clear(h.FgSum)
		clear(h.BgSum)
	}
	h.touched, h.tracked = h.touched[:0], true
	for c := range h.MaxError {
		h.MaxError[c] = math.NaN()
	}
}

// touch notes that bin i, empty until now, is about to be filled.
func (h *Histogram) touch(i int) {
	if h.tracked {
		h.touched = append(h.touched, int32(i))
	}
}

// noteMaxError raises class c's largest error over images where it is
// absent to e; NaN, for no such image, changes nothing.
func (h *Histogram) noteMaxError(c int, e float64) {
	if !math.IsNaN(e) && !(e <= h.MaxError[c]) {
		h.MaxError[c] = e
	}
}

// SizeBytes is the memory the histogram's counts and sums take.
func (h *Histogram) SizeBytes() int {
	return 8*(len(h.FgCount)+len(h.BgCount)+len(h.MaxError)) + 16*(len(h.FgSum)+len(h.BgSum))
}

// Merge adds o into h. Both must have the same classes and resolution.
func (h *Histogram) Merge(o *Histogram) error {
	if h.Classes != o.Classes || h.BinsPerOctave != o.BinsPerOctave || len(h.FgCount) != len(o.FgCount) {
		return fmt.Errorf("cannot merge histograms of %d classes at %d bins/octave and %d classes at %d bins/octave",
			h.Classes, h.BinsPerOctave, o.Classes, o.BinsPerOctave)
	}
	h.tracked = false
	add := func(i int) {
		h.FgCount[i] += o.FgCount[i]
		h.BgCount[i] += o.BgCount[i]
		h.FgSum[i].Merge(o.FgSum[i])
		h.BgSum[i].Merge(o.BgSum[i])
	}
	if o.tracked {
		for _, i := range o.touched {
			add(int(i))
		}
	} else {
		for i := range h.FgCount {
			if o.FgCount[i] == 0 && o.BgCount[i] == 0 && o.FgSum[i].IsZero() && o.BgSum[i].IsZero() {
				continue // one image's histogram is mostly empty bins
			}
			add(i)
		}
	}
	for c, m := range o.MaxError {
		h.noteMaxError(c, m)
	}
	return nil
}

// addFine folds one class's per-image bins (at perImage's resolution) into
// the histogram.
// maxErr is the class's largest error when it is absent from the image, NaN
// otherwise.
//
// The fine bins of each histogram bin are summed in float64, in order, and
// the image's sums then added exactly: one exact addition per histogram bin
// the image reaches, not per fine bin, and a result that depends only on
// the image.
func (h *Histogram) addFine(c int, nf, nb []int64, sf, sb []float64, maxErr float64) {
	h.tracked = false
	l := layouts[log2(h.BinsPerOctave)]
	per := l.bins()
	fgc, bgc := h.FgCount[c*per:(c+1)*per], h.BgCount[c*per:(c+1)*per]
	fgs, bgs := h.FgSum[c*per:(c+1)*per], h.BgSum[c*per:(c+1)*per]
	fgc[0] += nf[0]
	bgc[0] += nb[0]
	fine := perImage.layout
	group := fine.perOctave / h.BinsPerOctave
	for coarse := 1; coarse < per; coarse++ {
		var cf, cb int64
		var f, b float64
		for k := (coarse-1)*group + 1; k <= coarse*group; k++ {
			if nf[k] == 0 && nb[k] == 0 {
				continue
			}
			shift := fine.lo[k] - l.lo[coarse]
			cf += nf[k]
			cb += nb[k]
			f += sf[k] + float64(nf[k])*shift
			b += sb[k] + float64(nb[k])*shift
		}
		if cf == 0 && cb == 0 {
			continue
		}
		fgc[coarse] += cf
		bgc[coarse] += cb
		if f != 0 {
			fgs[coarse].Add(f)
		}
		if b != 0 {
			bgs[coarse].Add(b)
		}
	}
	h.noteMaxError(c, maxErr)
}

func log2(n int) int {
	k := 0
	for n > 1 {
		n >>= 1
		k++
	}
	return k
}

// DatasetLoss is the Lovász-Softmax loss over every valid pixel in a
// histogram.
type DatasetLoss struct {
	Loss        float64
	Bound       float64   // bounds |Loss - exact value|
	ValidPixels int64     // valid pixels of every image
	PerClass    []float64 // per class loss, NaN outside the class set
}

// Loss returns the dataset-level loss averaged over the class set (Present:
// classes with a foreground pixel anywhere in the dataset). ValidPixels is 0 when
// the histogram holds no valid pixel.
func (h *Histogram) Loss(set ClassSet) (DatasetLoss, error) {
	if err := checkClassSet(set, h.Classes); err != nil {
		return DatasetLoss{}, err
	}
	l := layouts[log2(h.BinsPerOctave)]
	per := l.bins()
	res := DatasetLoss{PerClass: make([]float64, h.Classes)}
	inList := make([]bool, h.Classes)
	for _, id := range set.IDs {
		inList[id] = true
	}
	// The walk reads each bin's sums rounded to float64.
	sf, sb := make([]float64, per), make([]float64, per)
	counted := 0
	for c := range h.Classes {
		res.PerClass[c] = math.NaN()
		nf, nb := h.FgCount[c*per:(c+1)*per], h.BgCount[c*per:(c+1)*per]
		var g, n int64
		for k := range nf {
			g += nf[k]
			n += nf[k] + nb[k]
		}
		res.ValidPixels = n // the same for every class
		if n == 0 {
			continue
		}
		in := set.Mode == All || set.Mode == Present && g > 0 || set.Mode == List && inList[c]
		if !in {
			continue
		}
		var loss, bound float64
		if g == 0 {
			loss = h.MaxError[c]
		} else {
			fs, bs := h.FgSum[c*per:(c+1)*per], h.BgSum[c*per:(c+1)*per]
			for k := range per {
				sf[k], sb[k] = fs[k].Float64(), bs[k].Float64()
			}
			loss, bound = walk(l, g, n, nf, nb, sf, sb)
		}
		res.PerClass[c] = loss
		res.Loss += loss
		res.Bound += bound
		counted++
	}
	if counted > 0 {
		res.Loss /= float64(counted)
		res.Bound /= float64(counted)
	}
	return res, nil
}
