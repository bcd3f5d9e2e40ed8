"""The modded-nanogpt shard format, the data error and the data root: what the loader
(``trainer.data``) and the corpus tools (``trainer.corpus``, ``trainer.english``) share.

A shard is a 256 x int32 header (magic 20240520, version 1, token count, then zeros) followed by
that many uint16 tokens. Documents are separated by a BOS token (GPT-2's 50256 on FineWeb).
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

MAGIC = 20240520
VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
MAX_TOKEN = 2**16 - 1  # tokens are stored as uint16


class DataError(Exception):
    """A data problem the user can fix (missing, malformed or too small shards): one line, exit 2."""


# ---------------------------------------------------------------------------------------------
# Shard format


def write_shard(path: str | Path, tokens: np.ndarray) -> Path:
    """Writes ``tokens`` (1-D ints in [0, 65535]) as a shard, atomically (temp name + rename)."""
    path = Path(path)
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise DataError(f"{path}: tokens must be 1-D, got shape {tokens.shape}")
    if tokens.size and (int(tokens.min()) < 0 or int(tokens.max()) > MAX_TOKEN):
        raise DataError(f"{path}: tokens must lie in [0, {MAX_TOKEN}] to fit uint16")
    header = np.zeros(HEADER_INTS, dtype=np.int32)
    header[:3] = (MAGIC, VERSION, tokens.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.astype("<u2", copy=False).tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read_header(path: str | Path) -> int:
    """Validates a shard's header and size; returns its token count."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            raw = f.read(HEADER_BYTES)
    except OSError as e:
        raise DataError(f"{path}: cannot read shard ({e.strerror})") from None
    if len(raw) < HEADER_BYTES:
        raise DataError(f"{path}: {len(raw)} bytes is shorter than the {HEADER_BYTES}-byte shard header")
    header = np.frombuffer(raw, dtype="<i4")
    if header[0] != MAGIC:
        raise DataError(f"{path}: magic number {header[0]}, expected {MAGIC} (a modded-nanogpt .bin shard)")
    if header[1] != VERSION:
        raise DataError(f"{path}: shard version {header[1]}, expected {VERSION}")
    n = int(header[2])
    if size != HEADER_BYTES + 2 * n:
        raise DataError(
            f"{path}: header says {n} tokens ({HEADER_BYTES + 2 * n} bytes), file has {size} bytes"
        )
    return n


def read_shard(path: str | Path) -> np.ndarray:
    """The shard's tokens as a read-only memory-mapped uint16 array (validated first)."""
    n = read_header(path)
    if n == 0:
        return np.zeros(0, dtype=np.uint16)
    return np.memmap(path, dtype="<u2", mode="r", offset=HEADER_BYTES, shape=(n,))


def file_sha256(path: str | Path) -> str:
    """The sha256 of a whole file, hex (a shard's checksum in a corpus manifest and a run's row)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def shard_identity(files: Sequence[str | Path]) -> str:
    """A short stable id of a set of shards: names, sizes and a hash of each header + first MiB."""
    h = hashlib.sha256()
    for f in sorted(Path(p) for p in files):
        h.update(f"{f.name}\0{f.stat().st_size}\0".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(HEADER_BYTES + 2**20))
    return h.hexdigest()[:16]


def match_shards(pattern: str) -> list[Path]:
    """The files matching a glob pattern, sorted; none is a DataError naming the pattern."""
    files = sorted(Path(p) for p in glob.glob(pattern))
    if not files:
        raise DataError(f"no shard matches {pattern!r}; make some with `python -m trainer.data synth`")
    return files


def default_data_root() -> Path:
    """``$ABLATE_DATA_DIR`` or ``~/.cache/ablate/data``."""
    env = os.environ.get("ABLATE_DATA_DIR")
    return Path(env) if env else Path.home() / ".cache" / "ablate" / "data"
