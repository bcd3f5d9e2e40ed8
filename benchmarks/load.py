"""Load: planning, status and report at 10,000 runs (goal: each under 10 s on a 2-core machine).

    python benchmarks/load.py [--runs 10000] [--keep DIR]

1. plan: a grid spec of N points (one trainer arm, a grid over `steps`), `make_plan` + `describe_plan`;
2. a results folder of N runs written through its owner, `ResultsDir` (rows like the driver's, 2 arms),
   which keeps the folder's read index as it writes;
3. `ablate status DIR` and `ablate report DIR`, each timed as a user runs them (a fresh process).
Exits 1 if any of the three misses the goal. Also timed, not a goal: `ablate status` after the index
was deleted, which rebuilds it from the N run files.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

GOAL_S = 10.0


def time_plan(n: int, folder: Path) -> float:
    from orchestrator.plan import describe_plan, make_plan
    from orchestrator.spec import load_spec

    spec_path = folder / "load.yaml"
    spec_path.write_text(
        "name: load\ntrainer: {preset: tiny}\nresources: {gpus_per_run: 0}\n"
        f"arms:\n  baseline: {{}}\n  sweep: {{grid: {{steps: {list(range(1, n))}}}}}\n"
    )
    t0 = time.perf_counter()
    plan = make_plan(load_spec(spec_path))
    text = describe_plan(plan)
    elapsed = time.perf_counter() - t0
    assert len(plan.runs) == n and text.count("\n") > n
    return elapsed


def write_results(n: int, root: Path, rng: np.random.Generator) -> float:
    from analysis.resultsdir import ResultsDir, SweepInfo

    folder = ResultsDir(root)
    t0 = time.perf_counter()
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i in range(n):
        arm = "baseline" if i % 2 == 0 else "candidate"
        ms = 160_000 + 500 * rng.standard_normal() - (1400 if arm == "candidate" else 0)
        row = {
            "sweep": "load", "run_id": f"{i:016x}", "arm": arm, "params": "{}", "replicate": i // 2,
            "seed": i, "block": i // 2, "order_index": i % 2, "node_id": f"node{i % 8}", "hostname": "h",
            "gpus": 8, "attempt": 1, "status": "ok", "final_val_loss": 3.278 + 0.001 * rng.standard_normal(),
            "train_time_ms": ms, "step_avg_ms": ms / 1705, "steps": 1705, "wall_s": ms / 1000 + 30,
            "startup_s": 30.0, "started_at": start + timedelta(minutes=4 * i),
            "ended_at": start + timedelta(minutes=4 * i + 3), "exit_code": 0, "command": "[]",
        }  # fmt: skip
        folder.write_run(row, {}, fsync=False)  # bulk fixture: no need to flush each file
    folder.write_sweep(SweepInfo("load", "ab", 3.28, "baseline", ("baseline", "candidate"), planned_runs=n))
    return time.perf_counter() - t0


def time_cli(*args: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"load: `ablate {' '.join(args)}` failed: {proc.stderr.strip().splitlines()[-1:]}")
    return elapsed


def time_rebuild(root: Path) -> float:
    """`ablate status` with the read index gone: every run file is read once, and the index saved."""
    from analysis.resultsdir import ResultsDir

    ResultsDir(root).drop_machine_state()
    return time_cli("status", str(root))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--keep", type=Path, help="write the results folder here and keep it")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp) / "results"
        plan_s = time_plan(args.runs, Path(tmp))
        print(f"plan of {args.runs} runs (make_plan + describe_plan): {plan_s:.2f} s", flush=True)
        write_s = write_results(args.runs, root, np.random.default_rng(0))
        print(f"wrote {args.runs} run files: {write_s:.1f} s (setup, not a goal)", flush=True)
        status_first = time_cli("status", str(root))
        status_again = time_cli("status", str(root))
        print(f"ablate status: {status_first:.2f} s first, {status_again:.2f} s again", flush=True)
        report_s = time_cli("report", str(root))
        print(f"ablate report: {report_s:.2f} s", flush=True)
        rebuild_s = time_rebuild(root)
        print(f"ablate status without the index (rebuilt from the run files): {rebuild_s:.2f} s (not a goal)")
    worst = max(plan_s, status_first, report_s)
    print(f"goal: each under {GOAL_S:.0f} s -> {'met' if worst < GOAL_S else 'MISSED'} (worst {worst:.2f} s)")
    return 0 if worst < GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
