"""`ablate compare` against upstream's reviewer script, timed side by side on the same logs.

Upstream's record reviewers check a record with a ~100-line script that imports nothing heavier than
`re` (modded-nanogpt `records/track_1_short/2026-05-07_XSAGatedLayers/analyze_sweep.py`). This times,
in one run and interleaved (so the machine's noise falls on both alike):

- 960 logs (480 + 480): `ablate compare --baseline-logs master --candidate-logs pr` against
  `analyze_sweep.py --pr pr --master master`; goal: ablate within 3x upstream's time;
- 20 logs (10 + 10): `ablate compare` against a bare `python -c "import scipy.stats"`; goal: within
  1.5x; upstream's script is timed on them too, and ablate's time over each other command's printed.

The logs are copies of the seed's record logs (upstream's `2025-09-05_SkipMLPBlocks`: 10 candidate
logs of 1,705 steps and 10 `comparison_*` logs of 1,670 steps, ~139 KB each), each copy made another run
for `ablate compare`'s deduplication (which knows a run by its validation and last step lines, so a
comment line alone would be the same run): copy k adds k ms to the train time of the first validation
after step 0 (step 125), which neither tool's statistics read, so the work is not shrunk.
Upstream's files are read from where you fetched them (a git-ignored folder); nothing is downloaded.

    python3 benchmarks/compare_speed.py --upstream .upstream/modded-nanogpt-records/records/\
track_1_short/2026-05-07_XSAGatedLayers/analyze_sweep.py [--record DIR] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

SEED_RECORD = "2025-09-05_SkipMLPBlocks"
OURS, UPSTREAM, SCIPY = "ablate compare", "upstream analyze_sweep.py", "python -c 'import scipy.stats'"
CASES = ((48, UPSTREAM, 3.0), (1, SCIPY, 1.5))
"""(copies of each seed log, the reference, goal): ablate's time at most `goal` times the reference's;
upstream's script is timed in every case."""


def copy_logs(record: Path, out: Path, copies: int) -> int:
    """`copies` unique copies of each log of `record`: candidate's to out/pr, comparison_* to out/master."""
    n = 0
    for arm in ("pr", "master"):
        (out / arm).mkdir(parents=True)
    for log in sorted(record.glob("*.txt")):
        data = log.read_bytes()
        arm = "master" if log.name.startswith("comparison_") else "pr"
        for k in range(copies):
            note = f"# copy {k} of {log.name}, made by benchmarks/compare_speed.py\n".encode()
            (out / arm / f"{log.stem}-{k:03d}.txt").write_bytes(note + _another_run(data, k))
            n += 1
    return n


_FIRST_VAL = re.compile(rb"^(step:[1-9]\d*/\d+ val_loss:\S+ train_time:)(\d+)ms", re.M)


def _another_run(data: bytes, k: int) -> bytes:
    """The log with k ms added to the first validation after step 0's train time (not the last line),
    in the log's body: its code header may hold such a line too (an example in a comment)."""
    from analysis.logs import split_header

    _, body = split_header(data)
    head = data[: len(data) - len(body)]
    return head + _FIRST_VAL.sub(
        lambda m: m.group(1) + str(int(m.group(2)) + k).encode() + b"ms", body, count=1
    )


def ablate_command() -> list[str]:
    """The installed `ablate` console script, else the same entry point through python -m."""
    exe = shutil.which("ablate")
    return [exe] if exe else [sys.executable, "-m", "orchestrator.cli"]


def commands(upstream: Path, folder: Path, reference: str) -> dict[str, list[str]]:
    """ablate's and upstream's commands on the folder's two arms, and the reference when it is neither."""
    pr, master = str(folder / "pr"), str(folder / "master")
    cmds = {
        OURS: [*ablate_command(), "compare", "--baseline-logs", master, "--candidate-logs", pr],
        UPSTREAM: [sys.executable, str(upstream), "--pr", pr, "--master", master],
        SCIPY: [sys.executable, "-c", "import scipy.stats"],
    }
    return {name: cmd for name, cmd in cmds.items() if name in (OURS, UPSTREAM, reference)}


def run_once(cmd: list[str]) -> tuple[float, str]:
    """(wall seconds, stdout); a failing command stops the benchmark with its stderr."""
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(
            f"compare_speed: {' '.join(cmd[:3])} ... failed ({res.returncode}): {res.stderr.strip()}"
        )
    return elapsed, res.stdout


def time_all(cmds: dict[str, list[str]], repeats: int) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Each command `repeats` times, interleaved, after one untimed run each (warm page cache)."""
    outputs = {name: run_once(cmd)[1] for name, cmd in cmds.items()}
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(repeats):
        for name, cmd in cmds.items():
            times[name].append(run_once(cmd)[0])
    return times, outputs


def check_outputs(outputs: dict[str, str], label: str) -> None:
    """Both tools read the copies as the seed's runs: the seed's time improvement, no warning."""
    ours, theirs = outputs[OURS], outputs[UPSTREAM]
    if "Time improve: 1.4173 sec" not in ours or "warning:" in ours:
        raise SystemExit(f"compare_speed: ablate compare on {label} did not give the seed's figures:\n{ours}")
    if "delta_mean=+1.417s" not in theirs:
        raise SystemExit(
            f"compare_speed: analyze_sweep.py on {label} did not give the seed's delta:\n{theirs}"
        )


def report(label: str, times: dict[str, list[float]], reference: str, goal: float) -> bool:
    """Each command's median and min, then ablate's median over each other's (the goal on the reference)."""
    print(f"{label}:")
    for name, ts in times.items():
        print(f"  {name:34s} median {statistics.median(ts):6.2f} s   min {min(ts):6.2f} s")
    met = True
    for name in (n for n in times if n != OURS):
        ratio = statistics.median(times[OURS]) / statistics.median(times[name])
        verdict = ""
        if name == reference:
            met = ratio <= goal
            verdict = f" (goal <= {goal}x: {'met' if met else 'MISSED'})"
        print(f"  ablate / {name}: {ratio:.2f}x{verdict}")
    return met


def machine() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo, else platform's) and the number of cores."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, type=Path, help="upstream's analyze_sweep.py")
    parser.add_argument(
        "--record", type=Path, help=f"the seed's record folder (default: {SEED_RECORD} beside it)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each command (default 5)")
    args = parser.parse_args(argv)
    record = args.record or args.upstream.resolve().parent.parent / SEED_RECORD
    if not args.upstream.is_file():
        parser.error(f"--upstream {args.upstream}: no such file (upstream's analyze_sweep.py)")
    if not sorted(record.glob("comparison_*.txt")):
        parser.error(f"--record {record}: no comparison_*.txt logs (upstream's {SEED_RECORD} folder)")
    base = len(sorted(record.glob("comparison_*.txt")))
    cand = len(sorted(record.glob("*.txt"))) - base
    print(f"compare_speed: {date.today()}, {machine()}, Python {platform.python_version()}")
    print(f"logs: unique copies of {record.name}'s {base} + {cand} logs; medians of {args.repeats} runs")
    met = True
    with tempfile.TemporaryDirectory(prefix="ablate-compare-speed-") as tmp:
        for copies, reference, goal in CASES:
            folder = Path(tmp) / f"x{copies}"
            n = copy_logs(record, folder, copies)
            times, outputs = time_all(commands(args.upstream, folder, reference), args.repeats)
            check_outputs(outputs, f"{n} logs")
            met &= report(f"{n} logs ({base * copies} + {cand * copies})", times, reference, goal)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
