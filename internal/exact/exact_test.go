package exact

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// fromBig is the Sum holding the integer v (in units of 2^-64), which must
// fit 128 bits in two's complement.
func fromBig(v *big.Int) Sum {
	m := new(big.Int).And(v, new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1)))
	lo := new(big.Int).And(m, new(big.Int).SetUint64(math.MaxUint64)).Uint64()
	hi := new(big.Int).Rsh(m, 64).Uint64()
	return Sum{Hi: int64(hi), Lo: lo}
}

// toBig is the value of a finite s in units of 2^-64.
func toBig(s Sum) *big.Int {
	v := new(big.Int).Lsh(big.NewInt(s.Hi), 64)
	return v.Add(v, new(big.Int).SetUint64(s.Lo))
}

// units is x in units of 2^-64 rounded to the nearest integer, ties to even,
// computed with math/big.
func units(x float64) *big.Int {
	f := new(big.Float).SetFloat64(x) // exact
	f.SetMantExp(f, 64)
	i, acc := f.Int(nil) // truncates toward zero
	if acc == big.Exact {
		return i
	}
	// Compare the fraction left with one half.
	frac := new(big.Float).Sub(f, new(big.Float).SetInt(i))
	frac.Abs(frac)
	away := big.NewInt(int64(f.Sign()))
	switch frac.Cmp(big.NewFloat(0.5)) {
	case 1:
		i.Add(i, away)
	case 0:
		if i.Bit(0) == 1 {
			i.Add(i, away)
		}
	}
	return i
}

// float64Of is v units of 2^-64 rounded to the nearest float64, ties to
// even, computed with math/big.
func float64Of(v *big.Int) float64 {
	f := new(big.Float).SetPrec(53).SetMode(big.ToNearestEven).SetInt(v)
	f.SetMantExp(f, -64)
	x, acc := f.Float64()
	if acc != big.Exact {
		panic("float64Of: inexact after rounding to 53 bits")
	}
	return x
}

func sumOf(xs ...float64) Sum {
	var s Sum
	for _, x := range xs {
		s.Add(x)
	}
	return s
}

func TestAdd(t *testing.T) {
	const big63 = 0x1p63
	tests := []struct {
		name  string
		add   []float64
		want  Sum
		float float64 // NaN for NaN
	}{
		{"empty", nil, Sum{}, 0},
		{"one", []float64{1}, Sum{1, 0}, 1},
		{"half", []float64{0.5}, Sum{0, 1 << 63}, 0.5},
		{"minus one", []float64{-1}, Sum{-1, 0}, -1},
		{"minus half", []float64{-0.5}, Sum{-1, 1 << 63}, -0.5},
		{"one unit", []float64{0x1p-64}, Sum{0, 1}, 0x1p-64},
		{"minus one unit", []float64{-0x1p-64}, Sum{-1, math.MaxUint64}, -0x1p-64},
		{"smallest exact normal", []float64{0x1p-12}, Sum{0, 1 << 52}, 0x1p-12},
		{"half a unit rounds to even 0", []float64{0x1p-65}, Sum{}, 0},
		{"one and a half units round to 2", []float64{3 * 0x1p-65}, Sum{0, 2}, 0x1p-63},
		{"two and a half units round to 2", []float64{5 * 0x1p-65}, Sum{0, 2}, 0x1p-63},
		{"minus one and a half units", []float64{-3 * 0x1p-65}, Sum{-1, math.MaxUint64 - 1}, -0x1p-63},
		{"just above half a unit", []float64{0x1p-65 + 0x1p-90}, Sum{0, 1}, 0x1p-64},
		{"just below half a unit", []float64{0x1p-65 - 0x1p-100}, Sum{}, 0},
		{"subnormal", []float64{math.SmallestNonzeroFloat64}, Sum{}, 0},
		{"negative zero", []float64{math.Copysign(0, -1)}, Sum{}, 0},
		{"largest below 2^63", []float64{big63 - 1024}, Sum{math.MaxInt64 - 1023, 0}, big63 - 1024},
		{"largest below -2^63", []float64{-big63 + 1024}, Sum{math.MinInt64 + 1024, 0}, -big63 + 1024},
		// Float64 addition gives 2^-54; the sum of the three float64 values
		// is exactly 2^-55.
		{"0.1+0.2-0.3", []float64{0.1, 0.2, -0.3}, Sum{0, 1 << 9}, 0x1p-55},
		{"cancellation", []float64{1e16, 1, -1e16}, Sum{1, 0}, 1},
		{"tiny parts", []float64{1, 0x1p-60, 0x1p-60, -1}, Sum{0, 32}, 0x1p-59},
		// Partial sums beyond the range wrap around and come back.
		{"wrap around", []float64{0x1p62, 0x1p62, -0x1p62, -0x1p62, 3}, Sum{3, 0}, 3},
		{"NaN", []float64{1, math.NaN(), 2}, Sum{math.MinInt64, nan}, math.NaN()},
		{"+Inf", []float64{1, math.Inf(1), -5}, Sum{math.MinInt64, posInf}, math.Inf(1)},
		{"-Inf", []float64{math.Inf(-1), 7}, Sum{math.MinInt64, negInf}, math.Inf(-1)},
		{"both infinities", []float64{math.Inf(-1), math.Inf(1)}, Sum{math.MinInt64, nan}, math.NaN()},
		{"2^63 counts as +Inf", []float64{big63}, Sum{math.MinInt64, posInf}, math.Inf(1)},
		{"-2^63 counts as -Inf", []float64{-big63}, Sum{math.MinInt64, negInf}, math.Inf(-1)},
		{"largest float64", []float64{math.MaxFloat64, 1}, Sum{math.MinInt64, posInf}, math.Inf(1)},
	}
	for _, tt := range tests {
		s := sumOf(tt.add...)
		if s != tt.want {
			t.Errorf("%s: %#v, want %#v", tt.name, s, tt.want)
		}
		got := s.Float64()
		if math.Float64bits(got) != math.Float64bits(tt.float) && !(math.IsNaN(got) && math.IsNaN(tt.float)) {
			t.Errorf("%s: Float64 %v, want %v", tt.name, got, tt.float)
		}
		if s.IsZero() != (tt.want == Sum{}) {
			t.Errorf("%s: IsZero %v", tt.name, s.IsZero())
		}
	}
}

func TestMergeNonFinite(t *testing.T) {
	finite, nanSum := sumOf(2.5), sumOf(math.NaN())
	pos, neg := sumOf(math.Inf(1)), sumOf(math.Inf(-1))
	tests := []struct {
		name string
		a, b Sum
		want float64
	}{
		{"finite", finite, finite, 5},
		{"finite and NaN", finite, nanSum, math.NaN()},
		{"finite and +Inf", finite, pos, math.Inf(1)},
		{"-Inf and -Inf", neg, neg, math.Inf(-1)},
		{"+Inf and -Inf", pos, neg, math.NaN()},
		{"+Inf and NaN", pos, nanSum, math.NaN()},
		// -2^63 is a value, not a reserved one: only Lo 1 to 3 are.
		{"finite and -2^63", finite, Sum{math.MinInt64, 0}, -0x1p63 + 2.5},
		{"zero and -2^63 + 4 units", Sum{}, Sum{math.MinInt64, 4}, -0x1p63},
	}
	for _, tt := range tests {
		for _, order := range [][2]Sum{{tt.a, tt.b}, {tt.b, tt.a}} {
			s := order[0]
			s.Merge(order[1])
			got := s.Float64()
			if math.Float64bits(got) != math.Float64bits(tt.want) && !(math.IsNaN(got) && math.IsNaN(tt.want)) {
				t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
			}
			s.Add(1)
			s.Merge(finite)
			if again := s.Float64(); (math.IsNaN(got) || math.IsInf(got, 0)) &&
				math.Float64bits(again) != math.Float64bits(got) {
				t.Errorf("%s: adding finite values changed %v to %v", tt.name, got, again)
			}
		}
	}
}

// randomFloat draws a float64 of either sign with a random mantissa and a
// magnitude from 2^-80 (rounded) to 2^maxExp, now and then a subnormal, an
// integer, an exact tie between two units or zero.
func randomFloat(r *rand.Rand, maxExp int) float64 {
	sign := 1.0
	if r.IntN(2) == 0 {
		sign = -1
	}
	switch r.IntN(16) {
	case 0:
		return sign * math.Float64frombits(r.Uint64N(1<<52))
	case 1:
		return sign * float64(r.IntN(1000))
	case 2:
		return sign * float64(2*r.IntN(1000)+1) * 0x1p-65
	case 3:
		return 0
	}
	m := float64(1<<52|r.Uint64N(1<<52)) * 0x1p-52
	return sign * math.Ldexp(m, r.IntN(maxExp+81)-80)
}

// Sums of random floats of many magnitudes equal math/big's sum of the
// values rounded to units, and Float64 rounds that sum like math/big.
func TestAddMatchesBig(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 2000 {
		n := 1 + r.IntN(300)
		maxExp := []int{-20, 0, 10, 54}[trial%4] // 300 values below 2^55 stay below 2^63
		var s Sum
		want := new(big.Int)
		for range n {
			x := randomFloat(r, maxExp)
			s.Add(x)
			want.Add(want, units(x))
		}
		if got := toBig(s); got.Cmp(want) != 0 {
			t.Fatalf("trial %d: sum %v units, math/big %v", trial, got, want)
		}
		if got, want := s.Float64(), float64Of(want); got != want || math.Signbit(got) != math.Signbit(want) {
			t.Fatalf("trial %d: Float64 %v (%#v), math/big %v", trial, got, s, want)
		}
	}
}

// TestAddFixed checks AddFixed against math/big, and against Add where the
// value is a float64 as well.
func TestAddFixed(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := range 2000 {
		var s, viaAdd Sum
		want := new(big.Int)
		exactFloats := true
		for range 1 + r.IntN(50) {
			frac := uint(r.IntN(65))
			v := r.Uint64() >> r.IntN(64)
			if frac < 10 {
				v >>= 10 // keep the sum below 2^63
			}
			s.AddFixed(v, frac)
			want.Add(want, new(big.Int).Lsh(new(big.Int).SetUint64(v), 64-frac))
			if v < 1<<53 {
				viaAdd.Add(math.Ldexp(float64(v), -int(frac)))
			} else {
				exactFloats = false
			}
		}
		if got := toBig(s); got.Cmp(want) != 0 {
			t.Fatalf("trial %d: sum %v units, math/big %v", trial, got, want)
		}
		if exactFloats && viaAdd != s {
			t.Fatalf("trial %d: AddFixed gives %#v, Add of the same values %#v", trial, s, viaAdd)
		}
	}
	nan := sumOf(math.NaN())
	nan.AddFixed(1, 0)
	if !math.IsNaN(nan.Float64()) {
		t.Errorf("AddFixed to a NaN sum gives %v", nan.Float64())
	}
}

// Float64 rounds every 128-bit value correctly, ties to even, including
// ties broken only by bits far below the last kept one.
func TestFloat64Rounding(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var cases []Sum
	for range 20000 {
		// Any magnitude.
		cases = append(cases, Sum{int64(r.Uint64()) >> r.UintN(64), r.Uint64() >> r.UintN(64)})
		// A 53-bit mantissa m followed by p bits: exactly half, or half
		// and a last bit of 1, or just below half.
		m := new(big.Int).SetUint64(1<<52 | r.Uint64N(1<<52))
		p := uint(1 + r.IntN(74))
		v := new(big.Int).Lsh(m, p)
		v.SetBit(v, int(p-1), 1)
		switch r.IntN(3) {
		case 1:
			v.SetBit(v, 0, 1)
		case 2:
			v.Sub(v, big.NewInt(1))
		}
		if r.IntN(2) == 0 {
			v.Neg(v)
		}
		cases = append(cases, fromBig(v))
	}
	cases = append(cases,
		Sum{0, 1<<53 + 1}, Sum{0, 1<<53 + 3}, Sum{0, math.MaxUint64}, Sum{1, 0}, Sum{1, 1},
		Sum{1<<53 + 1, 0}, Sum{1<<53 + 1, 1}, Sum{math.MaxInt64, math.MaxUint64},
		Sum{math.MinInt64, 0}, Sum{math.MinInt64, 4}, Sum{-1, 0}, Sum{-1, 1}, Sum{-(1<<53 + 1), 0}, Sum{-(1<<53 + 1), 1})
	for _, s := range cases {
		if s.special() {
			continue
		}
		if back := fromBig(toBig(s)); back != s {
			t.Fatalf("the test's conversions turn %#v into %#v", s, back)
		}
		want := float64Of(toBig(s))
		if got := s.Float64(); got != want || math.Signbit(got) != math.Signbit(want) {
			t.Errorf("%#v: Float64 %v, math/big %v", s, got, want)
		}
	}
}

// The same values summed in random orders and merged along random trees
// give the same Sum, bit for bit, even with values that float64 addition
// rounds differently by order.
func TestOrderIndependence(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	orderMattered := false
	for trial := range 50 {
		values := make([]float64, 500)
		for i := range values {
			values[i] = randomFloat(r, 30)
		}
		if trial%10 == 9 {
			values[r.IntN(len(values))] = []float64{math.Inf(1), math.NaN(), math.Inf(-1)}[trial%3]
		}
		want := sumOf(values...)
		var first float64
		for i := range 20 {
			r.Shuffle(len(values), func(i, j int) { values[i], values[j] = values[j], values[i] })
			var f float64
			for _, v := range values {
				f += v
			}
			if i == 0 {
				first = f
			} else if f != first && !math.IsNaN(f) {
				orderMattered = true
			}
			if got := sumOf(values...); got != want {
				t.Fatalf("trial %d: %#v in one order, %#v in another", trial, want, got)
			}
			if got := mergeTree(r, values); got != want {
				t.Fatalf("trial %d: %#v added, %#v merged along a random tree", trial, want, got)
			}
		}
	}
	if !orderMattered {
		t.Error("float64 sums never depended on the order: the values are too tame to test anything")
	}
}

// mergeTree sums values by splitting them at a random point, summing each
// side the same way, and merging the halves in a random order.
func mergeTree(r *rand.Rand, values []float64) Sum {
	if len(values) <= 2 {
		return sumOf(values...)
	}
	k := 1 + r.IntN(len(values)-1)
	a, b := mergeTree(r, values[:k]), mergeTree(r, values[k:])
	if r.IntN(2) == 0 {
		a, b = b, a
	}
	a.Merge(b)
	return a
}

// FuzzAdd checks Add, Merge and Float64 against math/big on any two
// float64 values, and that their order does not matter.
func FuzzAdd(f *testing.F) {
	for _, seed := range [][2]float64{{1, -1}, {0x1p-65, 3 * 0x1p-65}, {0.1, 0.2}, {1e18, -1e-18},
		{0x1p62, 0x1p62}, {-0x1p63 + 1024, -2048}, {math.MaxFloat64, 1}, {math.NaN(), 0}, {math.Inf(1), math.Inf(-1)}} {
		f.Add(math.Float64bits(seed[0]), math.Float64bits(seed[1]))
	}
	f.Fuzz(func(t *testing.T, a, b uint64) {
		x, y := math.Float64frombits(a), math.Float64frombits(b)
		s := sumOf(x, y)
		if other := sumOf(y, x); other != s {
			t.Fatalf("%v + %v: %#v, and %#v the other way round", x, y, s, other)
		}
		merged := sumOf(x)
		merged.Merge(sumOf(y))
		if merged != s {
			t.Fatalf("%v + %v: %#v added, %#v merged", x, y, s, merged)
		}
		inRange := func(v float64) bool { return math.Abs(v) < 0x1p63 }
		if !inRange(x) || !inRange(y) {
			if got := s.Float64(); !math.IsNaN(got) && !math.IsInf(got, 0) {
				t.Fatalf("%v + %v: %v, want NaN or an infinity", x, y, got)
			}
			return
		}
		want := new(big.Int).Add(units(x), units(y))
		if got := fromBig(want); s != got { // modulo 2^128, as documented
			t.Fatalf("%v + %v: %#v, math/big %#v", x, y, s, got)
		}
		if want.BitLen() < 127 { // in range: no wrap-around
			if got, want := s.Float64(), float64Of(want); got != want {
				t.Fatalf("%v + %v: Float64 %v, math/big %v", x, y, got, want)
			}
		}
	})
}

// BenchmarkAdd adds values like the dataset histogram's per-bin sums: a
// few errors of 2^-24 to 2 each.
func BenchmarkAdd(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	values := make([]float64, 4096)
	for i := range values {
		values[i] = math.Ldexp(1+r.Float64(), -r.IntN(26)) * float64(1+r.IntN(8))
	}
	var s Sum
	for b.Loop() {
		for _, v := range values {
			s.Add(v)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(values)), "ns/add")
	if s.special() {
		b.Fatal("unexpected non-finite sum")
	}
}

// BenchmarkMerge merges slices of sums, as merging histograms does.
func BenchmarkMerge(b *testing.B) {
	r := rand.New(rand.NewPCG(9, 10))
	dst, src := make([]Sum, 4096), make([]Sum, 4096)
	for i := range src {
		src[i].Add(r.Float64())
	}
	for b.Loop() {
		for i := range dst {
			dst[i].Merge(src[i])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(dst)), "ns/merge")
}
