"""benchmarks/h200_chain.sh ends with its `done` line on every way out, the line h200_collect.sh --wait
waits for (an early exit without it would keep the session's last call waiting to its limit)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "h200_chain.sh"


def _chain(cwd: Path, *parts: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TEXT": str(cwd / "no-text")}
    return subprocess.run(["bash", str(SCRIPT), str(cwd / "chain"), *parts], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_an_early_exit_still_says_done(tmp_path):
    done = _chain(tmp_path, "textdrop")  # no .devcarry here
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 1 and "no .devcarry/activate.sh" in done.stdout and lines[-1].endswith("] done")
    (tmp_path / ".devcarry").mkdir()
    (tmp_path / ".devcarry" / "activate.sh").write_text("")
    done = _chain(tmp_path, "textdrop")  # no real-text shards in $TEXT
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 1 and "no real-text shards in" in done.stdout and lines[-1].endswith("] done")
