"""Run rows: the one builder of the dict that becomes a run's parquet row (`analysis.schema`'s columns).

A row is the plan's columns of its `RunSpec`, then what happened: the worker builds it when an attempt
has ended (`launch`: node, times, losses, exit code, the command as executed), the driver when it
gives up on a run whose block was lost too often. The driver then completes every row with what only
it knows (`complete_row`: ablate's version) before the results folder's owner writes it. Knob columns
(`knob_*`) are not set here: the schema derives them from `params`, in one place.
"""

from __future__ import annotations

import json
from importlib import metadata
from typing import Any

from orchestrator.runspec import RunSpec
from orchestrator.version import ablate_version


def plan_columns(run: RunSpec) -> dict[str, Any]:
    """The columns of a run row that come from the plan alone (the same for every attempt)."""
    return {
        "sweep": run.sweep,
        "run_id": run.run_id,
        "arm": run.arm,
        "params": json.dumps(run.params, sort_keys=True),
        # the grid point's values, in the column named `label` (its layers are in sweep.json)
        "label": json.dumps(run.point.values, sort_keys=True) if run.point.values else None,
        "replicate": run.replicate,
        "seed": run.seed,
        "block": run.block,
        "order_index": run.order_index,
    }


def run_row(run: RunSpec, *, attempt: int, status: str, **outcome: Any) -> dict[str, Any]:
    """A run row: the plan's columns, the attempt and its status, the planned command and script hashes,
    then `outcome` (any other column: node_id, final_val_loss, error, the command as executed, ...)."""
    return {
        **plan_columns(run),
        "attempt": attempt,
        "status": status,
        "command": json.dumps(list(run.command)),
        "script_sha256": run.script_sha256,
        **outcome,
    }


def complete_row(row: dict[str, Any], run: RunSpec) -> dict[str, Any]:
    """What the driver adds before a row is stored: the plan's columns where the row lacks them (a row
    from another worker), ablate's version, and torch's when the run did not say."""
    out = {**plan_columns(run), **row}
    out["ablate_version"] = ablate_version()
    if not out.get("torch_version"):
        out["torch_version"] = _version("torch")
    return out


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
