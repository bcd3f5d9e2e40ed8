"""The anytime-valid confidence sequence: error rate under repeated looks, and the stopping rule."""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
from scipy import stats as st

from analysis.sequential import (
    confidence_sequence,
    cs_radius,
    log_mixture_martingale,
    sequential_decision,
)
from tests.analysis.helpers import SEED_CANDIDATE_LOSS

ALPHA = 0.05


def _null_sequences(rng, reps=4000, n=40, mu=3.28, sd=0.0015):
    return rng.normal(mu, sd, size=(reps, n))


def test_error_rate_when_checked_after_every_run_stays_below_alpha():
    rng = np.random.default_rng(20251128)
    x = _null_sequences(rng)
    reps, n = x.shape
    lm = log_mixture_martingale(x, 3.28)
    cs_error = (lm[:, 1:] >= math.log(1 / ALPHA)).any(axis=1).mean()
    se = math.sqrt(ALPHA * (1 - ALPHA) / reps)
    assert cs_error <= ALPHA + 3 * se, cs_error

    # The fixed-n t-test repeated after every run (n = 2..40) at the same alpha: its error rate is far
    # above alpha, which is why the orchestrator's early stop uses the sequence instead.
    k = np.arange(1, n + 1)
    mean = np.cumsum(x, axis=1) / k
    ss = np.cumsum(x * x, axis=1) - k * mean**2
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (mean - 3.28) / np.sqrt(ss / (k - 1) / k)
    p = 2 * st.t.sf(np.abs(t[:, 1:]), k[1:] - 1)
    t_error = (p < ALPHA).any(axis=1).mean()
    assert t_error > ALPHA + 3 * se, t_error


def test_interval_matches_the_martingale_boundary():
    x = np.array(SEED_CANDIDATE_LOSS)
    lo, hi = confidence_sequence(x, ALPHA)
    at_edge = log_mixture_martingale(x[None, :], hi)[0, -1]
    assert at_edge == np.float64(at_edge) and abs(at_edge - math.log(1 / ALPHA)) < 1e-6
    assert log_mixture_martingale(x[None, :], x.mean())[0, -1] < math.log(1 / ALPHA)
    # one run: the martingale is exactly 1 and the sequence is the whole line
    assert log_mixture_martingale(np.array([[3.0]]), 2.0)[0, 0] == 0.0
    assert confidence_sequence([3.0]) == (-math.inf, math.inf)
    assert np.isinf(cs_radius(2, 1.0, ALPHA))  # two runs: still unbounded at alpha = 0.05


def test_decision_on_the_seed_losses():
    d = sequential_decision(SEED_CANDIDATE_LOSS, 3.28, ALPHA)
    assert d.decided and d.verdict == "below" and d.high < 3.28 and d.n == 10
    early = sequential_decision(SEED_CANDIDATE_LOSS[:3], 3.28, ALPHA)
    assert not early.decided and early.verdict is None
    deltas = sequential_decision([1.4, 1.5, 1.3, 1.45, 1.42], None, ALPHA)  # 5 = the fewest that can decide
    assert deltas.reference == 0.0 and deltas.verdict == "above"


def _ab_runs(n_blocks, speedup_s, loss):
    rng = np.random.default_rng(3)
    rows = []
    for b in range(n_blocks):
        t = 164.4 + 0.3 * rng.standard_normal()
        rows.append(
            {"arm": "base", "block": b, "status": "ok", "train_time_ms": 1000 * t, "final_val_loss": 3.277}
        )
        cand_ms = 1000 * (t - speedup_s + 0.1 * rng.standard_normal())
        cand_loss = loss + 0.001 * rng.standard_normal()
        rows.append(
            {"arm": "cand", "block": b, "status": "ok", "final_val_loss": cand_loss, "train_time_ms": cand_ms}
        )
    rows.append(
        {"arm": "cand", "block": n_blocks, "status": "failed", "train_time_ms": None, "final_val_loss": None}
    )
    return pd.DataFrame(rows)


def test_orchestrator_form_on_runs_and_plan():
    plan = SimpleNamespace(baseline_arm="base", arms=("base", "cand"), target_val_loss=3.28, kind="ab")
    verdict = sequential_decision(_ab_runs(10, 1.4, 3.2775), plan=plan)
    assert verdict.startswith("cand faster than base by 1.") and "loss below 3.28" in verdict
    assert sequential_decision(_ab_runs(2, 1.4, 3.2775), plan=plan) is None
    assert sequential_decision(_ab_runs(10, 0.0, 3.2775).iloc[:0], plan=plan) is None
    no_target = SimpleNamespace(baseline_arm="base", arms=("base", "cand"), target_val_loss=None, kind="ab")
    assert "faster" in sequential_decision(_ab_runs(10, 1.4, 3.5), plan=no_target)
