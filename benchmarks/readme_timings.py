"""Re-measure the timings the README quotes for this CPU machine, each printed with machine and date.

    python3 benchmarks/readme_timings.py [--only demo,trainer,drop_one_mlp,record_ab] [--busy N] [--json FILE]

What it runs, as the README writes it (results into a temporary folder, never into results/):

- demo: `bash scripts/demo.sh` (setup, then `ablate run sweeps/demo.yaml`), the newcomer's first minute;
  its wall time, and from its rows the mean wall time of a run and of a training step;
- trainer: `python -m trainer --preset tiny` (the README's "CPU, synthetic data" line): wall time, step
  time, val loss first and last;
- drop_one_mlp, record_ab: `ablate run sweeps/<name>.yaml --profile cpu`, the cpu profiles the README
  says run here (record_ab's A/B blocks take the node one at a time, exclusive_node).

The machine is noisy (2 cores others share): next to each figure it prints the load average sampled
while that command ran (the command's own processes count in it: the demo alone reads ~2) and the
training step time, so a figure measured alone and one measured under load can be told apart.
`--busy N` starts N busy loops beside each command (N = 2 on 2 cores: a slow day, reproducibly).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ITEMS = ("demo", "trainer", "drop_one_mlp", "record_ab")


def machine() -> str:
    """'2-core AMD EPYC 7B13' (the CPU's model name and the cores this process may use)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{len(os.sched_getaffinity(0))}-core {model}"


class LoadSampler:
    """The 1-minute load average, sampled every few seconds while a command runs (its mean and max)."""

    def __init__(self, every_s: float = 5.0):
        self.every_s, self.samples = every_s, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.every_s):
                return

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    def text(self) -> str:
        s = self.samples
        return f"load avg {sum(s) / len(s):.1f} (max {max(s):.1f})" if s else "load avg ?"


BUSY = 0
"""Busy loops to run beside each command (--busy)."""


def timed(cmd: list[str], log: Path) -> tuple[float, int, str]:
    """(wall seconds, exit status, load text) of `cmd` run from the repository, output into `log`."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(BUSY)]
    try:
        with LoadSampler() as load, open(log, "w") as out:
            t0 = time.monotonic()
            rc = subprocess.call(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
            wall = time.monotonic() - t0
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    busy = f", {BUSY} busy loop(s) beside it" if BUSY else ""
    return wall, rc, load.text() + busy


def ablate() -> list[str]:
    exe = shutil.which("ablate")
    return [exe] if exe else [sys.executable, "-m", "orchestrator.cli"]


def run_rows(results: Path) -> dict:
    """Mean run wall time, training step time and start-up of a results folder's ok runs."""
    sys.path.insert(0, str(ROOT))
    from analysis.resultsdir import ResultsDir

    runs = ResultsDir(results).read_runs()
    ok = runs[runs["status"] == "ok"]
    if ok.empty:
        return {"runs": len(runs), "ok": 0}
    out = {
        "runs": len(runs),
        "ok": len(ok),
        "run_s": round(float(ok["wall_s"].mean()), 1),
        "step_ms": round(float(ok["step_avg_ms"].mean()), 1),
        "startup_s": round(float(ok["startup_s"].mean()), 1),
    }
    train = ok.groupby("arm")["train_time_ms"].mean()
    if {"baseline", "mlp0"} <= set(train.index):  # the demo's A/B: the seed's change against the baseline
        out["mlp0_time_ratio"] = round(float(train["mlp0"] / train["baseline"]), 3)
    return out


def measure_sweep(name: str, tmp: Path) -> dict:
    results = tmp / name
    if name == "demo":
        cmd = ["bash", "scripts/demo.sh", "--results", str(results), "--plain"]
        what = "bash scripts/demo.sh"
    else:
        cmd = [
            *ablate(),
            "run",
            f"sweeps/{name}.yaml",
            "--profile",
            "cpu",
            "--results",
            str(results),
            "--plain",
        ]
        what = f"ablate run sweeps/{name}.yaml --profile cpu"
    wall, rc, load = timed(cmd, tmp / f"{name}.log")
    out = {"what": what, "wall_s": round(wall, 1), "exit": rc, "load": load}
    return out | run_rows(results)


_STEP = re.compile(r"step:(\d+)/(\d+) val_loss:([\d.]+) train_time:(\d+)ms step_avg:([\d.]+)ms")


def measure_trainer(tmp: Path) -> dict:
    log = tmp / "trainer.log"
    wall, rc, load = timed([sys.executable, "-m", "trainer", "--preset", "tiny"], log)
    vals = _STEP.findall(log.read_text(errors="replace"))
    out = {"what": "python -m trainer --preset tiny", "wall_s": round(wall, 1), "exit": rc, "load": load}
    if vals:
        out |= {"steps": int(vals[-1][0]), "step_ms": float(vals[-1][4]), "val_loss_first": float(vals[0][2]),
                "val_loss_last": float(vals[-1][2])}  # fmt: skip
    return out


def line(name: str, m: dict) -> str:
    """One printed figure: what ran, how long, what its runs measured, under which load."""
    mins, secs = divmod(int(round(m["wall_s"])), 60)
    text = f"{name}: `{m['what']}` {mins} min {secs:02d} s (exit {m['exit']})"
    if "run_s" in m:
        text += f"; {m['ok']} of {m['runs']} runs ok, {m['run_s']} s a run (start-up {m['startup_s']} s), "
        text += f"{m['step_ms']} ms a step"
    if "mlp0_time_ratio" in m:
        text += f"; mlp0's train time {m['mlp0_time_ratio']} of the baseline's"
    if "val_loss_last" in m:
        text += f"; {m['steps']} steps, {m['step_ms']} ms a step, val loss {m['val_loss_first']} -> "
        text += f"{m['val_loss_last']}"
    return f"{text}; {m['load']}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(ITEMS), help=f"comma-separated subset of {','.join(ITEMS)}")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--busy", type=int, default=0, metavar="N", help="N busy loops beside each command")
    args = p.parse_args(argv)
    global BUSY
    BUSY = max(0, args.busy)
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = sorted(set(wanted) - set(ITEMS))
    if unknown:
        p.error(f"--only: unknown {', '.join(unknown)}; choose from {', '.join(ITEMS)}")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"machine: {machine()}; {when}", flush=True)
    figures = {"machine": machine(), "date": when}
    with tempfile.TemporaryDirectory(prefix="readme-timings-") as tmp:
        for name in wanted:
            m = measure_trainer(Path(tmp)) if name == "trainer" else measure_sweep(name, Path(tmp))
            figures[name] = m
            print(line(name, m), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0 if all(figures[n]["exit"] == 0 for n in wanted) else 1


if __name__ == "__main__":
    sys.exit(main())
