"""Clear the "open for write" flags that a killed SWMR writer leaves in an HDF5 superblock.

Outputs are written in SWMR mode (HDF5 file format with a version-3 superblock) so that they can
be read while a run writes them. A writer that dies without closing the file (SIGKILL, power
loss, a failed write) leaves the superblock's file-consistency flags set: readers in SWMR mode
still open it, but HDF5 refuses to open it for writing, which ``--resume`` needs. This is what
``h5clear -s`` does: set the flags byte to 0 and rewrite the superblock checksum (Jenkins'
lookup3, as HDF5 computes it). The checksum of the superblock as found is verified first, so a
file this code does not understand is left alone.

Superblock version 2/3 layout (offsets of 8 bytes): signature (8), version (1), size of offsets
(1), size of lengths (1), flags (1), four addresses (32), checksum (4) — 48 bytes at offset 0.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

SIGNATURE = b"\x89HDF\r\n\x1a\n"
_M = 0xFFFFFFFF
_FLAGS_AT = 11
_SIZE = 48


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' ``hashlittle`` (lookup3.c), the checksum of HDF5 metadata."""
    n = len(data)
    a = b = c = (0xDEADBEEF + n + initval) & _M
    if n == 0:
        return c
    i = 0
    while n - i > 12:
        x, y, z = struct.unpack_from("<3I", data, i)
        a, b, c = (a + x) & _M, (b + y) & _M, (c + z) & _M
        a = (a - c) & _M
        a ^= _rot(c, 4)
        c = (c + b) & _M
        b = (b - a) & _M
        b ^= _rot(a, 6)
        a = (a + c) & _M
        c = (c - b) & _M
        c ^= _rot(b, 8)
        b = (b + a) & _M
        a = (a - c) & _M
        a ^= _rot(c, 16)
        c = (c + b) & _M
        b = (b - a) & _M
        b ^= _rot(a, 19)
        a = (a + c) & _M
        c = (c - b) & _M
        c ^= _rot(b, 4)
        b = (b + a) & _M
        i += 12
    x, y, z = struct.unpack("<3I", data[i:] + bytes(12 - (n - i)))
    a, b, c = (a + x) & _M, (b + y) & _M, (c + z) & _M
    c ^= b
    c = (c - _rot(b, 14)) & _M
    a ^= c
    a = (a - _rot(c, 11)) & _M
    b ^= a
    b = (b - _rot(a, 25)) & _M
    c ^= b
    c = (c - _rot(b, 16)) & _M
    a ^= c
    a = (a - _rot(c, 4)) & _M
    b ^= a
    b = (b - _rot(a, 14)) & _M
    c ^= b
    c = (c - _rot(b, 24)) & _M
    return c


def status_flags(path: str | Path) -> int | None:
    """The superblock's consistency flags (0 = closed cleanly), or None for an older superblock."""
    with open(path, "rb") as fh:
        head = fh.read(_SIZE)
    if len(head) < _SIZE or head[:8] != SIGNATURE or head[8] not in (2, 3) or head[9] != 8:
        return None
    return head[_FLAGS_AT]


def clear_status_flags(path: str | Path) -> bool:
    """Clear the flags of ``path``'s superblock in place; returns whether anything changed.

    Raises ``ValueError`` when the superblock's checksum does not match (a damaged file, or a
    layout this code does not know): the file is then not modified.
    """
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        head = os.pread(fd, _SIZE, 0)
        if len(head) < _SIZE or head[:8] != SIGNATURE or head[8] not in (2, 3) or head[9] != 8:
            return False
        if struct.unpack_from("<I", head, 44)[0] != lookup3(head[:44]):
            raise ValueError("superblock checksum mismatch")
        if head[_FLAGS_AT] == 0:
            return False
        new = bytearray(head)
        new[_FLAGS_AT] = 0
        struct.pack_into("<I", new, 44, lookup3(bytes(new[:44])))
        os.pwrite(fd, bytes(new), 0)
        os.fsync(fd)
        return True
    finally:
        os.close(fd)
