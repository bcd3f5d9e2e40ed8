"""Turn existing log files (e.g. an upstream record folder) into a results folder that `report` reads.

Each log becomes one run row (status from the parser: ok, diverged, or failed for truncated/garbled
logs) and one steps file; the run_id is a content hash, so ingesting the same file twice is refused
by the store rather than counted twice.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from analysis.logs import ParsedLog, parse_log_text
from analysis.resultsdir import ResultsDir, SweepInfo

_STATUS = {"ok": "ok", "diverged": "diverged"}  # truncated / empty / garbled logs are failed runs


def log_run_id(path: Path, data: bytes) -> str:
    """Stable id of a log: its content hash (16 hex digits)."""
    return hashlib.sha256(data).hexdigest()[:16]


def log_row(sweep: str, arm: str, run_id: str, path: Path, parsed: ParsedLog, order: int) -> dict:
    """The run row of one log. A file of several runs (step 0 again after a later step) is a failed row
    whose error says where to split it: its numbers would be one run's, its steps another's."""
    error = None if parsed.status == "ok" else f"log {parsed.status}: {parsed.message}"
    if parsed.runs > 1:
        error = f"log holds {parsed.runs} runs ({parsed.restarts_text}); split it into one file per run"
    return {
        "sweep": sweep,
        "run_id": run_id,
        "arm": arm,
        "params": json.dumps({"log": path.name}),
        "order_index": order,
        "attempt": 0,
        "status": "failed" if parsed.runs > 1 else _STATUS.get(parsed.status, "failed"),
        "final_val_loss": parsed.final_val_loss,
        "train_time_ms": parsed.train_time_ms,
        "step_avg_ms": parsed.step_avg_ms,
        "steps": parsed.last_step,
        "peak_mem_mib": parsed.peak_mem_mib,
        "error": error,
    }


def ingest_logs(
    results_dir: str | Path, arms: dict[str, list[Path]], *, name: str, target: float | None
) -> int:
    """Write every log of every arm into `results_dir` (runs/, steps/, sweep.json); returns runs written.

    The first arm is the baseline; two arms make an A/B report, more a grid.
    """
    folder = ResultsDir(results_dir)
    written = 0
    for arm, paths in arms.items():
        for order, path in enumerate(paths):
            data = Path(path).read_bytes()
            parsed = parse_log_text(data.decode("utf-8", errors="replace"))
            run_id = log_run_id(Path(path), data)
            steps = [
                {"step": s.step, "val_loss": s.val_loss, "train_time_ms": s.train_time_ms}
                for s in parsed.steps
            ]
            folder.write_steps(run_id, steps, fsync=False)  # the logs stay the source
            folder.write_run(log_row(name, arm, run_id, Path(path), parsed, order), {}, fsync=False)
            written += 1
    names = list(arms)
    kind = "ab" if len(names) == 2 else "grid"
    info = SweepInfo(name, kind, target, names[0], tuple(names), planned_runs=written)
    folder.write_sweep(info)  # no run_ids: every run in the folder counts
    return written
