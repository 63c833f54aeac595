package lovasz

import (
	"cmp"
	"slices"
)

// errorPair is one pixel's error for a class and whether the pixel belongs to
// that class.
type errorPair struct {
	err float64
	fg  bool
}

// lovaszExtension returns the Lovász extension of the Jaccard loss at the
// given errors, sorting pairs in place (decreasing error).
//
// With G foreground pixels and, after the k largest errors, F_k foreground and
// B_k = k - F_k background pixels, the prefix loss is
// J_k = 1 - (G-F_k)/(G+B_k) = k/(G+B_k), and the extension is
// sum_k err_k (J_k - J_{k-1}). When G = 0, J_k = 1 from the first pixel on, so
// the value is the largest error. Ties may be ordered any way: the value does
// not change.
func lovaszExtension(pairs []errorPair) float64 {
	if len(pairs) == 0 {
		return 0
	}
	slices.SortFunc(pairs, func(a, b errorPair) int { return cmp.Compare(b.err, a.err) })
	var g int64
	for _, p := range pairs {
		if p.fg {
			g++
		}
	}
	var (
		loss, prev float64
		bg         int64
	)
	for k, p := range pairs {
		if !p.fg {
			bg++
		}
		j := float64(k+1) / float64(g+bg)
		loss += p.err * (j - prev)
		prev = j
	}
	return loss
}
