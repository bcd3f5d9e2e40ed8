"""The GPU speed benchmark's CPU-testable parts: upstream's schedule patch and the figures it derives."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("trainer_speed", ROOT / "benchmarks" / "trainer_speed.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["trainer_speed"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    yield mod
    del sys.modules["trainer_speed"]


def test_upstream_copy_shortens_the_schedule_only(bench, tmp_path):
    script = tmp_path / "train_gpt.py"
    script.write_text("class H:\n    num_iterations = 1695 # number of iterations\n    cooldown_frac = 0.45\n")  # noqa: E501
    out = bench.upstream_copy(script, 80, tmp_path)
    assert "num_iterations = 80 # number of iterations" in out.read_text()
    assert "cooldown_frac = 0.45" in out.read_text()
    typed = tmp_path / "typed.py"
    typed.write_text("    num_iterations: int = 1705 # n\n")
    assert "num_iterations: int = 80" in bench.upstream_copy(typed, 80, tmp_path).read_text()


def test_upstream_copy_refuses_a_script_without_a_schedule(bench, tmp_path):
    script = tmp_path / "other.py"
    script.write_text("print('hi')\n")
    with pytest.raises(SystemExit, match="could not find num_iterations"):
        bench.upstream_copy(script, 80, tmp_path)


def test_measure_reads_step_time_tokens_and_startup_from_a_log(bench):
    log = "\n".join(
        [
            "step:0/2 val_loss:10.8258 train_time:0ms step_avg:0.03ms",
            "step:1/2 train_time:700ms step_avg:700.00ms",
            "step:2/2 train_time:1420ms step_avg:710.00ms",
            "step:2/2 val_loss:7.5000 train_time:1420ms step_avg:710.00ms",
            "peak memory allocated: 33480 MiB reserved: 40000 MiB",
        ]
    )
    m = bench.measure("base", log, wall=11.42, code=0, flops_tok=6e8, tokens=393216, peak=1e15)
    assert m.step_ms == pytest.approx(710.0)  # the last training line, not the validation line
    assert m.train_time_s == pytest.approx(1.42)
    assert m.startup_s == pytest.approx(10.0)
    assert m.tokens_per_s == pytest.approx(2 * 393216 / 1.42)
    assert m.mfu == pytest.approx(6e8 * m.tokens_per_s / 1e15)
    assert (m.val_loss, m.peak_mib) == (7.5, 33480)


def test_flops_per_token_counts_the_matrices_the_seed_removes(bench):
    base, tokens = bench.model_flops_per_token("pr117", [])
    mlp0, _ = bench.model_flops_per_token("pr117", ["mlp_off=[0]"])
    assert tokens == 393216
    assert base - mlp0 == 6 * 2 * 768 * 3072
