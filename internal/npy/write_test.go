package npy

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// TestWriteHeader compares Write's header with headers spelled out by hand
// the way numpy.save lays them out: the sorted dict, 21 minus the digits of
// the first dimension spare spaces, then spaces and a newline up to a data
// offset that is a multiple of 64.
func TestWriteHeader(t *testing.T) {
	tests := []struct {
		name  string
		descr string
		shape []int
		data  any
		want  string
	}{
		{
			name:  "2-D",
			descr: "<f4",
			shape: []int{2, 3},
			data:  make([]float32, 6),
			want:  "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" + strings.Repeat(" ", 58) + "\n",
		},
		{
			name:  "1-D",
			descr: "<i8",
			shape: []int{3},
			data:  make([]int64, 3),
			want:  "\x93NUMPY\x01\x00\x76\x00{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }" + strings.Repeat(" ", 60) + "\n",
		},
		{
			name:  "scalar",
			descr: "<f4",
			shape: []int{},
			data:  make([]float32, 1),
			want:  "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, 'shape': (), }" + strings.Repeat(" ", 62) + "\n",
		},
		{
			name:  "long first dimension",
			descr: "|u1",
			shape: []int{1234567890, 0},
			data:  []uint8{},
			want:  "\x93NUMPY\x01\x00\x76\x00{'descr': '|u1', 'fortran_order': False, 'shape': (1234567890, 0), }" + strings.Repeat(" ", 49) + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, tt.descr, tt.shape, tt.data); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if len(tt.want)%64 != 0 {
				t.Fatalf("bad test: header length %d is not a multiple of 64", len(tt.want))
			}
			if got := buf.String()[:min(buf.Len(), len(tt.want))]; got != tt.want {
				t.Errorf("header =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// TestWriteMatchesNumPy checks that Write reproduces files numpy.save wrote
// (see testdata/gen.py) byte for byte.
func TestWriteMatchesNumPy(t *testing.T) {
	tests := []struct {
		fixture string
		descr   string
		shape   []int
		data    any
	}{
		{"f4_2x3.npy", "<f4", []int{2, 3}, []float32{0, 0.25, 0.5, 0.75, 1, 1.25}},
		{"f4_scalar.npy", "<f4", []int{}, []float32{2.5}},
		{"i8_1d.npy", "<i8", []int{3}, []int64{-3, 0, 1 << 40}},
		{"u1_2x2.npy", "|u1", []int{2, 2}, []uint8{0, 1, 254, 255}},
		{"float16.npy", "<f2", []int{4, 4}, []float32{
			0, float32(math.Copysign(0, -1)), 1, -2.5,
			65504, 65520, 1e-7, 0x1p-24,
			0x1p-25, 1 + 0x1p-11, 1 + 3*0x1p-11, 0.1,
			3.14159, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, tt.descr, tt.shape, tt.data); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if want := readFixture(t, tt.fixture); !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("Write output differs from numpy's\n got %q\nwant %q", buf.Bytes(), want)
			}
		})
	}
}

func TestWriteRoundTrip(t *testing.T) {
	tests := []struct {
		descr string
		data  any
		want  []int32 // for integer types
	}{
		{"|u1", []uint8{0, 255, 7, 1}, []int32{0, 255, 7, 1}},
		{"<u2", []uint16{0, 65535, 7, 1}, []int32{0, 65535, 7, 1}},
		{"<i4", []int32{math.MinInt32, -1, 0, math.MaxInt32}, []int32{math.MinInt32, -1, 0, math.MaxInt32}},
		{"<i8", []int64{math.MinInt32, -1, 0, math.MaxInt32}, []int32{math.MinInt32, -1, 0, math.MaxInt32}},
		{"<f8", []float64{0.5, -1, 1e-3, 2}, nil},
		{"<f4", []float32{0.5, -1, 1e-3, 2}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.descr, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, tt.descr, []int{2, 2}, tt.data); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if tt.want == nil {
				got, shape, err := DecodeFloat32(buf.Bytes(), testLimits, nil)
				want := []float32{0.5, -1, 1e-3, 2}
				if err != nil || !sameFloats(got, want) || !reflect.DeepEqual(shape, []int{2, 2}) {
					t.Errorf("DecodeFloat32 = %v, %v, %v; want %v, [2 2]", got, shape, err, want)
				}
				return
			}
			got, shape, err := DecodeInt32(buf.Bytes(), testLimits, nil)
			if err != nil || !reflect.DeepEqual(got, tt.want) || !reflect.DeepEqual(shape, []int{2, 2}) {
				t.Errorf("DecodeInt32 = %v, %v, %v; want %v, [2 2]", got, shape, err, tt.want)
			}
		})
	}
}

type failingWriter struct{}

var errWrite = errors.New("disk full")

func (failingWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name    string
		descr   string
		shape   []int
		data    any
		wantErr string
	}{
		{"length mismatch", "<f4", []int{2, 3}, make([]float32, 5), "shape [2 3] holds 6 elements, data has 5"},
		{"descr mismatch", "<f8", []int{1}, []float32{1}, `cannot write []float32 as "<f8"`},
		{"big-endian", ">i4", []int{1}, []int32{1}, `cannot write []int32 as ">i4"`},
		{"unsupported type", "|i1", []int{1}, []int8{1}, `cannot write []int8 as "|i1"`},
		{"negative dimension", "<f4", []int{-1}, []float32{}, "negative dimension"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Write(&bytes.Buffer{}, tt.descr, tt.shape, tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Write error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	if err := Write(failingWriter{}, "<f4", []int{1}, []float32{1}); !errors.Is(err, errWrite) {
		t.Errorf("Write to failing writer: error = %v, want %v wrapped", err, errWrite)
	}
}
