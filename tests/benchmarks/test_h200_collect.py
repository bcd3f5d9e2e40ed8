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


def _node_cache(tmp_path: Path, nbytes: int) -> None:
    node = tmp_path / "home" / ".cache" / "ablate" / "compile" / "vm"
    (node / "inductor").mkdir(parents=True)
    (node / "triton").mkdir(parents=True)
    (node / "triton" / "k.cubin").write_bytes(os.urandom(nbytes))  # random: xz cannot shrink it


def test_the_cache_takes_several_parts_when_out_has_room_for_them(tmp_path):
    _node_cache(tmp_path, 16 << 20)  # two parts of 15 MiB
    (tmp_path / "chain").mkdir()
    out, said = _collect(tmp_path, "--cache")
    parts = sorted(p.name for p in out.glob("compile-cache.tar.xz.part*"))
    assert parts == ["compile-cache.tar.xz.part00", "compile-cache.tar.xz.part01"], said
    assert "in 2 part(s)" in said


def test_a_cache_out_has_no_room_for_is_said_and_not_copied(tmp_path):
    """$OUT brings back 8 files: with 7 there already, a cache of two parts stays on the node."""
    _node_cache(tmp_path, 16 << 20)
    chain = tmp_path / "chain"
    chain.mkdir()
    for name in ("h200.json", "compile_gap.json", "h200_text.json", "h200_text_seeds.json"):
        (chain / name).write_text("{}")
    (chain / "results").mkdir()
    (tmp_path / "chain.log").write_text("[chain 13:45:33] done\n")
    out, said = _collect(tmp_path, "--cache")
    assert not list(out.glob("compile-cache*"))
    assert "(2 part(s) of 15 MiB)" in said and "in 1 file(s) beside the rest; not copied" in said


def test_wait_ends_when_the_chain_says_done_or_at_its_limit(tmp_path):
    import time

    (tmp_path / "chain").mkdir()
    (tmp_path / "chain.log").write_text("[chain 13:21:35] ablate run drop_one_mlp\n")
    began = time.monotonic()
    _, said = _collect(tmp_path, "--wait", "6")
    assert time.monotonic() - began >= 5 and "waited" in said  # not done: waited to the limit
    (tmp_path / "chain.log").write_text("[chain 13:45:33] ablate run exit 3\n[chain 13:45:33] done\n")
    for f in (tmp_path / "out").iterdir():
        f.unlink()
    (tmp_path / "out").rmdir()
    began = time.monotonic()
    _, said = _collect(tmp_path, "--wait", "300")
    assert time.monotonic() - began < 60 and "waited 0 s" in said


def test_an_unknown_argument_is_one_line(tmp_path):
    (tmp_path / "out").mkdir()
    env = {**os.environ, "HOME": str(tmp_path), "OUT": str(tmp_path / "out")}
    done = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path), "--cahce"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "--cahce" in done.stderr


def test_wait_takes_whole_seconds_only(tmp_path):
    """`--wait 9m` would never end the wait (the test of it fails each time) and collect nothing."""
    (tmp_path / "out").mkdir()
    env = {**os.environ, "HOME": str(tmp_path), "OUT": str(tmp_path / "out")}
    for value in ("9m", "540s", ""):
        done = subprocess.run(["bash", str(SCRIPT), str(tmp_path), "--wait", value], env=env,
                              capture_output=True, text=True, timeout=30)  # fmt: skip
        assert (
            done.returncode == 2
            and f"--wait takes whole seconds (e.g. --wait 540), got '{value}'" in done.stderr
        )


def test_cache_only_brings_the_cache_in_all_of_out(tmp_path):
    """A cache too big to sit beside the chain's files comes in a call of its own: nothing else is copied."""
    _node_cache(tmp_path, 16 << 20)
    chain = tmp_path / "chain"
    chain.mkdir()
    (chain / "h200_text.json").write_text("{}")
    (chain / "results").mkdir()
    out, said = _collect(tmp_path, "--cache-only")
    assert sorted(p.name for p in out.iterdir()) == [
        "compile-cache.tar.xz.part00",
        "compile-cache.tar.xz.part01",
    ]
    assert "in 2 part(s)" in said


def test_cache_if_left_packs_only_while_a_sweep_has_runs_left(tmp_path):
    """The last call of a session is written before its outcome: --cache-if-left decides on the machine
    from the results' status.json (a part that ends the sweep needs no cache for the next session)."""
    _node_cache(tmp_path, 1 << 10)
    results = tmp_path / "chain" / "results" / "h200-text-drop-one-mlp"
    results.mkdir(parents=True)
    (results / "status.json").write_text('{\n "sweep": "x",\n "state": "finished"\n}\n')
    out, said = _collect(tmp_path, "--cache-if-left")
    assert "no sweep under" in said and "has runs left" in said and not list(out.glob("compile-cache*"))
    assert (out / "results.tgz").is_file()  # the rest is collected as ever
    for f in out.iterdir():
        f.unlink()
    out.rmdir()
    (results / "status.json").write_text('{\n "sweep": "x",\n "state": "partial"\n}\n')
    out, said = _collect(tmp_path, "--cache-if-left")
    assert "packed to" in said and [p.name for p in out.glob("compile-cache*")] == [
        "compile-cache.tar.xz.part00"
    ]
