package lovasz

import (
	"errors"
	"math"
	"slices"
	"testing"
)

// fuzzHalfValues are float16 bits a fuzzed byte can pick besides plain
// probabilities: signed zeros, the smallest subnormals, values just inside
// and outside the accepted ranges, infinities and NaN.
var fuzzHalfValues = []uint16{
	0x0000, 0x8000, 0x0001, 0x8001, 0x3c00, 0x3bff, 0x3c01, 0x3e00, 0x3e01,
	0xa11f, 0xa120, 0x3c52, 0x7c00, 0xfc00, 0x7e00, 0xbc00,
}

// FuzzFused checks the fused evaluator, on float16 bits, on their float32
// values and on logits, against the reference steps on the same values: the
// same error or none, the same counts (and histogram counts), and the same
// loss within the reference's bound (logits: within 1e-5, the float32
// softmax's). Float16 bits also take the path of large images, which must
// agree with the small one bit for bit.
func FuzzFused(f *testing.F) {
	f.Add([]byte{3, 2, 2, 0, 1, 2, 255, 10, 200, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120}, uint8(0), uint8(0))
	f.Add([]byte{2, 1, 3, 1, 0, 9, 128, 128, 255, 250, 3, 3}, uint8(1), uint8(1))
	f.Add([]byte{4, 3, 1, 0, 0, 0, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, uint8(2), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, mode, tolSel uint8) {
		if len(data) < 3 {
			return
		}
		classes, h, w := int(data[0]%6), int(data[1]%5), int(data[2]%5)
		data = data[3:]
		p := h * w
		if len(data) < p+classes*p {
			return
		}
		tc := halfCase{name: "fuzz", classes: classes, h: h, w: w, labels: make([]int32, p), probs: make([]uint16, classes*p)}
		for i := range tc.labels {
			tc.labels[i] = int32(data[i] % 8)
			if data[i] >= 250 {
				tc.labels[i] = 255
			}
		}
		for i := range tc.probs {
			b := data[p+i]
			if b >= 240 {
				tc.probs[i] = fuzzHalfValues[int(b-240)%len(fuzzHalfValues)]
				continue
			}
			tc.probs[i] = toHalf([]float32{float32(b) / 239})[0]
		}
		opt := Options{Ignore: 255, HasIgnore: true, Classes: ClassSet{Mode: ClassMode(mode % 3), IDs: []int{0, 1}}}
		tol := []float64{0, 0.01, 1}[tolSel%3]
		gotHalf, want := runHalf(t, tc, opt, tol, NewFused())
		large := NewFused()
		large.smallPixels = 0
		sameRuns(t, "small and large paths", gotHalf, halfRun(t, tc, opt, tol, large))
		gotProbs, _ := runProbs(t, tc, fromHalf(tc.probs), opt, tol, NewFused())
		for _, got := range []run{gotHalf, gotProbs} {
			if (got.err == nil) != (want.err == nil) {
				t.Fatalf("error %v, reference %v", got.err, want.err)
			}
			if got.err != nil {
				if !errors.Is(got.err, ErrBadInput) {
					t.Fatalf("error without ErrBadInput: %v", got.err)
				}
				// Shapes are checked in a different order; the first bad
				// value or label must be the reference's.
				if classes >= 2 && p > 0 && got.err.Error() != want.err.Error() {
					t.Fatalf("error %q, reference %q", got.err, want.err)
				}
				continue
			}
			compareRuns(t, "fuzz", got, want)
		}
		checkLogits(t, tc, data[p:p+classes*p], opt)
	})
}

// checkLogits runs Fused.Logits on logits made from fuzzed bytes (with
// infinities and NaN) against the reference steps.
func checkLogits(t *testing.T, tc halfCase, data []byte, opt Options) {
	logits := make([]float32, len(data))
	for i, b := range data {
		switch b {
		case 255:
			logits[i] = float32(math.NaN())
		case 254:
			logits[i] = float32(math.Inf(1))
		default:
			logits[i] = (float32(b) - 128) / 8
		}
	}
	got, want := NewCounts(max(tc.classes, 1)), NewCounts(max(tc.classes, 1))
	gotLoss, _, err1 := NewFused().Logits(logits, tc.labels, tc.classes, tc.h, tc.w, opt, nil, got, nil)
	wantLoss, _, err2 := NewFused().logitsReference(logits, tc.labels, tc.classes, tc.h, tc.w, opt, nil, want, nil)
	if (err1 == nil) != (err2 == nil) {
		t.Fatalf("logits: error %v, reference %v", err1, err2)
	}
	if err1 != nil {
		if tc.classes >= 2 && len(tc.labels) > 0 && err1.Error() != err2.Error() {
			t.Fatalf("logits: error %q, reference %q", err1, err2)
		}
		return
	}
	if d := math.Abs(gotLoss.Loss - wantLoss.Loss); d > 1e-5+gotLoss.Bound+wantLoss.Bound {
		t.Fatalf("logits: loss %v, reference %v", gotLoss.Loss, wantLoss.Loss)
	}
	if !slices.Equal(got.Confusion, want.Confusion) {
		t.Fatalf("logits: confusion %v, reference %v", got.Confusion, want.Confusion)
	}
}
