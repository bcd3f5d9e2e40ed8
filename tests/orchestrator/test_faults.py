"""Sweeps on a 2-node Ray cluster (fake 8-GPU nodes on this machine): placement, retries, faults.

Default tier: blocks stay on one node in planned order; a killed training process is retried.
`ci` tier: driver SIGKILL and restart, Ctrl-C, a node removed mid-run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from analysis import store
from orchestrator.driver import SweepDriver, SweepOptions
from orchestrator.executor import BlockContext, RayExecutor
from tests.orchestrator.helpers import ab_plan, fake_gpus_allowed, read_pids, wait_for, wait_gone

SCRIPT = str(Path(__file__).with_name("sweep_script.py"))
FAST_HEALTH = {
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 4,
    "health_check_initial_delay_ms": 0,
}


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    ray_constants.ENABLE_RAY_CLUSTER = False  # every node on 127.0.0.1
    with fake_gpus_allowed():
        c = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 2,
                "num_gpus": 8,
                "node_ip_address": "127.0.0.1",
                "_system_config": FAST_HEALTH,
            },
        )
        c.add_node(num_cpus=2, num_gpus=8, node_ip_address="127.0.0.1")
        c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture
def executor(cluster):
    ex = RayExecutor()
    yield ex
    ex.shutdown()


def ctx(tmp_path) -> BlockContext:
    return BlockContext(scratch_root=str(tmp_path / "scratch"), use_compile_cache=False, grace_s=1.0)


def test_each_block_runs_on_one_node_in_planned_order(cluster, executor, tmp_path):
    results = tmp_path / "res"
    plan = ab_plan(2, "--steps", "5", "--sleep", "0.2", gpus=8)
    state = SweepDriver(plan, results, executor, ctx=ctx(tmp_path), options=SweepOptions(poll_s=0.2)).run()
    assert state.done == {"ok": 4}
    runs = store.read_runs(results)
    for _, b in runs.groupby("block"):
        assert b.node_id.nunique() == 1  # the whole block on one node
        by_start = b.sort_values("started_at")
        assert list(by_start.order_index) == [0, 1] and list(by_start.arm) == ["a", "b"]
        assert by_start.ended_at.iloc[0] <= by_start.started_at.iloc[1]  # back to back, not overlapping
    assert runs.node_id.nunique() == 2  # 8 GPUs per block: the two blocks had to use both nodes
    assert set(runs.gpus) == {8}


def test_killed_training_process_is_retried_and_the_sweep_completes(cluster, executor, tmp_path):
    results, pid_dir = tmp_path / "res", tmp_path / "pids"
    plan = ab_plan(1, "--steps", "10", "--sleep", "0.2", "--pid-dir", str(pid_dir), gpus=8, retries=1)

    def kill_first_job():
        if wait_for(lambda: read_pids(pid_dir), timeout=60):
            os.kill(read_pids(pid_dir)[0], signal.SIGKILL)

    killer = threading.Thread(target=kill_first_job)
    killer.start()
    state = SweepDriver(plan, results, executor, ctx=ctx(tmp_path), options=SweepOptions(poll_s=0.2)).run()
    killer.join()
    assert state.done == {"ok": 2}
    runs = store.read_runs(results).set_index("run_id")
    assert (runs.loc["a0", "status"], runs.loc["a0", "attempt"]) == ("ok", 2)
    attempt = store.read_attempts(results) if hasattr(store, "read_attempts") else None
    assert (results / "attempts" / "a0.1.parquet").exists()
    if attempt is not None:
        assert int(attempt.set_index("run_id").loc["a0", "exit_code"]) == -signal.SIGKILL


def start_driver(cluster, results, scratch, n_blocks, *job_args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    cmd = [sys.executable, SCRIPT, str(results), cluster.address, str(n_blocks), str(scratch), *job_args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


@pytest.mark.ci
def test_driver_sigkilled_then_restarted_runs_only_missing(cluster, tmp_path):
    results, pid_dir = tmp_path / "res", tmp_path / "pids"
    args = ("--steps", "8", "--sleep", "0.25", "--child", "--pid-dir", str(pid_dir))
    proc = start_driver(cluster, results, tmp_path / "s", 3, *args)
    assert wait_for(lambda: len(store.finished_run_ids(results)) >= 2, timeout=120)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert wait_gone(read_pids(pid_dir), timeout=15) == []  # no job outlived its driver
    done = len(store.finished_run_ids(results))
    proc = start_driver(cluster, results, tmp_path / "s", 3, *args)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    assert f"{6 - done} run(s) to run, {done} already done of 6 planned" in out
    assert len(store.finished_run_ids(results)) == 6


@pytest.mark.ci
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_cancels_keeps_finished_and_leaves_no_process(cluster, tmp_path, signum, code):
    results, pid_dir = tmp_path / "res", tmp_path / "pids"
    proc = start_driver(
        cluster,
        results,
        tmp_path / "s",
        2,
        "--steps",
        "6",
        "--sleep",
        "0.3",
        "--hang",
        "--child",
        "--pid-dir",
        str(pid_dir),
    )
    assert wait_for(lambda: len(read_pids(pid_dir)) >= 4, timeout=120)  # both blocks' first jobs run
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == code, out
    assert "cancelling" in out and "SIGTERM received" not in out  # Ray's stack dump: not its path
    assert json.loads((results / "status.json").read_text())["state"] == "cancelled"
    assert wait_gone(read_pids(pid_dir), timeout=15) == []
    assert store.finished_run_ids(results) == set()  # nothing finished, nothing half-written
    assert not list((results / "runs").glob(".*")) if (results / "runs").exists() else True


@pytest.mark.ci
def test_node_removed_mid_run_gets_its_block_rerun_elsewhere(cluster, executor, tmp_path):
    with fake_gpus_allowed():
        node = cluster.add_node(num_cpus=2, num_gpus=8, node_ip_address="127.0.0.1")
        cluster.wait_for_nodes()
    results = tmp_path / "res"
    plan = ab_plan(3, "--steps", "10", "--sleep", "0.3", gpus=8)
    driver = SweepDriver(plan, results, executor, ctx=ctx(tmp_path), options=SweepOptions(poll_s=0.2))
    t = threading.Thread(target=driver.run)
    t.start()
    on_node = lambda: [r for r in list(driver.state.running.values()) if r.node_id == node.node_id]  # noqa: E731
    assert wait_for(on_node, timeout=60)
    victim = on_node()[0].run_id
    cluster.remove_node(node)
    t.join(timeout=240)
    assert not t.is_alive()
    runs = store.read_runs(results)
    assert len(runs) == 6 and set(runs.status) == {"ok"}
    row = runs.set_index("run_id").loc[victim]
    assert row["node_id"] != node.node_id  # the run lost with the node finished on a surviving node
    assert row["attempt"] == 2  # the lost attempt counts
