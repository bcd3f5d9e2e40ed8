"""The columns of a results folder's parquet files, and a row (a dict) turned into a one-row table.

Pure pyarrow, no files: `analysis.resultsdir` writes and reads the tables, `analysis.store` is the
module API over both. All run files of a sweep share one schema (`run_schema(knob_types)`): list-valued
knobs are JSON text and absent values typed nulls, so `pandas.read_parquet("results/x/runs")` works
with no ablate code.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import pyarrow as pa

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

POINT_COLUMN = "label"
"""The stored column of a run's grid point (JSON: the swept knobs' values, e.g. {"mlp_off": [0, 3]};
null for an arm without a grid). Its name stays `label` (the schema of the files written before); in
the code the grid coordinate is the point (`orchestrator.runspec.GridPoint`)."""

# Column order of a run row; knob columns follow `params`.
BASE_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("schema_version", pa.int32()),
    ("sweep", pa.string()),
    ("run_id", pa.string()),
    ("arm", pa.string()),
    ("params", pa.string()),
)
TAIL_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    (POINT_COLUMN, pa.string()),
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
JSON_COLUMNS = ("params", POINT_COLUMN, "command", "data_shards")
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


def row_table(row: dict, schema: pa.Schema) -> pa.Table:
    """`row` as a one-row table of `schema`. Knob columns the row leaves out are filled from its
    `params` (the one place a knob column is derived); unknown keys and values that do not fit their
    column raise ValueError naming the field."""
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


def steps_table(run_id: str, steps: list[dict]) -> pa.Table:
    """A run's step rows (step, val_loss, train_loss, train_time_ms; missing values null) as a table."""
    cols = {name: [s.get(name) for s in steps] for name in STEP_SCHEMA.names if name != "run_id"}
    cols = {"run_id": [run_id] * len(steps), **cols}
    for name in ("val_loss", "train_loss", "train_time_ms"):
        cols[name] = [None if v is None else float(v) for v in cols[name]]
    return pa.Table.from_pydict(cols, schema=STEP_SCHEMA)
