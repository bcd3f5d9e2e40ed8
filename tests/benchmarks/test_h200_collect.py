"""benchmarks/h200_collect.sh --cache: the node's compile cache comes back in parts that, joined and
unpacked into a shared folder, seed a cold node (the next GPU session starts seeded, not cold)."""

from __future__ import annotations

import lzma
import os
import subprocess
from pathlib import Path

from orchestrator import nodecache

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "h200_collect.sh"


def _collect(tmp_path: Path, *args: str) -> tuple[Path, str]:
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "HOME": str(tmp_path / "home"), "OUT": str(out)}
    done = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "chain"), *args], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def test_the_node_cache_comes_back_in_parts_that_seed_a_cold_node(tmp_path):
    node = tmp_path / "home" / ".cache" / "ablate" / "compile" / "vm"
    for sub, name, data in (
        ("inductor", "fx/ab.pkl", b"graph" * 1000),
        ("triton", "k/k.cubin", os.urandom(4096)),
    ):
        (node / sub / name).parent.mkdir(parents=True)
        (node / sub / name).write_bytes(data)
    (tmp_path / "chain").mkdir()
    out, said = _collect(tmp_path, "--cache")
    parts = sorted(out.glob("compile-cache.tar.xz.part*"))
    assert [p.name for p in parts] == ["compile-cache.tar.xz.part00"] and "packed to" in said
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / nodecache.SHARED_TAR_NAME).write_bytes(lzma.decompress(b"".join(p.read_bytes() for p in parts)))
    cold = tmp_path / "fresh-node"
    assert nodecache.prepare(cold, shared_dir=shared) == "seeded"
    assert (cold / "inductor" / "fx" / "ab.pkl").read_bytes() == b"graph" * 1000
    assert (cold / "triton" / "k" / "k.cubin").read_bytes() == (
        node / "triton" / "k" / "k.cubin"
    ).read_bytes()


def test_without_cache_flag_or_cache_nothing_of_it_is_copied(tmp_path):
    (tmp_path / "chain").mkdir()
    out, _ = _collect(tmp_path)
    assert not list(out.glob("compile-cache*"))
    (tmp_path / "home").mkdir()
    out2 = tmp_path / "out"
    for f in out2.iterdir():
        f.unlink()
    out2.rmdir()
    out, said = _collect(tmp_path, "--cache")
    assert "no node compile cache under ~/.cache/ablate/compile" in said and not list(
        out.glob("compile-cache*")
    )
