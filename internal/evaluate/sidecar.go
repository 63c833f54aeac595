package evaluate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// The replicates sidecar is a run's bootstrap replicates (Bootstrap: per
// replicate, the weighted intersection, label and prediction pixels of
// every class, the weighted per-image loss sum and the weight of the images
// with a loss), kept beside metrics.json so that a later run compared with
// this one can subtract its replicates from its own, replicate by
// replicate, without evaluating this run's images again (see PairedDeltas).
//
// Unlike the shuffle encoding of encode.go, which only crosses one run
// between workers of one build, a sidecar is read by later builds, and
// from storage anyone may write to: it has its own magic and version, and
// its decoder checks everything before it allocates. The layout:
//
//	magic "SGVLREPS", version byte (1), weight scheme byte (WeightScheme),
//	run id (uvarint length, at most 1024 bytes, then the bytes),
//	classes and replicates (uvarints),
//	then Class, LossSum and LossWeight as slices of encode.go's slice
//	encoding (dense or sparse, varint integers, exact.Sum heads).
//
// At 200 replicates a sidecar takes about 30 KB at 19 classes (one 3-4 byte
// varint per count); classes no pixel reached cost almost nothing.
const (
	sidecarMagic   = "SGVLREPS"
	sidecarVersion = 1
	maxRunIDBytes  = 1024
)

// Sidecar is a run's bootstrap replicates as read from its sidecar file.
type Sidecar struct {
	RunID     string
	Bootstrap Bootstrap
}

// MarshalSidecar encodes b as the replicates sidecar of run runID.
func (b *Bootstrap) MarshalSidecar(runID string) ([]byte, error) {
	if err := b.checkShape(); err != nil {
		return nil, fmt.Errorf("encoding replicates: %w", err)
	}
	if len(runID) > maxRunIDBytes {
		return nil, fmt.Errorf("encoding replicates: run id of %d bytes, more than %d", len(runID), maxRunIDBytes)
	}
	s := shape{classes: b.Classes, replicates: b.Replicates}
	if err := s.checkReplicates(); err != nil {
		return nil, fmt.Errorf("encoding replicates: %w", err)
	}
	out := append([]byte(sidecarMagic), sidecarVersion, WeightScheme)
	out = binary.AppendUvarint(out, uint64(len(runID)))
	out = append(out, runID...)
	out = binary.AppendUvarint(out, uint64(b.Classes))
	out = binary.AppendUvarint(out, uint64(b.Replicates))
	out = appendSlice(out, b.Class, int64s)
	out = appendSlice(out, b.LossSum, sums)
	return appendSlice(out, b.LossWeight, int64s), nil
}

// UnmarshalSidecar decodes a replicates sidecar. Malformed or inconsistent
// data (counts that no run can produce: negative, or an intersection
// larger than its label or prediction pixels) is an error, never a panic,
// and the whole input is checked before the slices it declares are
// allocated. Replicates drawn by another weight scheme are an error too:
// they would not pair with this build's.
func UnmarshalSidecar(data []byte) (*Sidecar, error) {
	d := &decoder{data: data}
	if len(data) < len(sidecarMagic) || !bytes.Equal(data[:len(sidecarMagic)], []byte(sidecarMagic)) {
		return nil, errors.New("decoding replicates: not a replicates file (bad magic)")
	}
	d.off = len(sidecarMagic)
	if v := d.byte(); d.err == nil && v != sidecarVersion {
		return nil, fmt.Errorf("decoding replicates: unknown version %d (this build reads %d)", v, sidecarVersion)
	}
	if w := d.byte(); d.err == nil && w != WeightScheme {
		return nil, fmt.Errorf("decoding replicates: weights of scheme %d, this build draws scheme %d: the replicates do not pair", w, WeightScheme)
	}
	n := d.uvarint()
	if d.err == nil && (n > maxRunIDBytes || n > uint64(len(data)-d.off)) {
		d.fail("run id of %d bytes", n)
	}
	var runID string
	if d.err == nil {
		runID = string(data[d.off : d.off+int(n)])
		d.off += int(n)
	}
	var s shape
	s.classes = d.count()
	s.replicates = d.count()
	if d.err != nil {
		return nil, fmt.Errorf("decoding replicates: %w", d.err)
	}
	if err := s.checkReplicates(); err != nil {
		return nil, fmt.Errorf("decoding replicates: %w", err)
	}
	body := d.off
	read := func(b *Bootstrap) error {
		d := &decoder{data: data, off: body}
		readSlice(d, "bootstrap Class", b.Class, s.replicates*s.classes*3, int64s)
		readSlice(d, "bootstrap LossSum", b.LossSum, s.replicates, sums)
		readSlice(d, "bootstrap LossWeight", b.LossWeight, s.replicates, int64s)
		if d.err == nil && d.off != len(data) {
			d.fail("%d trailing bytes", len(data)-d.off)
		}
		return d.err
	}
	// Check pass: slices left nil only validate.
	if err := read(&Bootstrap{}); err != nil {
		return nil, fmt.Errorf("decoding replicates: %w", err)
	}
	out := &Sidecar{RunID: runID, Bootstrap: newBootstrap(s.classes, s.replicates)}
	if err := read(&out.Bootstrap); err != nil {
		return nil, fmt.Errorf("decoding replicates: %w", err)
	}
	if err := out.Bootstrap.checkCounts(); err != nil {
		return nil, fmt.Errorf("decoding replicates: %w", err)
	}
	return out, nil
}

// checkReplicates bounds a sidecar's shape, as check bounds an
// accumulator's: its slices must fit maxDecodedBytes.
func (s shape) checkReplicates() error {
	const maxDim = 1 << 24
	if s.classes < 0 || s.classes > maxDim || s.replicates < 0 || s.replicates > maxDim {
		return fmt.Errorf("%d classes and %d replicates are out of range", s.classes, s.replicates)
	}
	const i64, sum = 8, 16
	if size := int64(s.replicates) * (3*int64(s.classes)*i64 + sum + i64); size > maxDecodedBytes {
		return fmt.Errorf("%d classes and %d replicates take %d MB, more than the %d MB limit",
			s.classes, s.replicates, size>>20, maxDecodedBytes>>20)
	}
	return nil
}

// checkCounts rejects counts that no evaluation produces: negative ones,
// and an intersection larger than its class's label or prediction pixels.
func (b *Bootstrap) checkCounts() error {
	for i := 0; i+2 < len(b.Class); i += 3 {
		inter, label, pred := b.Class[i], b.Class[i+1], b.Class[i+2]
		if inter < 0 || label < 0 || pred < 0 || inter > label || inter > pred {
			r, c := i/3/max(b.Classes, 1), i/3%max(b.Classes, 1)
			return fmt.Errorf("replicate %d, class %d: intersection %d, label %d and prediction %d pixels are inconsistent", r, c, inter, label, pred)
		}
	}
	for r, w := range b.LossWeight {
		if w < 0 {
			return fmt.Errorf("replicate %d: negative loss weight %d", r, w)
		}
	}
	return nil
}
