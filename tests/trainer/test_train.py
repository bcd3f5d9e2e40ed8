"""The loop in-process: schedules, determinism, warm-up restore, loss read-back."""

import json
import math
from pathlib import Path

import pytest
import torch

from trainer.config import resolve
from trainer.data import ensure_synth
from trainer.train import (
    LossTracker,
    RunOptions,
    is_val_step,
    lr_scale,
    muon_momentum,
    train,
    warmup_step_count,
)

torch.set_num_threads(1)

# 5 steps of the tiny model, validating on 1,024 tokens at 0 and 5
FAST = {"steps": 5, "val_every": 0, "val_tokens": 1024}


def test_lr_schedule_constant_then_linear_cooldown_to_final_frac():
    cfg = resolve("tiny", {"steps": 100, "cooldown_frac": 0.4, "lr_final_frac": 0.1})
    assert lr_scale(0, cfg) == 1.0 and lr_scale(59, cfg) == 1.0
    assert lr_scale(60, cfg) == pytest.approx(1.0)
    assert lr_scale(80, cfg) == pytest.approx(0.55)  # halfway through the cool-down: (1 + 0.1) / 2
    assert lr_scale(99, cfg) == pytest.approx(0.1 + 0.9 * 0.01 / 0.4)
    values = [lr_scale(s, cfg) for s in range(100)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_muon_momentum_warms_up_linearly():
    cfg = resolve(
        "tiny", {"muon_momentum_start": 0.85, "muon_momentum": 0.95, "muon_momentum_warmup_steps": 60}
    )
    assert muon_momentum(0, cfg) == pytest.approx(0.85)
    assert muon_momentum(30, cfg) == pytest.approx(0.90)
    assert muon_momentum(60, cfg) == pytest.approx(0.95) == muon_momentum(250, cfg)
    assert muon_momentum(5, resolve("tiny", {"muon_momentum_warmup_steps": 0})) == pytest.approx(0.95)


def test_val_steps_and_warmup_counts():
    cfg = resolve("tiny", {"steps": 10, "val_every": 4})
    assert [s for s in range(11) if is_val_step(s, cfg)] == [0, 4, 8, 10]
    assert [s for s in range(11) if is_val_step(s, resolve("tiny", {"steps": 10, "val_every": 0}))] == [0, 10]
    pr117 = resolve("pr117")  # 14 distinct linear windows, 10 warm-up steps: compile needs all 14
    assert warmup_step_count(pr117, compiled=True) == 14
    assert warmup_step_count(pr117, compiled=False) == 10


def test_loss_tracker_on_cpu_reads_every_step_in_order():
    tracker = LossTracker(torch.device("cpu"))
    tracker.push(1, 10.0, torch.tensor(2.5))
    assert list(tracker.pop_ready()) == [(1, 10.0, 2.5)]
    tracker.push(2, 20.0, torch.tensor(float("nan")))
    (step, ms, loss), *_ = tracker.pop_ready()
    assert (step, ms) == (2, 20.0) and math.isnan(loss)


def _run(tmp_path: Path, name: str, **overrides) -> list[dict]:
    cfg = resolve("tiny", {**FAST, **overrides})
    code = train(cfg, RunOptions(data_dir=Path(ensure_synth()), run_id=name, log_dir=tmp_path, device="cpu"))
    assert code == 0
    return [json.loads(x) for x in (tmp_path / f"{name}.metrics.jsonl").read_text().splitlines()]


def _losses(events: list[dict]) -> list[float]:
    return [e["train_loss"] for e in events if e["event"] == "step"] + [
        e["val_loss"] for e in events if e["event"] == "val"
    ]


def test_same_seed_same_losses_different_seed_different(tmp_path):
    a = _losses(_run(tmp_path, "a", seed=1))
    b = _losses(_run(tmp_path, "b", seed=1))
    c = _losses(_run(tmp_path, "c", seed=2))
    assert len(a) == 5 + 2
    assert a == b
    # zero-initialised output layers make step 1 and the step-0 validation seed-independent
    # (uniform logits); from step 2 on every loss differs
    train_a, train_c = a[1:5], c[1:5]
    assert all(x != y for x, y in zip(train_a, train_c, strict=True))
    assert a[-1] != c[-1]


def test_warm_up_restores_initial_state_exactly(tmp_path):
    # warm-up trains 3 steps then restores model and optimizer state: the run must be unchanged
    plain = _losses(_run(tmp_path, "plain", seed=4, warmup_steps=0))
    warmed = _losses(_run(tmp_path, "warm", seed=4, warmup_steps=3))
    assert plain == warmed


def test_compile_stats_say_where_start_up_went():
    """The compiled run's end event and last log line carry torch.compile's own timers."""
    from trainer.train import compile_stats

    before = compile_stats().get("frames", 0)
    f = torch.compile(lambda x: (x * 2).sin().sum(), backend="eager")
    f(torch.ones(3))
    f(torch.ones(3, 2))  # another shape: a recompile, another frame
    stats = compile_stats()
    assert stats["compile_s"] > 0 and stats["frames"] >= before + 2 and stats["graphs"] >= 1


def test_the_fp8_gradient_cast_is_scaled_for_the_micro_steps(tmp_path, monkeypatch):
    """Each micro-batch's loss is divided by the micro steps before backward; the head's e5m2 gradient
    cast is scaled alike, so it casts upstream's values (upstream backpropagates the plain sum; on one
    GPU with a fixed 1/448 our smaller gradients flushed to zero more often)."""
    import trainer.train as train_mod
    from trainer.model import Head

    built = []
    real = train_mod.build_model
    monkeypatch.setattr(train_mod, "build_model", lambda *a, **k: built.append(real(*a, **k)) or built[-1])
    _run(tmp_path, "accum", seed=1, grad_accum=4)
    assert built[0].lm_head.scales[2] == 1 / (448 * 4)
    head = Head(64, 128, fp8=False)
    head.accumulate(8)
    g = torch.randn(256, 128) * torch.logspace(-12, 0, 128)  # logit gradients over many magnitudes
    upstream = g.div(1 / 448).to(torch.float8_e5m2)  # the plain sum's gradient, upstream's scale
    ours = (g / 8).div(head.scales[2]).to(torch.float8_e5m2)
    assert torch.equal(ours.view(torch.uint8), upstream.view(torch.uint8))
    assert not torch.equal(
        (g / 8).div(1 / 448).to(torch.float8_e5m2).view(torch.uint8), upstream.view(torch.uint8)
    )
