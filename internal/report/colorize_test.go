package report

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"testing"
)

func decodePNG(t *testing.T, data []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("decoding the PNG: %v", err)
	}
	return img
}

func rgb(r, g, b uint8) color.NRGBA { return color.NRGBA{r, g, b, 255} }

func TestColorize(t *testing.T) {
	type pixel struct {
		x, y int
		want color.NRGBA
	}
	tests := []struct {
		name          string
		classMap      []int32
		height, width int
		classes       int
		ignore        int32
		maxSide       int
		wantW, wantH  int
		pixels        []pixel
	}{{
		name: "cityscapes",
		classMap: []int32{
			0, 10, 13,
			18, 255, 19,
		},
		height: 2, width: 3, classes: 19, ignore: 255, maxSide: 10,
		wantW: 3, wantH: 2,
		pixels: []pixel{
			{0, 0, rgb(128, 64, 128)},  // road
			{1, 0, rgb(70, 130, 180)},  // sky
			{2, 0, rgb(0, 0, 142)},     // car
			{0, 1, rgb(119, 11, 32)},   // bicycle
			{1, 1, rgb(224, 224, 192)}, // ignore
			{2, 1, rgb(224, 224, 192)}, // not a class
		},
	}, {
		name:     "voc",
		classMap: []int32{0, 1, 2, 3, 15, 20, 21, -1, 255},
		height:   3, width: 3, classes: 21, ignore: 255, maxSide: 3,
		wantW: 3, wantH: 3,
		pixels: []pixel{
			{0, 0, rgb(0, 0, 0)},       // background
			{1, 0, rgb(128, 0, 0)},     // aeroplane
			{2, 0, rgb(0, 128, 0)},     // bicycle
			{0, 1, rgb(128, 128, 0)},   // bird
			{1, 1, rgb(192, 128, 128)}, // person
			{2, 1, rgb(0, 64, 128)},    // tv/monitor
			{0, 2, rgb(224, 224, 192)}, // 21 is not a class
			{1, 2, rgb(224, 224, 192)}, // nor is -1
			{2, 2, rgb(224, 224, 192)}, // ignore
		},
	}, {
		name:     "voc palette beyond 21 classes",
		classMap: []int32{150, 255, 0},
		height:   1, width: 3, classes: 256, ignore: 0, maxSide: 3,
		wantW: 3, wantH: 1,
		pixels: []pixel{
			{0, 0, rgb(0, 224, 128)}, // ADE20K-sized palettes go on the same way
			{1, 0, rgb(224, 224, 192)},
			{2, 0, rgb(224, 224, 192)}, // ignore 0
		},
	}, {
		// Left half road, right half sky, 40 x 100, to at most 10 pixels.
		name:     "downscaled",
		classMap: halves(40, 100, 0, 10),
		height:   40, width: 100, classes: 19, ignore: 255, maxSide: 10,
		wantW: 10, wantH: 4,
		pixels: []pixel{
			{0, 0, rgb(128, 64, 128)}, {4, 3, rgb(128, 64, 128)},
			{5, 0, rgb(70, 130, 180)}, {9, 3, rgb(70, 130, 180)},
		},
	}, {
		name:     "downscaled portrait",
		classMap: halves(90, 30, 13, 255),
		height:   90, width: 30, classes: 19, ignore: 255, maxSide: 9,
		wantW: 3, wantH: 9,
		pixels: []pixel{{0, 0, rgb(0, 0, 142)}, {2, 8, rgb(224, 224, 192)}},
	}, {
		name:     "thin strip keeps a pixel",
		classMap: make([]int32, 1000),
		height:   1, width: 1000, classes: 19, ignore: 255, maxSide: 100,
		wantW: 100, wantH: 1,
		pixels: []pixel{{50, 0, rgb(128, 64, 128)}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := Colorize(tt.classMap, tt.height, tt.width, tt.classes, tt.ignore, tt.maxSide)
			if err != nil {
				t.Fatal(err)
			}
			img := decodePNG(t, data)
			if b := img.Bounds(); b.Dx() != tt.wantW || b.Dy() != tt.wantH {
				t.Fatalf("size %dx%d, want %dx%d", b.Dx(), b.Dy(), tt.wantW, tt.wantH)
			}
			for _, p := range tt.pixels {
				if got := color.NRGBAModel.Convert(img.At(p.x, p.y)); got != p.want {
					t.Errorf("pixel (%d, %d) = %v, want %v", p.x, p.y, got, p.want)
				}
			}
		})
	}
}

// halves is a height x width map whose left half is class left and right
// half class right.
func halves(height, width int, left, right int32) []int32 {
	m := make([]int32, height*width)
	for y := range height {
		for x := range width {
			m[y*width+x] = left
			if x >= width/2 {
				m[y*width+x] = right
			}
		}
	}
	return m
}

func TestColorizeErrors(t *testing.T) {
	tests := []struct {
		name                            string
		classMap                        []int32
		height, width, classes, maxSide int
	}{
		{"no rows", nil, 0, 3, 19, 10},
		{"negative width", []int32{0}, 1, -1, 19, 10},
		{"short map", []int32{0, 0, 0}, 2, 2, 19, 10},
		{"long map", []int32{0, 0, 0, 0, 0}, 2, 2, 19, 10},
		{"no classes", []int32{0}, 1, 1, 0, 10},
		{"no side", []int32{0}, 1, 1, 19, 0},
	}
	for _, tt := range tests {
		if _, err := Colorize(tt.classMap, tt.height, tt.width, tt.classes, 255, tt.maxSide); err == nil {
			t.Errorf("%s: Colorize succeeded", tt.name)
		}
	}
}

// TestClassColorsDistinct checks that the palettes tell classes apart, and
// from ignored pixels.
func TestClassColorsDistinct(t *testing.T) {
	for _, classes := range []int{2, 19, 21, 150, 256} {
		seen := map[color.NRGBA]int32{void: -1}
		for c := range int32(classes) {
			col := classColor(c, classes)
			if c == 255 {
				continue // VOC's palette gives id 255, its void label, the void color
			}
			if prev, dup := seen[col]; dup {
				t.Errorf("%d classes: classes %d and %d are both %v", classes, prev, c, col)
			}
			seen[col] = c
		}
	}
}
