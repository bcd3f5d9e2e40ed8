"""The planned units of work: what `plan.make_plan` produces and the scheduler consumes.

Pure data (frozen dataclasses), no Ray, so planning can be tested exhaustively and the
scheduler can be tested against hand-built plans.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class GridPoint:
    """Where a run sits in its arm's grid: the grid coordinate, recorded once by the plan.

    `values` are the swept knobs' values as the spec gave them (`{"mlp_off": [0, 3]}`; `{}` for an arm
    without a grid); `layers` is the layer the point sweeps, for each knob swept one layer at a time
    (`{"mlp_off": 3}` for that point of `{each_layer: "1-11", with: [0]}`): what the layer-ablation figure
    draws. Stored as the run row's `label` column (values) and sweep.json's `point_layers` (layers)."""

    values: dict[str, Any] = field(default_factory=dict)
    layers: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSpec:
    """One training run: a command to execute once (plus retries) on one node."""

    run_id: str
    """Stable hash of (sweep, arm, resolved params or command, content hash of named files, replicate)."""
    sweep: str
    arm: str
    replicate: int
    """0-based replicate index within the arm (and grid point)."""
    seed: int
    """Per-replicate seed derived from run_id; passed to the trainer as --seed."""
    command: tuple[str, ...]
    """Argument list, never a shell string. The scheduler appends --run-id/--log-dir for trainer arms."""
    params: dict[str, Any] = field(default_factory=dict)
    """Knob values of a trainer arm (resolved over the preset), or {} for command arms."""
    preset: str | None = None
    """Trainer preset of a trainer arm; None for command arms."""
    is_trainer: bool = False
    """True when the command runs our trainer (so --run-id/--log-dir/--seed are understood)."""
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    gpus: int = 0
    cpus: float = 1.0
    timeout_s: float | None = None
    retries: int = 0
    block: int = 0
    order_index: int = 0
    """Position within its block (0-based): the order the runs execute on the node."""
    script_sha256: str | None = None
    """Content hash of the files the command names (joined), when any exist."""
    point: GridPoint = field(default_factory=GridPoint)
    """The run's grid point within its arm (e.g. values {"mlp_off": [3]}, layers {"mlp_off": 3})."""
    estimate_s: float | None = None
    """Rough expected wall time of the run (start-up and compile included), seconds; None = unknown.
    From the preset's cost table or the spec's estimate_min; for --dry-run and ETAs only."""

    @property
    def label(self) -> dict[str, Any]:
        """The grid point's knob values (the name of their stored column, `label`)."""
        return self.point.values


@dataclass(frozen=True)
class Block:
    """Runs that execute back to back on one node, in order (an A/B pair, or one sweep run)."""

    block_id: int
    runs: tuple[RunSpec, ...]
    gpus: int
    cpus: float = 1.0
    exclusive_node: bool = False


@dataclass(frozen=True)
class Plan:
    name: str
    kind: str
    """'grid' (arms of knob values) or 'ab' (two arms, interleaved blocks)."""
    blocks: tuple[Block, ...]
    baseline_arm: str
    arms: tuple[str, ...]
    target_val_loss: float | None
    knob_types: dict[str, str]
    """Column types for the store: knob name -> int | float | bool | str | json."""
    profile: str | None = None
    description: str = ""
    """The spec's one-line description (for --dry-run and reports)."""
    contrasts: tuple[dict[str, Any], ...] = ()
    """The spec's contrasts with the knob whose layer axis they read, as sweep.json stores them:
    {label, arm, knob, layers: [...], against: "baseline" | [...]}."""

    @property
    def runs(self) -> tuple[RunSpec, ...]:
        return tuple(r for b in self.blocks for r in b.runs)
