"""A small PNG reader (zlib + numpy) for checking screenshots in tests: no imaging library.

    >>> import zlib, struct
    >>> def chunk(t, b): return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b))
    >>> png = (SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 1, 8, 2, 0, 0, 0))
    ...        + chunk(b"IDAT", zlib.compress(bytes([1, 10, 20, 30, 5, 5, 5]))) + chunk(b"IEND", b""))
    >>> read_png(png)[0, 1].tolist()   # "Sub" filter: the second pixel adds the first
    [15, 25, 35]
"""

from __future__ import annotations

import struct
import zlib
from typing import List

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # grey, RGB, grey + alpha, RGBA (8-bit only)


class PNGError(ValueError):
    pass


def _paeth_row(line: bytearray, prev: bytes, bpp: int) -> None:
    for i in range(len(line)):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF


def _average_row(line: bytearray, prev: bytes, bpp: int) -> None:
    for i in range(len(line)):
        a = line[i - bpp] if i >= bpp else 0
        line[i] = (line[i] + ((a + prev[i]) >> 1)) & 0xFF


def read_png(data: bytes) -> np.ndarray:
    """Pixels of an 8-bit, non-interlaced PNG as a ``(height, width, channels)`` uint8 array.

    Checks the signature, every chunk's CRC and the image data's length; raises
    :class:`PNGError` on anything else.
    """
    if data[:8] != SIGNATURE:
        raise PNGError("not a PNG (bad signature)")
    pos, idat, header = 8, [], None
    while True:
        if pos + 12 > len(data):
            raise PNGError("truncated chunk")
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(ctype + body) != crc:
            raise PNGError(f"bad CRC in {ctype!r} chunk")
        pos += 12 + length
        if ctype == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"IEND":
            break
    if header is None:
        raise PNGError("no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in _CHANNELS or interlace:
        raise PNGError(f"unsupported PNG: depth {depth}, colour type {colour}, "
                       f"interlace {interlace}")
    bpp = _CHANNELS[colour]
    stride = width * bpp
    raw = zlib.decompress(b"".join(idat))
    if len(raw) != height * (stride + 1):
        raise PNGError(f"{len(raw)} bytes of image data for {width}x{height}")
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:]
        if kind == 0:
            cur = line.copy()
        elif kind == 1:  # Sub: a running sum per channel
            cur = (np.cumsum(line.reshape(width, bpp), axis=0, dtype=np.uint64) % 256
                   ).astype(np.uint8).ravel()
        elif kind == 2:  # Up
            cur = line + prev
        elif kind in (3, 4):
            buf = bytearray(line.tobytes())
            (_average_row if kind == 3 else _paeth_row)(buf, prev.tobytes(), bpp)
            cur = np.frombuffer(bytes(buf), dtype=np.uint8)
        else:
            raise PNGError(f"bad filter type {kind} in row {y}")
        out[y] = cur
        prev = cur
    return out.reshape(height, width, bpp)


def size(data: bytes) -> List[int]:
    """``[width, height]`` from the IHDR chunk."""
    if data[:8] != SIGNATURE or data[12:16] != b"IHDR":
        raise PNGError("not a PNG")
    return list(struct.unpack(">II", data[16:24]))
