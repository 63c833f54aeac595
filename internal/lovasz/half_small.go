package lovasz

import (
	"fmt"
	"math"
	"math/bits"
)

// Small float16 images (fewer than halfSparsePixels pixels) cost more per
// pixel than large ones: on a model's noisy outputs nearly every pixel of a
// class holds a float16 value of its own, so the walk visits one position of
// halfTables.order per pixel where a large image shares each visit among many
// pixels, and folding those visits into the dataset histogram's bins, an
// exact addition per bin per class, cost more than the rest of the image.
// Their errors are therefore counted per position over many images
// (halfPending) and folded into the histogram once, by Flush; halfFold is
// exact, so the histogram is the same, bit for bit, as if each image had
// been folded on its own.

// halfPending counts, per class, the pixels of small images at each position
// of halfTables.order since the last flush.
type halfPending struct {
	classes int
	n       []uint32 // class c's counts are n[c*len(order):][:len(order)]
	mark    []uint64 // per class, the words of n that hold counts, as bits
	// pixels is the number of valid pixels counted since the last
	// flush, the same for every class: it keeps n and halfFold's sums
	// from overflowing.
	pixels uint64
	// When the image being evaluated would overflow n, direct is set and
	// each of its classes is counted in row and rowMark, to be folded
	// on its own.
	direct  bool
	row     []uint32
	rowMark []uint64
}

// pendingPixels bounds the valid pixels counted between flushes, so that no
// count overflows uint32. A variable only so that tests can lower it.
var pendingPixels uint64 = math.MaxUint32

// markWords is the number of uint64 words that mark one class's positions.
// It is a multiple of 4, for walkSmall.
func markWords(t *halfTables) int { return (len(t.order) + 255) / 256 * 4 }

// begin prepares p for a small image of the given classes and valid
// pixels. Nothing may be pending for another number of classes.
func (p *halfPending) begin(classes int, valid uint64, t *halfTables) {
	if p.classes != classes {
		p.classes = classes
		p.n = make([]uint32, classes*len(t.order))
		p.mark = make([]uint64, classes*markWords(t))
	}
	p.direct = p.pixels+valid > pendingPixels
	if p.direct && p.row == nil {
		p.row, p.rowMark = make([]uint32, len(t.order)), make([]uint64, markWords(t))
	}
	if !p.direct {
		p.pixels += valid
	}
}

// rows returns where class c of the image counts its errors.
func (p *halfPending) rows(c int, t *halfTables) ([]uint32, []uint64) {
	if p.direct {
		return p.row, p.rowMark
	}
	size, words := len(t.order), markWords(t)
	return p.n[c*size : (c+1)*size], p.mark[c*words : (c+1)*words]
}

// Flush adds to hist the errors of the small float16 images that Half has
// counted since the last Flush (see Half), and forgets them. hist must have
// the classes of those images.
func (f *Fused) Flush(hist *Histogram) error {
	p := f.pending
	if p == nil || p.pixels == 0 {
		return nil
	}
	if hist.Classes != p.classes {
		return fmt.Errorf("flushing the errors of %d-class images into a histogram of %d classes", p.classes, hist.Classes)
	}
	t := halfTablesOnce()
	size, words := len(t.order), markWords(t)
	for c := range p.classes {
		f.foldRow(hist, c, p.n[c*size:(c+1)*size], p.mark[c*words:(c+1)*words], t)
	}
	p.pixels = 0
	return nil
}

// foldRow folds one class's counts per position into hist, clearing them
// and their marks.
func (f *Fused) foldRow(hist *Histogram, c int, n []uint32, mark []uint64, t *halfTables) {
	f.fold.start(hist, c)
	for wi, word := range mark {
		if word == 0 {
			continue
		}
		mark[wi] = 0
		for word != 0 {
			pos := wi<<6 | bits.TrailingZeros64(word)
			word &= word - 1
			if k := n[pos]; k != 0 {
				n[pos] = 0
				f.fold.add(t.err[pos], uint64(k), t.order[pos]&orderFg != 0)
			}
		}
	}
	f.fold.flush()
}

// halfSmallLoss is halfClassLoss for a small image. It counts the class's
// pixels by their position in halfTables.order, visits the positions it
// marked in order, and adds the counts to the pending ones when hist is not
// nil.
func (f *Fused) halfSmallLoss(plane []uint16, c int, fg, ignored []int32, opt Options, hist *Histogram, t *halfTables) float64 {
	sc := f.half
	if sc.small == nil {
		sc.small, sc.mark = make([]uint16, len(t.order)), make([]uint64, markWords(t))
	}
	n, mark := sc.small, sc.mark
	binSmall(plane, n, mark, &t.bgPos)
	for _, i := range ignored {
		n[t.bgPos[plane[i]&(halfBgSlots-1)]]--
	}
	for _, i := range fg {
		b := plane[i]
		n[t.bgPos[b&(halfBgSlots-1)]]--
		pos := t.fgPos[fgSlot(b)&(halfFgSlots-1)]
		n[pos]++
		mark[pos>>6] |= 1 << (pos & 63)
	}
	var pend []uint32
	var pendMark []uint64
	if hist != nil {
		pend, pendMark = f.pending.rows(c, t)
	}
	g := int64(len(fg))
	loss, largest := walkSmall(n, mark, g, pend, pendMark, t)
	if hist != nil {
		if f.pending.direct {
			f.foldRow(hist, c, pend, pendMark, t)
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

// binSmall counts every value of plane as a background pixel at its
// position, and marks the positions.
func binSmall(plane []uint16, n []uint16, mark []uint64, bgPos *[halfBgSlots]uint16) {
	for _, b := range plane {
		pos := bgPos[b&(halfBgSlots-1)]
		n[pos]++
		mark[pos>>6] |= 1 << (pos & 63)
	}
}

// walkSmall visits the marked positions from the largest error down,
// clearing counts and marks, and returns the Lovász extension of the Jaccard
// loss for g > 0 foreground pixels (see halfExtension) and the largest error,
// NaN for no valid pixel. When pend is not nil it adds every count to it and
// marks the words it added to.
//
// Nearly every visit is a pixel of its own here, and two things would chain
// each visit to the previous one: the division for the Jaccard index and the
// addition to the loss. The division is a product with a table of
// reciprocals (its denominator is a pixel count), which can differ from the
// quotient in its last bit, and visits alternate between two partial sums.
func walkSmall(n []uint16, mark []uint64, g int64, pend []uint32, pendMark []uint64, t *halfTables) (value, largest float64) {
	largest = math.NaN()
	var seen, b0 int64
	var prev, odd float64
	visit := func(pos int, sum *float64) {
		k := n[pos]
		if k == 0 {
			return // a background position whose pixels all were foreground or ignored
		}
		n[pos] = 0
		e := t.err[pos]
		if seen == 0 {
			largest = e
		}
		seen += int64(k)
		if t.order[pos]&orderFg == 0 {
			b0 += int64(k)
		}
		j := float64(seen) * t.recip[g+b0]
		*sum += e * (j - prev)
		prev = j
		if pend != nil {
			pend[pos] += uint32(k)
		}
	}
	// Most words are empty: they are skipped four at a time.
	for wi := 0; wi < len(mark); wi += 4 {
		quad := mark[wi : wi+4 : wi+4]
		if quad[0]|quad[1]|quad[2]|quad[3] == 0 {
			continue
		}
		for q, word := range quad {
			if word == 0 {
				continue
			}
			quad[q] = 0
			if pend != nil {
				pendMark[wi+q] |= word
			}
			base := (wi + q) << 6
			for word != 0 {
				visit(base|bits.TrailingZeros64(word), &value)
				if word &= word - 1; word == 0 {
					break
				}
				visit(base|bits.TrailingZeros64(word), &odd)
				word &= word - 1
			}
		}
	}
	return value + odd, largest
}
