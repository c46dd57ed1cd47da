"""Builders of hostile image files: PNGs whose header announces far more pixels than their bytes."""

import struct
import zlib

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPE = {"grey": 0, "palette": 3}


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_flat_png(path, width, height, bit_depth=16, colour="grey"):
    """A valid all-zero PNG of ``width`` x ``height``, compressed row by row in bounded memory.

    A 13300 x 13300 16-bit grey PNG made this way is about 370 KB on disk and
    2.5 GB once decoded by a loader that does not look at the header first.
    """
    header = struct.pack(">IIBBBBB", width, height, bit_depth, _PNG_COLOUR_TYPE[colour], 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (width * bit_depth + 7) // 8)
    rows_per_block = max(1, (1 << 22) // len(row))
    compressed = []
    for start in range(0, height, rows_per_block):
        compressed.append(compressor.compress(row * min(rows_per_block, height - start)))
    compressed.append(compressor.flush())
    chunks = [_chunk(b"IHDR", header)]
    if colour == "palette":
        chunks.append(_chunk(b"PLTE", bytes(range(3)) * 1))
    chunks += [_chunk(b"IDAT", b"".join(compressed)), _chunk(b"IEND", b"")]
    path.write_bytes(_PNG_SIGNATURE + b"".join(chunks))
    return path
