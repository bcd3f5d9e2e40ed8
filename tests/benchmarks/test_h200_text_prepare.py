"""benchmarks/h200_text_prepare.sh: the first call of a real-text GPU session unpacks the carried shards,
checks them against the manifest, and puts a carried compile cache where the h200-text profile seeds from."""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import subprocess
import tarfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "h200_text_prepare.sh"


def _corpus(tmp_path: Path, corrupt: bool = False) -> Path:
    src = tmp_path / "src" / "english"
    src.mkdir(parents=True)
    shards = []
    for name, data in (("fineweb_val_000000.bin", b"v" * 64), ("fineweb_train_000000.bin", b"t" * 128)):
        (src / name).write_bytes(data)
        shards.append({"file": name, "tokens": len(data) // 2, "sha256": hashlib.sha256(data).hexdigest()})
    (src / "manifest.json").write_text(json.dumps({"shards": shards}))
    if corrupt:
        (src / "fineweb_train_000000.bin").write_bytes(b"x" * 128)
    out = tmp_path / "english.tar.xz"
    with tarfile.open(out, "w:xz") as tar:
        tar.add(src, arcname="english")
    return out


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TEXT": str(tmp_path / "text"), "SHARED": str(tmp_path / "shared")}
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, cwd=tmp_path)


def test_shards_are_unpacked_checked_and_the_cache_put_where_the_profile_seeds_from(tmp_path):
    cache = tmp_path / "cache.tar.xz"
    cache.write_bytes(lzma.compress(b"a tar of inductor/ and triton/"))
    done = _run(tmp_path, str(_corpus(tmp_path)), str(cache))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 shards, 96 tokens, sha256 as the manifest says" in done.stdout
    assert (tmp_path / "text" / "fineweb_train_000000.bin").read_bytes() == b"t" * 128
    assert (
        tmp_path / "shared" / "ablate-compile-cache.tar"
    ).read_bytes() == b"a tar of inductor/ and triton/"


def test_a_corrupt_shard_stops_it_and_a_missing_cache_is_said(tmp_path):
    done = _run(tmp_path, str(_corpus(tmp_path, corrupt=True)), str(tmp_path / "none.tar.xz"))
    assert done.returncode == 1 and "fineweb_train_000000.bin: sha256 differs" in done.stderr
    ok = tmp_path / "again"
    ok.mkdir()
    done = _run(ok, str(_corpus(ok)), str(ok / "none.tar.xz"))
    assert done.returncode == 0 and "none.tar.xz carried: the first run compiles cold" in done.stdout
    bare = tmp_path / "bare"  # nothing carried, nothing unpacked before
    bare.mkdir()
    done = _run(bare, str(bare / "nothing.tar.xz"))
    assert done.returncode == 1 and "no corpus in" in done.stdout and "carry them" in done.stdout


def test_cache_and_shards_carried_in_two_calls(tmp_path):
    """The two may not fit one call: the cache alone first (the shards are still to come: said, exit 0),
    then the shards alone; the second call also checks, and a third finds the corpus in place."""
    cache = tmp_path / "cache.tar.xz"
    cache.write_bytes(lzma.compress(b"cache"))
    done = _run(tmp_path, str(tmp_path / "none.tar.xz"), str(cache))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "carry the shards in the next call" in done.stdout
    assert (tmp_path / "shared" / "ablate-compile-cache.tar").read_bytes() == b"cache"
    cache.unlink()
    done = _run(tmp_path, str(_corpus(tmp_path)), str(cache))
    assert done.returncode == 0 and "2 shards, 96 tokens, sha256 as the manifest says" in done.stdout
    assert "the one an earlier call put in" in done.stdout and "compiles cold" not in done.stdout
    done = _run(tmp_path, str(tmp_path / "none.tar.xz"), str(cache))
    assert done.returncode == 0 and "checking the corpus an earlier call unpacked" in done.stdout
    (tmp_path / "text" / "fineweb_val_000000.bin").write_bytes(b"w" * 64)
    done = _run(tmp_path, str(tmp_path / "none.tar.xz"), str(cache))
    assert done.returncode == 1 and "fineweb_val_000000.bin: sha256 differs" in done.stderr
