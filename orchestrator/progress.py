"""Progress of a sweep: a rich live view on a terminal, one plain line per event otherwise (CI logs).

Both take `update(kind, state, job=None, event=None, text=None)` calls from the driver, where
`state` is the driver's `SweepState` (done/total, running runs per node, ETA) and `event` the typed
event of that kind (`orchestrator.events`; a dict of its fields is read as that event too).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from orchestrator.events import coerce


def format_duration(s: float | None) -> str:
    """Seconds for progress lines: 42 -> '0m42s', 3172 -> '52m52s', 5400 -> '1h30m', None -> '?'."""
    if s is None:
        return "?"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _short(node_id: str | None) -> str:
    return (node_id or "?")[:8]


def _run_line(event) -> str:
    row = event.row
    loss = row.get("final_val_loss")
    loss_txt = f" val_loss {loss:.4f}" if isinstance(loss, float) else ""
    wall = row.get("wall_s")
    wall_txt = f" in {wall:.1f}s" if isinstance(wall, float) else ""
    startup = row.get("startup_s")
    if isinstance(startup, float) and wall_txt:
        wall_txt += f" (start-up {startup:.1f}s)"
    line = f"{row['run_id']} ({row['arm']}) {row['status']}{loss_txt}{wall_txt} (attempt {row['attempt']})"
    reason = reason_line(row)
    return f"{line}: {reason}" if reason else line


def reason_line(row: dict) -> str | None:
    """Why a run did not end ok, in one line: the first line of its `error` (None for an ok run)."""
    if row.get("status") == "ok" or not isinstance(row.get("error"), str):
        return None
    first = row["error"].strip().split("\n", 1)[0].strip()
    return first or None


def start_line(to_run: int, done: int, planned: int) -> str:
    """The first line of `ablate run`: what runs now, of what was planned."""
    return f"{to_run} run(s) to run, {done} already done of {planned} planned"


def failed_note(kept: int, retrying: int) -> str:
    """What the start line adds about runs that failed before: kept as failed, or run again."""
    if retrying:
        return f" ({retrying} of them failed before and run again: --retry-failed)"
    if kept:
        return f" ({kept} failed: --retry-failed runs them again)"
    return ""


CACHE_WORDS = {"cold": "empty", "warm": "warm", "seeded": "seeded"}
"""A node's compile cache as a run starts, in words ("empty", not "cold": a CPU run compiles nothing)."""


class PlainProgress:
    """One line per event that matters: starts, validation steps, ends, losses, messages."""

    def __init__(self, out: TextIO | None = None, parallel: int = 1):
        self.out = out or sys.stdout
        self.parallel = parallel

    def _print(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=self.out, flush=True)

    def update(self, kind: str, state: Any, job=None, event: Any = None, text: str | None = None) -> None:
        line = self._line(kind, state, job, coerce(kind, event), text)
        if line:
            self._print(line)

    def _line(self, kind, state, job, event, text) -> str | None:
        done = f"[{state.finished}/{state.to_run}]"
        if kind == "sweep_start":
            line = start_line(state.to_run, state.skipped, state.planned)
            line += failed_note(state.failed_kept, state.retrying)
            eta = state.eta_s(self.parallel) if state.to_run else None
            if eta is not None:  # before any run ended: the plan's estimate
                line += f"; about {format_duration(eta)} by the plan's estimate"
            return line
        if kind == "run_start":
            began = event.compile_cache
            cache = f", compile cache {CACHE_WORDS[began]}" if began in CACHE_WORDS else ""
            if began == "seeded":
                cache += " from another node"
            return f"start {event.run_id} on node {_short(event.node_id)} (attempt {event.attempt}{cache})"
        if kind == "step" and event.val_loss is not None:
            line = f"{event.run_id} step {event.step}/{event.total} val_loss {event.val_loss:.4f}"
            return f"{line}; ETA {format_duration(state.eta_s(self.parallel))}"
        if kind == "run":
            return f"{done} {_run_line(event)}; ETA {format_duration(state.eta_s(self.parallel))}"
        if kind == "attempt":
            return f"{_run_line(event)}; will retry"
        if kind in ("block_lost", "block_cancelled"):
            return f"block {job.block.block_id} {kind.split('_')[1]}: {getattr(event, 'error', '')}".rstrip(
                ": "
            )
        if kind == "message":
            return text
        if kind == "cancelling":
            return "cancelling: stopping running blocks, keeping finished results"
        if kind == "sweep_end":
            return self._summary(state)
        return None

    @staticmethod
    def _summary(state) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(state.done.items())) or "nothing run"
        tail = f"; stopped early: {state.decided}" if state.decided else ""
        if state.deferred:
            tail += f"; {state.deferred} run(s) left for the next `ablate run` ({state.stop_reason})"
        return f"sweep done: {counts} ({state.skipped} were already done){tail}"

    def close(self) -> None:
        pass


class LiveProgress(PlainProgress):
    """A rich live table: one row per running run (node, step, last val loss), done/total and ETA."""

    def __init__(self, parallel: int = 1, console=None):
        from rich.console import Console
        from rich.live import Live

        self.console = console or Console()
        super().__init__(out=self.console.file, parallel=parallel)
        self._view: tuple | None = None
        self.live = Live(console=self.console, refresh_per_second=4, get_renderable=self._render)
        self.live.start()

    def _print(self, text: str) -> None:
        from rich.text import Text

        # styled as a Text, never as markup: a run's text may hold brackets, and markup=False would print
        # the tags themselves
        self.console.print(Text.assemble((time.strftime("%H:%M:%S"), "dim"), " ", text), highlight=False)

    def update(self, kind: str, state: Any, job=None, event: Any = None, text: str | None = None) -> None:
        self._view = self._snapshot(state, fresh=kind in ("run", "sweep_start", "sweep_end"))
        if kind in ("run", "attempt", "block_lost", "message", "sweep_start", "sweep_end", "cancelling"):
            super().update(kind, state, job, event, text)

    def _snapshot(self, st, fresh: bool) -> tuple:
        """What the table shows, taken in the driver's thread at each event (the view's refresh thread
        renders it and never reads the driver's state while the driver changes it). The ETA is worked out
        again at most once a second (a step event comes about once a second per running run), and at
        every run's end."""
        now = time.monotonic()
        if fresh or self._view is None or now - self._view[2] >= 1.0:
            eta, at = st.eta_s(self.parallel), now
        else:
            eta, at = self._view[1], self._view[2]
        head = f"{st.finished}/{st.to_run} runs done · {st.skipped} skipped · "
        tail = f" · {st.deferred} left for the next run" if st.deferred else ""
        rows = []
        for r in list(st.running.values()):
            if r.step is not None:
                step = f"{r.step}/{r.total}"
            else:
                cache = CACHE_WORDS.get(r.compile_cache or "")
                step = f"starting (cache {cache})" if cache else "starting"
            loss = "-" if r.val_loss is None else f"{r.val_loss:.4f} (step {r.val_step})"
            rows.append((_short(r.node_id), r.run_id, r.arm, str(r.attempt), step, loss, r.started))
        return head, eta, at, tail, rows

    def _render(self):
        from rich.table import Table

        if self._view is None:
            return Table(title="ablate")
        head, eta, at, tail, rows = self._view
        left = None if eta is None else max(0.0, eta - (time.monotonic() - at))  # counts down between events
        table = Table(title=f"{head}ETA {format_duration(left)}{tail}", expand=False)
        for col in ("node", "run", "arm", "attempt", "step", "last val loss", "elapsed"):
            table.add_column(col)
        for *cells, started in rows:
            table.add_row(*cells, format_duration(time.monotonic() - started))
        return table

    def close(self) -> None:
        self.live.stop()


def make_progress(parallel: int = 1, plain: bool | None = None):
    """Live view on a terminal, plain lines otherwise (or when `plain` is forced)."""
    if plain is None:
        plain = not sys.stdout.isatty()
    return PlainProgress(parallel=parallel) if plain else LiveProgress(parallel=parallel)
