"""GPU preflight before a block: nobody else computes on our GPUs; clocks and driver recorded.

Uses `nvidia-smi` when it is on PATH (skipped cleanly on CPU nodes). Timing A/Bs are worthless if a
stray process shares the GPU, so a foreign compute process fails the preflight (after waiting a
little for it to go away).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

GPU_FIELDS = ("index", "uuid", "name", "driver_version", "clocks.sm", "clocks.max.sm", "temperature.gpu")
APP_FIELDS = ("gpu_uuid", "pid", "process_name")


class PreflightError(RuntimeError):
    """A GPU of the block is not fit for timing (e.g. a foreign process computes on it)."""


@dataclass(frozen=True)
class GpuReport:
    """What the preflight saw on the block's GPUs (clocks in MHz, temperature in °C)."""

    gpu_name: str | None = None
    driver_version: str | None = None
    cuda_version: str | None = None
    gpus: tuple[dict, ...] = field(default_factory=tuple)


def _smi(exe: str, args: list[str]) -> str:
    out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise PreflightError(
            f"nvidia-smi {' '.join(args)} failed (exit {out.returncode}): {out.stderr.strip()}"
        )
    return out.stdout


def _csv(text: str, names: Sequence[str]) -> list[dict]:
    rows = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == len(names):
            rows.append(dict(zip(names, parts, strict=True)))
    return rows


def _ours(gpu: dict, gpu_ids: Sequence[str]) -> bool:
    return gpu["index"] in gpu_ids or gpu["uuid"] in gpu_ids


def query(exe: str, gpu_ids: Sequence[str]) -> tuple[list[dict], list[dict], str | None]:
    """(our GPUs, compute processes on them, CUDA version) as nvidia-smi reports them."""
    gpus = _csv(
        _smi(exe, [f"--query-gpu={','.join(GPU_FIELDS)}", "--format=csv,noheader,nounits"]), GPU_FIELDS
    )
    ours = [g for g in gpus if _ours(g, gpu_ids)]
    uuids = {g["uuid"] for g in ours}
    apps = _csv(
        _smi(exe, [f"--query-compute-apps={','.join(APP_FIELDS)}", "--format=csv,noheader"]), APP_FIELDS
    )
    foreign = [a for a in apps if a["gpu_uuid"] in uuids]
    m = re.search(r"CUDA Version:\s*([0-9.]+)", _smi(exe, []))
    return ours, foreign, m.group(1) if m else None


def gpu_preflight(
    gpu_ids: Sequence[str], *, wait_s: float = 60.0, exe: str | None = None
) -> GpuReport | None:
    """Check the block's GPUs; None when there is no nvidia-smi (CPU node) or no GPU to check.

    Raises PreflightError naming the process when a foreign compute process stays on one of
    `gpu_ids` (indices or UUIDs, as in CUDA_VISIBLE_DEVICES) for longer than `wait_s` seconds.
    """
    exe = exe or shutil.which("nvidia-smi")
    if exe is None or not gpu_ids:
        return None
    deadline = time.monotonic() + wait_s
    while True:
        ours, foreign, cuda = query(exe, [str(g) for g in gpu_ids])
        if not foreign:
            break
        if time.monotonic() >= deadline:
            desc = ", ".join(f"pid {a['pid']} ({a['process_name']}) on {a['gpu_uuid']}" for a in foreign)
            raise PreflightError(f"GPU preflight: foreign compute process on the block's GPUs: {desc}")
        time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
    first = ours[0] if ours else {}
    return GpuReport(
        gpu_name=first.get("name"),
        driver_version=first.get("driver_version"),
        cuda_version=cuda,
        gpus=tuple(ours),
    )
