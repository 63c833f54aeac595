package labelpng

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"math"
)

// PNG color types, from the IHDR chunk.
const (
	colorGray      = 0
	colorRGB       = 2
	colorPalette   = 3
	colorGrayAlpha = 4
	colorRGBA      = 6
)

// signature starts every PNG file.
const signature = "\x89PNG\r\n\x1a\n"

// DecodeConfig reads the IHDR chunk, which PNG requires to come first, and
// returns the image size, the bit depth per sample and the color type
// (0 gray, 2 RGB, 3 palette, 4 gray and alpha, 6 RGBA), without decoding
// the pixels.
func DecodeConfig(data []byte) (width, height, bitDepth, colorType int, err error) {
	// Signature, then the IHDR chunk: length, type, 13 bytes of data, CRC.
	const ihdrEnd = len(signature) + 4 + 4 + 13 + 4
	if len(data) < ihdrEnd || string(data[:len(signature)]) != signature {
		return 0, 0, 0, 0, errors.New("labelpng: not a PNG file")
	}
	chunk := data[len(signature):ihdrEnd]
	if binary.BigEndian.Uint32(chunk) != 13 || string(chunk[4:8]) != "IHDR" {
		return 0, 0, 0, 0, errors.New("labelpng: PNG does not start with a 13-byte IHDR chunk")
	}
	if crc32.ChecksumIEEE(chunk[4:21]) != binary.BigEndian.Uint32(chunk[21:]) {
		return 0, 0, 0, 0, errors.New("labelpng: IHDR chunk checksum mismatch")
	}
	w, h := binary.BigEndian.Uint32(chunk[8:]), binary.BigEndian.Uint32(chunk[12:])
	if w == 0 || h == 0 || w > math.MaxInt32 || h > math.MaxInt32 {
		return 0, 0, 0, 0, fmt.Errorf("labelpng: invalid PNG size: width %d, height %d", w, h)
	}
	return int(w), int(h), int(chunk[16]), int(chunk[17]), nil
}

// Decode decodes a single-channel label PNG into raw class ids, row-major,
// and returns them with the image height and width. Images of more than
// maxPixels pixels are rejected before decoding; maxPixels must be positive.
// The ids are stored in dst when its capacity suffices, so a caller decoding
// many labels can reuse one buffer.
func Decode(data []byte, maxPixels int64, dst []int32) (labels []int32, height, width int, err error) {
	if maxPixels <= 0 {
		return nil, 0, 0, fmt.Errorf("labelpng: maxPixels must be positive, got %d", maxPixels)
	}
	width, height, bitDepth, colorType, err := DecodeConfig(data)
	if err != nil {
		return nil, 0, 0, err
	}
	switch colorType {
	case colorGray, colorPalette:
	case colorRGB, colorGrayAlpha, colorRGBA:
		return nil, 0, 0, fmt.Errorf("labelpng: labels must be single-channel class ids, but this PNG is %s; convert a color-coded label image to class ids first", colorName(colorType))
	default:
		return nil, 0, 0, fmt.Errorf("labelpng: invalid PNG color type %d", colorType)
	}
	if pixels := int64(width) * int64(height); pixels > maxPixels {
		return nil, 0, 0, fmt.Errorf("labelpng: %dx%d (HxW) image has %d pixels, more than the limit of %d", height, width, pixels, maxPixels)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("labelpng: %w", err)
	}
	labels = resize(dst, width*height)
	// image/png stores gray levels of depth 1, 2 and 4 multiplied by
	// 255/(2^depth-1), that is by 255, 85 and 17; dividing restores them.
	// The quotients are looked up: a division per pixel was a third of
	// the time of decoding a Cityscapes label.
	var level [256]int32
	scale := 1
	if colorType == colorGray && bitDepth < 8 {
		scale = 255 / (1<<bitDepth - 1)
	}
	for v := range level {
		level[v] = int32(v / scale)
	}
	switch m := img.(type) {
	case *image.Paletted:
		// Palette indexes are stored unscaled at every bit depth.
		eachPixel(labels, m.Pix, m.Stride, width, height, 1, func(p []byte) int32 { return int32(p[0]) })
	case *image.Gray:
		eachPixel(labels, m.Pix, m.Stride, width, height, 1, func(p []byte) int32 { return level[p[0]] })
	case *image.Gray16:
		eachPixel(labels, m.Pix, m.Stride, width, height, 2, func(p []byte) int32 { return int32(binary.BigEndian.Uint16(p)) })
	case *image.NRGBA:
		// A grayscale PNG with a tRNS chunk decodes to NRGBA with the
		// gray level in all three color channels.
		eachPixel(labels, m.Pix, m.Stride, width, height, 4, func(p []byte) int32 { return level[p[0]] })
	case *image.NRGBA64:
		eachPixel(labels, m.Pix, m.Stride, width, height, 8, func(p []byte) int32 { return int32(binary.BigEndian.Uint16(p)) })
	default:
		return nil, 0, 0, fmt.Errorf("labelpng: unexpected decoded image type %T", img)
	}
	return labels, height, width, nil
}

// eachPixel fills dst, row-major, with the value of each pixel of a
// width×height image whose pixels are bytesPerPixel bytes wide and whose
// rows start stride bytes apart in pix.
func eachPixel(dst []int32, pix []byte, stride, width, height, bytesPerPixel int, value func(pixel []byte) int32) {
	for y := range height {
		row := pix[y*stride:]
		out := dst[y*width : (y+1)*width]
		for x := range out {
			out[x] = value(row[x*bytesPerPixel:])
		}
	}
}

func colorName(colorType int) string {
	switch colorType {
	case colorRGB:
		return "RGB"
	case colorGrayAlpha:
		return "gray with alpha"
	}
	return "RGBA"
}

// resize returns dst resliced to length n, or a new slice if dst is too small.
func resize(dst []int32, n int) []int32 {
	if cap(dst) >= n {
		return dst[:n]
	}
	return make([]int32, n)
}
