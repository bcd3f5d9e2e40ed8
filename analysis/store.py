"""The results store: one immutable parquet file per run, readable by any parquet tool.

Layout (DESIGN.md): `runs/<run_id>.parquet` (final outcome), `attempts/<run_id>.<k>.parquet` (failed
attempts), `steps/<run_id>.parquet`. Every file is written under a name starting with `.` and renamed
into place after an fsync; pyarrow's dataset readers (and so pandas, polars and duckdb through them)
skip names starting with `.` or `_`, so a reader never takes a half-written file for a result. All
files of a sweep share one schema (`run_schema(knob_types)`): list-valued knobs are JSON text, absent
values typed nulls, so `pandas.read_parquet("results/x/runs")` works with no ablate code.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from analysis import InputError

SCHEMA_VERSION = 1
KNOB_TYPES = {
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "str": pa.string(),
    "json": pa.string(),
}
RUN_STATUSES = ("ok", "failed", "diverged", "timeout", "cancelled")
_TS = pa.timestamp("us", tz="UTC")

# Column order of a run row; knob columns follow `params`.
BASE_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("schema_version", pa.int32()),
    ("sweep", pa.string()),
    ("run_id", pa.string()),
    ("arm", pa.string()),
    ("params", pa.string()),
)
TAIL_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("label", pa.string()),
    ("replicate", pa.int64()),
    ("seed", pa.int64()),
    ("block", pa.int64()),
    ("order_index", pa.int64()),
    ("node_id", pa.string()),
    ("hostname", pa.string()),
    ("gpu_name", pa.string()),
    ("gpus", pa.int64()),
    ("driver_version", pa.string()),
    ("cuda_version", pa.string()),
    ("attempt", pa.int64()),
    ("status", pa.string()),
    ("final_val_loss", pa.float64()),
    ("train_time_ms", pa.float64()),
    ("step_avg_ms", pa.float64()),
    ("steps", pa.int64()),
    ("peak_mem_mib", pa.float64()),
    ("wall_s", pa.float64()),
    ("startup_s", pa.float64()),
    ("compile_cache", pa.string()),
    # where the start-up went, from the trainer's end event (None for other scripts): torch.compile's
    # own time, the untimed warm-up steps (compile included) and the validations
    ("compile_s", pa.float64()),
    ("warmup_s", pa.float64()),
    ("val_s", pa.float64()),
    ("started_at", _TS),
    ("ended_at", _TS),
    ("exit_code", pa.int64()),
    ("error", pa.string()),
    ("command", pa.string()),
    ("script_sha256", pa.string()),
    ("data_shards", pa.string()),
    ("ablate_version", pa.string()),
    ("torch_version", pa.string()),
)
JSON_COLUMNS = ("params", "label", "command", "data_shards")
STEP_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("step", pa.int64()),
        ("val_loss", pa.float64()),
        ("train_loss", pa.float64()),
        ("train_time_ms", pa.float64()),
    ]
)


def run_schema(knob_types: dict[str, str]) -> pa.Schema:
    """The run-row schema of a sweep whose knobs have these types (int | float | bool | str | json)."""
    knob_fields = []
    for name in sorted(knob_types):
        kind = knob_types[name]
        if kind not in KNOB_TYPES:
            raise InputError(f"knob_types.{name}: unknown type {kind!r}; valid: {', '.join(KNOB_TYPES)}")
        knob_fields.append((f"knob_{name}", KNOB_TYPES[kind]))
    return pa.schema([*BASE_FIELDS, *knob_fields, *TAIL_FIELDS])


def _json_text(value):
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _timestamp(value, name: str):
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str):
        return _timestamp(datetime.fromisoformat(value), name)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    raise ValueError(f"run row field {name}: {value!r} is not a timestamp (datetime, ISO text or epoch s)")


def _cell(name: str, dtype: pa.DataType, value):
    """One value converted to what its column holds (JSON text for json columns, None for NaN ints)."""
    if value is None:
        return None
    if name in JSON_COLUMNS or (name.startswith("knob_") and pa.types.is_string(dtype)):
        return _json_text(value) if not isinstance(value, str) or name in JSON_COLUMNS else value
    if pa.types.is_timestamp(dtype):
        return _timestamp(value, name)
    if isinstance(value, float) and math.isnan(value) and not pa.types.is_floating(dtype):
        return None
    return value


def _row_table(row: dict, schema: pa.Schema) -> pa.Table:
    known = set(schema.names)
    unknown = sorted(k for k in row if k not in known)
    if unknown:
        raise ValueError(f"run row: unknown field(s) {', '.join(unknown)}; valid: {', '.join(schema.names)}")
    row = {**row, "schema_version": SCHEMA_VERSION}
    params = row.get("params")
    if isinstance(params, str):
        params = json.loads(params)
    arrays = []
    for f in schema:
        value = row.get(f.name)
        if value is None and f.name.startswith("knob_") and isinstance(params, dict):
            value = params.get(f.name[len("knob_") :])
        try:
            arrays.append(pa.array([_cell(f.name, f.type, value)], type=f.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as e:
            raise ValueError(f"run row field {f.name}: {value!r} does not fit type {f.type} ({e})") from None
    return pa.Table.from_arrays(arrays, schema=schema)


def _write_atomic(table: pa.Table, path: Path, *, overwrite: bool, fsync: bool = True) -> Path:
    """Write `table` to `path` via a hidden temp name + fsync + rename; the temp file never survives.

    fsync=False skips the flush to disk (~10 ms a file here) for bulk writes whose source can be
    re-read, such as ingesting existing logs; the rename still keeps readers from partial files.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path}: a result already exists; run files are immutable")
    tmp = path.with_name(f".tmp-{path.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            # link() fails if the target exists: two writers racing for one run cannot both win.
            os.link(tmp, path)
            os.unlink(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_run(results_dir: str | Path, row: dict, knob_types: dict[str, str], *, fsync: bool = True) -> Path:
    """Write a run's final outcome to `runs/<run_id>.parquet`; refuses to overwrite (FileExistsError)."""
    table = _row_table(row, run_schema(knob_types))
    path = Path(results_dir) / "runs" / f"{row['run_id']}.parquet"
    return _write_atomic(table, path, overwrite=False, fsync=fsync)


def write_attempt(results_dir: str | Path, row: dict, knob_types: dict[str, str]) -> Path:
    """Write one failed attempt to `attempts/<run_id>.<attempt>.parquet` (same schema as runs)."""
    table = _row_table(row, run_schema(knob_types))
    name = f"{row['run_id']}.{int(row.get('attempt') or 0)}.parquet"
    return _write_atomic(table, Path(results_dir) / "attempts" / name, overwrite=False)


def write_steps(results_dir: str | Path, run_id: str, steps: list[dict], *, fsync: bool = True) -> Path:
    """Write a run's step table (run_id, step, val_loss, train_loss, train_time_ms) to `steps/`.

    Steps may be rewritten (a retried run replaces its partial curve), unlike run files.
    """
    cols = {name: [s.get(name) for s in steps] for name in STEP_SCHEMA.names if name != "run_id"}
    cols = {"run_id": [run_id] * len(steps), **cols}
    for name in ("val_loss", "train_loss", "train_time_ms"):
        cols[name] = [None if v is None else float(v) for v in cols[name]]
    table = pa.Table.from_pydict(cols, schema=STEP_SCHEMA)
    return _write_atomic(
        table, Path(results_dir) / "steps" / f"{run_id}.parquet", overwrite=True, fsync=fsync
    )


def _read_folder(folder: Path) -> pd.DataFrame | None:
    table = _scan(sorted(_result_files(folder).values()))
    return None if table is None else table.to_pandas()


def _unified_schema(files: list[str]) -> pa.Schema:
    """The first file's schema, widened by the last one's (a resumed sweep may have added knobs)."""
    first = pq.read_schema(files[0])
    if len(files) == 1:
        return first
    return pa.unify_schemas([first, pq.read_schema(files[-1])], promote_options="permissive")


def _empty_runs() -> pd.DataFrame:
    return run_schema({}).empty_table().to_pandas()


def read_runs(results_dir: str | Path) -> pd.DataFrame:
    """All final run rows of a sweep folder, sorted by run_id (an empty frame with the columns if none).

    Reading a parquet file costs ~1-2 ms however small it is, so 10,000 runs would take 10-20 s. Run
    files are immutable, so their rows can be cached forever: `.cache/runs.parquet` (hidden from other
    readers, outside `runs/` so globs over `runs/*.parquet` never see it) holds the rows read so far;
    each call reads only the run files the cache lacks and refreshes it when many were new.
    """
    root = Path(results_dir)
    files = _result_files(root / "runs")
    if not files:
        return _empty_runs()
    cached = _read_cache(root, set(files))
    missing = [files[r] for r in sorted(set(files) - _column_set(cached, "run_id"))]
    parts = [t for t in (cached, _scan(missing)) if t is not None and t.num_rows]
    table = pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]
    table = table.sort_by("run_id")
    if len(missing) >= CACHE_REFRESH_MIN_NEW:
        _write_cache(root, table)
    return table.to_pandas()


CACHE_REFRESH_MIN_NEW = 64


def _result_files(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    return {
        p.name[: -len(".parquet")]: str(p)
        for p in folder.glob("*.parquet")
        if not p.name.startswith((".", "_"))
    }


def _scan(files: list[str]) -> pa.Table | None:
    if not files:
        return None
    # One dataset over all files: a single C++ scan instead of a Python loop of reads.
    return ds.dataset(files, format="parquet", schema=_unified_schema(files)).to_table()


def _column_set(table: pa.Table | None, name: str) -> set:
    return set() if table is None else set(table.column(name).to_pylist())


def _read_cache(root: Path, run_ids: set[str]) -> pa.Table | None:
    path = root / ".cache" / "runs.parquet"
    try:
        table = pq.read_table(path)
    except (FileNotFoundError, pa.ArrowInvalid, OSError):
        return None  # no cache yet, or a damaged one: the run files are the truth, read them
    keep = pa.array([r in run_ids for r in table.column("run_id").to_pylist()], type=pa.bool_())
    return table.filter(keep)


def _write_cache(root: Path, table: pa.Table) -> None:
    # A read-only results folder: reading still works, only without the speed-up.
    with contextlib.suppress(OSError):
        _write_atomic(table, root / ".cache" / "runs.parquet", overwrite=True)


def read_attempts(results_dir: str | Path) -> pd.DataFrame:
    """All failed-attempt rows of a sweep folder."""
    df = _read_folder(Path(results_dir) / "attempts")
    return _empty_runs() if df is None else df


def read_steps(results_dir: str | Path, run_ids=None, *, val_only: bool = False) -> pd.DataFrame:
    """Step rows of a sweep (all runs, or those in `run_ids`), sorted by run_id and step.

    val_only: only validation steps (val_loss not null), filtered inside the scan: loss curves of
    thousands of runs then cost a few rows per run instead of every step.
    """
    folder = Path(results_dir) / "steps"
    files = sorted(_result_files(folder).values())
    if run_ids is not None:
        wanted = {str(folder / f"{r}.parquet") for r in run_ids}
        files = [f for f in files if f in wanted]
    if not files:
        return STEP_SCHEMA.empty_table().to_pandas()
    filter_ = ds.field("val_loss").is_valid() if val_only else None
    table = ds.dataset(files, format="parquet", schema=STEP_SCHEMA).to_table(filter=filter_)
    return table.sort_by([("run_id", "ascending"), ("step", "ascending")]).to_pandas()


def finished_run_ids(results_dir: str | Path) -> set[str]:
    """run_ids that have a final result file (temp files excluded)."""
    folder = Path(results_dir) / "runs"
    if not folder.is_dir():
        return set()
    return {p.name[: -len(".parquet")] for p in folder.glob("*.parquet") if not p.name.startswith((".", "_"))}


def require_results(results_dir: str | Path) -> Path:
    """The sweep folder, or InputError naming what is missing."""
    p = Path(results_dir)
    if not p.is_dir():
        raise InputError(f"{p}: no such results folder (give results/<sweep name>)")
    if not (p / "runs").is_dir() and not (p / "sweep.json").exists():
        raise InputError(f"{p}: not a results folder (no runs/ and no sweep.json inside)")
    return p


def read_sweep(results_dir: str | Path) -> dict:
    """sweep.json of the folder, or {} when absent."""
    p = Path(results_dir) / "sweep.json"
    if not p.exists():
        return {}
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{p}: not valid JSON ({e})") from None
