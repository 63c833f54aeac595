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
