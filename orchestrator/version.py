"""ablate's version for provenance: the source tree's pyproject (the code that runs, installed
editable or not), else the installed distribution's, plus the git commit when the code runs from a
checkout (``0.1.0+g1a2b3c4d5e6f``, ``.dirty`` when tracked files differ from it), so a results row
names the code that produced it."""

from __future__ import annotations

import functools
import re
import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _base_version() -> str | None:
    pyproject = ROOT / "pyproject.toml"
    if pyproject.is_file():  # running from a source tree (installed editable or not): its own version
        m = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(encoding="utf-8"), re.MULTILINE)
        if m:
            return m.group(1)
    try:
        return metadata.version("ablate")
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


@functools.cache
def ablate_version() -> str | None:
    base = _base_version()
    if not (ROOT / ".git").exists():
        return base
    sha = _git("rev-parse", "--short=12", "HEAD")
    if not sha:
        return base
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return f"{base or '0'}+g{sha}{'.dirty' if dirty else ''}"
