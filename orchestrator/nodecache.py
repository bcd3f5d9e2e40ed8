"""Per-node persistent compile caches (inductor + Triton), and seeding a cold node from a warm one.

A run of the speedrun model at h200-mini starts in 413 s with an empty cache on an H200 and in 36 s
warm (results/h200-ab/report.md, start-up table), so each node keeps its caches under
`<root>/<node key>/{inductor,triton}` and every run on the node points `TORCHINDUCTOR_CACHE_DIR` /
`TRITON_CACHE_DIR` there. The cache is self-contained and movable: a node that has none gets a copy
(a "seed": a packed cache, as opposed to a run's random seed), either as a tar that another node put
in Ray's object store (the driver hands its reference to later blocks) or from a shared folder the
spec names.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import re
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

DEFAULT_ROOT = Path("~/.cache/ablate/compile")
SHARED_TAR_NAME = "ablate-compile-cache.tar"
MAX_SEED_BYTES = 8 << 30
"""Caches larger than this are not packed for seeding (8 GiB; a speedrun cache is ~0.5 GB)."""


def node_cache_dir(root: str | Path | None, key: str) -> Path:
    """The cache folder of one node: `<root>/<key>` (root defaults to ~/.cache/ablate/compile)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key) or "node"
    return Path(root or DEFAULT_ROOT).expanduser() / safe


def cache_env(cache_dir: Path) -> dict[str, str]:
    """Environment that points inductor and Triton at the node's cache."""
    return {
        "TORCHINDUCTOR_CACHE_DIR": str(cache_dir / "inductor"),
        "TRITON_CACHE_DIR": str(cache_dir / "triton"),
    }


def cache_bytes(cache_dir: Path) -> int:
    """Total size of the files in the cache (0 when it does not exist)."""
    if not cache_dir.exists():
        return 0
    return sum(
        p.stat().st_size for p in cache_dir.rglob("*") if p.is_file() and not p.name.startswith(".lock")
    )


def is_warm(cache_dir: Path) -> bool:
    """True when the cache holds at least one compiled artefact."""
    return any(p.is_file() for sub in ("inductor", "triton") for p in (cache_dir / sub).rglob("*"))


@contextlib.contextmanager
def locked(cache_dir: Path) -> Iterator[None]:
    """Exclusive lock on a node's cache while it is seeded or packed (two blocks may share a node)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def pack(cache_dir: Path) -> bytes | None:
    """The cache's inductor and triton folders as an uncompressed tar (None if empty or too big)."""
    size = cache_bytes(cache_dir)
    if size == 0 or size > MAX_SEED_BYTES:
        return None
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for sub in ("inductor", "triton"):
            if (cache_dir / sub).exists():
                tar.add(cache_dir / sub, arcname=sub)
    return buf.getvalue()


def unpack(data: bytes, cache_dir: Path) -> None:
    """Extract a packed cache into `cache_dir` (only regular files and folders inside it)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(cache_dir, filter="data")


def seed_from_shared(shared_dir: str | Path, cache_dir: Path) -> bool:
    """Unpack `<shared_dir>/ablate-compile-cache.tar` into a cold cache; True if it did."""
    tar_path = Path(shared_dir).expanduser() / SHARED_TAR_NAME
    if not tar_path.is_file():
        return False
    unpack(tar_path.read_bytes(), cache_dir)
    return True


def publish_to_shared(data: bytes, shared_dir: str | Path) -> bool:
    """Write a packed cache to the shared folder unless one is there already (atomic rename)."""
    shared = Path(shared_dir).expanduser()
    target = shared / SHARED_TAR_NAME
    if target.exists():
        return False
    shared.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tar", dir=shared)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    return True


def prepare(cache_dir: Path, seed: bytes | None = None, shared_dir: str | Path | None = None) -> str:
    """Make the node's cache ready before a run; returns cold / warm / seeded.

    A warm cache is used as is; a cold one is seeded from `seed` (a tar from another node) or from
    the shared folder when either is there.
    """
    with locked(cache_dir):
        if is_warm(cache_dir):
            return "warm"
        if seed is not None:
            unpack(seed, cache_dir)
            return "seeded"
        if shared_dir is not None and seed_from_shared(shared_dir, cache_dir):
            return "seeded"
        return "cold"
