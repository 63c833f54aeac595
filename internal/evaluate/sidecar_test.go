package evaluate

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestSidecarRoundTrip(t *testing.T) {
	b, _ := modelRun(t, keysN(25), 2, 200)
	data, err := b.MarshalSidecar("night-7")
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalSidecar(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.RunID != "night-7" || !reflect.DeepEqual(got.Bootstrap, *b) {
		t.Errorf("round trip changed the replicates (run %q)", got.RunID)
	}
	// Compact: a few bytes a count, far below the 8 of int64s.
	if counts := len(b.Class); len(data) > 4*counts {
		t.Errorf("%d bytes for %d counts", len(data), counts)
	}
	// No replicates: a sidecar of none.
	empty := newBootstrap(4, 0)
	data, err = empty.MarshalSidecar("r")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := UnmarshalSidecar(data); err != nil || got.Bootstrap.Replicates != 0 {
		t.Errorf("empty sidecar: %+v, %v", got, err)
	}
}

func TestSidecarRejectsBadData(t *testing.T) {
	b, _ := modelRun(t, keysN(5), 2, 20)
	good, err := b.MarshalSidecar("r")
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(good) {
		if _, err := UnmarshalSidecar(good[:n]); err == nil {
			t.Fatalf("a sidecar cut to %d of %d bytes decoded", n, len(good))
		}
	}
	if _, err := UnmarshalSidecar(append(bytes.Clone(good), 0)); err == nil {
		t.Error("trailing byte accepted")
	}
	scheme := bytes.Clone(good)
	scheme[len(sidecarMagic)+1] = WeightScheme + 1
	if _, err := UnmarshalSidecar(scheme); err == nil || !strings.Contains(err.Error(), "do not pair") {
		t.Errorf("another weight scheme: %v", err)
	}
	// Counts no evaluation makes: an intersection above its label pixels.
	bad := *b
	bad.Class = append([]int64(nil), b.Class...)
	bad.Class[0], bad.Class[1] = 10, 5
	data, err := bad.MarshalSidecar("r")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalSidecar(data); err == nil || !strings.Contains(err.Error(), "inconsistent") {
		t.Errorf("inconsistent counts: %v", err)
	}
	// A header declaring more than the memory limit fails before
	// allocating.
	huge := append([]byte(sidecarMagic), sidecarVersion, WeightScheme, 0, 0xff, 0xff, 0x3f, 0xe8, 0x07)
	if _, err := UnmarshalSidecar(huge); err == nil {
		t.Error("a header of 1M classes and 1000 replicates accepted")
	}
	if _, err := b.MarshalSidecar(strings.Repeat("x", 2000)); err == nil {
		t.Error("a 2000-byte run id encoded")
	}
}

// FuzzUnmarshalSidecar: sidecars are read from storage, so any bytes must
// give a sidecar or an error, and a sidecar that decodes must encode back
// to replicates that decode the same.
func FuzzUnmarshalSidecar(f *testing.F) {
	b := newBootstrap(3, 4)
	for i := range b.Class {
		b.Class[i] = int64(i%3 + 1) // intersection 1, label 2, prediction 3
	}
	b.LossSum[1].Add(0.75)
	b.LossWeight[1] = 2
	data, _ := b.MarshalSidecar("seed")
	f.Add(data)
	f.Add([]byte(sidecarMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := UnmarshalSidecar(data)
		if err != nil {
			return
		}
		again, err := s.Bootstrap.MarshalSidecar(s.RunID)
		if err != nil {
			t.Fatalf("a decoded sidecar does not encode: %v", err)
		}
		s2, err := UnmarshalSidecar(again)
		if err != nil || !sameBootstrap(&s.Bootstrap, &s2.Bootstrap) {
			t.Fatalf("re-encoded sidecar decodes differently: %v", err)
		}
		// Whatever it holds, intervals computed from it do not panic.
		if _, err := PairedDeltas(&s.Bootstrap, &s.Bootstrap, 0.95); err != nil {
			t.Fatal(err)
		}
	})
}

func sameBootstrap(a, b *Bootstrap) bool {
	if a.Replicates != b.Replicates || a.Classes != b.Classes || !reflect.DeepEqual(a.Class, b.Class) || !reflect.DeepEqual(a.LossWeight, b.LossWeight) {
		return false
	}
	for r := range a.LossSum {
		x, y := a.LossSum[r].Float64(), b.LossSum[r].Float64()
		if x != y && !(math.IsNaN(x) && math.IsNaN(y)) {
			return false
		}
	}
	return true
}
