# Generates the fixtures in this directory with NumPy 1.24 (run once with
# /usr/bin/python3 from this directory; the tests do not run Python): one
# 3-class 4x5 float16 probability map saved channels-first, channels-last and
# in .npz archives as np.savez, np.savez_compressed and nnU-Net write them,
# and in Fortran order.
import numpy as np

rng = np.random.default_rng(7)
c, h, w = 3, 4, 5
logits = rng.standard_normal((c, h, w)).astype(np.float32)
e = np.exp(logits)
probs = (e / e.sum(axis=0, keepdims=True)).astype(np.float16)  # [C,H,W]
hwc = np.ascontiguousarray(probs.transpose(1, 2, 0))  # [H,W,C]

label = rng.integers(0, c, size=(h, w)).astype(np.uint8)
np.save("label.npy", label)
np.save("probs_chw.npy", probs)
np.save("probs_hwc.npy", hwc)
np.save("probs_hwc_batch.npy", hwc[np.newaxis])  # [1,H,W,C]
np.savez("probs_stored.npz", probs)  # member arr_0.npy, stored
np.savez_compressed("probs_softmax.npz", softmax=probs)  # deflated, nnU-Net's key
np.savez_compressed("probs_hwc.npz", probabilities=hwc)
np.savez("probs_two.npz", softmax=probs, logits=logits)

# The same arrays in Fortran order, as np.save writes Fortran-contiguous
# arrays: each must decode like its C-order copy above.
np.save("label_fortran.npy", np.asfortranarray(label))  # [H,W]
np.save("probs_chw_fortran.npy", np.asfortranarray(probs))  # [C,H,W]
np.save("probs_hwc_fortran.npy", np.asfortranarray(hwc))  # [H,W,C]
np.save("probs_hwc_batch_fortran.npy", np.asfortranarray(hwc[np.newaxis]))  # [1,H,W,C]
np.savez_compressed("probs_softmax_fortran.npz", softmax=np.asfortranarray(probs))
