package evaluate

import (
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/segeval/segeval/internal/exact"
	"github.com/segeval/segeval/internal/lovasz"
)

// The binary encoding of accumulators and tallies, for the Beam coder that
// shuffles them between workers. Most of an accumulator is histogram bins
// and confusion cells that no pixel reached, so every slice is written
// sparsely unless that is larger.
//
// An encoding is a format version byte, a kind byte ('a' for an
// accumulator, 't' for a tally), a header fixing every slice length, then
// the fields in struct order:
//
//	accumulator: header classes binsPerOctave replicates,
//	             then the tally, histogram and bootstrap bodies
//	tally:       header classes, then the tally body
//
//	tally body:     Images ImagesWithoutValidPixels ValidPixels ImagesWithLoss
//	                LossSum LossBoundSum LossBins ClassLossSum ClassLossImages
//	                MIoUSum MIoUImages Confusion UnknownPred
//	histogram body: FgCount BgCount FgSum BgSum MaxError
//	bootstrap body: Class LossSum LossWeight
//
// Header counts are uvarints, int64 fields zigzag varints and float64 fields
// (only Histogram.MaxError) the 8 little-endian bytes of math.Float64bits,
// so that every float, NaN payloads and negative zero included, decodes to
// the same bits. An exact.Sum is a head, the uvarint z<<4 | n with z the
// zigzag of Hi, then the n top bytes of Lo, most significant first, the
// rest of Lo being zero. Sums of errors and losses computed from float32
// data have a small Hi and few low bits: in TestAccumulatorEncodedSize's
// cases a histogram's sums take about 5 bytes each, against 8 for a
// float64 and 9.5 for varints of Hi and Lo. A sum whose z does not fit 60
// bits has the head 15 (sumEscape), then Hi as a varint and all 8 bytes of
// Lo.
//
// A slice is its length, then either tagDense and every element, or
// tagSparse, the number of nonzero elements and, for each, the number of
// zero elements skipped since the previous one (a uvarint) and its value. A
// float is zero only when all its bits are, so -0 is kept as a nonzero
// element. The encoder picks whichever of the two is smaller.
//
// A tally's LossBins are always LossBinCount long, whatever its classes.
//
// Version 3 added the tally's LossBins. Version 2 made the sums exact.Sums
// and the bootstrap's Class and LossWeight integers (version 1 had float64
// for all of them). Older versions are not read: encodings only cross a
// run's shuffle, between workers of one build.
const (
	formatVersion = 3

	kindAccumulator = 'a'
	kindTally       = 't'

	tagDense  = 0
	tagSparse = 1
)

var (
	_ encoding.BinaryMarshaler   = (*Accumulator)(nil)
	_ encoding.BinaryUnmarshaler = (*Accumulator)(nil)
	_ encoding.BinaryMarshaler   = (*Tally)(nil)
	_ encoding.BinaryUnmarshaler = (*Tally)(nil)
)

// maxDecodedBytes bounds the memory an encoding may ask the decoder to
// allocate, so that a small corrupt or hostile input cannot exhaust memory
// (a sparse encoding of zeros is tiny whatever its length). The largest
// accumulator at the pipeline's default limits, 1024 classes at 256 bins
// per octave with 1000 replicates, takes 0.36 GB.
const maxDecodedBytes = 1 << 30

// shape is what an encoding's header declares: it fixes every slice length.
type shape struct {
	classes       int
	binsPerOctave int // 0 for a tally
	replicates    int
	bins          int // histogram bins per class, from binsPerOctave
}

// check validates the shape and sets bins. A tally's shape has only
// classes; an accumulator needs at least one class and a histogram
// resolution lovasz.NewHistogram accepts.
func (s *shape) check(kind byte) error {
	const maxDim = 1 << 24 // keeps the size arithmetic below from overflowing
	if s.classes < 0 || s.classes > maxDim || s.replicates < 0 || s.replicates > maxDim {
		return fmt.Errorf("%d classes and %d replicates are out of range", s.classes, s.replicates)
	}
	if kind == kindAccumulator {
		// One class at this resolution tells the bins per class.
		h, err := lovasz.NewHistogram(1, s.binsPerOctave)
		if err != nil {
			return err
		}
		if s.classes < 1 {
			return errors.New("an accumulator needs at least one class")
		}
		s.bins = len(h.FgCount)
	}
	c, r, b := int64(s.classes), int64(s.replicates), int64(s.bins)
	const i64, f64, sum = 8, 8, 16 // bytes per element
	// Tally: loss bins, class loss sums and images, confusion, unknown
	// predictions.
	size := LossBinCount*i64 + c*(sum+i64) + c*c*i64 + c*i64
	if kind == kindAccumulator {
		// Histogram: 2 counts and 2 sums per bin, the maximum errors;
		// bootstrap: 3 counts per class and replicate, a sum and a
		// weight per replicate.
		size += c*b*(2*i64+2*sum) + c*f64 + r*(3*c*i64+sum+i64)
	}
	if size > maxDecodedBytes {
		return fmt.Errorf("%d classes, %d bins per class and %d replicates take %d MB, more than the %d MB limit",
			s.classes, s.bins, s.replicates, size>>20, maxDecodedBytes>>20)
	}
	return nil
}

// MarshalBinary encodes the accumulator compactly for shuffling between
// workers (see the format above); UnmarshalBinary decodes it. Every value
// survives the round trip bit for bit: NaN (as in Histogram.MaxError),
// infinities, negative zero and exact.Sum's reserved values included. It fails on an accumulator whose
// slice lengths do not match its classes, resolution and replicates, as
// NewAccumulator makes them.
func (a *Accumulator) MarshalBinary() ([]byte, error) {
	if a == nil || a.Histogram == nil {
		return nil, errors.New("encoding accumulator: no histogram")
	}
	h, bs := a.Histogram, &a.Bootstrap
	s := shape{classes: a.Tally.Classes, binsPerOctave: h.BinsPerOctave, replicates: bs.Replicates}
	err := s.check(kindAccumulator)
	if err == nil {
		c, hist := s.classes, s.classes*s.bins
		err = errors.Join(a.Tally.checkShape(),
			sameClasses("histogram", h.Classes, c), sameClasses("bootstrap", bs.Classes, c),
			wantLen("FgCount", h.FgCount, hist), wantLen("BgCount", h.BgCount, hist),
			wantLen("FgSum", h.FgSum, hist), wantLen("BgSum", h.BgSum, hist),
			wantLen("MaxError", h.MaxError, c),
			wantLen("bootstrap Class", bs.Class, s.replicates*c*3),
			wantLen("bootstrap LossSum", bs.LossSum, s.replicates), wantLen("bootstrap LossWeight", bs.LossWeight, s.replicates))
	}
	if err != nil {
		return nil, fmt.Errorf("encoding accumulator: %w", err)
	}
	b := []byte{formatVersion, kindAccumulator}
	b = binary.AppendUvarint(b, uint64(s.classes))
	b = binary.AppendUvarint(b, uint64(s.binsPerOctave))
	b = binary.AppendUvarint(b, uint64(s.replicates))
	b = a.Tally.appendBody(b)
	b = appendSlice(b, h.FgCount, int64s)
	b = appendSlice(b, h.BgCount, int64s)
	b = appendSlice(b, h.FgSum, sums)
	b = appendSlice(b, h.BgSum, sums)
	b = appendSlice(b, h.MaxError, float64s)
	b = appendSlice(b, bs.Class, int64s)
	b = appendSlice(b, bs.LossSum, sums)
	b = appendSlice(b, bs.LossWeight, int64s)
	return b, nil
}

// UnmarshalBinary decodes an accumulator encoded by MarshalBinary into a,
// replacing its contents; on error a is left unchanged. Its slices are
// allocated by NewAccumulator, so they are never nil. Corrupt input is an
// error, never a panic; the whole input is checked before the slices its
// header asks for are allocated, which are at most 1 GiB.
func (a *Accumulator) UnmarshalBinary(data []byte) error {
	// Check pass: decode into slices left nil, which only validates.
	check := Accumulator{Histogram: &lovasz.Histogram{}}
	s, err := decode(data, kindAccumulator, check.decodeBody)
	if err != nil {
		return fmt.Errorf("decoding accumulator: %w", err)
	}
	out, err := NewAccumulator(s.classes, s.binsPerOctave, s.replicates)
	if err == nil {
		_, err = decode(data, kindAccumulator, out.decodeBody)
	}
	if err != nil {
		return fmt.Errorf("decoding accumulator: %w", err)
	}
	*a = *out
	return nil
}

func (a *Accumulator) decodeBody(d *decoder, s shape) {
	a.Tally.decodeBody(d, s)
	h, bs := a.Histogram, &a.Bootstrap
	h.Classes, h.BinsPerOctave = s.classes, s.binsPerOctave
	hist := s.classes * s.bins
	readSlice(d, "FgCount", h.FgCount, hist, int64s)
	readSlice(d, "BgCount", h.BgCount, hist, int64s)
	readSlice(d, "FgSum", h.FgSum, hist, sums)
	readSlice(d, "BgSum", h.BgSum, hist, sums)
	readSlice(d, "MaxError", h.MaxError, s.classes, float64s)
	bs.Replicates, bs.Classes = s.replicates, s.classes
	readSlice(d, "bootstrap Class", bs.Class, s.replicates*s.classes*3, int64s)
	readSlice(d, "bootstrap LossSum", bs.LossSum, s.replicates, sums)
	readSlice(d, "bootstrap LossWeight", bs.LossWeight, s.replicates, int64s)
}

// MarshalBinary encodes the tally compactly, as Accumulator.MarshalBinary
// does; UnmarshalBinary decodes it. It fails on a tally whose slice lengths
// are not those NewTally gives its classes, such as the zero Tally, whose
// LossBins are nil.
func (t *Tally) MarshalBinary() ([]byte, error) {
	if t == nil {
		return nil, errors.New("encoding tally: nil tally")
	}
	s := shape{classes: t.Classes}
	err := s.check(kindTally)
	if err == nil {
		err = t.checkShape()
	}
	if err != nil {
		return nil, fmt.Errorf("encoding tally: %w", err)
	}
	b := []byte{formatVersion, kindTally}
	b = binary.AppendUvarint(b, uint64(s.classes))
	return t.appendBody(b), nil
}

// UnmarshalBinary decodes a tally encoded by MarshalBinary into t, replacing
// its contents; on error t is left unchanged. Its slices are allocated by
// NewTally, so they are never nil.
func (t *Tally) UnmarshalBinary(data []byte) error {
	var check Tally
	s, err := decode(data, kindTally, check.decodeBody)
	if err != nil {
		return fmt.Errorf("decoding tally: %w", err)
	}
	out := NewTally(s.classes)
	if _, err := decode(data, kindTally, out.decodeBody); err != nil {
		return fmt.Errorf("decoding tally: %w", err)
	}
	*t = *out
	return nil
}

// checkShape reports slices whose lengths do not match t.Classes, and loss
// bins that are not LossBinCount.
func (t *Tally) checkShape() error {
	c := t.Classes
	return errors.Join(sameClasses("confusion counts", t.Counts.Classes, c),
		wantLen("LossBins", t.LossBins, LossBinCount),
		wantLen("ClassLossSum", t.ClassLossSum, c), wantLen("ClassLossImages", t.ClassLossImages, c),
		wantLen("Confusion", t.Counts.Confusion, c*c), wantLen("UnknownPred", t.Counts.UnknownPred, c))
}

func (t *Tally) appendBody(b []byte) []byte {
	b = binary.AppendVarint(b, t.Images)
	b = binary.AppendVarint(b, t.ImagesWithoutValidPixels)
	b = binary.AppendVarint(b, t.ValidPixels)
	b = binary.AppendVarint(b, t.ImagesWithLoss)
	b = appendSum(b, t.LossSum)
	b = appendSum(b, t.LossBoundSum)
	b = appendSlice(b, t.LossBins, int64s)
	b = appendSlice(b, t.ClassLossSum, sums)
	b = appendSlice(b, t.ClassLossImages, int64s)
	b = appendSum(b, t.MIoUSum)
	b = binary.AppendVarint(b, t.MIoUImages)
	b = appendSlice(b, t.Counts.Confusion, int64s)
	return appendSlice(b, t.Counts.UnknownPred, int64s)
}

func (t *Tally) decodeBody(d *decoder, s shape) {
	c := s.classes
	t.Classes, t.Counts.Classes = c, c
	t.Images = d.varint()
	t.ImagesWithoutValidPixels = d.varint()
	t.ValidPixels = d.varint()
	t.ImagesWithLoss = d.varint()
	t.LossSum = d.sum()
	t.LossBoundSum = d.sum()
	readSlice(d, "LossBins", t.LossBins, LossBinCount, int64s)
	readSlice(d, "ClassLossSum", t.ClassLossSum, c, sums)
	readSlice(d, "ClassLossImages", t.ClassLossImages, c, int64s)
	t.MIoUSum = d.sum()
	t.MIoUImages = d.varint()
	readSlice(d, "Confusion", t.Counts.Confusion, c*c, int64s)
	readSlice(d, "UnknownPred", t.Counts.UnknownPred, c, int64s)
}

func wantLen[T any](name string, s []T, n int) error {
	if len(s) != n {
		return fmt.Errorf("%s holds %d values, want %d", name, len(s), n)
	}
	return nil
}

func sameClasses(name string, got, want int) error {
	if got != want {
		return fmt.Errorf("%s of %d classes in a tally of %d", name, got, want)
	}
	return nil
}

// decode reads the version, kind and header of an encoding, checks the
// shape they declare, then has body read the rest, which must use all of
// data.
func decode(data []byte, kind byte, body func(*decoder, shape)) (shape, error) {
	d := &decoder{data: data}
	if v := d.byte(); d.err == nil && v != formatVersion {
		return shape{}, fmt.Errorf("unknown format version %d (this build reads %d)", v, formatVersion)
	}
	if k := d.byte(); d.err == nil && k != kind {
		return shape{}, fmt.Errorf("the data are of kind %q, want %q", k, kind)
	}
	var s shape
	s.classes = d.count()
	if kind == kindAccumulator {
		s.binsPerOctave = d.count()
		s.replicates = d.count()
	}
	if d.err != nil {
		return shape{}, d.err
	}
	if err := s.check(kind); err != nil {
		return shape{}, err
	}
	body(d, s)
	if d.err == nil && d.off != len(data) {
		d.fail("%d trailing bytes", len(data)-d.off)
	}
	return s, d.err
}

// codec reads and writes the elements of one slice type.
type codec[T any] struct {
	zero   func(T) bool
	size   func(T) int // encoded bytes
	append func([]byte, T) []byte
	read   func(*decoder) T
	// minSize is the fewest bytes an element takes, to bound a slice by
	// the input left.
	minSize int
}

var (
	int64s = codec[int64]{
		zero:    func(v int64) bool { return v == 0 },
		size:    func(v int64) int { return uvarintLen(uint64(v<<1) ^ uint64(v>>63)) },
		append:  binary.AppendVarint,
		read:    (*decoder).varint,
		minSize: 1,
	}
	float64s = codec[float64]{
		zero:    func(v float64) bool { return math.Float64bits(v) == 0 },
		size:    func(float64) int { return 8 },
		append:  appendFloat,
		read:    (*decoder).float,
		minSize: 8,
	}
	sums = codec[exact.Sum]{
		zero:    exact.Sum.IsZero,
		size:    sumSize,
		append:  appendSum,
		read:    (*decoder).sum,
		minSize: 1,
	}
)

func appendFloat(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

// sumEscape is the head of a sum whose Hi does not fit the head.
const sumEscape = 15

// sumHead returns the head of s's encoding and the number of bytes of Lo
// that follow it (and Hi, after sumEscape).
func sumHead(s exact.Sum) (head uint64, loBytes int) {
	z := uint64(s.Hi<<1) ^ uint64(s.Hi>>63)
	if z >= 1<<60 {
		return sumEscape, 8
	}
	n := (64 - bits.TrailingZeros64(s.Lo) + 7) / 8 // 0 for Lo = 0
	return z<<4 | uint64(n), n
}

func sumSize(s exact.Sum) int {
	head, n := sumHead(s)
	size := uvarintLen(head) + n
	if head == sumEscape {
		size += uvarintLen(uint64(s.Hi<<1) ^ uint64(s.Hi>>63))
	}
	return size
}

func appendSum(b []byte, s exact.Sum) []byte {
	head, n := sumHead(s)
	b = binary.AppendUvarint(b, head)
	if head == sumEscape {
		b = binary.AppendVarint(b, s.Hi)
	}
	for i := range n {
		b = append(b, byte(s.Lo>>(56-8*i)))
	}
	return b
}

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// appendSlice writes s densely or sparsely, whichever is smaller.
func appendSlice[T any](b []byte, s []T, c codec[T]) []byte {
	dense, sparse, nonzero, last := 0, 0, 0, -1
	for i, v := range s {
		n := c.size(v)
		dense += n
		if !c.zero(v) {
			sparse += uvarintLen(uint64(i-last-1)) + n
			nonzero++
			last = i
		}
	}
	sparse += uvarintLen(uint64(nonzero))
	b = slices.Grow(b, binary.MaxVarintLen64+1+min(dense, sparse))
	b = binary.AppendUvarint(b, uint64(len(s)))
	if dense <= sparse {
		b = append(b, tagDense)
		for _, v := range s {
			b = c.append(b, v)
		}
		return b
	}
	b = append(b, tagSparse)
	b = binary.AppendUvarint(b, uint64(nonzero))
	last = -1
	for i, v := range s {
		if !c.zero(v) {
			b = binary.AppendUvarint(b, uint64(i-last-1))
			b = c.append(b, v)
			last = i
		}
	}
	return b
}

// readSlice reads a slice of n elements into dst, which is either nil (to
// only check the encoding) or of length n.
func readSlice[T any](d *decoder, name string, dst []T, n int, c codec[T]) {
	if d.err != nil {
		return
	}
	if dst != nil && len(dst) != n {
		d.fail("%s: destination of %d values, want %d", name, len(dst), n) // a bug, not bad data
		return
	}
	if got := d.uvarint(); d.err == nil && got != uint64(n) {
		d.fail("%s holds %d values, want %d", name, got, n)
	}
	tag := d.byte()
	if d.err != nil {
		return
	}
	left := len(d.data) - d.off
	switch tag {
	case tagDense:
		if n > left/c.minSize {
			d.fail("%s: %d values need at least %d bytes, %d left", name, n, n*c.minSize, left)
			return
		}
		for i := range n {
			v := c.read(d)
			if d.err != nil {
				return
			}
			if dst != nil {
				dst[i] = v
			}
		}
	case tagSparse:
		clear(dst) // a destination may start nonzero, as NewHistogram's NaN MaxError
		k := d.uvarint()
		if d.err == nil && (k > uint64(n) || k > uint64(left/(1+c.minSize))) {
			d.fail("%s: %d nonzero values of %d do not fit in %d bytes", name, k, n, left)
		}
		next := 0 // the index after the last value read
		for range k {
			gap := d.uvarint()
			v := c.read(d)
			if d.err == nil && gap >= uint64(n-next) {
				d.fail("%s: a value past index %d", name, n-1)
			}
			if d.err != nil {
				return
			}
			next += int(gap)
			if dst != nil {
				dst[next] = v
			}
			next++
		}
	default:
		d.fail("%s: unknown slice encoding %d", name, tag)
	}
}

// decoder reads an encoding, keeping the first error; reads after an error
// return zero.
type decoder struct {
	data []byte
	off  int
	err  error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("at byte %d: %s", d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.data) {
		d.fail("unexpected end of data")
		return 0
	}
	d.off++
	return d.data[d.off-1]
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.data[d.off:])
	if n <= 0 {
		d.fail("truncated or overlong varint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.data[d.off:])
	if n <= 0 {
		d.fail("truncated or overlong varint")
		return 0
	}
	d.off += n
	return v
}

// count reads a header count, which must fit an int.
func (d *decoder) count() int {
	v := d.uvarint()
	if v > math.MaxInt32 {
		d.fail("count %d out of range", v)
		return 0
	}
	return int(v)
}

func (d *decoder) sum() exact.Sum {
	head := d.uvarint()
	if d.err != nil {
		return exact.Sum{}
	}
	var s exact.Sum
	n := int(head & 15)
	switch {
	case head == sumEscape:
		s.Hi, n = d.varint(), 8
	case n <= 8:
		z := head >> 4
		s.Hi = int64(z>>1) ^ -int64(z&1)
	default:
		d.fail("bad sum head %#x", head)
	}
	if d.err != nil {
		return exact.Sum{}
	}
	if len(d.data)-d.off < n {
		d.fail("unexpected end of data")
		return exact.Sum{}
	}
	for i := range n {
		s.Lo |= uint64(d.data[d.off+i]) << (56 - 8*i)
	}
	d.off += n
	return s
}

func (d *decoder) float() float64 {
	if d.err != nil {
		return 0
	}
	if len(d.data)-d.off < 8 {
		d.fail("unexpected end of data")
		return 0
	}
	d.off += 8
	return math.Float64frombits(binary.LittleEndian.Uint64(d.data[d.off-8:]))
}
