"""How long the rest of a sweep takes, from what its runs show while they run.

A run's wall time is its overhead (start-up, compile, validations: wall minus the training clock) plus
its steps times its step time. Both are measured as the sweep goes:

- the step time from the step lines (ours and upstream's print `train_time` at each step), so a rate is
  known a few steps into the first run, long before a run has ended;
- the overhead from the runs that ended: a coming run starts on a warm node cache, so it counts as the
  ended warm runs' overhead. While only cold runs have ended (`compile_cache` cold: an empty node cache
  that the run filled), a cold start is not taken for a warm one: a trainer arm's overhead splits into
  torch.compile's time (the trainer's `compile:` line) and the rest, and the rest stands for a warm
  start; a command arm says nothing of its compile time, so its cold overhead is scaled by how much
  sooner a warm run reached its first step line (seen within seconds of a warm run's start), and by
  `WARM_START_FRACTION` until one has.

Before anything is measured, the plan's figures stand in (the preset's start-up and step costs, or the
spec's estimate_min). The sweep's end is then laid out block by block over the slots that run at once.
Everything here is arithmetic on what it is given: the driver feeds it, and passes `now` in.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

WARM_START_FRACTION = 0.1
"""A warm command run's overhead as a share of the cold one's, until a warm run has shown its first
step: upstream's record script on an H200 started in 33 s warm against 344 s cold (0.096), and
our h200-mini trainer in 35.6 s against 413 s (0.086): README, "Results from an H200"."""


@dataclass(frozen=True)
class Ended:
    """What an ended run measured."""

    trainer: bool
    cold: bool
    """Its node cache was empty and the run filled it (its start-up includes a cold compile)."""
    wall_s: float
    overhead_s: float | None
    """Wall less the training clock (None: the run printed no train_time)."""
    compile_s: float | None
    first_step_s: float | None


@dataclass
class Live:
    """What a running attempt has shown so far (the driver updates it from step events)."""

    arm: str
    trainer: bool
    cold: bool
    started: float
    first_step_s: float | None = None
    """Seconds from its start to its first step line, less the training clock at that line."""
    step: int = 0
    total: int | None = None
    train_s: float = 0.0
    """The training clock at its last step line."""

    def saw_step(self, now: float, step: int, total: int, train_time_ms: float | None) -> None:
        train_s = (train_time_ms or 0.0) / 1000.0
        if self.first_step_s is None:
            self.first_step_s = max(0.0, now - self.started - train_s)
        self.step, self.total, self.train_s = step, total, train_s

    @property
    def step_s(self) -> float | None:
        return self.train_s / self.step if self.step > 0 and self.train_s > 0 else None


@dataclass
class EtaModel:
    """Measurements of a sweep's runs, and what they predict."""

    ended: list[Ended] = field(default_factory=list)
    live: dict[str, Live] = field(default_factory=dict)
    rates: dict[str, list[float]] = field(default_factory=dict)
    """arm -> step seconds of its ended runs (from their last step line)."""
    totals: dict[str, int] = field(default_factory=dict)
    """arm -> the step count its step lines gave (command arms: no steps in the plan)."""

    # ---------------------------------------------------------------------------- measuring

    def start(self, run_id: str, arm: str, trainer: bool, cold: bool, now: float) -> None:
        self.live[run_id] = Live(arm, trainer, cold, now)

    def step(self, run_id: str, now: float, step: int, total: int, train_time_ms: float | None) -> None:
        live = self.live.get(run_id)
        if live is not None:
            live.saw_step(now, step, total, train_time_ms)
            self.totals[live.arm] = total

    def end(self, run_id: str, row: dict[str, Any], trainer: bool) -> None:
        """A run's final row (or a failed attempt's): what it measured joins the model."""
        live = self.live.pop(run_id, None)
        if row.get("status") != "ok" or row.get("wall_s") is None:
            return  # a failed attempt's timing stands for nothing that comes
        wall, train_ms = float(row["wall_s"]), row.get("train_time_ms")
        steps = row.get("steps")
        overhead = None if train_ms is None else max(0.0, wall - float(train_ms) / 1000.0)
        self.ended.append(
            Ended(
                trainer=trainer,
                cold=row.get("compile_cache") == "cold",
                wall_s=wall,
                overhead_s=overhead,
                compile_s=_num(row.get("compile_s")),
                first_step_s=None if live is None else live.first_step_s,
            )
        )
        if train_ms and steps:
            self.rates.setdefault(str(row.get("arm")), []).append(float(train_ms) / 1000.0 / int(steps))
            self.totals[str(row.get("arm"))] = int(steps)

    def forget(self, run_id: str) -> None:
        self.live.pop(run_id, None)

    # ----------------------------------------------------------------------------- predicting

    def step_s(self, arm: str) -> float | None:
        """Seconds a step of `arm` takes: its runs' step lines, else any arm's (None: none seen)."""
        mine = self.rates.get(arm, []) + [v.step_s for v in self.live.values() if v.arm == arm and v.step_s]
        if mine:
            return fmean(mine)
        every = [r for rs in self.rates.values() for r in rs] + [
            v.step_s for v in self.live.values() if v.step_s
        ]
        return fmean(every) if every else None

    def overhead_s(self, trainer: bool, cold: bool = False, fixed_s: float | None = None) -> float | None:
        """Overhead of a coming run of this kind (trainer or command) that starts warm, or cold (None:
        no cold run has ended). Warm: the mean of the ended warm runs'; while only cold runs have ended,
        a trainer's cold overhead less its compile time, a command's scaled by `_warm_share`. Before any
        run of the kind has ended: `fixed_s` (the plan's start-up of a trainer preset), else the
        first-step times seen so far (a cold one's scaled down)."""
        mine = [e for e in self.ended if e.trainer == trainer and e.overhead_s is not None]
        if cold:
            colds = [e.overhead_s for e in mine if e.cold]
            return fmean(colds) if colds else None
        warm = [e.overhead_s for e in mine if not e.cold]
        if warm:
            return fmean(warm)
        if mine:
            split = [e.overhead_s - e.compile_s for e in mine if e.compile_s is not None]
            if trainer and len(split) == len(mine):
                return max(0.0, fmean(split))
            return fmean(e.overhead_s for e in mine) * self._warm_share(trainer)
        if fixed_s is not None:
            return fixed_s
        firsts = self._first_steps(trainer)
        if firsts[False]:
            return fmean(firsts[False])
        return fmean(firsts[True]) * WARM_START_FRACTION if firsts[True] else None

    def _first_steps(self, trainer: bool) -> dict[bool, list[float]]:
        """cold? -> the first-step times of this kind's runs, ended or running."""
        out: dict[bool, list[float]] = {True: [], False: []}
        for e in self.ended:
            if e.trainer == trainer and e.first_step_s is not None:
                out[e.cold].append(e.first_step_s)
        for v in self.live.values():
            if v.trainer == trainer and v.first_step_s is not None:
                out[v.cold].append(v.first_step_s)
        return out

    def _warm_share(self, trainer: bool) -> float:
        """How much sooner warm runs reach their first step than cold ones (WARM_START_FRACTION unseen)."""
        firsts = self._first_steps(trainer)
        if firsts[True] and firsts[False] and fmean(firsts[True]) > 0:
            return min(1.0, fmean(firsts[False]) / fmean(firsts[True]))
        return WARM_START_FRACTION

    def mean_wall_s(self) -> float | None:
        """Mean wall of the ended runs that did not start cold (of all, when every one did)."""
        walls = [e.wall_s for e in self.ended if not e.cold] or [e.wall_s for e in self.ended]
        return fmean(walls) if walls else None

    def run_s(self, run, fixed_s: float | None = None, *, cold: bool = False) -> float | None:
        """Predicted wall seconds of `run` (a RunSpec) from its start; `cold`: it started on an empty
        cache. `fixed_s`: the plan's start-up figure, for an overhead nothing has measured yet."""
        step_s = self.step_s(run.arm)
        steps = run.params.get("steps") if run.is_trainer else None
        if not isinstance(steps, int):  # a command arm: its step lines' count, else any arm's
            steps = self.totals.get(run.arm) or (round(fmean(self.totals.values())) if self.totals else None)
        overhead = self.overhead_s(run.is_trainer, True, fixed_s) if cold else None
        if overhead is None:
            overhead = self.overhead_s(run.is_trainer, False, fixed_s)
        if step_s is not None and steps is not None and overhead is not None:
            return overhead + steps * step_s
        return self.mean_wall_s() or run.estimate_s

    def left_s(self, run_id: str, run, now: float, fixed_s: float | None = None) -> float | None:
        """Seconds the running `run` still needs (None: unknown): its steps left at its own step rate,
        plus the overhead a run like it has (cold or warm) less what it has spent so far."""
        live = self.live.get(run_id)
        if live is None:
            return self.run_s(run, fixed_s)
        elapsed = now - live.started
        own = live.step_s
        if own is None or live.total is None:  # still starting: its predicted wall, less what has passed
            whole = self.run_s(run, fixed_s, cold=live.cold)
            return None if whole is None else max(0.0, whole - elapsed)
        overhead = self.overhead_s(run.is_trainer, live.cold, fixed_s)
        so_far = elapsed - live.train_s
        return max(0, live.total - live.step) * own + max(0.0, (overhead or 0.0) - so_far)


def makespan(busy: Iterable[float], queued: Sequence[Sequence[float]], slots: int) -> float:
    """When the last block ends: the running blocks' remaining seconds hold their slots (all of them run
    at once, should they be more than `slots`), and each queued block (its runs' seconds, back to back)
    goes to the slot that frees first, in order."""
    heap = sorted(busy)
    heap += [0.0] * max(0, slots - len(heap))
    heapq.heapify(heap)
    for block in queued:
        heapq.heappush(heap, heapq.heappop(heap) + sum(block))
    return max(heap) if heap else 0.0


def _num(value) -> float | None:
    return float(value) if isinstance(value, int | float) else None
