"""The results store as functions of a folder: one immutable parquet file per run, readable by any tool.

A thin module API over `analysis.resultsdir.ResultsDir` (which owns the folder: its paths, its one
atomic writer, the read index, the lock) and `analysis.schema` (the columns), kept for callers that
hold a path: `write_run(dir, row, knob_types)` is `ResultsDir(dir).write_run(row, knob_types)`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq  # noqa: F401 -- `store.pq.write_table` is what fault-injection tests replace

from analysis.resultsdir import ResultsDir
from analysis.schema import (  # noqa: F401 -- the store's documented names
    BASE_FIELDS,
    JSON_COLUMNS,
    KNOB_TYPES,
    POINT_COLUMN,
    RUN_STATUSES,
    SCHEMA_VERSION,
    STEP_SCHEMA,
    TAIL_FIELDS,
    run_schema,
)


def write_run(results_dir: str | Path, row: dict, knob_types: dict[str, str], *, fsync: bool = True) -> Path:
    """Write a run's final outcome to `runs/<run_id>.parquet`; refuses to overwrite (FileExistsError)."""
    return ResultsDir(results_dir).write_run(row, knob_types, fsync=fsync)


def write_attempt(results_dir: str | Path, row: dict, knob_types: dict[str, str]) -> Path:
    """Write one failed attempt to `attempts/<run_id>.<attempt>.parquet` (same schema as runs)."""
    return ResultsDir(results_dir).write_attempt(row, knob_types)


def write_steps(results_dir: str | Path, run_id: str, steps: list[dict], *, fsync: bool = True) -> Path:
    """Write a run's step table (run_id, step, val_loss, train_loss, train_time_ms) to `steps/`.

    Steps may be rewritten (a retried run replaces its partial curve), unlike run files.
    """
    return ResultsDir(results_dir).write_steps(run_id, steps, fsync=fsync)


def read_runs(results_dir: str | Path) -> pd.DataFrame:
    """All final run rows of a sweep folder, sorted by run_id (an empty frame with the columns if none).

    Through the folder's index (`.cache/`): one file for the rows read before, whatever the size.
    """
    return ResultsDir(results_dir).read_runs()


def read_attempts(results_dir: str | Path) -> pd.DataFrame:
    """All failed-attempt rows of a sweep folder."""
    return ResultsDir(results_dir).read_attempts()


def read_steps(results_dir: str | Path, run_ids=None, *, val_only: bool = False) -> pd.DataFrame:
    """Step rows of a sweep (all runs, or those in `run_ids`), sorted by run_id and step (val_only:
    validation steps only, filtered inside the scan)."""
    return ResultsDir(results_dir).read_steps(run_ids, val_only=val_only)


def finished_run_ids(results_dir: str | Path) -> set[str]:
    """run_ids that have a final result file (temp files excluded)."""
    return ResultsDir(results_dir).finished_run_ids()


def require_results(results_dir: str | Path) -> Path:
    """The sweep folder, or InputError naming what is missing."""
    return ResultsDir(results_dir).require().root


def read_sweep(results_dir: str | Path) -> dict:
    """sweep.json of the folder as a dict, or {} when absent (`ResultsDir.read_sweep` gives it typed)."""
    return ResultsDir(results_dir).read_sweep_json()
