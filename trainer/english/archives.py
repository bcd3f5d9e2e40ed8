"""Files out of registry archives, read in memory: Debian ``.deb`` (an ar archive holding
``data.tar.*``) and npm ``.tgz`` (a gzipped tar whose paths start with ``package/``).

Member paths are given without their archive prefix (``usr/share/...`` for a .deb, ``data/x.json``
for an npm package), so source definitions read like the installed layout.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

from trainer.shards import DataError

AR_MAGIC = b"!<arch>\n"
AR_HEADER = 60  # name 16, mtime 12, uid 6, gid 6, mode 8, size 10, magic 2


def _ar_members(blob: bytes, path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each member of an ar archive (the container of a .deb)."""
    if not blob.startswith(AR_MAGIC):
        raise DataError(f"{path}: not a Debian package (no ar header)")
    pos = len(AR_MAGIC)
    while pos + AR_HEADER <= len(blob):
        header = blob[pos : pos + AR_HEADER]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise DataError(f"{path}: damaged ar member header at byte {pos}") from None
        start = pos + AR_HEADER
        if start + size > len(blob):
            raise DataError(f"{path}: truncated (member {name} wants {size} bytes)")
        yield name, blob[start : start + size]
        pos = start + size + (size & 1)  # members are padded to an even length


def _tar_files(tar: tarfile.TarFile, strip: str, want: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    for member in tar:
        name = member.name.removeprefix("./").removeprefix(strip)
        if member.isfile() and want(name):
            yield name, tar.extractfile(member).read()


def deb_files(path: Path, want: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of the regular files of a .deb whose installed path satisfies ``want``."""
    data = [blob for name, blob in _ar_members(path.read_bytes(), path) if name.startswith("data.tar")]
    if not data:
        raise DataError(f"{path}: no data.tar member; is it a Debian binary package?")
    try:
        with tarfile.open(fileobj=io.BytesIO(data[0]), mode="r:*") as tar:
            yield from _tar_files(tar, "", want)
    except tarfile.TarError as e:
        raise DataError(f"{path}: cannot read its data.tar ({e})") from None


def npm_files(path: Path, want: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of the files of an npm tarball, paths relative to its ``package/`` folder."""
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            yield from _tar_files(tar, "package/", want)
    except (tarfile.TarError, OSError) as e:
        raise DataError(f"{path}: cannot read the npm tarball ({e})") from None


def archive_files(path: Path, want: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """Dispatches on the file name: ``.deb`` or ``.tgz``."""
    if path.name.endswith(".deb"):
        return deb_files(path, want)
    if path.name.endswith(".tgz"):
        return npm_files(path, want)
    raise DataError(f"{path}: unknown archive kind; expected a .deb or an npm .tgz")


def one_file(path: Path, member: str) -> bytes:
    """The bytes of one member (``member`` exactly); a DataError if the archive lacks it."""
    for _, blob in archive_files(path, lambda name: name == member):
        return blob
    raise DataError(f"{path}: has no {member}")


def text_of(name: str, blob: bytes) -> str:
    """A member's text: gunzipped if its name ends in .gz or .dz (dictzip is gzip), UTF-8 with
    undecodable bytes replaced (old files mix Latin-1 in)."""
    if name.endswith((".gz", ".dz")):
        blob = gzip.decompress(blob)
    return blob.decode("utf-8", errors="replace")
