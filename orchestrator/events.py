"""The events a block sends from its node to the driver: small frozen dataclasses, one per kind.

A worker (`executor.run_block`) yields them while a block runs; the executor adds the three it makes
itself when a block is over (`BlockEnd`, `BlockLost`, `BlockCancelled`); the driver dispatches on the
class and its progress view shows them. In order, for a block:

    BlockStart, then per run: RunStart, Step ..., AttemptEnd (a failed attempt, retried) ..., RunEnd,
    CachePacked (after the first run that filled a cold node's compile cache, when asked for one),
    and last BlockEnd, BlockLost or BlockCancelled. PreflightFailed replaces BlockStart when the
    block's GPUs are not free (the block then ends, and the driver runs it again).

Each event is also the read-only dict of its wire form, `{"type": KIND, field: value, ...}` (what the
events were before they had types), so `event["row"]` and `event.row` read the same. `from_wire`
turns such a dict (from a hand-written worker, e.g. a test's) into its typed event.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar


class Event(dict):
    """Base of the events: a frozen dataclass whose dict view is its wire form."""

    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        dict.update(self, {"type": self.kind}, **{f.name: getattr(self, f.name) for f in fields(self)})

    def __reduce__(self):  # pickled (through Ray) by its fields, not by its dict items
        return (type(self), tuple(getattr(self, f.name) for f in fields(self)))

    def _read_only(self, *args, **kwargs):
        raise TypeError(f"{type(self).__name__} is immutable")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = __ior__ = _read_only  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class BlockStart(Event):
    """The block's preflight passed on `node_id`; its runs start."""

    kind: ClassVar[str] = "block_start"
    node_id: str
    hostname: str | None = None
    gpu_ids: list[str] = field(default_factory=list)
    preflight: list[dict] | None = None
    """Per GPU what the preflight saw (name, clocks, processes), None without GPUs."""


@dataclass(frozen=True, eq=False)
class PreflightFailed(Event):
    kind: ClassVar[str] = "preflight_failed"
    error: str
    node_id: str | None = None


@dataclass(frozen=True, eq=False)
class RunStart(Event):
    """An attempt of a run starts; `compile_cache` is the node cache's state (cold/warm/seeded, None
    without a node cache)."""

    kind: ClassVar[str] = "run_start"
    run_id: str
    attempt: int
    node_id: str | None = None
    compile_cache: str | None = None


@dataclass(frozen=True, eq=False)
class Step(Event):
    """A step line of the running attempt (validation lines always, train lines about once a second)."""

    kind: ClassVar[str] = "step"
    run_id: str
    step: int
    total: int
    val_loss: float | None = None
    train_time_ms: float | None = None


@dataclass(frozen=True, eq=False)
class AttemptEnd(Event):
    """A failed attempt that will be retried: its row (`orchestrator.rows`), step rows and log text."""

    kind: ClassVar[str] = "attempt"
    row: dict[str, Any]
    steps: list[dict] = field(default_factory=list)
    log: str = ""


@dataclass(frozen=True, eq=False)
class RunEnd(Event):
    """A run's final outcome (ok, diverged, or failed/timeout after its last attempt)."""

    kind: ClassVar[str] = "run"
    row: dict[str, Any]
    steps: list[dict] = field(default_factory=list)
    log: str = ""


@dataclass(frozen=True, eq=False)
class CachePacked(Event):
    """A node's fresh compile cache, packed for cold nodes: bytes, or a Ray ObjectRef to them."""

    kind: ClassVar[str] = "cache"
    seed: Any


@dataclass(frozen=True, eq=False)
class CacheNext(Event):
    """Worker to executor only: the next item the worker yields is the packed cache's bytes (so that Ray
    keeps them as an object of their own); the executor turns the pair into one CachePacked."""

    kind: ClassVar[str] = "cache_next"


@dataclass(frozen=True, eq=False)
class BlockEnd(Event):
    kind: ClassVar[str] = "block_end"


@dataclass(frozen=True, eq=False)
class BlockLost(Event):
    """The block's node or worker died, or the block raised: its unfinished runs run again elsewhere."""

    kind: ClassVar[str] = "block_lost"
    error: str = "block lost"


@dataclass(frozen=True, eq=False)
class BlockCancelled(Event):
    kind: ClassVar[str] = "block_cancelled"


KINDS: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        BlockStart, PreflightFailed, RunStart, Step, AttemptEnd, RunEnd, CachePacked, CacheNext,
        BlockEnd, BlockLost, BlockCancelled,
    )
}  # fmt: skip


def from_wire(obj: Any) -> Event:
    """`obj` as a typed event: an Event as it is, a dict `{"type": KIND, ...}` as the event of that kind
    (keys that are no field of it are left out). RuntimeError for anything else."""
    if isinstance(obj, Event):
        return obj
    cls = KINDS.get(obj.get("type")) if isinstance(obj, dict) else None
    if cls is None:
        what = obj.get("type") if isinstance(obj, dict) else type(obj).__name__
        raise RuntimeError(f"unknown event from a block: {what!r}")
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in obj.items() if k in names})


def coerce(kind: str, event: Any) -> Event | None:
    """For views that are handed (kind, event): the typed event, also from a dict without its type."""
    if event is None or isinstance(event, Event):
        return event
    return from_wire({**event, "type": kind})
