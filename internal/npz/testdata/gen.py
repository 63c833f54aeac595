# Generates the fixtures in this directory with NumPy 1.24 (run once with
# /usr/bin/python3 from this directory; the tests do not run Python). Each
# .npz member is byte-for-byte the .npy file np.save writes for its array,
# which the tests check.
import numpy as np

a = np.arange(6, dtype="<f4").reshape(2, 3) / np.float32(4)
b = np.array([[1, -2], [3, 4]], dtype="<i8")
np.save("a.npy", a)
np.save("b.npy", b)

np.savez("stored_positional.npz", a)  # member arr_0.npy, stored
np.savez_compressed("deflated_positional.npz", a)  # member arr_0.npy, deflated
np.savez_compressed("deflated_named.npz", softmax=a)  # nnU-Net's key
np.savez("stored_two.npz", probabilities=a, labels=b)
