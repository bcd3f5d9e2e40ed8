"""The executor interface: the in-process backend stepped through, the worker side, and the Ray backend."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orchestrator.executor import (
    BlockContext,
    InProcessExecutor,
    RayExecutor,
    fits,
    held,
    is_loopback_address,
    run_block,
    split_address,
    start_local_ray,
)
from orchestrator.launch import NodeInfo
from orchestrator.runspec import Block
from tests.orchestrator.helpers import ab_plan, fake_gpus_allowed, fake_run, read_pids, wait_gone


def canned_runner(block, ctx, node, gpu_ids, get_seed=None):
    """A worker that runs nothing: announces the block, then reports each run ok."""
    yield {"type": "block_start", "node_id": node.node_id, "hostname": node.hostname, "gpu_ids": gpu_ids}
    for r in block.runs:
        yield {"type": "run_start", "run_id": r.run_id, "attempt": 1, "node_id": node.node_id}
        yield {"type": "run", "row": {"run_id": r.run_id, "status": "ok"}, "steps": [], "log": ""}


def drain(ex, limit=1000):
    out = []
    for _ in range(limit):
        evs = ex.wait(0.1)
        if not evs:
            return out
        out.extend(evs)
    raise AssertionError("executor never went idle")


def test_fits_counts_blocks_per_node():
    b8, b0 = Block(0, (), gpus=8, cpus=1), Block(1, (), gpus=0, cpus=2)
    assert fits({"GPU": 8, "CPU": 16}, b8) == 1
    assert fits({"GPU": 16, "CPU": 1}, b8) == 1
    assert fits({"GPU": 16, "CPU": 2}, b8) == 2
    assert fits({"GPU": 4, "CPU": 16}, b8) == 0
    assert fits({"CPU": 5}, b0) == 2


def test_an_exclusive_block_holds_its_whole_node_on_cpu_too():
    cpu, gpu = Block(0, (), gpus=0, cpus=1, exclusive_node=True), Block(1, (), gpus=2, exclusive_node=True)
    assert fits({"CPU": 16}, cpu) == 1 and fits({"CPU": 0.5}, cpu) == 0
    assert fits({"GPU": 8, "CPU": 16}, gpu) == 1
    assert held({"CPU": 16}, cpu) == (0, 16.0) and held({"GPU": 8, "CPU": 16}, gpu) == (8, 1.0)
    assert held({"CPU": 16}, Block(2, (), gpus=0, cpus=1)) == (0, 1)  # not exclusive: its own share
    # two exclusive CPU blocks on one 2-CPU node: the second starts once the first has ended
    ex = InProcessExecutor({"n1": {"GPU": 0, "CPU": 2}}, runner=canned_runner)
    plan = ab_plan(2)
    for b in plan.blocks:
        ex.submit(replace(b, exclusive_node=True), BlockContext())
    assert ex.slots(replace(plan.blocks[0], exclusive_node=True)) == 1
    order = [(j.block.block_id, e["type"]) for j, e in drain(ex)]
    assert order.index((1, "block_start")) > order.index((0, "block_end"))
    # not exclusive: side by side, one CPU each
    ex = InProcessExecutor({"n1": {"GPU": 0, "CPU": 2}}, runner=canned_runner)
    for b in plan.blocks:
        ex.submit(b, BlockContext())
    order = [(j.block.block_id, e["type"]) for j, e in drain(ex)]
    assert order.index((1, "block_start")) < order.index((0, "block_end"))


def test_in_process_blocks_wait_for_free_gpus_and_run_in_order():
    ex = InProcessExecutor({"n1": {"GPU": 8, "CPU": 4}}, runner=canned_runner)
    plan = ab_plan(2, gpus=8)
    jobs = [ex.submit(b, BlockContext()) for b in plan.blocks]
    assert ex.slots(plan.blocks[0]) == 1
    events = drain(ex)
    order = [(j.block.block_id, e["type"]) for j, e in events]
    # block 1 could not start before block 0 released the node's 8 GPUs
    assert order.index((1, "block_start")) > order.index((0, "block_end"))
    starts = [e["gpu_ids"] for _, e in events if e["type"] == "block_start"]
    assert starts == [[str(i) for i in range(8)]] * 2
    runs = [e["row"]["run_id"] for j, e in events if e["type"] == "run"]
    assert runs == ["a0", "b0", "a1", "b1"]
    assert all(j in jobs for j, _ in events)


def test_in_process_two_nodes_run_blocks_side_by_side_and_a_dead_node_loses_its_block():
    ex = InProcessExecutor({"n1": {"GPU": 8, "CPU": 4}, "n2": {"GPU": 8, "CPU": 4}}, runner=canned_runner)
    plan = ab_plan(3, gpus=8)
    for b in plan.blocks:
        ex.submit(b, BlockContext())
    first = [ex.wait(0.1)[0] for _ in range(2)]
    assert {e["node_id"] for _, e in first} == {"n1", "n2"}
    ex.kill_node("n2")
    events = drain(ex)
    lost = [j.block.block_id for j, e in events if e["type"] == "block_lost"]
    assert len(lost) == 1
    nodes = {e["node_id"] for _, e in events if e["type"] == "block_start"}
    assert nodes == {"n1"}  # block 2 went to the surviving node
    assert ex.nodes() == {"n1": {"GPU": 8, "CPU": 4}}


def test_cancel_pending_and_running(tmp_path):
    ex = InProcessExecutor({"n1": {"GPU": 8, "CPU": 4}}, runner=canned_runner)
    j0, j1 = (ex.submit(b, BlockContext()) for b in ab_plan(2, gpus=8).blocks)
    ex.wait(0.1)
    ex.cancel(j1)
    ex.cancel(j0)
    assert [(j.job_id, e["type"]) for j, e in drain(ex)] == [(1, "block_cancelled"), (0, "block_cancelled")]


def test_run_block_retries_then_seeds_a_cold_node(tmp_path):
    marker = tmp_path / "failed-once"
    run1 = fake_run("r1", "--write-cache", "--fail-once", str(marker), retries=1)
    run2 = fake_run("r2", "--write-cache", order=1)
    ctx = BlockContext(
        scratch_root=str(tmp_path / "s"), cache_root=str(tmp_path / "c"), cache_key="node", want_seed=True
    )
    events = list(run_block(Block(0, (run1, run2), gpus=0), ctx, NodeInfo("n1", "h"), []))
    kinds = [e["type"] if isinstance(e, dict) else "bytes" for e in events]
    assert kinds[0] == "block_start"
    assert [k for k in kinds if k in ("attempt", "run", "cache_next", "bytes")] == [
        "attempt",
        "run",
        "cache_next",
        "bytes",
        "run",
    ]
    attempt, first, second = (e for e in events if isinstance(e, dict) and e["type"] in ("attempt", "run"))
    assert (attempt["row"]["status"], attempt["row"]["attempt"], attempt["row"]["compile_cache"]) == (
        "failed",
        1,
        "cold",
    )
    # the failed attempt had compiled already: its retry finds the cache warm
    assert (first["row"]["status"], first["row"]["attempt"], first["row"]["compile_cache"]) == (
        "ok",
        2,
        "warm",
    )
    assert second["row"]["compile_cache"] == "warm" and "cache: hit" in second["log"]
    seed = next(e for e in events if isinstance(e, bytes))
    # another node with no cache starts from the seed
    ctx2 = BlockContext(
        scratch_root=str(tmp_path / "s"), cache_root=str(tmp_path / "c"), cache_key="node", seed=seed
    )
    events2 = list(
        run_block(Block(1, (fake_run("r3", "--write-cache"),), gpus=0), ctx2, NodeInfo("n2", "h"), [])
    )
    row = next(e for e in events2 if e["type"] == "run")["row"]
    assert row["compile_cache"] == "seeded" and row["node_id"] == "n2"
    # the start event says it too, so a run cut short still tells how its node's cache began
    starts = [e["compile_cache"] for e in events if isinstance(e, dict) and e["type"] == "run_start"]
    assert starts == ["cold", "warm", "warm"]
    assert next(e for e in events2 if e["type"] == "run_start")["compile_cache"] == "seeded"
    assert "cache: hit" in next(e for e in events2 if e["type"] == "run")["log"]


def test_a_run_that_compiles_nothing_is_not_called_cold(tmp_path):
    """An uncompiled run (CPU, compile off) leaves the node's cache empty: its start-up is no compile."""
    ctx = BlockContext(scratch_root=str(tmp_path / "s"), cache_root=str(tmp_path / "c"), cache_key="node")
    events = list(run_block(Block(0, (fake_run("r1"),), gpus=0), ctx, NodeInfo("n1", "h"), []))
    assert next(e for e in events if e.get("type") == "run")["row"]["compile_cache"] == "unused"


def test_one_parser_of_host_port_and_one_loopback_set():
    """`ablate run --address`'s check and the executor's join read an address the same way: an IPv6
    host in brackets was `[` to the executor (split on the first colon), so [::1] was no loopback."""
    assert split_address("10.0.0.5:6379") == ("10.0.0.5", 6379)
    assert split_address("[::1]:6379") == ("::1", 6379)
    for bad in ("auto", "10.0.0.5", "10.0.0.5:", ":6379", "h:0", "h:65536", "h:63x"):
        assert split_address(bad) is None, bad
    assert [is_loopback_address(a) for a in ("127.0.0.1:6379", "localhost:1", "[::1]:6379")] == [True] * 3
    assert [is_loopback_address(a) for a in (None, "auto", "10.0.0.5:6379", "127.0.0.1")] == [False] * 4


# ------------------------------------------------------------------------------------------ Ray


@pytest.fixture(scope="module")
def local_ray():
    import ray

    with fake_gpus_allowed():
        start_local_ray(num_cpus=2, num_gpus=8)
    ex = RayExecutor(owns_ray=True)
    yield ex
    ex.shutdown()
    assert not ray.is_initialized()


def test_run_block_retries_without_a_compile_cache(tmp_path):
    """Found by benchmarks/reliability.py: with --no-compile-cache a retry looked at the cache of None
    (TypeError), so a killed job lost its whole block instead of being retried in it."""
    marker = tmp_path / "failed-once"
    run = fake_run("r1", "--fail-once", str(marker), retries=1)
    ctx = BlockContext(scratch_root=str(tmp_path / "s"), use_compile_cache=False)
    events = list(run_block(Block(0, (run,), gpus=0), ctx, NodeInfo("n1", "h"), []))
    ends = [(e["type"], e["row"]["status"], e["row"]["compile_cache"]) for e in events if "row" in e]
    assert ends == [("attempt", "failed", "none"), ("run", "ok", "none")]


def test_local_ray_binds_to_loopback(local_ray):
    import ray

    assert [n["NodeManagerAddress"] for n in ray.nodes()] == ["127.0.0.1"]
    assert local_ray.slots(Block(0, (), gpus=2, cpus=1)) == 2  # 4 by GPUs, 2 by CPUs


def test_ray_block_gets_its_gpus_and_runs_in_order(local_ray, tmp_path):
    runs = tuple(fake_run(f"g{i}", arm="ab"[i], order=i, gpus=2) for i in range(2))
    ctx = BlockContext(scratch_root=str(tmp_path), use_compile_cache=False)
    job = local_ray.submit(Block(0, runs, gpus=2), ctx)
    events = drain_until_end(local_ray)
    assert [e["type"] for _, e in events if e["type"] in ("run", "block_end")] == ["run", "run", "block_end"]
    start = next(e for _, e in events if e["type"] == "block_start")
    assert len(start["gpu_ids"]) == 2 and job.block.block_id == 0
    rows = [e["row"] for _, e in events if e["type"] == "run"]
    assert [r["run_id"] for r in rows] == ["g0", "g1"]
    assert all(r["status"] == "ok" and r["gpus"] == 2 and r["node_id"] == start["node_id"] for r in rows)
    assert all(f"gpus: {','.join(start['gpu_ids'])}" in e["log"] for _, e in events if e["type"] == "run")


def test_ray_cancel_kills_the_job_group(local_ray, tmp_path):
    pid_dir = tmp_path / "pids"
    run = fake_run("h", "--hang", "--child", "--pid-dir", str(pid_dir))
    job = local_ray.submit(Block(0, (run,), gpus=1), BlockContext(scratch_root=str(tmp_path), grace_s=1.0))
    seen = []
    while not any(e["type"] == "step" for _, e in seen):
        seen += local_ray.wait(5.0)
    assert len(read_pids(pid_dir)) == 2
    local_ray.cancel(job)
    events = drain_until_end(local_ray)
    assert events[-1][1]["type"] == "block_cancelled"
    assert wait_gone(read_pids(pid_dir), timeout=10) == []


def drain_until_end(ex, timeout=60.0):
    import time

    out, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        out += ex.wait(1.0)
        if out and out[-1][1]["type"].startswith("block_") and out[-1][1]["type"] != "block_start":
            return out
    raise AssertionError(f"block did not end: {[e['type'] for _, e in out]}")
