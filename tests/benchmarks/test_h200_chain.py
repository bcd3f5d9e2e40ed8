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


def test_textseeds_runs_seed_0_and_as_many_warm_seeds_as_SEEDS_says(tmp_path):
    """Part `textseeds`: seed 0 then SEEDS warm seeds (default 3) at the corpus's step count, on the
    side-by-side's validation budget. A stand-in trainer_speed.py records the arguments it is given."""
    import numpy as np

    from trainer.shards import write_shard

    (tmp_path / ".devcarry").mkdir()
    (tmp_path / ".devcarry" / "activate.sh").write_text("")
    text = tmp_path / "no-text"  # the $TEXT of _chain
    write_shard(text / "fineweb_train_000001.bin", np.zeros(786433 + 393216 * 10, dtype=np.uint16))
    write_shard(text / "fineweb_val_000000.bin", np.zeros(1000, dtype=np.uint16))
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "trainer_speed.py").write_text("import sys\nprint(' '.join(sys.argv[1:]))\n")
    root = str(SCRIPT.parents[1])
    env_path = {"PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    three = ["base:", "s1:seed=1", "s2:seed=2", "s3:seed=3"]
    for seeds, variants in [(None, three), ("1", three[:2])]:
        env = {**os.environ, **env_path, "TEXT": str(text), **({"SEEDS": seeds} if seeds else {})}
        done = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "chain"), "textseeds"], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        args = (tmp_path / "chain" / "textseeds.log").read_text().split()
        assert args[args.index("--steps") + 1] == "8"  # 10 sequences' worth, 85 % kept for alignment
        assert args[args.index("--val-tokens") + 1] == "1048576"
        assert [args[i + 1] for i, a in enumerate(args) if a == "--variant"] == variants
        assert f"seeds 0-{seeds or 3}: 8 steps" in done.stdout
    env["SEEDS"] = "three"
    bad = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "chain"), "textseeds"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "SEEDS takes the number of warm seeds" in bad.stdout
    assert bad.stdout.strip().splitlines()[-1].endswith("] done")
