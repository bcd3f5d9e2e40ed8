"""One run as a subprocess: command, env, status, rows, timeout, kill of the whole group (no Ray)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator import nodecache
from orchestrator.launch import NodeInfo, error_tail, full_command, resolve_command, run_attempt
from orchestrator.preflight import PreflightError, gpu_preflight
from tests.orchestrator.helpers import fake_run, read_pids, wait_for, wait_gone

NODE = NodeInfo(node_id="n1", hostname="h1")


def drive(gen):
    """Run a run_attempt generator to the end: (events, AttemptResult)."""
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return events, stop.value


def test_resolve_command_maps_python_and_torchrun_to_this_interpreter():
    assert resolve_command(["python", "x.py"]) == [sys.executable, "x.py"]
    assert resolve_command(["python3", "-m", "trainer"]) == [sys.executable, "-m", "trainer"]
    assert resolve_command(["torchrun", "--nproc_per_node=8", "t.py"])[:3] == [
        sys.executable,
        "-m",
        "torch.distributed.run",
    ]
    assert resolve_command(["/bin/echo", "hi"]) == ["/bin/echo", "hi"]
    with pytest.raises(ValueError, match="empty command"):
        resolve_command([])


def test_trainer_runs_get_seed_run_id_and_log_dir(tmp_path):
    run = fake_run("r1")
    cmd = full_command(run, tmp_path)
    assert cmd[-6:] == ["--seed", "1000", "--run-id", "r1", "--log-dir", str(tmp_path)]
    plain = fake_run("r2", is_trainer=False)
    assert "--run-id" not in full_command(plain, tmp_path)


def test_ok_run_builds_row_steps_and_progress(tmp_path):
    run = fake_run("ok1", "--steps", "3", "--loss", "3.2", env={"EXTRA": "1"})
    events, res = drive(run_attempt(run, attempt=1, scratch_dir=tmp_path, node=NODE, gpu_ids=["3", "5"]))
    row = res.row
    assert row["status"] == "ok" and row["exit_code"] == 0 and row["error"] is None
    assert row["final_val_loss"] == pytest.approx(3.2)
    assert (row["node_id"], row["hostname"], row["gpus"], row["attempt"]) == ("n1", "h1", 2, 1)
    assert row["steps"] == 3 and row["peak_mem_mib"] == 10
    assert row["wall_s"] > 0 and row["startup_s"] is not None
    # where the start-up went, from the end event of the metrics file
    assert (row["compile_s"], row["warmup_s"], row["val_s"]) == (1.25, 1.5, 0.25)
    assert json.loads(row["command"])[0] == sys.executable
    assert "gpus: 3,5" in res.log_text  # CUDA_VISIBLE_DEVICES = the GPUs assigned
    val_events = [e for e in events if e["val_loss"] is not None]
    assert [e["step"] for e in val_events] == [0, 3]
    # train loss comes from the metrics jsonl, val loss from the log
    by_step = {s["step"]: s for s in res.steps}
    assert by_step[1]["train_loss"] == pytest.approx(3.2 + 0.2 + 0.05)
    assert by_step[3]["val_loss"] == pytest.approx(3.2)


@pytest.mark.parametrize(
    ("args", "status", "exit_code"),
    [(("--diverge",), "diverged", 3), (("--exit", "7"), "failed", 7)],
)
def test_status_from_exit_code(tmp_path, args, status, exit_code):
    _, res = drive(run_attempt(fake_run("x", *args), attempt=2, scratch_dir=tmp_path, node=NODE))
    assert res.status == status
    assert res.row["exit_code"] == exit_code
    assert res.row["attempt"] == 2
    assert f"exit code {exit_code}" in res.row["error"]


def test_missing_executable_is_a_failed_run(tmp_path):
    run = fake_run("m", is_trainer=False)
    run = type(run)(**{**run.__dict__, "command": ("/no/such/binary",)})
    _, res = drive(run_attempt(run, attempt=1, scratch_dir=tmp_path, node=NODE))
    assert res.status == "failed" and "cannot start" in res.log_text


def test_the_error_column_says_only_what_the_status_does_not():
    """The parser's verdict once (it was the first line's end and the second line again), and no
    `failed:` before a run's reason: the status column says failed already."""
    from analysis.logs import parse_log_text

    steps = "step:1/10 train_time:5ms step_avg:5ms\n"
    for status, code, limit, first in [
        ("failed", 7, None, "exit code 7; log: truncated (stopped at step 1 of 10)"),
        ("timeout", None, 4.0, "timed out after 4 s; log: truncated (stopped at step 1 of 10)"),
    ]:
        error = error_tail(steps, status, code, parse_log_text(steps), limit)
        assert error.splitlines() == [first, steps.strip()] and error.count("log: ") == 1
    never = "ablate: cannot start '/no/such/binary': [Errno 2] No such file or directory\n"
    error = error_tail(never, "failed", None, parse_log_text(never))
    assert error.splitlines()[0] == never.strip()
    assert error.splitlines()[1].startswith("log: garbled") and error.count("log: ") == 1
    crash = "step:1/10 train_time:5ms step_avg:5ms\nValueError: bad shape\n"
    assert error_tail(crash, "failed", 1, parse_log_text(crash)).splitlines()[:2] == [
        "exit code 1: ValueError: bad shape",
        "log: truncated (stopped at step 1 of 10)",
    ]


def test_timeout_kills_the_whole_group(tmp_path):
    pid_dir = tmp_path / "pids"
    run = fake_run("slow", "--hang", "--child", "--pid-dir", str(pid_dir), timeout_s=1.0)
    _, res = drive(run_attempt(run, attempt=1, scratch_dir=tmp_path, node=NODE, grace_s=1.0))
    assert res.status == "timeout" and res.row["exit_code"] is None
    pids = read_pids(pid_dir)
    assert len(pids) == 2
    assert wait_gone(pids, timeout=5) == []


def test_closing_the_generator_kills_the_group(tmp_path):
    pid_dir = tmp_path / "pids"
    gen = run_attempt(
        fake_run("c", "--hang", "--child", "--pid-dir", str(pid_dir)),
        attempt=1,
        scratch_dir=tmp_path,
        node=NODE,
        grace_s=1.0,
    )
    next(gen)  # step 0 printed: the job (and its grandchild) is running
    assert wait_for(lambda: len(read_pids(pid_dir)) == 2, timeout=10)
    gen.close()
    assert wait_gone(read_pids(pid_dir), timeout=5) == []


def test_job_dies_when_its_parent_is_sigkilled(tmp_path):
    """No orphan: the worker that launched the job is SIGKILLed; the job and its grandchild follow."""
    pid_dir = tmp_path / "pids"
    script = textwrap.dedent(f"""
        from pathlib import Path
        from orchestrator.launch import NodeInfo, run_attempt
        from tests.orchestrator.helpers import fake_run
        run = fake_run("k", "--hang", "--child", "--pid-dir", {str(pid_dir)!r})
        for _ in run_attempt(run, attempt=1, scratch_dir=Path({str(tmp_path)!r}), node=NodeInfo("n")):
            pass
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    parent = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        assert wait_for(lambda: len(read_pids(pid_dir)) == 2, timeout=20)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    assert wait_gone(read_pids(pid_dir), timeout=5) == []


def test_job_group_dies_when_its_worker_kills_its_own_children_and_exits(tmp_path):
    """Found by benchmarks/reliability.py (a node removed mid-run): a Ray worker whose raylet dies exits
    after SIGKILLing its *direct* children (Ray's KillChildProcs), the watchdog among them, so the job's
    grandchild (torchrun's ranks, in a real run) outlived it. The watchdog must not be a direct child."""
    pid_dir = tmp_path / "pids"
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        import psutil
        from orchestrator.launch import NodeInfo, run_attempt
        from tests.orchestrator.helpers import fake_run, read_pids, wait_for
        run = fake_run("w", "--hang", "--child", "--pid-dir", {str(pid_dir)!r})
        gen = run_attempt(run, attempt=1, scratch_dir=Path({str(tmp_path)!r}), node=NodeInfo("n"))
        next(gen)
        assert wait_for(lambda: len(read_pids(Path({str(pid_dir)!r}))) == 2, timeout=20)
        for child in psutil.Process().children():  # what Ray's worker does on its way out
            child.send_signal(signal.SIGKILL)
        os._exit(1)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    worker = subprocess.run([sys.executable, "-c", script], env=env, timeout=60)
    assert worker.returncode == 1
    assert len(read_pids(pid_dir)) == 2
    assert wait_gone(read_pids(pid_dir), timeout=5) == []


def test_a_cancel_landing_while_the_job_starts_still_kills_its_group(tmp_path, monkeypatch):
    """Found by benchmarks/reliability.py (storage part, ~1 run in 4): Ray's cancel (a KeyboardInterrupt)
    landed between starting the job and the try/finally that kills it, and the job outlived its attempt."""
    from orchestrator import launch

    started = []
    real_start = launch.start_process
    monkeypatch.setattr(
        launch, "start_process", lambda *a, **kw: started.append(real_start(*a, **kw)) or started[-1]
    )

    def cancelled(watchdog, pgid):
        raise KeyboardInterrupt

    monkeypatch.setattr(launch, "watch", cancelled)
    gen = run_attempt(
        fake_run("c", "--hang", "--child"), attempt=1, scratch_dir=tmp_path, node=NODE, grace_s=1.0
    )
    with pytest.raises(KeyboardInterrupt):
        next(gen)

    def group_gone() -> bool:
        try:
            os.killpg(started[0].pid, 0)
        except ProcessLookupError:
            return True
        return False

    assert wait_for(group_gone, timeout=10)


# -------------------------------------------------------------------------------- compile cache


def test_node_cache_cold_warm_seeded_and_shared(tmp_path):
    a, b, c = (nodecache.node_cache_dir(tmp_path, k) for k in ("node/a", "b", "c"))
    assert a.name == "node_a"
    assert nodecache.prepare(a) == "cold"
    (a / "triton" / "k").mkdir(parents=True)
    (a / "triton" / "k" / "kernel.cubin").write_bytes(b"x" * 10)
    assert nodecache.prepare(a) == "warm"
    data = nodecache.pack(a)
    assert nodecache.prepare(b, seed=data) == "seeded"
    assert (b / "triton" / "k" / "kernel.cubin").read_bytes() == b"x" * 10
    assert nodecache.prepare(b, seed=data) == "warm"
    shared = tmp_path / "shared"
    assert nodecache.publish_to_shared(data, shared) is True
    assert nodecache.publish_to_shared(data, shared) is False  # the first one stays
    assert nodecache.prepare(c, shared_dir=shared) == "seeded"
    assert nodecache.cache_env(c)["TRITON_CACHE_DIR"] == str(c / "triton")


# ------------------------------------------------------------------------------------ preflight

FAKE_SMI = """#!/bin/sh
case "$1" in
  --query-gpu=*) printf '0, GPU-aaa, NVIDIA H200, 570.1, 1980, 1980, 40\\n'
                 printf '1, GPU-bbb, NVIDIA H200, 570.1, 1980, 1980, 41\\n' ;;
  --query-compute-apps=*) printf '%s' "$FAKE_APPS" ;;
  *) echo '| NVIDIA-SMI 570.1   Driver Version: 570.1   CUDA Version: 12.8 |' ;;
esac
"""


@pytest.fixture
def fake_smi(tmp_path, monkeypatch):
    exe = tmp_path / "bin" / "nvidia-smi"
    exe.parent.mkdir()
    exe.write_text(FAKE_SMI)
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{exe.parent}{os.pathsep}{os.environ['PATH']}")
    return monkeypatch


def test_preflight_records_gpu_driver_cuda_and_clocks(fake_smi):
    fake_smi.setenv("FAKE_APPS", "GPU-bbb, 4242, python\n")  # on GPU 1, not ours
    rep = gpu_preflight(["0"], wait_s=0)
    assert (rep.gpu_name, rep.driver_version, rep.cuda_version) == ("NVIDIA H200", "570.1", "12.8")
    assert [g["index"] for g in rep.gpus] == ["0"] and rep.gpus[0]["clocks.sm"] == "1980"


def test_preflight_refuses_a_foreign_process_on_our_gpu(fake_smi):
    fake_smi.setenv("FAKE_APPS", "GPU-bbb, 4242, python\n")
    with pytest.raises(PreflightError, match="pid 4242 \\(python\\) on GPU-bbb"):
        gpu_preflight(["0", "GPU-bbb"], wait_s=0)


def test_preflight_is_skipped_without_nvidia_smi(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu_preflight(["0"], wait_s=0) is None


def test_leftover_grandchild_is_killed_when_the_job_exits(tmp_path):
    pid_dir = tmp_path / "pids"
    run = fake_run("g", "--child", "--pid-dir", str(pid_dir))  # exits at once, its grandchild sleeps
    _, res = drive(run_attempt(run, attempt=1, scratch_dir=tmp_path, node=NODE))
    assert res.status == "ok"
    assert wait_gone(read_pids(pid_dir), timeout=5) == []
