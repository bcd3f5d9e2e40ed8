"""What the driver writes into its results folder, always through the folder's owner (`ResultsDir`).

A run's outcome (its log, step table, failed attempts and final row), a run the driver gave up on
(its block lost too often), and `status.json` (what `ablate status` shows while a sweep runs). The
driver decides when; this module decides what each file holds.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from analysis.resultsdir import RETRYABLE_STATUSES, ResultsDir
from orchestrator.events import AttemptEnd, RunEnd
from orchestrator.rows import complete_row, run_row
from orchestrator.runspec import Plan, RunSpec


class SweepRecorder:
    """Stores the events of `plan`'s runs in `folder`. `replaceable`: the run ids whose stored failed or
    timed-out outcome this sweep runs again (`--retry-failed`); their new outcome replaces the old
    file (`ResultsDir.replace_run`). Any other run file is immutable."""

    def __init__(self, plan: Plan, folder: ResultsDir, replaceable: set[str] | frozenset[str] = frozenset()):
        self.plan, self.folder = plan, folder
        self.runs = {r.run_id: r for r in plan.runs}
        self.replaceable = frozenset(replaceable)

    def attempt(self, event: AttemptEnd) -> RunSpec:
        """A failed attempt that will be retried: its log and row under attempts/."""
        run = self.runs[event.row["run_id"]]
        self.folder.write_text(self.folder.attempt_log_file(run.run_id, event.row["attempt"]), event.log)
        self.folder.write_attempt(complete_row(event.row, run), self.plan.knob_types)
        return run

    def outcome(self, event: RunEnd) -> RunSpec:
        """A run's final outcome: a failed or timed-out last attempt joins the others under attempts/
        (row and log), then the log, the steps and last the run file (whose presence means the run is
        done)."""
        run = self.runs[event.row["run_id"]]
        row = complete_row(event.row, run)
        if row["status"] in RETRYABLE_STATUSES:  # kept whole: a retry may replace logs/ and runs/
            self.folder.write_text(self.folder.attempt_log_file(run.run_id, row["attempt"]), event.log)
            self.folder.write_attempt(row, self.plan.knob_types)
        self.folder.write_text(self.folder.log_file(run.run_id), event.log)
        self.folder.write_steps(run.run_id, event.steps)
        self._write_run(row)
        return run

    def given_up(self, run: RunSpec, attempt: int, error: str) -> None:
        """A run whose block was lost too often: a failed row saying why (no log, no steps)."""
        row = run_row(run, attempt=attempt, status="failed", error=error)
        self._write_run(complete_row(row, run))

    def _write_run(self, row: dict) -> None:
        """The run file last: its presence (or, for a retried run, its new content) means done."""
        if row["run_id"] in self.replaceable:
            self.folder.replace_run(row, self.plan.knob_types)
        else:
            self.folder.write_run(row, self.plan.knob_types)

    def status(self, state: Any, *, ended: bool) -> None:
        """Rewrite status.json from the driver's `SweepState`."""
        self.folder.write_status(status_document(self.plan, state, ended))


def state_word(st: Any, ended: bool) -> str:
    """status.json's state: cancelled, running, partial (runs left for the next invocation), finished."""
    if st.cancelled:
        return "cancelled"
    if not ended:
        return "running"
    return "partial" if st.deferred else "finished"


def status_document(plan: Plan, st: Any, ended: bool) -> dict[str, Any]:
    """status.json: who drives the sweep, its state, counts, and each running run (docs/contracts.md)."""
    now = time.monotonic()
    return {
        "sweep": plan.name,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "state": state_word(st, ended),
        "deferred": st.deferred,
        "stop_reason": st.stop_reason,
        "planned": st.planned,
        "planned_per_arm": st.planned_per_arm,
        "skipped": st.skipped,
        "done": dict(st.done),
        "decided": st.decided,
        "running": [
            {k: v for k, v in vars(r).items() if k != "heard"}
            | {"started": None, "elapsed_s": round(now - r.started, 1)}
            for r in st.running.values()
        ],
    }
