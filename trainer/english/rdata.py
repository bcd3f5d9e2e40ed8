"""Just enough of R's serialization format to read the data of an R package: character
vectors, lists and their names (janeaustenr keeps each novel as a character vector).

An installed R package keeps its data sets in a lazy-load database: ``Rdata.rdx`` (a gzipped
serialized index: a list whose ``variables`` maps each object's name to its (offset, length) in
``Rdata.rdb``) and ``Rdata.rdb`` (the objects, each serialized and compressed: a 4-byte
big-endian length, then a zlib stream, or for bzip2/xz a type byte first). The serialization is
R's "XDR" format: big-endian ints and doubles, each item led by a flags word whose low byte is
its type. Code objects (byte code) are outside what data sets hold and raise ``ValueError``.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib

NA_INT = -(2**31)
_CHARS, _LOGICAL, _INT, _REAL, _COMPLEX, _STRINGS, _LIST, _EXPR, _RAW, _S4 = (
    9,
    10,
    13,
    14,
    15,
    16,
    19,
    20,
    24,
    25,
)
_PAIRS = {2, 3, 5, 6, 17}  # pairlist, closure, promise, call, dots: attr?, tag?, car, cdr
_SINGLETONS = {254, 253, 252, 251, 250, 242, 241}  # NULL, the global/base/empty envs, markers
_REF, _PERSIST_LIKE, _ENV, _SYMBOL, _ALTREP, _BUILTIN = 255, {247, 248, 249}, 4, 1, 238, {7, 8}


class _Reader:
    def __init__(self, blob: bytes):
        self.blob, self.pos, self.refs = blob, 0, []

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.blob):
            raise ValueError(f"R data truncated at byte {self.pos} (wanted {n} more)")
        out = self.blob[self.pos : self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def length(self) -> int:
        n = self.int()
        return n if n != -1 else (self.int() << 32) + (self.int() & 0xFFFFFFFF)

    def item(self):
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind in _SINGLETONS:
            return None
        if kind == _REF:
            index = flags >> 8 or self.int()
            return self.refs[index - 1]
        if kind in _PERSIST_LIKE:  # a namespace or package environment, named by strings
            self.int()
            value = [self.item() for _ in range(self.int())]
            self.refs.append(value)
            return value
        if kind == _SYMBOL:
            value = self.item()
            self.refs.append(value)
            return value
        if kind in _PAIRS:
            return self._pairlist(has_attr, has_tag)
        if kind == _ENV:
            return self._environment()
        if kind == _ALTREP:
            _info, state, _attr = self.item(), self.item(), self.item()
            return state
        value = self._vector(kind, flags)
        return self._with_attributes(value, self.item() if has_attr else None)

    def _pairlist(self, has_attr: int, has_tag: int) -> dict:
        """A pairlist as a dict of tag -> value (untagged cells get their position as key)."""
        out: dict = {}
        while True:
            if has_attr:
                self.item()
            tag = self.item() if has_tag else len(out)
            out[tag] = self.item()
            flags = self.int()
            kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
            if kind != 2:  # the cdr is not another cell: read it back as an item and stop
                self.pos -= 4
                tail = self.item()
                if tail is not None:
                    out[len(out)] = tail
                return out

    def _environment(self) -> dict:
        env: dict = {}
        self.refs.append(env)
        self.int()  # locked
        _enclosure, frame, hashtab, _attr = self.item(), self.item(), self.item(), self.item()
        env.update(frame or {})
        for bucket in hashtab if isinstance(hashtab, list) else []:
            env.update(bucket or {})
        return env

    def _vector(self, kind: int, flags: int):
        if kind == _CHARS:
            n = self.int()
            if n == -1:
                return None
            raw = self.take(n)
            return raw.decode("latin-1" if flags & (1 << 14) else "utf-8", errors="replace")
        if kind in _BUILTIN:
            return self.take(self.int()).decode("ascii")
        if kind == _S4:
            return {}
        n = self.length()
        if kind in (_LOGICAL, _INT):
            return [None if v == NA_INT else v for v in struct.unpack(f">{n}i", self.take(4 * n))]
        if kind == _REAL:
            return list(struct.unpack(f">{n}d", self.take(8 * n)))
        if kind == _COMPLEX:
            return list(struct.unpack(f">{2 * n}d", self.take(16 * n)))
        if kind in (_STRINGS, _LIST, _EXPR):
            return [self.item() for _ in range(n)]
        if kind == _RAW:
            return self.take(n)
        raise ValueError(f"R object of type {kind} at byte {self.pos} is not data this reader handles")

    @staticmethod
    def _with_attributes(value, attributes: dict | None):
        names = (attributes or {}).get("names")
        if isinstance(value, list) and isinstance(names, list) and len(names) == len(value):
            return dict(zip(names, value, strict=True))
        return value


def unserialize(blob: bytes):
    """One serialized R object (``X\\n`` + XDR): character vectors become lists of str (None
    for NA), lists with names dicts, other vectors lists of numbers."""
    if blob[:2] != b"X\n":
        raise ValueError(f"not R XDR serialization (starts {blob[:2]!r})")
    reader = _Reader(blob)
    reader.pos = 2
    version = reader.int()
    reader.int(), reader.int()  # R version that wrote it, oldest that reads it
    if version == 3:
        reader.take(reader.int())  # native encoding name
    return reader.item()


def _entry(blob: bytes) -> bytes:
    """Decompresses one lazy-load database entry (R's compress 1, 2 or 3)."""
    size = struct.unpack(">I", blob[:4])[0]
    try:
        out = zlib.decompress(blob[4:])
    except zlib.error:
        kind, body = blob[4:5], blob[5:]
        out = {b"Z": zlib.decompress, b"2": bz2.decompress, b"X": lzma.decompress, b"0": bytes}[kind](body)
    if len(out) != size:
        raise ValueError(f"R lazy-load entry: {len(out)} bytes, header says {size}")
    return out


def lazyload_db(rdx: bytes, rdb: bytes) -> dict:
    """Every object of a lazy-load database: name -> unserialized value."""
    index = unserialize(gzip.decompress(rdx) if rdx[:2] == b"\x1f\x8b" else _entry(rdx))
    return {
        name: unserialize(_entry(rdb[offset : offset + length]))
        for name, (offset, length) in index["variables"].items()
    }
