package report

import (
	"image/color"
	"testing"
)

func rgb(r, g, b uint8) color.NRGBA { return color.NRGBA{r, g, b, 255} }

func TestClassColor(t *testing.T) {
	tests := []struct {
		name    string
		classes int
		id      int32
		want    color.NRGBA
	}{
		{"cityscapes road", 19, 0, rgb(128, 64, 128)},
		{"cityscapes sky", 19, 10, rgb(70, 130, 180)},
		{"cityscapes car", 19, 13, rgb(0, 0, 142)},
		{"cityscapes bicycle", 19, 18, rgb(119, 11, 32)},
		{"cityscapes: 19 is not a class", 19, 19, void},
		{"voc background", 21, 0, rgb(0, 0, 0)},
		{"voc aeroplane", 21, 1, rgb(128, 0, 0)},
		{"voc bicycle", 21, 2, rgb(0, 128, 0)},
		{"voc bird", 21, 3, rgb(128, 128, 0)},
		{"voc person", 21, 15, rgb(192, 128, 128)},
		{"voc tv/monitor", 21, 20, rgb(0, 64, 128)},
		{"voc: 21 is not a class", 21, 21, void},
		{"negative id", 21, -1, void},
		{"ADE20K-sized palettes go on the same way", 256, 150, rgb(0, 224, 128)},
		{"VOC's void label 255 has the void color", 256, 255, rgb(224, 224, 192)},
	}
	for _, tt := range tests {
		if got := classColor(tt.id, tt.classes); got != tt.want {
			t.Errorf("%s: classColor(%d, %d) = %v, want %v", tt.name, tt.id, tt.classes, got, tt.want)
		}
	}
}

func TestFit(t *testing.T) {
	tests := []struct {
		height, width, maxSide int
		wantH, wantW           int
	}{
		{2, 3, 10, 2, 3},       // small enough already
		{40, 100, 10, 4, 10},   // landscape
		{90, 30, 9, 9, 3},      // portrait
		{1, 1000, 100, 1, 100}, // a thin strip keeps a pixel
		{1024, 2048, 256, 128, 256},
	}
	for _, tt := range tests {
		if h, w := fit(tt.height, tt.width, tt.maxSide); h != tt.wantH || w != tt.wantW {
			t.Errorf("fit(%d, %d, %d) = %dx%d, want %dx%d", tt.height, tt.width, tt.maxSide, h, w, tt.wantH, tt.wantW)
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
