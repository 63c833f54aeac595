// Package npy reads and writes arrays in NumPy's .npy format
// (format versions 1.0, 2.0 and 3.0).
//
// The decoders convert any supported element type into the one type the
// evaluator computes with: [DecodeFloat32] for scores (float16, float32 and
// float64 in either byte order) and [DecodeInt32] for class ids (every
// integer width, signed or unsigned, and bool). Both check the header against
// [Limits] and against the number of bytes present before allocating, so a
// file that lies about its shape is an error rather than a crash, and both
// reuse the caller's slice when it is large enough. Arrays stored in Fortran
// (column-major) order, as numpy saves Fortran-contiguous arrays, are
// returned in C (row-major) order like all others, with the same shape, as
// np.load presents them.
//
// [Write] produces version 1.0 files byte-for-byte as numpy.save does; it
// exists for tests and for generating sample data.
//
// See https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
// for the format.
package npy
