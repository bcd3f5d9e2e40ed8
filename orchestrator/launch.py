"""One run as a subprocess: command resolution, environment, process group, tee, timeout, kill.

The worker side of a run. `run_attempt` is a generator: it yields progress events (`events.Step`)
while the process runs and returns an `AttemptResult` (via `StopIteration.value`) when it has exited.
It is fork-and-wait in one thread, so the parent-death signal (which fires when the *thread*
that forked dies) only fires when the worker itself dies; a small watchdog process kills the
whole process group as well, since the parent-death signal reaches only the direct child
(torchrun's own workers are grandchildren). The watchdog is detached from the worker (not its
child): a Ray worker that exits on its own (its raylet died) SIGKILLs its direct children first.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from orchestrator.events import Step
from orchestrator.rows import run_row
from orchestrator.runspec import RunSpec

PR_SET_PDEATHSIG = 1
DIVERGED_EXIT_CODE = 3
STEP_EVENT_EVERY_S = 1.0
"""Train-step progress events are throttled to one per run per this many seconds (val lines always pass)."""
ERROR_TAIL_LINES = 20

# The watchdog: a separate python process, started before the job, that detaches itself (forks, and the
# launcher exits), so it is not among the worker's children that Ray kills when the worker exits. It reads
# a pipe from the worker: the job's process group id when the job has started, "done" when the attempt is
# over. End of file without "done" means the worker died, and the job's whole process group is killed.
WATCHDOG_SOURCE = """
import os, signal, sys
if os.fork():
    os._exit(0)
data = sys.stdin.buffer.read()
pgid = data.split(b"\\n")[0]
if not data.endswith(b"done") and pgid.isdigit():
    try:
        os.killpg(int(pgid), signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
"""


@dataclass(frozen=True)
class NodeInfo:
    """Where a block runs: the Ray node id (or a fake one) and the host's name."""

    node_id: str
    hostname: str = field(default_factory=socket.gethostname)


@dataclass
class AttemptResult:
    """What one attempt of a run left behind: its row (run-level keys), steps and log text."""

    row: dict[str, Any]
    steps: list[dict[str, Any]]
    log_text: str

    @property
    def status(self) -> str:
        return self.row["status"]


def resolve_command(command: Sequence[str]) -> list[str]:
    """`python`/`python3` → this interpreter; `torchrun` → `python -m torch.distributed.run`."""
    if not command:
        raise ValueError("empty command: a run needs an argument list such as [python, -m, trainer]")
    head, rest = command[0], list(command[1:])
    if head in ("python", "python3"):
        return [sys.executable, *rest]
    if head == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", *rest]
    return [head, *rest]


def full_command(run: RunSpec, log_dir: Path) -> list[str]:
    """The argument list as executed: trainer runs get --seed/--run-id/--log-dir appended."""
    cmd = resolve_command(run.command)
    if run.is_trainer:
        cmd += ["--seed", str(run.seed), "--run-id", run.run_id, "--log-dir", str(log_dir)]
    return cmd


def child_env(
    run: RunSpec, gpu_ids: Sequence[str], extra_env: dict[str, str] | None = None
) -> dict[str, str]:
    """The job's environment: ours, the assigned GPUs, unbuffered output, compile caches, the spec's env."""
    env = dict(os.environ)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpu_ids)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra_env or {})
    env.update(run.env)
    return env


def _set_parent_death_signal() -> None:
    """In the child, before exec: die with SIGKILL when the forking thread's process dies (Linux)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def start_process(cmd: list[str], env: dict[str, str], cwd: str | None) -> subprocess.Popen:
    """Start the job in its own session (its own process group), stdout+stderr merged into one pipe."""
    return subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_set_parent_death_signal,
        bufsize=0,
    )


def start_watchdog() -> subprocess.Popen:
    """A tiny detached process that SIGKILLs the job's process group (`watch`) if this process dies first
    (even by SIGKILL, even after Ray killed this process's children); `stop_watchdog` ends it."""
    launcher = subprocess.Popen(
        [sys.executable, "-S", "-c", WATCHDOG_SOURCE],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    launcher.wait()  # it forks the watchdog and exits at once; the watchdog keeps the pipe's read end
    return launcher


def watch(watchdog: subprocess.Popen, pgid: int) -> None:
    """Give the watchdog the job's process group."""
    watchdog.stdin.write(f"{pgid}\n".encode())
    watchdog.stdin.flush()


def stop_watchdog(watchdog: subprocess.Popen) -> None:
    """Tell the watchdog the job's group is dealt with: it exits without killing anything."""
    with contextlib.suppress(OSError):  # already gone: nothing to stop
        watchdog.stdin.write(b"done")
    with contextlib.suppress(OSError):
        watchdog.stdin.close()


def kill_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the job's whole process group, wait up to `grace_s`, then SIGKILL it."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait_s)
            if sig == signal.SIGTERM:
                # the leader is gone; make sure nothing of its group survives it
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            return


def _pump(stream, lines: queue.Queue, tee) -> None:
    """Reader thread: copy the job's output to the tee file and hand whole lines to the runner."""
    for raw in iter(stream.readline, b""):
        tee.write(raw)
        tee.flush()
        lines.put(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
    lines.put(None)


def _step_event(run_id: str, line: str, last_emit: list[float]) -> Step | None:
    """A progress event for a step line (val lines always; train lines at most once per second)."""
    from analysis.logs import parse_step_line

    rec = parse_step_line(line)
    if rec is None:
        return None
    now = time.monotonic()
    if rec.val_loss is None and rec.step != rec.total_steps and now - last_emit[0] < STEP_EVENT_EVERY_S:
        return None
    last_emit[0] = now
    return Step(run_id, rec.step, rec.total_steps, rec.val_loss, rec.train_time_ms)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class _Attempt:
    """One attempt as it runs: what its result is built from when the process has exited."""

    run: RunSpec
    attempt: int
    node: NodeInfo
    gpu_ids: Sequence[str]
    cmd: list[str]
    tee_path: Path
    metrics_path: Path
    started: datetime = field(default_factory=utc_now)
    t0: float = field(default_factory=time.monotonic)


def run_attempt(
    run: RunSpec,
    *,
    attempt: int,
    scratch_dir: Path,
    node: NodeInfo,
    gpu_ids: Sequence[str] = (),
    extra_env: dict[str, str] | None = None,
    grace_s: float = 10.0,
) -> Generator[dict, None, AttemptResult]:
    """Run one attempt of `run`; yields step events; returns its AttemptResult.

    `scratch_dir` is node-local: the tee (`<run_id>.<attempt>.out`) and the trainer's --log-dir live
    there; the log text travels back in the result so the driver, which owns the results folder,
    writes it. A GeneratorExit or KeyboardInterrupt (cancel) kills the process group and re-raises.
    """
    scratch_dir.mkdir(parents=True, exist_ok=True)
    cmd = full_command(run, scratch_dir)
    tee_path = scratch_dir / f"{run.run_id}.{attempt}.out"
    metrics_path = scratch_dir / f"{run.run_id}.metrics.jsonl"
    metrics_path.unlink(missing_ok=True)
    att = _Attempt(run, attempt, node, gpu_ids, cmd, tee_path, metrics_path)
    t0 = att.t0
    timed_out, proc, reader = False, None, None
    # the watchdog first, the job second: whenever the worker dies, someone kills the job's group
    watchdog = start_watchdog()
    try:
        with open(tee_path, "wb") as tee:
            try:
                proc = start_process(cmd, child_env(run, gpu_ids, extra_env), run.cwd)
            except OSError as e:
                tee.write(f"ablate: cannot start {cmd[0]!r}: {e}\n".encode())
                tee.flush()
                return _finish(att, exit_code=None, timed_out=False)
            watch(watchdog, proc.pid)
            lines: queue.Queue = queue.Queue()
            reader = threading.Thread(target=_pump, args=(proc.stdout, lines, tee), daemon=True)
            reader.start()
            last_emit, exited_at = [0.0], None
            while True:
                if not timed_out and run.timeout_s is not None and time.monotonic() - t0 > run.timeout_s:
                    timed_out = True
                    kill_group(proc, grace_s)
                try:
                    line = lines.get(timeout=0.2)
                except queue.Empty:
                    if proc.poll() is not None:
                        # the leader exited but something of its group still holds the pipe (and maybe a GPU)
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(proc.pid, signal.SIGKILL)
                        exited_at = exited_at or time.monotonic()
                        if time.monotonic() - exited_at > 5.0:
                            break
                    continue
                if line is None:
                    break
                event = _step_event(run.run_id, line, last_emit)
                if event is not None:
                    yield event
            proc.wait()
    finally:
        if proc is not None:
            if proc.poll() is None:
                kill_group(proc, grace_s=min(grace_s, 5.0))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group outlived its leader
            if reader is not None:
                reader.join(timeout=5.0)
            proc.stdout.close()
        stop_watchdog(watchdog)
    return _finish(att, exit_code=None if timed_out else proc.returncode, timed_out=timed_out)


def read_metrics(path: Path) -> list[dict]:
    """The trainer's metrics jsonl (one event per line); a torn last line is skipped."""
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            events.append(json.loads(line))
    return events


def steps_table(run_id: str, parsed, metrics: list[dict]) -> list[dict]:
    """Step rows: val loss and train time from the log, train loss from the metrics file."""
    rows: dict[int, dict] = {}
    for ev in metrics:
        if ev.get("event") == "step":
            rows[ev["step"]] = {
                "run_id": run_id,
                "step": int(ev["step"]),
                "val_loss": None,
                "train_loss": ev.get("train_loss"),
                "train_time_ms": ev.get("train_time_ms"),
            }
    for rec in parsed.steps:
        row = rows.setdefault(
            rec.step,
            {"run_id": run_id, "step": rec.step, "val_loss": None, "train_loss": None, "train_time_ms": None},
        )
        if rec.val_loss is not None:
            row["val_loss"] = rec.val_loss
        row["train_time_ms"] = rec.train_time_ms
    return [rows[k] for k in sorted(rows)]


def classify(exit_code: int | None, timed_out: bool, parsed, metrics: list[dict]) -> str:
    """ok · diverged (exit 3 or a non-finite loss; never retried) · timeout · failed."""
    if timed_out:
        return "timeout"
    losses = [ev.get("train_loss") for ev in metrics if ev.get("event") == "step"]
    non_finite = any(isinstance(x, float) and not math.isfinite(x) for x in losses)
    if exit_code == DIVERGED_EXIT_CODE or parsed.status == "diverged" or non_finite:
        return "diverged"
    if exit_code == 0 and parsed.status in ("ok", "empty"):
        return "ok"
    return "failed"


_RANK_PREFIX = re.compile(r"^\[default\d+\]:")
_ERROR_LINE = re.compile(
    r"^(?:[A-Za-z_][\w.]*(?:Error|Exception|Interrupt)\b(?<!ChildFailedError)|.*\berror: |.*can't open file)"
)
_NOT_A_REASON = re.compile(r"^(?:step:\d|peak memory|Traceback|File \"|[\W_]*$)")
REASON_MAX_CHARS = 300


def failure_reason(text: str) -> str | None:
    """The line of a failed run's output that says why: the last exception or `error:` line (a
    `torchrun --tee` rank prefix dropped; torchrun's own ChildFailedError wrapper skipped), else the
    last line that is no step line, traceback frame or rule; None for no output."""
    lines = [_RANK_PREFIX.sub("", ln).strip() for ln in text.splitlines()[-200:]]
    lines = [ln for ln in lines if ln]
    found = next((ln for ln in reversed(lines) if _ERROR_LINE.match(ln)), None)
    if found is None:
        found = next((ln for ln in reversed(lines) if not _NOT_A_REASON.match(ln)), None)
    return None if found is None else found[:REASON_MAX_CHARS]


def error_tail(
    text: str, status: str, exit_code: int | None, parsed, timeout_s: float | None = None
) -> str | None:
    """The `error` column of a run that did not end ok, saying only what its status does not. Its first
    line says why in one line (the exit code or the time limit, then the output's reason line, or the
    log parser's verdict when the output has none); then the parser's verdict unless the first line
    holds it, then the output's last lines."""
    if status == "ok":
        return None
    if exit_code is not None:
        head = f"exit code {exit_code}"
    else:  # no exit code: it timed out, or never started (its output says so)
        head = f"timed out after {timeout_s:g} s" if status == "timeout" and timeout_s else None
    verdict = f"log: {parsed.status}" + (f" ({parsed.message})" if parsed.message else "")
    reason = failure_reason(text) if status != "timeout" else None
    if reason:
        lines = [f"{head}: {reason}" if head else reason, verdict]
    else:
        lines = [f"{head}; {verdict}" if head else verdict]
    return "\n".join([*lines, *text.splitlines()[-ERROR_TAIL_LINES:]])


def startup_parts(end_ev: dict) -> dict:
    """compile_s / warmup_s / val_s from the trainer's end event (None where it did not say)."""

    def seconds(value) -> float | None:
        return float(value) / 1000.0 if isinstance(value, int | float) else None

    compile_info = end_ev.get("compile") if isinstance(end_ev.get("compile"), dict) else {}
    compile_s = compile_info.get("compile_s")
    return {
        "compile_s": float(compile_s) if isinstance(compile_s, int | float) else None,
        "warmup_s": seconds(end_ev.get("warmup_ms")),
        "val_s": seconds(end_ev.get("val_ms")),
    }


def _finish(att: _Attempt, *, exit_code: int | None, timed_out: bool) -> AttemptResult:
    """Parse what the attempt left and build its AttemptResult (its row through `rows.run_row`)."""
    from analysis.logs import parse_log_text

    wall_s = time.monotonic() - att.t0
    text = att.tee_path.read_text(encoding="utf-8", errors="replace") if att.tee_path.exists() else ""
    parsed = parse_log_text(text)
    metrics = read_metrics(att.metrics_path)
    status = classify(exit_code, timed_out, parsed, metrics)
    start_ev = next((ev for ev in metrics if ev.get("event") == "start"), {})
    end_ev = next((ev for ev in metrics if ev.get("event") == "end"), {})
    train_time_ms = parsed.train_time_ms if parsed.train_time_ms is not None else end_ev.get("train_time_ms")
    outcome = {
        "node_id": att.node.node_id,
        "hostname": att.node.hostname,
        "gpus": len(att.gpu_ids),
        "gpu_name": start_ev.get("gpu_name"),
        "final_val_loss": parsed.final_val_loss,
        "train_time_ms": train_time_ms,
        "step_avg_ms": parsed.step_avg_ms,
        "steps": parsed.last_step if parsed.last_step is not None else end_ev.get("steps"),
        "peak_mem_mib": parsed.peak_mem_mib
        if parsed.peak_mem_mib is not None
        else end_ev.get("peak_mem_mib"),
        "wall_s": wall_s,
        "startup_s": wall_s - train_time_ms / 1000.0 if train_time_ms is not None else None,
        **startup_parts(end_ev),
        "started_at": att.started,
        "ended_at": utc_now(),
        "exit_code": exit_code,
        "error": error_tail(text, status, exit_code, parsed, att.run.timeout_s),
        "command": json.dumps(att.cmd),  # as executed (the interpreter resolved, --seed/--run-id added)
        "data_shards": json.dumps(start_ev["data"], sort_keys=True) if start_ev.get("data") else None,
        "torch_version": start_ev.get("torch"),
    }
    if start_ev.get("cuda"):
        outcome["cuda_version"] = start_ev["cuda"]
    row = run_row(att.run, attempt=att.attempt, status=status, **outcome)
    return AttemptResult(row=row, steps=steps_table(att.run.run_id, parsed, metrics), log_text=text)
