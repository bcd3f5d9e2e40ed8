"""The trainer's output contract: upstream's step lines, the log file header, the metrics jsonl.

The line formats are modded-nanogpt's own (``analysis.logs`` parses them, and upstream record logs
too), so they must not change: see docs/contracts.md "Trainer command line".
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import IO, Any

SEPARATOR = "=" * 100


def step_line(step: int, total: int, train_time_ms: float) -> str:
    """``step:17/1705 train_time:1620ms step_avg:95.29ms`` (after training step ``step``)."""
    return (
        f"step:{step}/{total} train_time:{train_time_ms:.0f}ms step_avg:{train_time_ms / max(step, 1):.2f}ms"
    )


def val_line(step: int, total: int, val_loss: float, train_time_ms: float) -> str:
    """``step:1705/1705 val_loss:3.2806 train_time:163078ms step_avg:95.65ms``."""
    return (
        f"step:{step}/{total} val_loss:{val_loss:.4f} train_time:{train_time_ms:.0f}ms "
        f"step_avg:{train_time_ms / max(step, 1):.2f}ms"
    )


def memory_line(allocated_mib: int, reserved_mib: int) -> str:
    """``peak memory allocated: 34489 MiB reserved: 48516 MiB``."""
    return f"peak memory allocated: {allocated_mib} MiB reserved: {reserved_mib} MiB"


def diverged_line(step: int) -> str:
    """The last stdout line of a run stopped by a non-finite train loss at training step ``step``."""
    return f"diverged: non-finite train loss at step {step}"


def header_lines(config: dict[str, Any], versions: list[str]) -> list[str]:
    """Log file header: one JSON object per knob (sorted), ``=`` * 100, version lines, ``=`` * 100.

    Like upstream's header (script source, separator, versions, separator) the parser skips
    everything up to the second separator, so knob values can never be mistaken for step lines.
    """
    knobs = [json.dumps({name: config[name]}, sort_keys=True) for name in sorted(config)]
    return [*knobs, SEPARATOR, *versions, SEPARATOR]


def _json_safe(value: Any) -> Any:
    """JSON has no NaN/Infinity: non-finite floats become null (their meaning is in ``status``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


class RunLog:
    """Rank 0's sinks: stdout, ``DIR/ID.txt`` and ``DIR/ID.metrics.jsonl``; every write is flushed.

    With ``log_dir`` or ``run_id`` None only stdout is written. Ranks other than 0 pass
    ``enabled=False`` and every method is a no-op, so the loop needs no rank checks.
    """

    def __init__(self, log_dir: Path | None, run_id: str | None, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._text: IO[str] | None = None
        self._metrics: IO[str] | None = None
        if enabled and log_dir is not None and run_id is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            self._text = open(log_dir / f"{run_id}.txt", "w", encoding="utf-8")  # noqa: SIM115
            self._metrics = open(log_dir / f"{run_id}.metrics.jsonl", "w", encoding="utf-8")  # noqa: SIM115

    def header(self, config: dict[str, Any], versions: list[str]) -> None:
        """Write the header to the log file only (upstream's stdout has no header)."""
        if self._text is not None:
            self._text.write("\n".join(header_lines(config, versions)) + "\n")
            self._text.flush()

    def line(self, text: str) -> None:
        """A line on stdout and in the log file."""
        if not self.enabled:
            return
        print(text, flush=True)
        if self._text is not None:
            self._text.write(text + "\n")
            self._text.flush()

    def event(self, kind: str, **fields: Any) -> None:
        """One metrics record ``{"event": kind, **fields}`` on its own line."""
        if self._metrics is not None:
            self._metrics.write(json.dumps(_json_safe({"event": kind, **fields})) + "\n")
            self._metrics.flush()

    def close(self) -> None:
        for f in (self._text, self._metrics):
            if f is not None:
                f.close()
        self._text = self._metrics = None


def stderr_line(text: str) -> None:
    """A one-line message on stderr (usage errors)."""
    print(text, file=sys.stderr, flush=True)
