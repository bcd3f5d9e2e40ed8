"""Ingest benchmark: 1,000 upstream-format logs of 2,000 lines each -> results folder -> report.

Generates the logs in a temporary folder (half baseline, half candidate, with a code header), then
times each phase: parsing + writing runs and steps, reading back, and `write_report`. Goal on the
2-core development machine: under 30 s in all.

    PYTHONPATH=$PWD python3 benchmarks/ingest_logs.py [--logs 1000] [--lines 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SEP = "=" * 100
HEADER_CODE = (
    'print0(f"step:{step}/{train_steps} val_loss:{val_loss:.4f} train_time:{t:.0f}ms step_avg:{a:.2f}ms")\n'
)


def make_log(steps: int, final_loss: float, final_ms: float, val_every: int) -> str:
    """One log of `steps` + 2 step lines (plus a header of a few lines)."""
    out = [HEADER_CODE, SEP, "Running PyTorch 2.9.0", SEP]
    out.append(f"step:0/{steps} val_loss:10.8250 train_time:0ms step_avg:0.02ms")
    for s in range(1, steps + 1):
        ms = final_ms * s / steps
        if s % val_every == 0 or s == steps:
            loss = final_loss + (10.8 - final_loss) * (1 - s / steps) ** 2
            out.append(f"step:{s}/{steps} val_loss:{loss:.4f} train_time:{ms:.0f}ms step_avg:{ms / s:.2f}ms")
        else:
            out.append(f"step:{s}/{steps} train_time:{ms:.0f}ms step_avg:{ms / s:.2f}ms")
    out.append("peak memory allocated: 34489 MiB reserved: 48516 MiB")
    return "\n".join(out) + "\n"


def generate(folder: Path, n_logs: int, n_lines: int, rng: np.random.Generator) -> dict[str, list[Path]]:
    steps = n_lines - 6  # header (4) + step 0 + memory line
    arms: dict[str, list[Path]] = {"baseline": [], "candidate": []}
    for i in range(n_logs):
        arm = "baseline" if i % 2 == 0 else "candidate"
        loss = 3.277 + 0.0013 * rng.standard_normal() + (0.0008 if arm == "candidate" else 0.0)
        ms = 164450 + 200 * rng.standard_normal() - (1400 if arm == "candidate" else 0)
        path = folder / f"{arm}_{i:04d}.txt"
        path.write_text(make_log(steps, loss, ms, val_every=125))
        arms[arm].append(path)
    return arms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from analysis import store
    from analysis.ingest import ingest_logs
    from analysis.report import write_report

    with tempfile.TemporaryDirectory(prefix="ablate-ingest-") as tmp:
        logs, results = Path(tmp) / "logs", Path(tmp) / "results"
        logs.mkdir()
        t0 = time.perf_counter()
        arms = generate(logs, args.logs, args.lines, np.random.default_rng(args.seed))
        t1 = time.perf_counter()
        n = ingest_logs(results, arms, name="ingest-benchmark", target=3.28)
        t2 = time.perf_counter()
        runs = store.read_runs(results)
        t3 = time.perf_counter()
        paths = write_report(results)
        t4 = time.perf_counter()
        verdict = paths["md"].read_text().split("## Verdict")[1].split("```")[1].strip()
    total = t4 - t1
    print(f"generated {args.logs} logs x {args.lines} lines: {t1 - t0:.1f} s (not counted)")
    print(f"ingest (parse + write runs and steps): {t2 - t1:.1f} s for {n} runs")
    print(f"read runs back: {t3 - t2:.2f} s ({len(runs)} rows)")
    print(f"write report (md, html, figures): {t4 - t3:.1f} s")
    print(f"total: {total:.1f} s (goal < 30 s)")
    print(f"verdict: {verdict}")
    return 0 if total < 30 else 1


if __name__ == "__main__":
    sys.exit(main())
