"""Hand-built plans over the fake job (tests/orchestrator/fake_job.py) for the orchestrator tests."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import psutil

from orchestrator.runspec import Block, Plan, RunSpec

FAKE_JOB = str(Path(__file__).with_name("fake_job.py"))


def fake_run(run_id: str, *args: str, arm: str = "a", block: int = 0, order: int = 0, **kw) -> RunSpec:
    """A RunSpec whose command is the fake job (trainer-like: takes --seed/--run-id/--log-dir)."""
    return RunSpec(
        run_id=run_id,
        sweep="t",
        arm=arm,
        replicate=order,
        seed=1000 + order,
        command=("python", FAKE_JOB, *args),
        is_trainer=kw.pop("is_trainer", True),
        block=block,
        order_index=order,
        **kw,
    )


def ab_plan(n_blocks: int, *args: str, gpus: int = 0, name: str = "t", **kw) -> Plan:
    """An A/B plan: block i runs a<i> then b<i> (alternate order), each run the fake job with `args`."""
    blocks = []
    for i in range(n_blocks):
        runs = tuple(
            fake_run(f"{arm}{i}", *args, arm=arm, block=i, order=j, gpus=gpus, **kw)
            for j, arm in enumerate("ab")
        )
        blocks.append(Block(block_id=i, runs=runs, gpus=gpus))
    return Plan(
        name=name,
        kind="ab",
        blocks=tuple(blocks),
        baseline_arm="a",
        arms=("a", "b"),
        target_val_loss=None,
        knob_types={},
    )


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    """Pids still alive (and not zombies) after waiting up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def read_pids(pid_dir: Path) -> list[int]:
    return [int(p.name) for p in pid_dir.iterdir()] if pid_dir.exists() else []


def wait_for(pred, timeout: float = 20.0, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(every)
    return False


@contextlib.contextmanager
def fake_gpus_allowed():
    """Ray refuses `num_gpus=8` while CUDA_VISIBLE_DEVICES is '' (tests/conftest.py): lift it for Ray's start.

    Workers get CUDA_VISIBLE_DEVICES from Ray (the fake ids it assigned); nothing touches CUDA here.
    """
    saved = os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved


CLI_SPEC = """\
name: clitest
kind: ab
runs_per_arm: 2
order: alternate
resources: {{gpus_per_run: 0}}
target_val_loss: null
estimate_min: 0.5
arms:
  base: {{command: [python, {job}, --steps, "{steps}"]}}
  cand: {{command: [python, {job}, --steps, "{steps}", --loss, "3.2"]}}
"""


def write_spec(tmp_path, steps=2):
    """A small A/B spec of fake jobs (2 + 2 runs, no GPU) for `ablate run` on the command line."""
    path = tmp_path / "clitest.yaml"
    path.write_text(CLI_SPEC.format(job=FAKE_JOB, steps=steps))
    return path
