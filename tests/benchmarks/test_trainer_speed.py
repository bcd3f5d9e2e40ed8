"""The GPU speed benchmark's CPU-testable parts: upstream's schedule patch and the figures it derives."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tiny_data_dir():
    from trainer.data import ensure_synth

    return Path(ensure_synth())


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
    script.write_text(
        "class H:\n    num_iterations = 1695 # number of iterations\n    cooldown_frac = 0.45\n"
    )  # noqa: E501
    out = bench.upstream_copy(script, 80, tmp_path)
    assert "num_iterations = 80 # number of iterations" in out.read_text()
    assert "cooldown_frac = 0.45" in out.read_text()
    typed = tmp_path / "typed.py"
    typed.write_text("    num_iterations: int = 1705 # n\n")
    assert "num_iterations: int = 80" in bench.upstream_copy(typed, 80, tmp_path).read_text()


def test_upstream_copy_sets_the_validation_budget_when_asked(bench, tmp_path):
    script = tmp_path / "train_gpt.py"
    script.write_text(
        "class H:\n    val_tokens = 10485760 # fixed for comparisons\n    val_seq_len = 4*64*1024\n"
        "    num_iterations = 1695\nassert args.val_tokens == 10485760\n"
    )
    text = bench.upstream_copy(script, 50, tmp_path, val_tokens=1048576).read_text()
    assert "val_tokens = 1048576 # fixed for comparisons" in text
    assert "val_seq_len = 4*64*1024" in text and "num_iterations = 50" in text
    assert "args.val_tokens == 10485760" in text  # only the hyperparameter, not later uses
    untouched = bench.upstream_copy(script, 50, tmp_path).read_text()
    assert "val_tokens = 10485760" in untouched


def test_upstream_log_folder_is_the_run_ids_folder(bench):
    # the record logs' copy of the 2025-08-23 script names f'final/{uuid}'; it makes only logs/ itself
    assert bench.upstream_log_folder("    run_id = f'final/{uuid.uuid4()}'\n") == "final"
    assert bench.upstream_log_folder('run_id = f"runs/a/{x}"') == "runs/a"
    assert bench.upstream_log_folder("run_id = str(uuid.uuid4())") == ""


def test_upstream_val_shortfall_says_when_its_validation_loader_would_stop(bench, tmp_path):
    import numpy as np

    from trainer.shards import write_shard

    script = "class H:\n    val_tokens = 10485760\n    val_seq_len = 4*64*1024 # per rank\n"
    write_shard(tmp_path / "fineweb_val_000000.bin", np.zeros(8 * 262144 + 1, dtype=np.uint16))
    short = bench.upstream_val_shortfall(script, tmp_path)  # one token short of a window plus two
    assert "needs 2,097,154 tokens" in short and "holds 2,097,153" in short and "\n" not in short
    write_shard(tmp_path / "fineweb_val_000001.bin", np.zeros(8 * 262144 + 2, dtype=np.uint16))
    assert bench.upstream_val_shortfall(script, tmp_path) is None
    assert "holds 0" in bench.upstream_val_shortfall(script, tmp_path / "nowhere")
    assert bench.upstream_val_shortfall("print('no such field')\n", tmp_path) is None


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
    assert m.compile is None  # no compile line (compile off, or upstream's script)
    line = "compile: compile_s:366.12 backend_s:358.62 inductor_s:357.24 frames:8 graphs:8 warmup_ms:317834"
    m = bench.measure("base", f"{log}\n{line} val_ms:71095", wall=11.42, code=0, flops_tok=None, tokens=None,
                      peak=None)  # fmt: skip
    assert m.compile == {
        "compile_s": 366.12, "backend_s": 358.62, "inductor_s": 357.24, "frames": 8, "graphs": 8,
        "warmup_ms": 317834, "val_ms": 71095,
    }  # fmt: skip


def test_flops_per_token_counts_the_matrices_the_seed_removes(bench):
    base, tokens = bench.model_flops_per_token("pr117", [])
    mlp0, _ = bench.model_flops_per_token("pr117", ["mlp_off=[0]"])
    assert tokens == 393216
    assert base - mlp0 == 6 * 2 * 768 * 3072


FAKE_UPSTREAM = """import os
num_iterations = 1695
for s in range(1, num_iterations + 1):
    print(f"step:{s}/{num_iterations} train_time:{100 * s}ms step_avg:100.00ms")
n = num_iterations
print(f"step:{n}/{n} val_loss:6.5000 train_time:{100 * n}ms step_avg:100.00ms")
print("peak memory allocated: 1000 MiB reserved: 1200 MiB")
assert os.path.isdir("data/fineweb10B"), "upstream reads its shards from data/fineweb10B"
"""


def test_the_whole_chain_on_cpu_in_its_documented_order(bench, tmp_path, tiny_data_dir):
    """Variants, then upstream, then warm repeats, then the profile run; one shared cache; the
    summary's ours_step_ms is the mean of the base runs that bracket upstream."""
    up = tmp_path / "up.py"
    up.write_text(FAKE_UPSTREAM)
    out = tmp_path / "h.json"
    args = ["--preset", "tiny", "--steps", "3", "--data-dir", str(tiny_data_dir), "--shared-cache"]
    args += ["--variant", "base:", "--variant", "mlp0:mlp_off=[0]", "--warm", "base:", "--upstream", str(up)]
    args += ["--profile", "base", "--workdir", str(tmp_path / "w"), "--out", str(out)]
    assert bench.main(args) == 0
    summary = __import__("json").loads(out.read_text())
    assert list(summary["runs"]) == ["base", "mlp0", "upstream", "base-warm", "base-profile"]
    assert summary["upstream_step_ms"] == 100.0 and summary["upstream_peak_mib"] == 1000
    runs = summary["runs"]
    base_ms = [runs["base"]["step_ms"], runs["base-warm"]["step_ms"]]
    assert summary["ours_step_ms"] == pytest.approx(sum(base_ms) / 2, abs=0.01)
    assert summary["ratio_ours_over_upstream"] == pytest.approx(summary["ours_step_ms"] / 100, rel=1e-3)
    assert summary["shared_cache"] is True and summary["steps"] == 3
    assert all(r["exit_code"] == 0 for r in runs.values())
    assert "per-step figures" in (tmp_path / "w" / "base.profile.txt").read_text()
    assert sorted(p.name for p in (tmp_path / "w").glob("cache-*")) == ["cache-shared"]
