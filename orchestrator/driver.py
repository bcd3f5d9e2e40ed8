"""The sweep loop: submit blocks as they fit, store each run as it ends, re-run lost blocks, resume.

The driver is the one writer of its results folder (one driver per folder, enforced by `ResultsLock`):
workers send rows, steps and log text back as events and only the driver writes them, through the
folder's owner, `analysis.resultsdir.ResultsDir`.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from analysis.resultsdir import FolderBusy, ResultsDir, split_current_ids
from orchestrator.errors import UserError, storage_error
from orchestrator.eta import EtaModel, makespan
from orchestrator.events import (
    AttemptEnd,
    BlockCancelled,
    BlockEnd,
    BlockLost,
    BlockStart,
    CachePacked,
    Event,
    PreflightFailed,
    RunEnd,
    RunStart,
    Step,
)
from orchestrator.executor import BlockContext, Executor, Job, with_seed
from orchestrator.progress import CACHE_WORDS, format_duration
from orchestrator.recorder import SweepRecorder
from orchestrator.runspec import Block, Plan, RunSpec


class ResultsLock:
    """The results folder's driver lock (`analysis.resultsdir.FolderLock`), refusing as a UserError."""

    def __init__(self, results_dir: Path):
        self._lock = ResultsDir(results_dir).lock()
        self.path = self._lock.path

    def __enter__(self) -> ResultsLock:
        try:
            self._lock.__enter__()
        except FolderBusy as e:
            raise UserError(str(e)) from None
        return self

    def __exit__(self, *exc) -> None:
        self._lock.__exit__(*exc)


@dataclass(frozen=True)
class SweepOptions:
    max_parallel: int | None = None
    """At most this many blocks at once (default: as many as the cluster fits, plus one queued per node)."""
    until_decided: bool = False
    """A/B: after each block, ask the sequential test; stop adding blocks once it has decided."""
    max_blocks: int | None = None
    """Start at most this many blocks in this invocation (a sweep in parts); the rest waits for the next
    `ablate run`, which resumes with what is missing. A lost block re-run does not count again."""
    time_limit_s: float | None = None
    """Start no block that would not end within this many seconds of the driver's start, judged by the
    mean wall time of the runs ended so far (those that did not compile cold, when there are any; the
    plan's estimates before any has ended). Running blocks are never cut: the limit only decides what
    starts."""
    retry_failed: bool = False
    """Run the plan's failed and timed-out runs again (their attempts keep counting under attempts/;
    a retry's outcome replaces the failed run file). Without it they count as done."""
    block_retries: int = 2
    """A block lost with its node (or failing its preflight) is re-run elsewhere up to this many times."""
    poll_s: float = 0.5
    cancel_grace_s: float = 20.0
    quiet_s: float = 120.0
    """A running run that has said nothing (no step line) for this long gets a progress line saying so,
    and another each time as long again passes (a cold compile is minutes of silence); 0 = never."""


@dataclass
class RunningRun:
    run_id: str
    arm: str
    node_id: str | None
    attempt: int
    started: float
    step: int | None = None
    total: int | None = None
    val_loss: float | None = None
    val_step: int | None = None
    """The step of the last validation (`val_loss`): step 0's is the untrained model's."""
    compile_cache: str | None = None
    heard: float = 0.0
    """When the run last showed a sign of life (its start, a step line, or our 'still' line)."""


@dataclass
class SweepState:
    """What the driver knows now; progress views and status.json read it."""

    planned: int
    skipped: int
    to_run: int
    planned_per_arm: dict[str, int]
    failed_kept: int = 0
    """Failed or timed-out runs of the plan stored before, left as they are (no --retry-failed)."""
    retrying: int = 0
    """Failed or timed-out runs of the plan stored before, run again (--retry-failed)."""
    done: Counter = field(default_factory=Counter)
    """status -> count of runs finished by this driver."""
    running: dict[str, RunningRun] = field(default_factory=dict)
    walls: list[float] = field(default_factory=list)
    warm_walls: list[float] = field(default_factory=list)
    """Wall times of the ended runs whose node cache was not cold (the next runs on a node look alike)."""
    decided: str | None = None
    cancelled: bool = False
    deferred: int = 0
    """Runs left for the next invocation by --max-blocks / --time-limit."""
    stop_reason: str | None = None
    started: float = field(default_factory=time.monotonic)
    eta: EtaModel = field(default_factory=EtaModel)
    """What the runs measured (step rates, overheads), for the ETA."""
    queue: Sequence[Block] = ()
    """The blocks not yet submitted (the driver's queue, shared)."""
    inflight: dict[int, Job] = field(default_factory=dict)
    """The submitted blocks (the driver's, shared): their unreported runs are what is left of them."""
    clock: Callable[[], float] = time.monotonic
    """The time runs start, step and are estimated by (a test steps its own)."""

    @property
    def finished(self) -> int:
        return sum(self.done.values())

    def record(self, row: dict, run: RunSpec | None = None) -> None:
        """Count an ended run (its row) and keep what it measured for the estimates."""
        self.done[row["status"]] += 1
        wall = float(row.get("wall_s") or 0.0)
        self.walls.append(wall)
        if row.get("compile_cache") not in ("cold", None):
            self.warm_walls.append(wall)
        self.eta.end(row["run_id"], row, run.is_trainer if run is not None else False)

    def eta_s(self, parallel: int, now: float | None = None) -> float | None:
        """Seconds until the last block of this invocation ends (`orchestrator.eta`): each running run's
        rest from its live step rate, each coming run from the rates and overheads measured so far (the
        plan's estimates before), laid out over `parallel` slots block by block. None: unknown (command
        runs without estimate_min before any has shown a step)."""
        now = self.clock() if now is None else now
        if not self.queue and not self.inflight:
            return 0.0 if self.to_run - self.finished - self.deferred <= 0 else None
        busy, waiting, memo = [], [], {}
        for job in self.inflight.values():
            left = [r for r in job.block.runs if r.run_id not in job.reported]
            now_running = next((i for i, r in enumerate(left) if r.run_id in self.running), None)
            if now_running is None:
                waiting.append(self.coming_s(left, memo))  # submitted, waiting for its node: first in line
                continue
            cur = left[now_running]
            rest = self.coming_s(left[now_running + 1 :], memo)
            busy.append([self.eta.left_s(cur.run_id, cur, now, startup_s(cur)), *rest])
        queued = waiting + [self.coming_s(b.runs, memo) for b in self.queue]
        if any(t is None for b in [*busy, *queued] for t in b):
            return None
        return makespan([sum(b) for b in busy], queued, max(1, parallel))

    def coming_s(self, runs: Sequence[RunSpec], memo: dict) -> list[float | None]:
        """Predicted walls of coming runs; runs alike (arm, kind, steps, preset, estimate) are predicted
        once per ETA (a sweep of thousands of runs has a handful of such kinds)."""
        out = []
        for r in runs:
            key = (r.arm, r.is_trainer, r.params.get("steps"), r.preset, r.estimate_s)
            if key not in memo:
                memo[key] = self.eta.run_s(r, startup_s(r))
            out.append(memo[key])
        return out

    def run_estimate_s(self) -> float | None:
        """Wall seconds of a coming run: the mean of the ended runs that did not compile cold, when there
        are any (a cold start costs minutes once per node and config), else of all (None: none ended)."""
        walls = self.warm_walls or self.walls
        return sum(walls) / len(walls) if walls else None


def startup_s(run: RunSpec) -> float | None:
    """The plan's start-up figure for a trainer run (its preset's fixed cost), None for other runs."""
    from orchestrator.plan import PRESET_COST

    cost = PRESET_COST.get(run.preset) if run.is_trainer and run.preset else None
    return None if cost is None else cost[0]


def _mean_estimate(runs) -> float | None:
    """The plan's mean estimate of `runs` (None when one has none)."""
    estimates = [r.estimate_s for r in runs]
    if not estimates or None in estimates:
        return None
    return sum(estimates) / len(estimates)


def pending_blocks(plan: Plan, done: set[str] | frozenset[str]) -> list[Block]:
    """The plan's blocks with finished runs removed (blocks left empty dropped), in planned order."""
    out = []
    for b in plan.blocks:
        runs = tuple(r for r in b.runs if r.run_id not in done)
        if runs:
            out.append(replace(b, runs=runs))
    return out


class SweepDriver:
    """Runs the missing runs of `plan` on `executor`, writing results into `results_dir`."""

    def __init__(
        self,
        plan: Plan,
        results_dir: Path,
        executor: Executor,
        *,
        ctx: BlockContext | None = None,
        options: SweepOptions | None = None,
        progress: Any = None,
        decide: Callable[[Path], str | None] | None = None,
        failed: set[str] | None = None,
    ):
        """`failed`: the plan's failed and timed-out runs when the caller has read them (None: read here)."""
        self.plan, self.results_dir, self.executor = plan, Path(results_dir), executor
        self.folder = ResultsDir(self.results_dir)
        self.options = options or SweepOptions()
        self.ctx = ctx or BlockContext()
        self.progress = progress
        self.decide = decide
        self.runs = {r.run_id: r for r in plan.runs}
        done, _ = split_current_ids(self.folder.finished_run_ids(), self.runs)  # runs of other plans stay
        failed = (self.folder.retryable_run_ids() if failed is None else failed) & done
        if self.options.retry_failed:
            done -= failed
        self.recorder = SweepRecorder(plan, self.folder, failed if self.options.retry_failed else ())
        self.queue: deque[Block] = deque(pending_blocks(plan, done))
        self.inflight: dict[int, Job] = {}
        self.started_blocks: set[int] = set()
        self.lost: Counter = Counter()
        self.attempts: Counter = self.folder.attempt_counts()  # a resumed run keeps counting
        self.state = SweepState(
            planned=len(self.runs),
            skipped=len(done),
            to_run=sum(len(b.runs) for b in self.queue),
            planned_per_arm=dict(Counter(r.arm for r in plan.runs)),
            failed_kept=0 if self.options.retry_failed else len(failed),
            retrying=len(failed) if self.options.retry_failed else 0,
            queue=self.queue,
            inflight=self.inflight,
        )
        self._status_at = 0.0
        self._handlers: dict[type[Event], Callable[[Job, Any], None]] = {
            BlockStart: self._on_block_start,
            PreflightFailed: self._on_preflight_failed,
            RunStart: self._on_run_start,
            Step: self._on_step,
            AttemptEnd: self._on_attempt,
            RunEnd: self._on_run,
            CachePacked: self._on_cache,
            BlockEnd: self._on_block_end,
            BlockLost: self._on_block_lost,
            BlockCancelled: self._on_block_cancelled,
        }

    # ------------------------------------------------------------------------------------ loop

    def run(self) -> SweepState:
        """Until every block has ended (or the test decided): fill the cluster, handle events."""
        self._check_fits()
        self._emit("sweep_start")
        ended = False
        try:
            while self.queue or self.inflight:
                self._fill()
                for job, event in self.executor.wait(self.options.poll_s):
                    self._handle(job, event)
                self._say_quiet_runs()
                self._write_status()
            ended = True
        except KeyboardInterrupt:
            self._cancel()
            raise
        except OSError as e:
            # a full (or read-only) disk while storing a result: stop with one line, keep what is stored;
            # the caller's executor shutdown stops the running blocks, and a rerun resumes
            self.state.cancelled = True
            err = storage_error(e, self.results_dir)
            if err is None:
                raise
            raise err from None
        finally:
            try:
                self._write_status(force=True)
            except OSError as e:
                # status.json is advisory: report its failure only when nothing else went wrong first
                err = storage_error(e, self.results_dir) if ended else None
                if ended:
                    raise err or e from None
        self._emit("sweep_end")
        return self.state

    def _check_fits(self) -> None:
        for b in self.queue:
            if self.executor.slots(b) == 0:
                nodes = "; ".join(
                    f"{nid[:8]}: {res.get('GPU', 0):g} GPU, {res.get('CPU', 0):g} CPU"
                    for nid, res in self.executor.nodes().items()
                )
                raise UserError(
                    f"block {b.block_id} needs {b.gpus} GPU(s) and {b.cpus:g} CPU(s) on one node, but no "
                    f"node has that ({nodes or 'no nodes'}); lower resources.gpus_per_run/cpus, "
                    "use --profile cpu, or join a bigger cluster with --address"
                )

    def _limit(self, block: Block) -> int:
        if self.options.max_parallel:
            return self.options.max_parallel
        slots = self.executor.slots(block)
        if self.options.until_decided or self.options.time_limit_s is not None:
            # no block queued behind a running one: each start is decided when it can really start
            return max(1, slots)
        return max(1, slots + len(self.executor.nodes()))

    def _fill(self) -> None:
        while self.queue and self.state.decided is None and len(self.inflight) < self._limit(self.queue[0]):
            reason = self._why_not_start(self.queue[0])
            if reason is not None:
                self._defer(reason)
                return
            block = self.queue.popleft()
            self.started_blocks.add(block.block_id)
            ctx = replace(
                self.ctx,
                attempt_offsets={r.run_id: self.attempts[r.run_id] for r in block.runs},
            )
            job = self.executor.submit(block, ctx)
            self.inflight[job.job_id] = job
            if self.ctx.want_seed:
                # one node compiles first and hands its cache on; later blocks don't also pack theirs
                self.ctx = replace(self.ctx, want_seed=False)

    def _say_quiet_runs(self) -> None:
        """A line for each run silent for `quiet_s`: the sweep is alive, and where the run is."""
        quiet = self.options.quiet_s
        if not quiet:
            return
        now = self.state.clock()
        for rr in list(self.state.running.values()):
            if now - rr.heard < quiet:
                continue
            rr.heard = now
            where = "starting" if rr.step is None else f"at step {rr.step}/{rr.total}"
            why = ""
            if rr.step is None and rr.compile_cache in CACHE_WORDS:
                why = f"; node compile cache {CACHE_WORDS[rr.compile_cache]}"
            self._emit(
                "message",
                text=f"{rr.run_id} ({rr.arm}) still {where} after {format_duration(now - rr.started)}{why}",
            )

    def _block_estimate_s(self, block: Block) -> float | None:
        """Wall seconds the block will take, as the live ETA predicts its runs (`orchestrator.eta`: a
        trainer run after a cold one is its start-up less the compile, plus its steps at the measured
        rate); where that knows nothing, the runs ended so far, else the plan's estimates (None:
        unknown). (The mean wall of ended runs alone took a cold compile of 8 minutes for the next run
        of 2: on an H200 it left 4 minutes of a session idle.)"""
        predicted = self.state.coming_s(block.runs, {})
        if predicted and all(t is not None for t in predicted):
            return float(sum(predicted))
        per_run = self.state.run_estimate_s()
        if per_run is None:
            per_run = _mean_estimate(block.runs)
        return None if per_run is None else len(block.runs) * per_run

    def _why_not_start(self, block: Block) -> str | None:
        """Why --max-blocks / --time-limit keep `block` (and what follows it) for the next invocation."""
        o = self.options
        new = block.block_id not in self.started_blocks
        if o.max_blocks is not None and new and len(self.started_blocks) >= o.max_blocks:
            return f"--max-blocks {o.max_blocks} reached"
        if o.time_limit_s is not None:
            need = self._block_estimate_s(block)
            left = o.time_limit_s - (self.state.clock() - self.state.started)
            if left <= 0 or (need is not None and need > left):
                return (
                    f"--time-limit: the next block needs ~{format_duration(need)}, "
                    f"{format_duration(max(left, 0.0))} is left"
                )
        return None

    def _defer(self, reason: str) -> None:
        """Leave every queued block for the next invocation (it resumes with what is missing)."""
        left = sum(len(b.runs) for b in self.queue)
        self.queue.clear()
        self.state.deferred += left
        self.state.stop_reason = reason
        self._emit(
            "message", text=f"{reason}: {left} run(s) left for the next `ablate run`, which resumes with them"
        )

    def _cancel(self) -> None:
        """Ctrl-C: cancel every block (their process groups are killed), keep what finished meanwhile."""
        self.state.cancelled = True
        self.queue.clear()
        self._emit("cancelling")
        for job in list(self.inflight.values()):
            self.executor.cancel(job)
        deadline = time.monotonic() + self.options.cancel_grace_s
        with contextlib.suppress(KeyboardInterrupt):
            while self.inflight and time.monotonic() < deadline:
                for job, event in self.executor.wait(0.5):
                    self._handle(job, event)

    # ---------------------------------------------------------------------------------- events

    def _handle(self, job: Job, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is None:
            raise RuntimeError(f"unexpected event from a block: {event.kind!r}")
        handler(job, event)
        self._emit(event.kind, job=job, event=event)

    def _on_block_start(self, job: Job, event: BlockStart) -> None:
        job.node_id = event.node_id

    def _on_run_start(self, job: Job, event: RunStart) -> None:
        run = self.runs[event.run_id]
        self.attempts[run.run_id] = max(self.attempts[run.run_id], event.attempt)
        now = self.state.clock()
        # an empty cache means a cold compile on GPUs; a CPU run is not taken for one (its row says later)
        cold = event.compile_cache == "cold" and run.gpus > 0
        self.state.eta.start(run.run_id, run.arm, run.is_trainer, cold, now)
        self.state.running[run.run_id] = RunningRun(
            run.run_id,
            run.arm,
            event.node_id or job.node_id,
            event.attempt,
            now,
            compile_cache=event.compile_cache,
            heard=now,
        )

    def _on_step(self, job: Job, event: Step) -> None:
        rr = self.state.running.get(event.run_id)
        if rr is not None:
            rr.step, rr.total, rr.heard = event.step, event.total, self.state.clock()
            self.state.eta.step(event.run_id, rr.heard, event.step, event.total, event.train_time_ms)
            if event.val_loss is not None:
                rr.val_loss, rr.val_step = event.val_loss, event.step

    def _on_attempt(self, job: Job, event: AttemptEnd) -> None:
        run = self.recorder.attempt(event)
        self.state.running.pop(run.run_id, None)
        self.state.eta.forget(run.run_id)

    def _on_run(self, job: Job, event: RunEnd) -> None:
        run = self.recorder.outcome(event)
        job.reported.add(run.run_id)
        self.state.running.pop(run.run_id, None)
        self.state.record(event.row, run)
        self._write_status(force=True)

    def _on_cache(self, job: Job, event: CachePacked) -> None:
        self.ctx = with_seed(self.ctx, event.seed)

    def _on_block_end(self, job: Job, event: BlockEnd) -> None:
        self.inflight.pop(job.job_id, None)
        if any(r.run_id not in job.reported for r in job.block.runs):
            self._requeue(job, "block ended before all its runs reported")
        elif self.options.until_decided and self.decide is not None and self.state.decided is None:
            self.state.decided = self.decide(self.results_dir)
            if self.state.decided is not None:
                self.queue.clear()

    def _on_block_lost(self, job: Job, event: BlockLost) -> None:
        self.inflight.pop(job.job_id, None)
        self._requeue(job, event.error)

    def _on_preflight_failed(self, job: Job, event: PreflightFailed) -> None:
        self._emit("message", text=f"block {job.block.block_id}: {event.error}")

    def _on_block_cancelled(self, job: Job, event: BlockCancelled) -> None:
        self.inflight.pop(job.job_id, None)
        for run in job.block.runs:
            self.state.running.pop(run.run_id, None)
            self.state.eta.forget(run.run_id)

    def _requeue(self, job: Job, error: str) -> None:
        """Re-run what a lost block had not finished, first in line (elsewhere, if its node is gone)."""
        left = tuple(r for r in job.block.runs if r.run_id not in job.reported)
        for r in left:
            self.state.running.pop(r.run_id, None)
            self.state.eta.forget(r.run_id)
        if not left or self.state.cancelled:
            return
        self.lost[job.block.block_id] += 1
        if self.lost[job.block.block_id] > self.options.block_retries:
            self._emit(
                "message", text=f"block {job.block.block_id} lost too often ({error}); giving up on it"
            )
            for r in left:
                self.recorder.given_up(r, max(1, self.attempts[r.run_id]), error)
                self.state.done["failed"] += 1
            return
        self._emit(
            "message", text=f"block {job.block.block_id} lost ({error}); re-running {len(left)} run(s)"
        )
        self.queue.appendleft(replace(job.block, runs=left))

    # ------------------------------------------------------------------------------ reporting

    def _emit(self, kind: str, **kw) -> None:
        if self.progress is not None:
            self.progress.update(kind, self.state, **kw)

    def _write_status(self, force: bool = False) -> None:
        """Rewrite `status.json` (atomically, at most once a second unless forced) for `ablate status`."""
        now = time.monotonic()
        if not force and now - self._status_at < 1.0:
            return
        self._status_at = now
        self.recorder.status(self.state, ended=not self.queue and not self.inflight)
