"""Parse modded-nanogpt-format training logs: upstream record logs, stdout captures and our trainer's logs.

A log *file* (upstream's or our trainer's) starts with a header: the training script's source (upstream)
or the resolved config (ours), a line of 100 `=`, versions and `nvidia-smi`, another line of 100 `=`.
Upstream's source holds the very f-strings that print the step lines, so a parser that matched anywhere
would read code as data; with a header we therefore read only what follows it. A stdout capture has no
header; there, and after a header, only *whole* lines that match count, so garbage lines, a line cut
short by a crash and CRLF endings are harmless.
"""

from __future__ import annotations

import glob
import math
import re
from dataclasses import dataclass
from pathlib import Path

from analysis import InputError

SEPARATOR = "=" * 100
LOG_SUFFIXES = (".txt", ".log")

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf|infinity)"
_STEP_RE = re.compile(
    rf"^step:(\d+)/(\d+)(?: val_loss:({_NUM}))? train_time:({_NUM})ms step_avg:({_NUM})ms[ \t]*$",
    re.MULTILINE | re.IGNORECASE,
)
_MEM_RE = re.compile(r"^peak memory allocated: (\d+) MiB reserved: (\d+) MiB[ \t]*$", re.MULTILINE)
_DIVERGED_RE = re.compile(r"^diverged: .*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step line. `val_loss` is None on non-validation steps; times in milliseconds."""

    step: int
    total_steps: int
    val_loss: float | None
    train_time_ms: float
    step_avg_ms: float


@dataclass(frozen=True)
class ParsedLog:
    """What a log says about its run.

    status: `ok` (reached total_steps with a final val line) · `truncated` (stopped early) ·
    `diverged` (a non-finite loss, or the trainer's `diverged:` line) · `empty` (no text) ·
    `garbled` (text, but not one step line). `final_val_loss`/`train_time_ms`/`step_avg_ms` come from
    the last validation line when the run is ok; otherwise from the last line read (loss None).
    """

    status: str
    steps: tuple[StepRecord, ...]
    final_val_loss: float | None
    train_time_ms: float | None
    step_avg_ms: float | None
    last_step: int | None
    total_steps: int | None
    peak_mem_mib: float | None
    reserved_mem_mib: float | None
    has_header: bool
    message: str


def _record(m: re.Match) -> StepRecord:
    val = m.group(3)
    return StepRecord(
        step=int(m.group(1)),
        total_steps=int(m.group(2)),
        val_loss=None if val is None else float(val),
        train_time_ms=float(m.group(4)),
        step_avg_ms=float(m.group(5)),
    )


def parse_step_line(line: str) -> StepRecord | None:
    """The step record of one whole line (trailing CR/LF ignored), or None if the line is not one."""
    m = _STEP_RE.fullmatch(line.rstrip("\r\n"))
    return _record(m) if m else None


def split_header(text: str) -> tuple[bool, str]:
    """(has_header, body): the body is what follows the second line of 100 `=` (or the only one)."""
    if SEPARATOR not in text:
        return False, text
    lines = text.split("\n")
    seps = [i for i, line in enumerate(lines) if line.rstrip("\r") == SEPARATOR]
    if not seps:
        return False, text
    start = seps[1] if len(seps) >= 2 else seps[0]
    return True, "\n".join(lines[start + 1 :])


def parse_log_text(text: str) -> ParsedLog:
    """Parse a whole log (file contents or a stdout capture); never raises on bad content."""
    has_header, body = split_header(text.replace("\r\n", "\n").replace("\r", "\n"))
    steps = tuple(_record(m) for m in _STEP_RE.finditer(body))
    mems = _MEM_RE.findall(body)  # the last memory line wins (a restarted run prints more than one)
    mem = mems[-1] if mems else None
    peak = float(mem[0]) if mem else None
    reserved = float(mem[1]) if mem else None
    return _classify(steps, has_header, body, peak, reserved)


def _classify(steps, has_header, body, peak, reserved) -> ParsedLog:
    def out(status, message, final=None, last=None):
        return ParsedLog(
            status=status,
            steps=steps,
            final_val_loss=final,
            train_time_ms=last.train_time_ms if last else None,
            step_avg_ms=last.step_avg_ms if last else None,
            last_step=steps[-1].step if steps else None,
            total_steps=steps[-1].total_steps if steps else None,
            peak_mem_mib=peak,
            reserved_mem_mib=reserved,
            has_header=has_header,
            message=message,
        )

    if not steps:
        if not body.strip():
            return out("empty", "no log lines" + (" after the header" if has_header else ""))
        return out(
            "garbled", "no step lines (expected e.g. 'step:17/1705 train_time:1620ms step_avg:95.29ms')"
        )
    bad = next((s for s in steps if s.val_loss is not None and not math.isfinite(s.val_loss)), None)
    if bad is not None:
        return out("diverged", f"non-finite val_loss at step {bad.step}", last=bad)
    div = _DIVERGED_RE.search(body)
    if div is not None:
        return out("diverged", div.group(0).strip(), last=steps[-1])
    last = steps[-1]
    final_val = next((s for s in reversed(steps) if s.val_loss is not None), None)
    if last.step >= last.total_steps and final_val is not None and final_val.step == last.step:
        return out("ok", "", final=final_val.val_loss, last=final_val)
    why = "no final val line" if last.step >= last.total_steps else f"stopped at step {last.step}"
    return out("truncated", f"{why} of {last.total_steps}", last=last)


def parse_log_file(path: str | Path) -> ParsedLog:
    """Parse one log file (undecodable bytes replaced, so a damaged file still parses)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise InputError(f"{p}: no such log file") from None
    except IsADirectoryError:
        raise InputError(f"{p}: is a folder; give a log file") from None
    return parse_log_text(text)


def match_logs(dir_or_glob: str | Path, *, exclude_prefix=None, include_prefix=None) -> list[Path]:
    """Log paths named by a folder (its *.txt and *.log files) or a glob pattern, sorted by name."""
    spec = str(dir_or_glob)
    p = Path(spec)
    if p.is_dir():
        paths = [q for q in p.iterdir() if q.is_file() and q.suffix in LOG_SUFFIXES]
    elif glob.has_magic(spec):
        paths = [Path(q) for q in glob.glob(spec) if Path(q).is_file()]
    elif p.is_file():
        paths = [p]
    else:
        raise InputError(f"{spec}: no such folder or file (give a folder of logs, a log file or a glob)")
    if include_prefix:
        paths = [q for q in paths if q.name.startswith(include_prefix)]
    if exclude_prefix:
        paths = [q for q in paths if not q.name.startswith(exclude_prefix)]
    if not paths:
        raise InputError(f"{spec}: no log files matched (logs are *.txt or *.log; check the prefixes)")
    return sorted(paths)


def collect_logs(
    dir_or_glob: str | Path, *, exclude_prefix: str | None = None, include_prefix: str | None = None
) -> list[tuple[Path, ParsedLog]]:
    """Parse every log named by a folder or glob; raises InputError when nothing matches."""
    paths = match_logs(dir_or_glob, exclude_prefix=exclude_prefix, include_prefix=include_prefix)
    return [(q, parse_log_file(q)) for q in paths]
