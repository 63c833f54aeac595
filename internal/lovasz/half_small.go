package lovasz

import (
	"fmt"
	"math"
	"math/bits"
)

// Small float16 images (fewer than halfSmallPixels pixels) take a path of
// their own. On a model's noisy outputs nearly every pixel of a class holds a
// float16 value of its own, so where a large image shares each value's visit
// among many pixels, a small one visits a value per pixel: visits must be
// cheap, and only the values an image holds are visited (halfRow marks
// them). Folding each image's visits into the dataset histogram's bins, an
// exact addition per bin reached per class, cost more than the rest of the
// image, so their errors are counted per value over many images instead
// (halfPending) and folded into the histogram once, by Flush. halfFold is
// exact, so the histogram is the same, bit for bit, as if each image had
// been folded on its own.

// halfRow counts one class's pixels: background ones by the magnitude bits
// of p, their error, and foreground ones by position in halfTables.order,
// each with the marks of the words that hold counts. Both orders go from the
// largest error to the smallest, background ones from the last slot down.
type halfRow[T uint16 | uint32] struct {
	bg     *[halfBgSlots]T
	bgMark *[halfBgSlots / 64]uint64
	fg     []T
	fgMark []uint64
}

func newHalfRow[T uint16 | uint32](t *halfTables) halfRow[T] {
	return halfRow[T]{
		bg:     new([halfBgSlots]T),
		bgMark: new([halfBgSlots / 64]uint64),
		fg:     make([]T, len(t.order)),
		fgMark: make([]uint64, markWords(t)),
	}
}

// halfPending counts, per class, the pixels of small images since the last
// flush.
type halfPending struct {
	classes int
	rows    []halfRow[uint32]
	// pixels is the number of valid pixels counted since the last
	// flush, the same for every class: it keeps the counts and
	// halfFold's sums from overflowing.
	pixels uint64
	// When the image being evaluated would overflow the counts, direct
	// is set and each of its classes is counted in row, to be folded on
	// its own.
	direct bool
	row    *halfRow[uint32]
}

// pendingPixels bounds the valid pixels counted between flushes, so that no
// count overflows uint32. A variable only so that tests can lower it.
var pendingPixels uint64 = math.MaxUint32

// markWords is the number of uint64 words that mark one class's positions
// in halfTables.order.
func markWords(t *halfTables) int { return (len(t.order) + 63) / 64 }

// begin prepares p for a small image of the given classes and valid
// pixels. Nothing may be pending for another number of classes.
func (p *halfPending) begin(classes int, valid uint64, t *halfTables) {
	if p.classes != classes {
		p.classes = classes
		p.rows = make([]halfRow[uint32], classes)
		for c := range p.rows {
			p.rows[c] = newHalfRow[uint32](t)
		}
	}
	p.direct = p.pixels+valid > pendingPixels
	if p.direct && p.row == nil {
		row := newHalfRow[uint32](t)
		p.row = &row
	}
	if !p.direct {
		p.pixels += valid
	}
}

// rowOf returns where class c of the image counts its errors.
func (p *halfPending) rowOf(c int) *halfRow[uint32] {
	if p.direct {
		return p.row
	}
	return &p.rows[c]
}

// Flush adds to hist the errors of the small float16 images that Half has
// counted since the last Flush (see Half), and forgets them. hist must have
// the classes of those images; if it has not, the errors are dropped, as
// they belong in no other histogram either, and Flush returns an error.
func (f *Fused) Flush(hist *Histogram) error {
	p := f.pending
	if p == nil || p.pixels == 0 {
		return nil
	}
	if hist.Classes != p.classes {
		f.pending = nil
		return fmt.Errorf("flushing the errors of %d-class images into a histogram of %d classes", p.classes, hist.Classes)
	}
	t := halfTablesOnce()
	for c := range p.rows {
		f.foldRow(hist, c, &p.rows[c], t)
	}
	p.pixels = 0
	return nil
}

// foldRow folds one class's counts into hist, clearing them and their
// marks: background errors from the largest down, then foreground ones.
func (f *Fused) foldRow(hist *Histogram, c int, row *halfRow[uint32], t *halfTables) {
	f.fold.start(hist, c)
	for wi := len(row.bgMark) - 1; wi >= 0; wi-- {
		word := row.bgMark[wi]
		row.bgMark[wi] = 0
		for word != 0 {
			hb := 63 - bits.LeadingZeros64(word)
			word &^= 1 << hb
			k := (wi<<6 | hb) & (halfBgSlots - 1)
			if n := row.bg[k]; n != 0 {
				row.bg[k] = 0
				f.fold.add(t.bgErr[k], uint64(n), false)
			}
		}
	}
	for wi, word := range row.fgMark {
		row.fgMark[wi] = 0
		for word != 0 {
			pos := wi<<6 | bits.TrailingZeros64(word)
			word &= word - 1
			if n := row.fg[pos]; n != 0 {
				row.fg[pos] = 0
				f.fold.add(t.err[pos], uint64(n), true)
			}
		}
	}
	f.fold.flush()
}

// halfSmallLoss is halfClassLoss for a small image. It counts the class's
// background pixels by magnitude bits and its foreground ones by position in
// halfTables.order, walks both from the largest error down, merged into
// one order, and adds the counts to the pending ones when hist is not nil.
func (f *Fused) halfSmallLoss(plane []uint16, c int, fg, ignored []int32, opt Options, hist *Histogram, t *halfTables) float64 {
	sc := f.half
	if sc.small == nil {
		row := newHalfRow[uint16](t)
		sc.small = &row
	}
	row := sc.small
	binSmall(plane, row.bg, row.bgMark)
	for _, i := range ignored {
		row.bg[plane[i]&(halfBgSlots-1)]--
	}
	fgFrom, fgTo := len(row.fgMark), -1 // the words of fgMark that may be set
	for _, i := range fg {
		b := plane[i]
		row.bg[b&(halfBgSlots-1)]--
		pos := int(t.fgPos[fgSlot(b)&(halfFgSlots-1)])
		row.fg[pos]++
		row.fgMark[pos>>6] |= 1 << (pos & 63)
		fgFrom, fgTo = min(fgFrom, pos>>6), max(fgTo, pos>>6)
	}
	var pend *halfRow[uint32]
	if hist != nil {
		pend = f.pending.rowOf(c)
	}
	g := int64(len(fg))
	largest := math.NaN() // needed when the class is absent
	if g == 0 {
		largest = largestBackground(row, t)
	}
	loss := walkSmall(row, pend, g, fgFrom, fgTo, t)
	if hist != nil {
		if f.pending.direct {
			f.foldRow(hist, c, pend, t)
		}
		if g == 0 && opt.Classes.Mode != Present {
			hist.noteMaxError(c, largest)
		}
	}
	if g == 0 {
		// Every pixel is background: J = 1 from the first pixel on.
		return largest
	}
	return loss
}

// binSmall counts every value of plane as a background pixel by its
// magnitude bits, and marks them. It is kept out of line: inlined, its
// loop spills a register to the stack.
//
//go:noinline
func binSmall(plane []uint16, n *[halfBgSlots]uint16, mark *[halfBgSlots / 64]uint64) {
	for _, b := range plane {
		k := b & (halfBgSlots - 1)
		n[k]++
		mark[k>>6] |= 1 << (k & 63)
	}
}

// walkSmall visits a small image's counts for one class (row, see halfRow)
// from the largest error down, clearing them, and returns the Lovász
// extension of the Jaccard loss for g > 0 foreground pixels (see
// halfExtension). Foreground positions lie in the words fgFrom to fgTo of
// row.fgMark. When pend is not nil, the counts are added to it.
//
// Background and foreground counts are kept apart, and their two orders are
// merged: before each background value, the foreground positions that come
// before its own position in halfTables.order are visited: the visits and
// their arithmetic are halfExtension's, so the loss is the same, bit for
// bit, as on the path of large images. Nearly every visit is a pixel of its
// own here, so the loop keeps its state in local variables: as fields, each
// visit's sum waited on the previous one's store.
func walkSmall(row *halfRow[uint16], pend *halfRow[uint32], g int64, fgFrom, fgTo int, t *halfTables) (value float64) {
	var seen, b0 int64
	var prev float64
	add := func(e float64, n uint16) {
		seen += int64(n)
		j := float64(seen) / float64(g+b0)
		value += e * (j - prev)
		prev = j
	}
	// The foreground cursor: word fw of row.fgMark holds fword, whose
	// lowest bit is the next position, fgNext.
	fw, fword, fgNext := fgFrom-1, uint64(0), 0
	nextFgWord := func() {
		fgNext = math.MaxInt
		for fw++; fw <= fgTo; fw++ {
			if fword = row.fgMark[fw]; fword != 0 {
				row.fgMark[fw] = 0
				if pend != nil {
					pend.fgMark[fw] |= fword
				}
				fgNext = fw<<6 | bits.TrailingZeros64(fword)
				return
			}
		}
	}
	visitFg := func() {
		n := row.fg[fgNext]
		row.fg[fgNext] = 0
		add(t.err[fgNext], n)
		if pend != nil {
			pend.fg[fgNext] += uint32(n)
		}
		if fword &= fword - 1; fword != 0 {
			fgNext = fw<<6 | bits.TrailingZeros64(fword)
		} else {
			nextFgWord()
		}
	}
	nextFgWord()
	for wi := len(row.bgMark) - 1; wi >= 0; wi-- {
		word := row.bgMark[wi]
		if word == 0 {
			continue
		}
		row.bgMark[wi] = 0
		if pend != nil {
			pend.bgMark[wi] |= word
		}
		for word != 0 {
			hb := 63 - bits.LeadingZeros64(word)
			word &^= 1 << hb
			k := (wi<<6 | hb) & (halfBgSlots - 1)
			n := row.bg[k]
			if n == 0 {
				continue // its pixels all were foreground or ignored
			}
			row.bg[k] = 0
			for fgNext < int(t.bgPos[k]) {
				visitFg()
			}
			b0 += int64(n)
			add(t.bgErr[k], n)
			if pend != nil {
				pend.bg[k] += uint32(n)
			}
		}
	}
	for fgNext < math.MaxInt {
		visitFg()
	}
	return value
}

// largestBackground is the largest error of a row without foreground
// pixels, NaN for none.
func largestBackground(row *halfRow[uint16], t *halfTables) float64 {
	for wi := len(row.bgMark) - 1; wi >= 0; wi-- {
		for word := row.bgMark[wi]; word != 0; {
			hb := 63 - bits.LeadingZeros64(word)
			word &^= 1 << hb
			if k := (wi<<6 | hb) & (halfBgSlots - 1); row.bg[k] != 0 {
				return t.bgErr[k]
			}
		}
	}
	return math.NaN()
}
