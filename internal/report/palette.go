package report

import (
	"image/color"
)

// cityscapes holds the colors of the 19 Cityscapes training classes (road,
// sidewalk, building, wall, fence, pole, traffic light, traffic sign,
// vegetation, terrain, sky, person, rider, car, truck, bus, train,
// motorcycle, bicycle), as the dataset's tools draw them.
var cityscapes = [19]color.NRGBA{
	{128, 64, 128, 255}, {244, 35, 232, 255}, {70, 70, 70, 255}, {102, 102, 156, 255},
	{190, 153, 153, 255}, {153, 153, 153, 255}, {250, 170, 30, 255}, {220, 220, 0, 255},
	{107, 142, 35, 255}, {152, 251, 152, 255}, {70, 130, 180, 255}, {220, 20, 60, 255},
	{255, 0, 0, 255}, {0, 0, 142, 255}, {0, 0, 70, 255}, {0, 60, 100, 255},
	{0, 80, 100, 255}, {0, 0, 230, 255}, {119, 11, 32, 255},
}

// void paints ignored pixels and values that are not a class: PASCAL VOC's
// color for its void label, unlike black, which is VOC's background class.
var void = color.NRGBA{224, 224, 192, 255}

// classColor returns the color of class c in a map of the given number of
// classes: the Cityscapes colors when there are 19 classes, the PASCAL VOC
// palette otherwise, and void for a value outside [0, classes).
func classColor(c int32, classes int) color.NRGBA {
	if c < 0 || int64(c) >= int64(classes) {
		return void
	}
	if classes == len(cityscapes) {
		return cityscapes[c]
	}
	return vocColor(c)
}

// vocColor is the PASCAL VOC palette: the bits of the class id are dealt
// out in turn to red, green and blue, from the most significant bit of each
// channel down. It gives distinct colors to ids below 2^24 (the standard
// palette is its first 256 entries), and black to id 0, VOC's background.
func vocColor(c int32) color.NRGBA {
	var r, g, b uint8
	for shift := 7; shift >= 0 && c > 0; shift-- {
		r |= uint8(c&1) << shift
		g |= uint8(c>>1&1) << shift
		b |= uint8(c>>2&1) << shift
		c >>= 3
	}
	return color.NRGBA{r, g, b, 255}
}

// fit returns the size of a height x width image scaled down so that its
// longer side is at most maxSide, each side at least 1 pixel.
func fit(height, width, maxSide int) (h, w int) {
	long := max(height, width)
	if long <= maxSide {
		return height, width
	}
	scale := func(n int) int {
		return max(1, (n*maxSide+long/2)/long)
	}
	return scale(height), scale(width)
}
