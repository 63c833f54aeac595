package lovasz

import "testing"

// BenchmarkArgmaxHalfAt is the prediction of a report thumbnail, from
// float16 bits, at the pixels it shows: the nearest-neighbour grid of a
// thumbnail whose longer side is 256 pixels (see report.NewGrid).
func BenchmarkArgmaxHalfAt(b *testing.B) {
	const side = 256
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			im := benchImage(sz.classes, sz.h, sz.w, 1)
			probs := toHalf(im.probs)
			long := max(sz.h, sz.w)
			outH, outW := max(1, (sz.h*side+long/2)/long), max(1, (sz.w*side+long/2)/long)
			pixels := make([]int, 0, outH*outW)
			for y := range outH {
				for x := range outW {
					pixels = append(pixels, (2*y+1)*sz.h/(2*outH)*sz.w+(2*x+1)*sz.w/(2*outW))
				}
			}
			dst, err := ArgmaxHalfAt(probs, sz.classes, sz.w, pixels, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if dst, err = ArgmaxHalfAt(probs, sz.classes, sz.w, pixels, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
