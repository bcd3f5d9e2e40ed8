"""Small hand-checkable fixtures for the analysis tests: log texts and results folders."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from analysis import store

SEP = "=" * 100

# The seed's record validation (PR 120): candidate = its record, baseline = PR 118. Times in ms.
SEED_CANDIDATE_LOSS = [3.2806, 3.2764, 3.2787, 3.2778, 3.2776, 3.2754, 3.2779, 3.2775, 3.2782, 3.2779]
SEED_BASELINE_LOSS = [3.2784, 3.2778, 3.2766, 3.2771, 3.2764, 3.2768, 3.276, 3.279, 3.2747, 3.2772]
SEED_CANDIDATE_MS = [163078, 163129, 163029, 163141, 162534, 163100, 163046, 163144, 162926, 163224]
SEED_BASELINE_MS = [164443, 164403, 164348, 164370, 164817, 164833, 164301, 164459, 164244, 164306]

# A stand-in for upstream's code header: it holds the very f-strings that print step lines, and a
# line that *looks* like a finished run, so a parser that reads the header as data gets it wrong.
FAKE_CODE = """import torch
val_loss_every = 125
print0(f"step:{step}/{train_steps} val_loss:{val_loss:.4f} train_time:{t_ms:.0f}ms step_avg:{x:.2f}ms")
print0(f"step:{step+1}/{train_steps} train_time:{approx:.0f}ms step_avg:{approx/(step + 1):.2f}ms")
# example: step:10/10 val_loss:9.9999 train_time:1ms step_avg:0.10ms
step:10/10 val_loss:9.9999 train_time:1ms step_avg:0.10ms
print0(f"peak memory allocated: {a} MiB reserved: {b} MiB")
"""


def step_lines(
    total: int, final_loss: float, final_ms: float, val_every: int = 0, start_loss=10.8
) -> list[str]:
    """Upstream-style step lines of a run of `total` steps ending at `final_loss` after `final_ms`."""
    lines = [f"step:0/{total} val_loss:{start_loss:.4f} train_time:0ms step_avg:0.02ms"]
    for s in range(1, total + 1):
        ms = final_ms * s / total
        if s == total or (val_every and s % val_every == 0):
            frac = s / total
            loss = start_loss + (final_loss - start_loss) * frac
            lines.append(
                f"step:{s}/{total} val_loss:{loss:.4f} train_time:{ms:.0f}ms step_avg:{ms / s:.2f}ms"
            )
        else:
            lines.append(f"step:{s}/{total} train_time:{ms:.0f}ms step_avg:{ms / s:.2f}ms")
    return lines


def upstream_log(
    total: int, final_loss: float, final_ms: float, *, val_every: int = 0, code=FAKE_CODE
) -> str:
    """An upstream-format log file: code, separator, versions, separator, step lines, memory line."""
    header = [code.rstrip("\n"), SEP, "Running Python 3.12.7", "Running PyTorch 2.9.0", "| nvidia-smi |", SEP]
    body = step_lines(total, final_loss, final_ms, val_every)
    return "\n".join([*header, *body, "peak memory allocated: 34489 MiB reserved: 48516 MiB", ""])


def write_seed_logs(folder: Path) -> Path:
    """The seed's 10 + 10 runs as an upstream record folder: candidate logs + `comparison_*` logs."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (loss, ms) in enumerate(zip(SEED_CANDIDATE_LOSS, SEED_CANDIDATE_MS, strict=True)):
        (folder / f"run{i:02d}.txt").write_text(upstream_log(20, loss, ms, val_every=5))
    for i, (loss, ms) in enumerate(zip(SEED_BASELINE_LOSS, SEED_BASELINE_MS, strict=True)):
        (folder / f"comparison_{i:02d}.txt").write_text(upstream_log(20, loss, ms, val_every=5))
    return folder


KNOB_TYPES = {"mlp_off": "json", "steps": "int"}
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def run_row(run_id, arm, *, loss, time_ms, block=0, order=0, node="n0", params=None, status="ok", when=0):
    """A complete run row as the orchestrator writes it (wall_s = train time + 30 s startup)."""
    params = params or {}
    return {
        "sweep": "fixture", "run_id": run_id, "arm": arm, "params": json.dumps(params, sort_keys=True),
        "replicate": 0, "seed": 1000 + when, "block": block, "order_index": order, "node_id": node,
        "hostname": f"host-{node}", "gpu_name": "NVIDIA H200", "gpus": 8, "driver_version": "570.1",
        "cuda_version": "12.8", "attempt": 0, "status": status, "final_val_loss": loss,
        "train_time_ms": time_ms, "step_avg_ms": time_ms / 100 if time_ms else None, "steps": 100,
        "peak_mem_mib": 1000.0, "wall_s": time_ms / 1000 + 30 + (20 if when < 2 else 0) if time_ms else None,
        "started_at": T0 + timedelta(minutes=5 * when), "ended_at": T0 + timedelta(minutes=5 * when + 4),
        "exit_code": 0, "command": json.dumps(["python", "-m", "trainer"]), "torch_version": "2.9.0",
    }  # fmt: skip


def make_ab_results(root: Path, n_blocks: int = 4, target: float | None = 3.28) -> Path:
    """An A/B results folder: baseline and candidate alternate within each block on two nodes."""
    rng = np.random.default_rng(7)
    k = 0
    for blk in range(n_blocks):
        node = f"n{blk % 2}"
        for j, arm in enumerate(("baseline", "candidate") if blk % 2 == 0 else ("candidate", "baseline")):
            loss = 3.277 + 0.001 * rng.standard_normal() + (0.0005 if arm == "candidate" else 0)
            ms = 164400 + 200 * rng.standard_normal() - (1400 if arm == "candidate" else 0) + 300 * (blk % 2)
            row = run_row(
                f"r{k:03d}",
                arm,
                loss=round(loss, 4),
                time_ms=round(ms),
                block=blk,
                order=j,
                node=node,
                when=k,
            )
            store.write_run(root, row, {})
            steps = [{"step": s, "val_loss": 10 - s * 0.067 + (loss - 3.3), "train_time_ms": ms * s / 100}
                     for s in (0, 25, 50, 75, 100)]  # fmt: skip
            store.write_steps(root, row["run_id"], steps)
            k += 1
    sweep = {"name": "fixture-ab", "kind": "ab", "target_val_loss": target, "baseline_arm": "baseline",
             "arms": ["baseline", "candidate"], "profile": None, "spec_file": "sweeps/x.yaml",
             "planned_runs": 2 * n_blocks}  # fmt: skip
    (root / "sweep.json").write_text(json.dumps(sweep))
    return root


def make_grid_results(root: Path) -> Path:
    """A drop-one-MLP grid on 12 layers: baseline ×3, drop_one ×1 per layer, drop_0_and_one ×2 per layer."""
    rng = np.random.default_rng(11)
    k = 0

    def add(arm, mlp_off, loss):
        nonlocal k
        ms = round(160000 + 500 * rng.standard_normal())
        row = run_row(f"g{k:03d}", arm, loss=round(loss, 4), time_ms=ms, params={"mlp_off": mlp_off}, when=k)
        store.write_run(root, row, KNOB_TYPES)
        k += 1

    for _ in range(3):
        add("baseline", [], 3.278 + 0.0005 * rng.standard_normal())
    for layer in range(1, 12):
        add("drop_one", [layer], 3.285 + 0.002 * layer + 0.001 * rng.standard_normal())
        for _ in range(2):
            add("drop_0_and_one", [0, layer], 3.29 + 0.003 * layer + 0.001 * rng.standard_normal())
    sweep = {
        "name": "fixture-grid", "kind": "grid", "target_val_loss": 3.28, "baseline_arm": "baseline",
        "arms": ["baseline", "drop_one", "drop_0_and_one"], "profile": None, "spec_file": "sweeps/g.yaml",
        "planned_runs": k,
    }  # fmt: skip
    (root / "sweep.json").write_text(json.dumps(sweep))
    return root
