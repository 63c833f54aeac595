package npy

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var testLimits = Limits{MaxElements: 1 << 20}

// dict returns a header dictionary for a C-order array.
func dict(descr, shape string) string {
	return "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }\n"
}

// fortranDict returns a header dictionary for a Fortran-order array.
func fortranDict(descr, shape string) string {
	return "{'descr': '" + descr + "', 'fortran_order': True, 'shape': " + shape + ", }\n"
}

// bigEndian encodes values as consecutive big-endian integers or floats.
func bigEndian(values any) []byte {
	var b bytes.Buffer
	if err := binary.Write(&b, binary.BigEndian, values); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func littleEndian(values any) []byte {
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, values); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameFloats compares bit patterns, so that NaNs and signed zeros count.
func sameFloats(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func TestDecodeFloat32(t *testing.T) {
	nan := float32(math.NaN())
	tests := []struct {
		name      string
		file      []byte
		want      []float32
		wantShape []int
	}{
		{
			name:      "little-endian f4",
			file:      rawFile(1, dict("<f4", "(2, 2)"), littleEndian([]float32{1.5, -2, 0, 3e38})),
			want:      []float32{1.5, -2, 0, 3e38},
			wantShape: []int{2, 2},
		},
		{
			name:      "big-endian f4",
			file:      rawFile(1, dict(">f4", "(3,)"), bigEndian([]float32{1.5, -2, nan})),
			want:      []float32{1.5, -2, nan},
			wantShape: []int{3},
		},
		{
			name:      "little-endian f2",
			file:      rawFile(1, dict("<f2", "(1, 4)"), littleEndian([]uint16{0x3c00, 0xc000, 0x0001, 0x7c00})),
			want:      []float32{1, -2, 0x1p-24, float32(math.Inf(1))},
			wantShape: []int{1, 4},
		},
		{
			name:      "big-endian f2",
			file:      rawFile(1, dict(">f2", "(2,)"), bigEndian([]uint16{0x3555, 0xfbff})),
			want:      []float32{0.333251953125, -65504},
			wantShape: []int{2},
		},
		{
			name:      "little-endian f8 rounds to float32",
			file:      rawFile(2, dict("<f8", "(3,)"), littleEndian([]float64{0.1, 1e300, -1e-300})),
			want:      []float32{0.1, float32(math.Inf(1)), float32(math.Copysign(0, -1))},
			wantShape: []int{3},
		},
		{
			name:      "native f4",
			file:      rawFile(1, dict("=f4", "(1,)"), binary.NativeEndian.AppendUint32(nil, math.Float32bits(7.25))),
			want:      []float32{7.25},
			wantShape: []int{1},
		},
		{
			name:      "scalar",
			file:      rawFile(1, dict("<f4", "()"), littleEndian([]float32{4})),
			want:      []float32{4},
			wantShape: []int{},
		},
		{
			name:      "empty",
			file:      rawFile(1, dict("<f4", "(0, 5)"), nil),
			want:      []float32{},
			wantShape: []int{0, 5},
		},
		{
			name:      "numpy f4",
			file:      readFixture(t, "f4_2x3.npy"),
			want:      []float32{0, 0.25, 0.5, 0.75, 1, 1.25},
			wantShape: []int{2, 3},
		},
		{
			name:      "numpy big-endian f8",
			file:      readFixture(t, "f8_big_endian.npy"),
			want:      []float32{1.5, -2.25, 0.1},
			wantShape: []int{1, 3},
		},
		{
			name:      "numpy scalar",
			file:      readFixture(t, "f4_scalar.npy"),
			want:      []float32{2.5},
			wantShape: []int{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, shape, err := DecodeFloat32(tt.file, testLimits, nil)
			if err != nil {
				t.Fatalf("DecodeFloat32: %v", err)
			}
			if !sameFloats(got, tt.want) {
				t.Errorf("values = %v, want %v", got, tt.want)
			}
			if !reflect.DeepEqual(shape, tt.wantShape) {
				t.Errorf("shape = %v, want %v", shape, tt.wantShape)
			}
		})
	}
}

// TestDecodeFloat16MatchesNumPy decodes a float16 file written by NumPy and
// compares it with NumPy's own conversion of the same array to float32.
func TestDecodeFloat16MatchesNumPy(t *testing.T) {
	got, shape, err := DecodeFloat32(readFixture(t, "float16.npy"), testLimits, nil)
	if err != nil {
		t.Fatalf("DecodeFloat32(float16.npy): %v", err)
	}
	want, wantShape, err := DecodeFloat32(readFixture(t, "float16_as_f4.npy"), testLimits, nil)
	if err != nil {
		t.Fatalf("DecodeFloat32(float16_as_f4.npy): %v", err)
	}
	if !sameFloats(got, want) || !reflect.DeepEqual(shape, wantShape) {
		t.Errorf("float16 decoded to %v %v, numpy says %v %v", shape, got, wantShape, want)
	}
}

func TestDecodeInt32(t *testing.T) {
	tests := []struct {
		name      string
		file      []byte
		want      []int32
		wantShape []int
	}{
		{"|b1", rawFile(1, dict("|b1", "(4,)"), []byte{0, 1, 2, 0}), []int32{0, 1, 1, 0}, []int{4}},
		{"|i1", rawFile(1, dict("|i1", "(3,)"), []byte{0x80, 0xff, 5}), []int32{-128, -1, 5}, []int{3}},
		{"|u1", rawFile(1, dict("|u1", "(3,)"), []byte{0x80, 0xff, 5}), []int32{128, 255, 5}, []int{3}},
		{"<u1", rawFile(1, dict("<u1", "(1,)"), []byte{9}), []int32{9}, []int{1}},
		{"<i2", rawFile(1, dict("<i2", "(2,)"), littleEndian([]int16{-300, 300})), []int32{-300, 300}, []int{2}},
		{">i2", rawFile(1, dict(">i2", "(2,)"), bigEndian([]int16{-300, 300})), []int32{-300, 300}, []int{2}},
		{"<u2", rawFile(1, dict("<u2", "(2,)"), littleEndian([]uint16{65535, 1})), []int32{65535, 1}, []int{2}},
		{">u2", rawFile(1, dict(">u2", "(2,)"), bigEndian([]uint16{65535, 1})), []int32{65535, 1}, []int{2}},
		{"<i4", rawFile(1, dict("<i4", "(2,)"), littleEndian([]int32{math.MinInt32, math.MaxInt32})), []int32{math.MinInt32, math.MaxInt32}, []int{2}},
		{">i4", rawFile(1, dict(">i4", "(2,)"), bigEndian([]int32{math.MinInt32, 7})), []int32{math.MinInt32, 7}, []int{2}},
		{"<u4", rawFile(1, dict("<u4", "(2,)"), littleEndian([]uint32{math.MaxInt32, 0})), []int32{math.MaxInt32, 0}, []int{2}},
		{">u4", rawFile(1, dict(">u4", "(1,)"), bigEndian([]uint32{255})), []int32{255}, []int{1}},
		{"<i8", rawFile(1, dict("<i8", "(2,)"), littleEndian([]int64{math.MinInt32, -1})), []int32{math.MinInt32, -1}, []int{2}},
		{">i8", rawFile(1, dict(">i8", "(2,)"), bigEndian([]int64{math.MaxInt32, 1})), []int32{math.MaxInt32, 1}, []int{2}},
		{"<u8", rawFile(1, dict("<u8", "(1,)"), littleEndian([]uint64{math.MaxInt32})), []int32{math.MaxInt32}, []int{1}},
		{">u8", rawFile(1, dict(">u8", "(1,)"), bigEndian([]uint64{21})), []int32{21}, []int{1}},
		{"numpy big-endian i2", readFixture(t, "i2_big_endian.npy"), []int32{1, -2, 300, -32768, 32767, 0}, []int{2, 3}},
		{"numpy bool", readFixture(t, "bool.npy"), []int32{1, 0, 0, 1}, []int{2, 2}},
		{"numpy u1", readFixture(t, "u1_2x2.npy"), []int32{0, 1, 254, 255}, []int{2, 2}},
		{"numpy v2 u2", readFixture(t, "v2_u2.npy"), []int32{1, 2, 3, 65535}, []int{2, 2}},
		{"numpy v3 i4", readFixture(t, "v3_i4.npy"), []int32{-1, 7, math.MaxInt32}, []int{3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, shape, err := DecodeInt32(tt.file, testLimits, nil)
			if err != nil {
				t.Fatalf("DecodeInt32: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("values = %v, want %v", got, tt.want)
			}
			if !reflect.DeepEqual(shape, tt.wantShape) {
				t.Errorf("shape = %v, want %v", shape, tt.wantShape)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	f4 := littleEndian([]float32{1, 2, 3, 4, 5, 6})
	tests := []struct {
		name    string
		file    []byte
		lim     Limits
		decoder string // "float", "int" or "both"
		wantErr string
	}{
		{"truncated fortran order", rawFile(1, fortranDict("<f4", "(2, 3)"), f4[:20]), testLimits, "float", "needs 24 data bytes, file has 20"},
		{"structured", readFixture(t, "structured.npy"), testLimits, "both", "structured dtypes are not supported"},
		{"complex", rawFile(1, dict("<c8", "(1,)"), make([]byte, 8)), testLimits, "both", `unsupported dtype "<c8"`},
		{"object", rawFile(1, dict("|O", "(1,)"), make([]byte, 8)), testLimits, "both", `unsupported dtype "|O"`},
		{"bad byte order", rawFile(1, dict("!f4", "(1,)"), make([]byte, 4)), testLimits, "both", `unsupported byte order in dtype "!f4"`},
		{"| on multibyte", rawFile(1, dict("|f4", "(1,)"), make([]byte, 4)), testLimits, "both", "only valid for one-byte types"},
		{"ints as floats", rawFile(1, dict("<i4", "(1,)"), make([]byte, 4)), testLimits, "float", `dtype "<i4" is not a floating-point type`},
		{"floats as ints", rawFile(1, dict("<f4", "(1,)"), make([]byte, 4)), testLimits, "int", `dtype "<f4" is not an integer type`},
		{"truncated data", rawFile(1, dict("<f4", "(2, 3)"), f4[:20]), testLimits, "float", "needs 24 data bytes, file has 20"},
		{"trailing data", rawFile(1, dict("<f4", "(2, 3)"), append(f4, 0)), testLimits, "float", "needs 24 data bytes, file has 25"},
		{"shape lies", rawFile(1, dict("<f4", "(100000, 100000)"), f4), Limits{MaxElements: math.MaxInt64}, "float", "needs 40000000000 data bytes, file has 24"},
		{"over limit", rawFile(1, dict("<f4", "(2, 3)"), f4), Limits{MaxElements: 5}, "float", "shape [2 3] exceeds the limit of 5 elements"},
		{"product overflows", rawFile(1, dict("|u1", "(4294967296, 4294967296, 4294967296)"), nil), Limits{MaxElements: math.MaxInt64}, "int", "exceeds the limit"},
		{"zero limit", rawFile(1, dict("<f4", "(1,)"), f4[:4]), Limits{}, "both", "Limits.MaxElements must be positive"},
		{"u4 too large", rawFile(1, dict("<u4", "(2,)"), littleEndian([]uint32{1, math.MaxInt32 + 1})), testLimits, "int", "element 1 has value 2147483648, outside the int32 range"},
		{"i8 too small", rawFile(1, dict("<i8", "(1,)"), littleEndian([]int64{math.MinInt32 - 1})), testLimits, "int", "value -2147483649, outside"},
		{"u8 too large", rawFile(1, dict(">u8", "(1,)"), bigEndian([]uint64{math.MaxUint64})), testLimits, "int", "value 18446744073709551615, outside"},
		{"numpy i8 too large", readFixture(t, "i8_1d.npy"), testLimits, "int", "element 2 has value 1099511627776"},
		{"not npy", []byte("PK\x03\x04 a zip file"), testLimits, "both", "bad magic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errs []error
			if tt.decoder != "int" {
				_, _, err := DecodeFloat32(tt.file, tt.lim, nil)
				errs = append(errs, err)
			}
			if tt.decoder != "float" {
				_, _, err := DecodeInt32(tt.file, tt.lim, nil)
				errs = append(errs, err)
			}
			for _, err := range errs {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
				}
			}
		})
	}
}

func TestDecodeReusesDst(t *testing.T) {
	file := rawFile(1, dict("<f2", "(3,)"), littleEndian([]uint16{0x3c00, 0x4000, 0x4200}))
	want := []float32{1, 2, 3}

	big := make([]float32, 10)
	got, _, err := DecodeFloat32(file, testLimits, big)
	if err != nil {
		t.Fatal(err)
	}
	if !sameFloats(got, want) || &got[0] != &big[0] {
		t.Errorf("with room: got %v (reused %t), want %v in dst", got, &got[0] == &big[0], want)
	}

	small := make([]float32, 2)
	got, _, err = DecodeFloat32(file, testLimits, small)
	if err != nil {
		t.Fatal(err)
	}
	if !sameFloats(got, want) || &got[0] == &small[0] {
		t.Errorf("without room: got %v (reused %t), want %v in a new slice", got, &got[0] == &small[0], want)
	}

	ints := make([]int32, 0, 4)
	gotInts, _, err := DecodeInt32(rawFile(1, dict("|u1", "(2,)"), []byte{4, 5}), testLimits, ints)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotInts, []int32{4, 5}) || &gotInts[0] != &ints[:1][0] {
		t.Errorf("ints: got %v, want [4 5] in dst", gotInts)
	}
}

// TestDecodeFortranOrder decodes every Fortran-order array numpy wrote in
// testdata (fortran_NAME.npy, see gen.py) and checks it equals its C-order
// twin corder_NAME.npy, value for value and in shape.
func TestDecodeFortranOrder(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fortran_*.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 15 {
		t.Fatalf("%d Fortran-order fixtures, want 15 or more: run gen.py", len(files))
	}
	for _, file := range files {
		name := filepath.Base(file)
		twin := "corder_" + strings.TrimPrefix(name, "fortran_")
		t.Run(name, func(t *testing.T) {
			fortran, c := readFixture(t, name), readFixture(t, twin)
			h, _, err := ReadHeader(bytes.NewReader(fortran))
			if err != nil {
				t.Fatal(err)
			}
			if !h.FortranOrder || len(h.Shape) < 2 {
				t.Fatalf("%s: header %+v, want a Fortran-order array of rank 2 or more", name, h)
			}
			if h.Descr[1] == 'f' {
				got, gotShape, err := DecodeFloat32(fortran, testLimits, nil)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				want, wantShape, err := DecodeFloat32(c, testLimits, nil)
				if err != nil {
					t.Fatalf("%s: %v", twin, err)
				}
				if !sameFloats(got, want) || !reflect.DeepEqual(gotShape, wantShape) {
					t.Errorf("%s decodes to %v of shape %v, want %s's %v of shape %v", name, got, gotShape, twin, want, wantShape)
				}
				return
			}
			got, gotShape, err := DecodeInt32(fortran, testLimits, nil)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			want, wantShape, err := DecodeInt32(c, testLimits, nil)
			if err != nil {
				t.Fatalf("%s: %v", twin, err)
			}
			if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotShape, wantShape) {
				t.Errorf("%s decodes to %v of shape %v, want %s's %v of shape %v", name, got, gotShape, twin, want, wantShape)
			}
		})
	}
}

// TestFortranToC checks the reordering against arrays written by hand,
// independent of numpy, including the shapes numpy never writes in
// Fortran order (ranks 0 and 1, empty arrays), which must pass through.
func TestFortranToC(t *testing.T) {
	tests := []struct {
		name  string
		shape string
		body  []int16 // column-major
		want  []int32 // row-major
	}{
		{"scalar", "()", []int16{7}, []int32{7}},
		{"vector", "(3,)", []int16{1, 2, 3}, []int32{1, 2, 3}},
		{"empty", "(0, 3)", nil, []int32{}},
		{"empty last", "(2, 0)", nil, []int32{}},
		// a[i][j] = 10i + j, stored a[0][0], a[1][0], a[0][1], ...
		{"2x3", "(2, 3)", []int16{0, 10, 1, 11, 2, 12}, []int32{0, 1, 2, 10, 11, 12}},
		{"3x1", "(3, 1)", []int16{0, 10, 20}, []int32{0, 10, 20}},
		// a[i][j][k] = 100i + 10j + k, i fastest, then j, then k.
		{"2x2x3", "(2, 2, 3)",
			[]int16{0, 100, 10, 110, 1, 101, 11, 111, 2, 102, 12, 112},
			[]int32{0, 1, 2, 10, 11, 12, 100, 101, 102, 110, 111, 112}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body []byte
			if tt.body != nil {
				body = bigEndian(tt.body)
			}
			got, _, err := DecodeInt32(rawFile(1, fortranDict(">i2", tt.shape), body), testLimits, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
