package npy

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
)

// rawFile builds a .npy file by hand: magic, the version major.0, the
// header length in the width that version uses, the header dict verbatim
// (no padding is added), then body.
func rawFile(major byte, dict string, body []byte) []byte {
	b := []byte(magic)
	b = append(b, major, 0)
	if major == 1 {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(dict)))
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(dict)))
	}
	b = append(b, dict...)
	return append(b, body...)
}

func TestReadHeader(t *testing.T) {
	tests := []struct {
		name string
		file []byte
		want Header
	}{
		{
			name: "numpy v1 padded",
			file: rawFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"+strings.Repeat(" ", 58)+"\n", nil),
			want: Header{Descr: "<f4", Shape: []int{2, 3}},
		},
		{
			name: "v2 scalar",
			file: rawFile(2, "{'descr': '|u1', 'fortran_order': False, 'shape': (), }\n", nil),
			want: Header{Descr: "|u1", Shape: []int{}},
		},
		{
			name: "v3 one dimension",
			file: rawFile(3, "{'descr': '>i2', 'fortran_order': False, 'shape': (7,), }\n", nil),
			want: Header{Descr: ">i2", Shape: []int{7}},
		},
		{
			name: "keys in another order, double quotes, no trailing commas",
			file: rawFile(1, `{"shape":(4,5,6),"fortran_order":True,"descr":"<f8"}`, nil),
			want: Header{Descr: "<f8", FortranOrder: true, Shape: []int{4, 5, 6}},
		},
		{
			name: "python 2 long integers",
			file: rawFile(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2L, 3L), }\n", nil),
			want: Header{Descr: "<i8", Shape: []int{2, 3}},
		},
		{
			name: "zero-size dimension",
			file: rawFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", nil),
			want: Header{Descr: "<f4", Shape: []int{0, 3}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Data after the header must not be consumed.
			r := bytes.NewReader(append(tt.file, "DATA"...))
			h, n, err := ReadHeader(r)
			if err != nil {
				t.Fatalf("ReadHeader: %v", err)
			}
			if !reflect.DeepEqual(h, tt.want) {
				t.Errorf("header = %+v, want %+v", h, tt.want)
			}
			if n != len(tt.file) {
				t.Errorf("consumed %d bytes, want %d", n, len(tt.file))
			}
			if r.Len() != len("DATA") {
				t.Errorf("reader has %d bytes left, want %d", r.Len(), len("DATA"))
			}
		})
	}
}

func TestReadHeaderErrors(t *testing.T) {
	const good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
	tests := []struct {
		name    string
		file    []byte
		wantErr string
	}{
		{"empty", nil, "reading magic"},
		{"bad magic", []byte("\x93NUMPZ\x01\x00\x00\x00"), "bad magic"},
		{"version 4.0", rawFile(4, good, nil), "unsupported format version 4.0"},
		{"version 1.1", append([]byte(magic), 1, 1, 0, 0), "unsupported format version 1.1"},
		{"truncated length", []byte(magic + "\x01\x00\x10"), "reading header length"},
		{"truncated dict", rawFile(1, good, nil)[:30], "reading 59-byte header"},
		{"huge v2 header", append([]byte(magic), 2, 0, 0xff, 0xff, 0xff, 0xff), "exceeds 65536 bytes"},
		{"not a dict", rawFile(1, "['descr']", nil), "want '{'"},
		{"missing shape", rawFile(1, "{'descr': '<f4', 'fortran_order': False}", nil), "want keys"},
		{"extra key", rawFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}", nil), `unexpected key "x"`},
		{"duplicate key", rawFile(1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}", nil), `duplicate key "descr"`},
		{"structured", rawFile(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}", nil), "structured dtypes"},
		{"bad bool", rawFile(1, "{'descr': '<f4', 'fortran_order': false, 'shape': ()}", nil), "want True or False"},
		{"negative dimension", rawFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 3)}", nil), "not a non-negative integer"},
		{"huge dimension", rawFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", nil), "not a non-negative integer"},
		{"unterminated shape", rawFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3", nil), "want ')'"},
		{"unterminated string", rawFile(1, "{'descr': '<f4", nil), "unterminated string"},
		{"escape", rawFile(1, `{'descr': '<\x66', 'fortran_order': False, 'shape': ()}`, nil), "escape sequences"},
		{"trailing text", rawFile(1, good+" x", nil), "unexpected text after dictionary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadHeader(bytes.NewReader(tt.file))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ReadHeader error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
