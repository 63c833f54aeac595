package labelpng

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const testMaxPixels = 1 << 20

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func encode(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// chunk encodes a PNG chunk: length, type, data and CRC.
func chunk(kind string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	b = append(b, kind...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
}

// withIHDR returns a copy of a PNG file whose IHDR data is changed by edit,
// with the chunk checksum recomputed.
func withIHDR(file []byte, edit func(ihdr []byte)) []byte {
	b := bytes.Clone(file)
	const start = len(signature) + 8
	edit(b[start : start+13])
	binary.BigEndian.PutUint32(b[start+13:], crc32.ChecksumIEEE(b[start-4:start+13]))
	return b
}

// withChunkBeforeIDAT returns a copy of a PNG file with a chunk inserted
// just before its first IDAT chunk.
func withChunkBeforeIDAT(file []byte, kind string, data []byte) []byte {
	i := bytes.Index(file, []byte("IDAT")) - 4
	return append(append(bytes.Clone(file[:i]), chunk(kind, data)...), file[i:]...)
}

func grayImage(w, h int, pix ...uint8) *image.Gray {
	return &image.Gray{Pix: pix, Stride: w, Rect: image.Rect(0, 0, w, h)}
}

func gray16Image(w, h int, values ...uint16) *image.Gray16 {
	m := image.NewGray16(image.Rect(0, 0, w, h))
	for i, v := range values {
		m.SetGray16(i%w, i/w, color.Gray16{Y: v})
	}
	return m
}

func palettedImage(w, h int, pix ...uint8) *image.Paletted {
	palette := make(color.Palette, 256)
	for i := range palette {
		palette[i] = color.RGBA{uint8(i), uint8(i * 7), uint8(i * 13), 255}
	}
	return &image.Paletted{Pix: pix, Stride: w, Rect: image.Rect(0, 0, w, h), Palette: palette}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name          string
		file          []byte
		wantDepth     int
		wantColorType int
		wantH, wantW  int
		want          []int32
	}{
		{
			name: "8-bit gray", file: encode(t, grayImage(3, 2, 0, 1, 2, 250, 254, 255)),
			wantDepth: 8, wantColorType: colorGray, wantH: 2, wantW: 3,
			want: []int32{0, 1, 2, 250, 254, 255},
		},
		{
			name: "16-bit gray", file: encode(t, gray16Image(2, 2, 0, 300, 65535, 19)),
			wantDepth: 16, wantColorType: colorGray, wantH: 2, wantW: 2,
			want: []int32{0, 300, 65535, 19},
		},
		{
			name: "8-bit palette", file: encode(t, palettedImage(2, 3, 0, 1, 21, 255, 4, 5)),
			wantDepth: 8, wantColorType: colorPalette, wantH: 3, wantW: 2,
			want: []int32{0, 1, 21, 255, 4, 5},
		},
		{
			name: "Pillow VOC palette", file: readFixture(t, "palette8.png"),
			wantDepth: 8, wantColorType: colorPalette, wantH: 3, wantW: 4,
			want: []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 20, 255, 15},
		},
		{
			name: "Pillow 4-bit palette", file: readFixture(t, "palette4.png"),
			wantDepth: 4, wantColorType: colorPalette, wantH: 2, wantW: 5,
			want: []int32{0, 1, 2, 3, 4, 15, 14, 13, 12, 11},
		},
		{
			name: "Pillow 1-bit gray", file: readFixture(t, "gray1.png"),
			wantDepth: 1, wantColorType: colorGray, wantH: 2, wantW: 10,
			want: []int32{0, 1, 1, 0, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1},
		},
		{
			name: "2-bit gray", file: readFixture(t, "gray2.png"),
			wantDepth: 2, wantColorType: colorGray, wantH: 2, wantW: 5,
			want: []int32{0, 1, 2, 3, 1, 3, 3, 0, 2, 1},
		},
		{
			name: "4-bit gray", file: readFixture(t, "gray4.png"),
			wantDepth: 4, wantColorType: colorGray, wantH: 3, wantW: 5,
			want: []int32{0, 1, 2, 15, 7, 9, 10, 11, 12, 3, 4, 5, 6, 8, 14},
		},
		{
			name: "Pillow 16-bit gray", file: readFixture(t, "gray16.png"),
			wantDepth: 16, wantColorType: colorGray, wantH: 2, wantW: 3,
			want: []int32{0, 1, 255, 256, 1000, 65535},
		},
		{
			name: "Pillow 8-bit gray with tRNS", file: readFixture(t, "gray8_trns.png"),
			wantDepth: 8, wantColorType: colorGray, wantH: 2, wantW: 3,
			want: []int32{0, 1, 2, 255, 7, 19},
		},
		{
			name: "4-bit gray with tRNS", file: withChunkBeforeIDAT(readFixture(t, "gray4.png"), "tRNS", []byte{0, 15}),
			wantDepth: 4, wantColorType: colorGray, wantH: 3, wantW: 5,
			want: []int32{0, 1, 2, 15, 7, 9, 10, 11, 12, 3, 4, 5, 6, 8, 14},
		},
		{
			name: "16-bit gray with tRNS", file: withChunkBeforeIDAT(encode(t, gray16Image(2, 1, 7, 65535)), "tRNS", []byte{0xff, 0xff}),
			wantDepth: 16, wantColorType: colorGray, wantH: 1, wantW: 2,
			want: []int32{7, 65535},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, h, depth, colorType, err := DecodeConfig(tt.file)
			if err != nil {
				t.Fatalf("DecodeConfig: %v", err)
			}
			if w != tt.wantW || h != tt.wantH || depth != tt.wantDepth || colorType != tt.wantColorType {
				t.Errorf("DecodeConfig = %dx%d, depth %d, color type %d; want %dx%d, depth %d, color type %d",
					w, h, depth, colorType, tt.wantW, tt.wantH, tt.wantDepth, tt.wantColorType)
			}
			labels, h, w, err := Decode(tt.file, testMaxPixels, nil)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if h != tt.wantH || w != tt.wantW {
				t.Errorf("Decode size = %dx%d, want %dx%d", w, h, tt.wantW, tt.wantH)
			}
			if !reflect.DeepEqual(labels, tt.want) {
				t.Errorf("labels = %v, want %v", labels, tt.want)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	gray := encode(t, grayImage(4, 4, make([]uint8, 16)...))
	opaque := image.NewRGBA(image.Rect(0, 0, 2, 2))
	for i := 3; i < len(opaque.Pix); i += 4 {
		opaque.Pix[i] = 255
	}
	idat := bytes.Index(gray, []byte("IDAT"))
	tests := []struct {
		name      string
		file      []byte
		maxPixels int64
		wantErr   string
	}{
		{"RGB", encode(t, opaque), testMaxPixels, "labels must be single-channel class ids, but this PNG is RGB; convert a color-coded label image"},
		{"RGBA", encode(t, image.NewNRGBA(image.Rect(0, 0, 2, 2))), testMaxPixels, "this PNG is RGBA"},
		{"gray with alpha", withIHDR(gray, func(ihdr []byte) { ihdr[9] = colorGrayAlpha }), testMaxPixels, "this PNG is gray with alpha"},
		{"invalid color type", withIHDR(gray, func(ihdr []byte) { ihdr[9] = 5 }), testMaxPixels, "invalid PNG color type 5"},
		{"too many pixels", gray, 15, "4x4 (HxW) image has 16 pixels, more than the limit of 15"},
		{
			"decompression bomb",
			withIHDR(gray, func(ihdr []byte) {
				binary.BigEndian.PutUint32(ihdr[0:], 1<<30)
				binary.BigEndian.PutUint32(ihdr[4:], 1<<30)
			}),
			testMaxPixels,
			"1073741824x1073741824 (HxW) image has 1152921504606846976 pixels",
		},
		{"zero width", withIHDR(gray, func(ihdr []byte) { binary.BigEndian.PutUint32(ihdr[0:], 0) }), testMaxPixels, "invalid PNG size: width 0, height 4"},
		{"width over 2^31-1", withIHDR(gray, func(ihdr []byte) { binary.BigEndian.PutUint32(ihdr[0:], 1<<31) }), testMaxPixels, "invalid PNG size: width 2147483648, height 4"},
		{"zero limit", gray, 0, "maxPixels must be positive"},
		{"empty", nil, testMaxPixels, "not a PNG file"},
		{"JPEG", []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), testMaxPixels, "not a PNG file"},
		{"IHDR not first", append([]byte(signature), chunk("gAMA", make([]byte, 13))...), testMaxPixels, "does not start with a 13-byte IHDR chunk"},
		{"IHDR checksum", append(bytes.Clone(gray[:len(signature)+21]), 0, 0, 0, 0), testMaxPixels, "IHDR chunk checksum mismatch"},
		{"truncated", gray[:idat+8], testMaxPixels, "not enough pixel data"},
		{"corrupt IDAT", func() []byte { b := bytes.Clone(gray); b[idat+6] ^= 0xff; return b }(), testMaxPixels, "flate: corrupt input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			labels, _, _, err := Decode(tt.file, tt.maxPixels, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Decode error = %v, want one containing %q", err, tt.wantErr)
			}
			if labels != nil {
				t.Errorf("Decode returned %d labels with the error", len(labels))
			}
		})
	}
}

func TestDecodeAtPixelLimit(t *testing.T) {
	file := encode(t, grayImage(4, 4, make([]uint8, 16)...))
	if _, _, _, err := Decode(file, 16, nil); err != nil {
		t.Errorf("Decode with maxPixels equal to the image size: %v", err)
	}
}

func TestDecodeReusesDst(t *testing.T) {
	file := encode(t, grayImage(2, 1, 3, 4))
	dst := make([]int32, 5)
	labels, _, _, err := Decode(file, testMaxPixels, dst)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(labels, []int32{3, 4}) || &labels[0] != &dst[0] {
		t.Errorf("labels = %v (in dst: %t), want [3 4] in dst", labels, &labels[0] == &dst[0])
	}
}

// FuzzDecode feeds arbitrary bytes to Decode, which must not panic and must
// return exactly height*width labels within the pixel limit.
func FuzzDecode(f *testing.F) {
	fixtures, err := filepath.Glob(filepath.Join("testdata", "*.png"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range fixtures {
		f.Add(readFixture(f, filepath.Base(name)))
	}
	f.Add(encode(f, gray16Image(2, 2, 1, 2, 3, 4)))
	f.Add(encode(f, image.NewNRGBA(image.Rect(0, 0, 1, 1))))

	const maxPixels = 1 << 12
	f.Fuzz(func(t *testing.T, data []byte) {
		labels, h, w, err := Decode(data, maxPixels, nil)
		if err != nil {
			return
		}
		if len(labels) != h*w || h*w > maxPixels || h <= 0 || w <= 0 {
			t.Fatalf("Decode returned %d labels for %dx%d with limit %d", len(labels), w, h, maxPixels)
		}
	})
}
