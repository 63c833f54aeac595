#!/usr/bin/env python3
"""Write segeval input shards (WebDataset-style tar files) from arrays.

Needs only the Python standard library and numpy. From an evaluation loop:

    from write_shards import ShardWriter

    with ShardWriter("preds/val-%06d.tar", maxcount=1000) as sink:
        for keys, images, labels, logits in loader:
            probs = torch.softmax(logits.float(), dim=1).cpu().numpy()  # [B,C,H,W]
            for key, image, label, p in zip(keys, images, labels, probs):
                sink.write(key, probs=p, label=label.numpy(),
                           image=image.permute(1, 2, 0).numpy(),  # [H,W,3] uint8, optional
                           meta={"city": "bremen"})               # optional

Each sample KEY becomes the members segeval reads:

    KEY.probs.npy   float16 class probabilities, [C,H,W] (channels first)
    KEY.label.png   class ids as a grayscale PNG, 8-bit (16-bit when an id
                    exceeds 255); or KEY.label.npy with label_format="npy"
    KEY.png         the input image, when given as an array ([H,W,3] or
                    [H,W] uint8); an encoded file given with image_file
                    keeps its own extension (KEY.jpg, KEY.webp)
    KEY.json        the metadata object, when given (for --slice_by)

Keys must not contain a dot: a member's key is its name up to the first dot.
PNG files are written with zlib and struct, so PIL is not needed.

From the command line, pack a folder of arrays saved with numpy.save
(KEY.probs.npy, KEY.label.npy, and optionally KEY.image.npy, KEY.json, or an
encoded KEY.jpg, KEY.png or KEY.webp):

    python3 write_shards.py --arrays DIR --out 'preds/val-%06d.tar' [--maxcount 1000] [--label-format npy]
"""

import argparse
import io
import json
import os
import struct
import sys
import tarfile
import zlib

import numpy as np

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


def png_bytes(array):
    """Encode a uint8 or uint16 array of shape [H,W] (gray), [H,W,3] (RGB)
    or [H,W,4] (RGBA) as a PNG file."""
    a = np.asarray(array)
    if a.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG needs uint8 or uint16 values, got {a.dtype}")
    if a.ndim == 2:
        color_type = 0
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        color_type = 2 if a.shape[2] == 3 else 6
    else:
        raise ValueError(f"PNG needs shape [H,W], [H,W,3] or [H,W,4], got {a.shape}")
    height, width = a.shape[:2]
    depth = 8 * a.dtype.itemsize
    rows = np.ascontiguousarray(a, dtype=">u2" if depth == 16 else np.uint8).view(np.uint8).reshape(height, -1)
    # Each scanline starts with its filter type, 0 (none).
    raw = np.hstack([np.zeros((height, 1), np.uint8), rows]).tobytes()

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def label_png_bytes(label):
    """Encode class ids [H,W] as segeval reads them: 8-bit gray, or 16-bit
    when an id exceeds 255."""
    label = np.asarray(label)
    if label.ndim != 2 or not np.issubdtype(label.dtype, np.integer):
        raise ValueError(f"label must be [H,W] integers, got {label.shape} {label.dtype}")
    if label.size and (label.min() < 0 or label.max() > 65535):
        raise ValueError(f"label ids must be in [0, 65535] for PNG, got [{label.min()}, {label.max()}]")
    return png_bytes(label.astype(np.uint16 if label.size and label.max() > 255 else np.uint8))


def npy_bytes(array):
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


class ShardWriter:
    """Writes samples into tar shards named pattern % index, starting a new
    shard every maxcount samples."""

    def __init__(self, pattern, maxcount=1000, label_format="png"):
        if label_format not in ("png", "npy"):
            raise ValueError(f"label_format must be png or npy, got {label_format!r}")
        self.pattern, self.maxcount, self.label_format = pattern, maxcount, label_format
        self.shard, self.count, self.tar, self.paths = -1, 0, None, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.tar is not None:
            self.tar.close()
            self.tar = None

    def _member(self, name, data):
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        self.tar.addfile(info, io.BytesIO(data))

    def write(self, key, probs, label, image=None, image_file=None, meta=None):
        """Add sample key: probs [C,H,W] (stored as float16), label [H,W]
        integer ids, and optionally the input image (an [H,W,3] or [H,W]
        uint8 array, or image_file, the path of an encoded JPEG, PNG or WebP)
        and meta, a JSON-serializable dict."""
        if "." in key or not key:
            raise ValueError(f"key {key!r} must be non-empty and contain no dot")
        probs = np.asarray(probs)
        label = np.asarray(label)
        if probs.ndim != 3 or probs.shape[1:] != label.shape:
            raise ValueError(f"sample {key}: probs {probs.shape} must be [C,H,W] with label {label.shape} = [H,W]")
        if self.tar is None or self.count == self.maxcount:
            self.close()
            self.shard += 1
            path = self.pattern % self.shard
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            self.tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)
            self.paths.append(path)
            self.count = 0
        if self.label_format == "png":
            self._member(f"{key}.label.png", label_png_bytes(label))
        else:
            self._member(f"{key}.label.npy", npy_bytes(label))
        self._member(f"{key}.probs.npy", npy_bytes(probs.astype(np.float16)))
        if image is not None:
            self._member(f"{key}.png", png_bytes(np.asarray(image, dtype=np.uint8)))
        elif image_file is not None:
            ext = os.path.splitext(image_file)[1].lower().lstrip(".")
            if ext not in IMAGE_EXTENSIONS:
                raise ValueError(f"sample {key}: image file {image_file} is not .jpg, .jpeg, .png or .webp")
            with open(image_file, "rb") as f:
                self._member(f"{key}.{ext}", f.read())
        if meta is not None:
            self._member(f"{key}.json", json.dumps(meta).encode())
        self.count += 1


def pack(arrays, out, maxcount, label_format):
    """Pack the arrays of folder arrays (see the module's doc) into shards."""
    keys = sorted(name[: -len(".probs.npy")] for name in os.listdir(arrays) if name.endswith(".probs.npy"))
    if not keys:
        sys.exit(f"no KEY.probs.npy in {arrays}")
    with ShardWriter(out, maxcount, label_format) as sink:
        for key in keys:
            base = os.path.join(arrays, key)
            image = np.load(base + ".image.npy") if os.path.exists(base + ".image.npy") else None
            image_file = next((f"{base}.{e}" for e in IMAGE_EXTENSIONS if os.path.exists(f"{base}.{e}")), None)
            meta = None
            if os.path.exists(base + ".json"):
                with open(base + ".json") as f:
                    meta = json.load(f)
            sink.write(key, np.load(base + ".probs.npy"), np.load(base + ".label.npy"),
                       image=image, image_file=image_file, meta=meta)
    return sink.paths


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arrays", required=True, help="folder of KEY.probs.npy, KEY.label.npy, ...")
    ap.add_argument("--out", required=True, help="shard path pattern, e.g. preds/val-%%06d.tar")
    ap.add_argument("--maxcount", type=int, default=1000, help="samples per shard")
    ap.add_argument("--label-format", choices=("png", "npy"), default="png")
    args = ap.parse_args()
    for path in pack(args.arrays, args.out, args.maxcount, args.label_format):
        print(path)


if __name__ == "__main__":
    main()
