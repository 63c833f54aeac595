# Generates the PNG fixtures in this directory with Pillow 9.4, and by hand for
# the low bit depth grayscale files Pillow cannot write (run once with
# /usr/bin/python3 from this directory; the tests do not run Python).
import struct
import zlib

from PIL import Image


def voc_palette():
    # The PASCAL VOC color map: class id -> color, indexed by the pixel.
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


# 8-bit palette, VOC style: ids 0..20 and 255 for "ignore".
im = Image.new("P", (4, 3))
im.putpalette(voc_palette())
im.putdata([0, 1, 2, 3, 4, 5, 6, 7, 8, 20, 255, 15])
im.save("palette8.png")

# 4-bit palette: Pillow packs a 16-color palette into 4 bits per pixel.
im = Image.new("P", (5, 2))
im.putpalette(voc_palette()[: 16 * 3])
im.putdata([0, 1, 2, 3, 4, 15, 14, 13, 12, 11])
im.save("palette4.png", bits=4)

# 1-bit grayscale: Pillow stores mode "1" pixels as 0 or 255.
im = Image.new("1", (10, 2))
im.putdata([0, 255, 255, 0, 0, 0, 255, 0, 255, 255,
            255, 0, 0, 0, 0, 0, 0, 0, 0, 255])
im.save("gray1.png")

# 16-bit grayscale.
im = Image.new("I;16", (3, 2))
im.putdata([0, 1, 255, 256, 1000, 65535])
im.save("gray16.png")

# 8-bit grayscale with a tRNS chunk making 255 transparent.
im = Image.new("L", (3, 2))
im.putdata([0, 1, 2, 255, 7, 19])
im.save("gray8_trns.png", transparency=255)


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def write_gray(path, depth, rows):
    # Packs rows of raw values MSB first at the given bit depth, with
    # filter type 0 on every row.
    height, width = len(rows), len(rows[0])
    raw = b""
    for row in rows:
        bits = "".join(format(v, "0%db" % depth) for v in row)
        bits += "0" * (-len(bits) % 8)
        raw += b"\x00" + int(bits, 2).to_bytes(len(bits) // 8, "big")
    ihdr = struct.pack(">IIBBBBB", width, height, depth, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


write_gray("gray2.png", 2, [[0, 1, 2, 3, 1], [3, 3, 0, 2, 1]])
write_gray("gray4.png", 4, [[0, 1, 2, 15, 7], [9, 10, 11, 12, 3], [4, 5, 6, 8, 14]])
