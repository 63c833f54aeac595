# Generates the .npy fixtures in this directory with NumPy 1.24 (run once with
# /usr/bin/python3 from this directory; the tests do not run Python).
import numpy as np

# Rounding cases for float16: overflow to inf, subnormals, ties to even.
f16_source = np.array([
    0.0, -0.0, 1.0, -2.5,
    65504.0, 65520.0, 1e-7, 2.0**-24,
    2.0**-25, 1 + 2.0**-11, 1 + 3 * 2.0**-11, 0.1,
    3.14159, np.inf, -np.inf, np.nan,
], dtype=np.float32).reshape(4, 4)
f16 = f16_source.astype(np.float16)
np.save("float16.npy", f16)
np.save("float16_as_f4.npy", f16.astype(np.float32))

np.save("f4_2x3.npy", np.arange(6, dtype="<f4").reshape(2, 3) / np.float32(4))
np.save("f4_scalar.npy", np.float32(2.5))
np.save("i8_1d.npy", np.array([-3, 0, 2**40], dtype="<i8"))
np.save("u1_2x2.npy", np.array([[0, 1], [254, 255]], dtype="|u1"))
np.save("i2_big_endian.npy", np.array([[1, -2, 300], [-32768, 32767, 0]], dtype=">i2"))
np.save("f8_big_endian.npy", np.array([[1.5, -2.25, 0.1]], dtype=">f8"))
np.save("bool.npy", np.array([[True, False], [False, True]]))
np.save("fortran_f4.npy", np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)))
np.save("structured.npy", np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]))
with open("v2_u2.npy", "wb") as f:
    np.lib.format.write_array(f, np.array([[1, 2], [3, 65535]], dtype="<u2"), version=(2, 0))
with open("v3_i4.npy", "wb") as f:
    np.lib.format.write_array(f, np.array([-1, 7, 2**31 - 1], dtype="<i4"), version=(3, 0))

# Fortran-order arrays, as np.save writes any Fortran-contiguous array (a
# transposed array saved as is, or one made by np.asfortranarray), each with
# its C-order twin: fortran_NAME.npy must decode equal to corder_NAME.npy.
# Ranks 2 to 4, every element type the decoders read, both byte orders.
rng = np.random.default_rng(13)
probs = rng.random((3, 4, 5)).astype(np.float32)
probs /= probs.sum(axis=0, keepdims=True)  # a [C,H,W] probability map
fortran = {
    "f4": np.arange(6, dtype="<f4").reshape(2, 3),  # fortran_f4.npy as before
    "f2_chw": probs.astype("<f2"),
    "f4_hwc": np.ascontiguousarray(probs.transpose(1, 2, 0)),  # [H,W,C]
    "f4_batch": probs[np.newaxis],  # [1,C,H,W]
    "f8_big_endian": rng.standard_normal((2, 3, 4)).astype(">f8"),
    "f2_big_endian": rng.standard_normal((3, 2)).astype(">f2"),
    "u1_label": rng.integers(0, 19, size=(4, 5)).astype("|u1"),  # an [H,W] label map
    "i1": rng.integers(-128, 128, size=(3, 4)).astype("|i1"),
    "i2_big_endian": rng.integers(-32768, 32768, size=(2, 5, 3)).astype(">i2"),
    "u2": rng.integers(0, 65536, size=(5, 2)).astype("<u2"),
    "i4": rng.integers(-2**31, 2**31, size=(2, 2, 2, 3)).astype("<i4"),
    "u4_big_endian": rng.integers(0, 2**31, size=(3, 3)).astype(">u4"),
    "i8": rng.integers(-2**31, 2**31, size=(4, 3)).astype("<i8"),
    "u8": rng.integers(0, 2**31, size=(2, 3)).astype("<u8"),
    "bool": rng.integers(0, 2, size=(3, 5)).astype("|b1"),
}
for name, a in fortran.items():
    f = np.asfortranarray(a)
    assert f.flags.f_contiguous and not f.flags.c_contiguous
    np.save(f"fortran_{name}.npy", f)
    np.save(f"corder_{name}.npy", np.ascontiguousarray(a))
# The common way to get one: a C-order [H,W,C] array transposed to [C,H,W].
hwc = np.ascontiguousarray(probs.transpose(1, 2, 0))
np.save("fortran_transposed.npy", hwc.T)  # shape (C,W,H), stored column-major
np.save("corder_transposed.npy", np.ascontiguousarray(hwc.T))
