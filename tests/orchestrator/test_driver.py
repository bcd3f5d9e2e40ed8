"""The sweep loop against the in-process executor: storing, resume, retries, lost blocks, locks, status."""

from __future__ import annotations

import io
import json
import time
from dataclasses import replace

import pytest

from analysis import store
from orchestrator.cli import UserError
from orchestrator.commands import status_text
from orchestrator.driver import ResultsLock, SweepDriver, SweepOptions, pending_blocks
from orchestrator.executor import BlockContext, InProcessExecutor, run_block
from orchestrator.progress import PlainProgress
from orchestrator.runspec import Block, Plan
from tests.orchestrator.helpers import ab_plan, fake_run


def ctx_for(tmp_path, **kw) -> BlockContext:
    return BlockContext(
        scratch_root=str(tmp_path / "scratch"),
        cache_root=str(tmp_path / "cache"),
        cache_key="node",
        preflight_wait_s=0,
        grace_s=1.0,
        **kw,
    )


def sweep(plan, results, tmp_path, nodes=None, runner=run_block, **opts):
    ex = InProcessExecutor(nodes or {"n1": {"CPU": 2, "GPU": 0}}, runner=runner)
    out = io.StringIO()
    driver = SweepDriver(
        plan,
        results,
        ex,
        ctx=ctx_for(tmp_path),
        options=SweepOptions(poll_s=0.05, **opts),
        progress=PlainProgress(out=out),
    )
    return driver.run(), out.getvalue(), ex


def test_sweep_stores_runs_steps_logs_and_status(tmp_path):
    results = tmp_path / "res"
    plan = ab_plan(2, "--steps", "2")
    plan = replace(plan, knob_types={"mlp_off": "json"})
    state, out, _ = sweep(plan, results, tmp_path)
    assert state.done == {"ok": 4}
    runs = store.read_runs(results).sort_values(["block", "order_index"])
    assert list(runs.run_id) == ["a0", "b0", "a1", "b1"]
    assert set(runs.status) == {"ok"} and set(runs.compile_cache) <= {"cold", "warm", "unused"}
    assert {p.stem for p in (results / "logs").glob("*.txt")} == {"a0", "b0", "a1", "b1"}
    assert len(list((results / "steps").glob("*.parquet"))) == 4
    status = json.loads((results / "status.json").read_text())
    assert status["state"] == "finished" and status["done"] == {"ok": 4}
    assert status["planned_per_arm"] == {"a": 2, "b": 2}
    assert "4 run(s) to run, 0 already done of 4 planned" in out and "sweep done: 4 ok" in out


def test_resume_runs_only_missing_runs(tmp_path):
    results = tmp_path / "res"
    plan = ab_plan(3, "--steps", "1")
    first = Plan(**{**plan.__dict__, "blocks": plan.blocks[:1]})
    sweep(first, results, tmp_path)
    assert pending_blocks(plan, store.finished_run_ids(results))[0].block_id == 1
    state, out, _ = sweep(plan, results, tmp_path)
    assert (state.skipped, state.to_run, state.done["ok"]) == (2, 4, 4)
    assert "4 run(s) to run, 2 already done of 6 planned" in out
    state, out, _ = sweep(plan, results, tmp_path)
    assert (state.skipped, state.to_run, state.finished) == (6, 0, 0)


def test_failed_attempt_is_retried_and_recorded(tmp_path):
    results = tmp_path / "res"
    marker = tmp_path / "marker"
    run = fake_run("r", "--fail-once", str(marker), retries=1)
    bad = fake_run("bad", "--exit", "5", order=1, retries=1)
    plan = replace(ab_plan(1), blocks=(Block(0, (run, bad), gpus=0),))
    state, out, _ = sweep(plan, results, tmp_path)
    assert state.done == {"ok": 1, "failed": 1}
    runs = store.read_runs(results).set_index("run_id")
    assert (runs.loc["r", "status"], runs.loc["r", "attempt"]) == ("ok", 2)
    assert (runs.loc["bad", "status"], runs.loc["bad", "attempt"]) == ("failed", 2)
    attempts = sorted(p.name for p in (results / "attempts").glob("*.parquet"))
    assert attempts == ["bad.1.parquet", "bad.2.parquet", "r.1.parquet"]
    assert "crash: failing on purpose" in (results / "attempts" / "r.1.txt").read_text()
    assert "will retry" in out


def flaky_node_runner(block, ctx, node, gpu_ids, get_seed=None):
    """Canned worker; on node 'bad' it reports arm a's run, then the node dies in arm b's (an exception)."""
    yield {"type": "block_start", "node_id": node.node_id, "hostname": node.node_id, "gpu_ids": gpu_ids}
    for r in block.runs:
        attempt = ctx.attempt_offsets.get(r.run_id, 0) + 1
        yield {"type": "run_start", "run_id": r.run_id, "attempt": attempt, "node_id": node.node_id}
        if node.node_id == "bad" and r.arm == "b":
            raise ConnectionError("node bad died")
        row = {
            "run_id": r.run_id,
            "arm": r.arm,
            "status": "ok",
            "attempt": attempt,
            "node_id": node.node_id,
            "block": r.block,
            "order_index": r.order_index,
            "wall_s": 0.1,
        }
        yield {"type": "run", "row": row, "steps": [], "log": "x\n"}


def test_lost_block_reruns_its_unfinished_runs_elsewhere(tmp_path):
    results = tmp_path / "res"
    plan = ab_plan(1, gpus=8)
    nodes = {"bad": {"GPU": 8, "CPU": 2}, "good": {"GPU": 8, "CPU": 2}}
    ex = InProcessExecutor(nodes, runner=flaky_node_runner)
    driver = SweepDriver(plan, results, ex, options=SweepOptions(poll_s=0.01, block_retries=1))
    orig_submit = ex.submit
    submitted = []

    def submit(block, ctx):
        submitted.append((block, ctx))
        if len(submitted) == 2:  # the re-run: the dead node must not get it
            ex._nodes["bad"].alive = False
        return orig_submit(block, ctx)

    ex.submit = submit
    state = driver.run()
    assert state.done == {"ok": 2}
    runs = store.read_runs(results).set_index("run_id")
    assert runs.loc["a0", "node_id"] == "bad" and runs.loc["b0", "node_id"] == "good"
    assert runs.loc["b0", "attempt"] == 2  # the attempt lost with the node counts
    assert [r.run_id for r in submitted[1][0].runs] == ["b0"]


def test_block_lost_too_often_is_stored_as_failed(tmp_path):
    results = tmp_path / "res"
    ex = InProcessExecutor({"bad": {"GPU": 8, "CPU": 2}}, runner=flaky_node_runner)
    state = SweepDriver(
        ab_plan(1, gpus=8), results, ex, options=SweepOptions(poll_s=0.01, block_retries=1)
    ).run()
    assert state.done == {"ok": 1, "failed": 1}
    row = store.read_runs(results).set_index("run_id").loc["b0"]
    assert row["status"] == "failed" and "node bad died" in row["error"]


def test_a_full_disk_stops_the_sweep_with_one_line_and_a_rerun_resumes(tmp_path, monkeypatch):
    """benchmarks/reliability.py's storage part, in small: the disk fills up while a result is written."""
    import errno

    results, real = tmp_path / "res", store.pq.write_table
    plan = ab_plan(2, "--steps", "2")

    def disk_full_at_the_second_result(table, where, **kw):
        if ".tmp-b0." in where.name:
            where.write(b"PAR1" + bytes(100))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, where, **kw)

    monkeypatch.setattr(store.pq, "write_table", disk_full_at_the_second_result)
    with pytest.raises(UserError) as err:
        sweep(plan, results, tmp_path, max_parallel=1)
    assert "\n" not in str(err.value)
    assert f"cannot write to {results}: No space left on device; the sweep stopped" in str(err.value)
    assert store.finished_run_ids(results) == {"a0"}
    assert not list((results / "runs").glob(".*"))  # the partial file is gone
    assert json.loads((results / "status.json").read_text())["state"] == "cancelled"
    monkeypatch.setattr(store.pq, "write_table", real)
    state, out, _ = sweep(plan, results, tmp_path)
    assert "3 run(s) to run, 1 already done of 4 planned" in out and state.done == {"ok": 3}


def test_a_block_that_fits_nowhere_is_a_user_error(tmp_path):
    ex = InProcessExecutor({"n1": {"GPU": 4, "CPU": 2}})
    with pytest.raises(UserError, match="block 0 needs 8 GPU.* no node has that .*--profile cpu"):
        SweepDriver(ab_plan(1, gpus=8), tmp_path / "r", ex).run()


def test_until_decided_stops_adding_blocks(tmp_path):
    results = tmp_path / "res"
    calls = []

    def decide(d):
        calls.append(len(store.finished_run_ids(d)))
        return "b faster (p=0.01)" if len(calls) == 2 else None

    ex = InProcessExecutor({"n1": {"GPU": 0, "CPU": 1}}, runner=flaky_node_runner)
    driver = SweepDriver(
        ab_plan(5), results, ex, options=SweepOptions(poll_s=0.01, until_decided=True), decide=decide
    )
    state = driver.run()
    assert calls == [2, 4] and state.decided == "b faster (p=0.01)"
    assert len(store.finished_run_ids(results)) == 4


def test_max_blocks_runs_a_sweep_in_parts(tmp_path):
    results = tmp_path / "res"
    plan = ab_plan(3, "--steps", "1")
    state, out, _ = sweep(plan, results, tmp_path, max_blocks=1)
    assert (state.done["ok"], state.deferred) == (2, 4) and len(store.finished_run_ids(results)) == 2
    assert "--max-blocks 1 reached: 4 run(s) left for the next `ablate run`" in out
    assert "sweep done: 2 ok (0 were already done); 4 run(s) left" in out
    status = json.loads((results / "status.json").read_text())
    assert (status["state"], status["deferred"]) == ("partial", 4)
    assert "stopped starting blocks with 4 run(s) left (--max-blocks 1 reached)" in status_text(results)
    state, out, _ = sweep(plan, results, tmp_path, max_blocks=1)  # the next part: block 1 only
    assert (state.skipped, state.done["ok"], state.deferred) == (2, 2, 2)
    state, out, _ = sweep(plan, results, tmp_path)
    assert (state.done["ok"], state.deferred) == (2, 0) and len(store.finished_run_ids(results)) == 6
    assert json.loads((results / "status.json").read_text())["state"] == "finished"


def test_time_limit_starts_no_block_the_plans_estimate_says_would_not_fit(tmp_path):
    results = tmp_path / "res"
    plan = ab_plan(2, "--steps", "1", estimate_s=400.0)  # a block: ~800 s by the plan
    state, out, _ = sweep(plan, results, tmp_path, time_limit_s=600.0)
    assert (state.finished, state.deferred) == (0, 4)
    assert "--time-limit: the next block needs ~13m20s, 10m00s is left: 4 run(s) left" in out
    # room for one block by the plan; once it has ended, its runs' wall times (well under a second)
    # replace the plan's estimate, and the second block fits too
    one_slot = {"n1": {"CPU": 1, "GPU": 0}}
    state, _, _ = sweep(plan, results, tmp_path, nodes=one_slot, time_limit_s=1000.0)
    assert (state.done["ok"], state.deferred) == (4, 0)


def test_time_limit_judges_later_blocks_by_the_runs_that_ended(tmp_path):
    results = tmp_path / "res"
    plan = ab_plan(3, "--steps", "2", "--sleep", "0.2")  # command runs: no estimate, so block 0 starts
    one_slot = {"n1": {"CPU": 1, "GPU": 0}}  # blocks one after another
    state, out, _ = sweep(plan, results, tmp_path, nodes=one_slot, time_limit_s=0.5)
    assert state.done["ok"] == 2 and state.deferred == 4  # block 0 took longer than what was left
    assert "--time-limit: the next block needs ~" in out


def test_second_driver_on_the_same_folder_is_refused(tmp_path):
    with ResultsLock(tmp_path), pytest.raises(UserError, match=r"in use by another ablate run \(pid \d+ on "):
        ResultsLock(tmp_path).__enter__()
    with ResultsLock(tmp_path):  # released: a new driver may take it
        pass


def test_run_estimate_leaves_out_cold_compiles_once_warm_runs_ended():
    """--time-limit's cautious estimate of a coming run (the ETA is tests/orchestrator/test_eta.py's)."""
    from orchestrator.driver import SweepState

    state = SweepState(planned=8, skipped=0, to_run=8, planned_per_arm={"a": 4, "b": 4})
    assert state.run_estimate_s() is None
    # the first run compiled cold: all there is to go by
    state.record({"run_id": "r0", "status": "ok", "wall_s": 453.0, "compile_cache": "cold"})
    assert state.run_estimate_s() == 453.0
    for i, wall in enumerate((137.0, 78.0)):  # the next runs on the node will look like these
        state.record({"run_id": f"r{i + 1}", "status": "ok", "wall_s": wall, "compile_cache": "warm"})
    assert state.run_estimate_s() == pytest.approx(107.5)
    assert state.done["ok"] == 3


class QuietAfterStart(InProcessExecutor):
    """After each run's start, `quiet_s` of waits that bring nothing (as a cold compile on Ray does)."""

    def __init__(self, *a, quiet_s: float, **kw):
        super().__init__(*a, **kw)
        self.quiet_s, self.until = quiet_s, 0.0

    def wait(self, timeout):
        if time.monotonic() < self.until:
            time.sleep(timeout)
            return []
        events = super().wait(timeout)
        if any(e.get("type") == "run_start" for _, e in events):
            self.until = time.monotonic() + self.quiet_s
        return events


@pytest.mark.parametrize("quiet_s", [0.2, 0.0])
def test_a_quiet_run_gets_a_line_saying_it_is_still_starting(tmp_path, quiet_s):
    ex = QuietAfterStart({"n1": {"GPU": 0, "CPU": 1}}, runner=flaky_node_runner, quiet_s=0.7)
    out = io.StringIO()
    options = SweepOptions(poll_s=0.05, quiet_s=quiet_s)
    SweepDriver(ab_plan(1), tmp_path / "res", ex, options=options, progress=PlainProgress(out=out)).run()
    lines = out.getvalue().splitlines()
    quiet = [line for line in lines if " still " in line]
    if quiet_s == 0:
        assert quiet == []  # 0 = never
        return
    assert any(line.endswith("a0 (a) still starting after 0m00s") for line in quiet), lines
    # said again each quiet_s, not at every poll
    assert 2 <= sum("a0 (a) still starting" in line for line in quiet) <= 4
