"""Anytime-valid sequential test: a confidence sequence for a Gaussian mean with unknown variance.

Construction (Lai 1976's t-mixture; see also Wang & Ramdas 2023, "Anytime-valid t-tests and
confidence sequences for Gaussian means with unknown variance"). For a hypothesised mean μ write
y_i = x_i − μ, S_n = Σ y_i, V_n = Σ y_i². Put a right-Haar prior dσ/σ on the unknown scale and a
N(0, σ²/c) prior on the shift θ = E[y]. The Bayes factor of "shift θ" against "shift 0" is then

    M_n(μ) = sqrt(c / (n + c)) · (V_n / (V_n − S_n² / (n + c)))^(n/2),

(the σ integrals give Γ(n/2)·(quadratic form / 2)^(−n/2) in both numerator and denominator). Because
the improper prior sits on the scale group that leaves the t-statistic invariant, M_n(μ) is a
nonnegative martingale with mean 1 under "mean = μ", whatever σ is, in the filtration of the scale-
invariant statistics (M_1 = 1 exactly: one run says nothing about a shift relative to the spread).
Ville's inequality gives P(∃ n: M_n(μ) ≥ 1/α) ≤ α, so

    CS_n = {μ : M_n(μ) < 1/α}

covers the true mean at every n simultaneously with probability ≥ 1 − α. That is what makes it safe
to look after *every* run and stop as soon as the sequence leaves the target: unlike a fixed-n t-test
repeated after each run, whose false-positive rate grows with the number of looks. The assumption is
Gaussian noise (final losses and per-block time differences are close to it); `c` (default 1) is
the prior precision of the standardised effect, i.e. the sequence is tightest for effects near 1 sd;
at α = 0.05 it is unbounded until 5 values are in, so no decision comes before the 5th run (block).

The set CS_n is an interval: with d = x̄ − μ, SS = Σ(x_i − x̄)² and q = (α² c/(n + c))^(1/n),
μ ∈ CS_n ⟺ d² · n(n − (1 − q)(n + c)) < (1 − q)(n + c)·SS; when n ≤ (1 − q)(n + c) it is the real line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # only annotations: `ablate compare` reads logs without loading pandas
    import pandas as pd


@dataclass(frozen=True)
class Decision:
    """State of the sequential test after n values.

    low/high: the (1 − α) confidence sequence for the mean (±inf when it is still the real line).
    verdict: None while undecided; otherwise "below" / "above" the reference (target, or 0 for deltas).
    """

    n: int
    mean: float | None
    low: float
    high: float
    reference: float | None
    alpha: float
    verdict: str | None

    @property
    def decided(self) -> bool:
        return self.verdict is not None


def cs_radius(n, ss, alpha: float, c: float = 1.0):
    """Half-width of the confidence sequence (vectorised over n and ss; inf where unbounded)."""
    n = np.asarray(n, dtype=float)
    ss = np.asarray(ss, dtype=float)
    q = np.exp((2 * math.log(alpha) + np.log(c / (n + c))) / n)
    denom = n * (n - (1 - q) * (n + c))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt((1 - q) * (n + c) * ss / denom)
    return np.where(denom > 0, r, np.inf)


def log_mixture_martingale(x: np.ndarray, mu: float, c: float = 1.0) -> np.ndarray:
    """log M_n(mu) for n = 1..N along the last axis of x (shape (..., N)); vectorised for simulations."""
    y = np.asarray(x, dtype=float) - mu
    n = np.arange(1, y.shape[-1] + 1, dtype=float)
    s = np.cumsum(y, axis=-1)
    v = np.cumsum(y * y, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = v / (v - s * s / (n + c))
    return 0.5 * np.log(c / (n + c)) + 0.5 * n * np.log(ratio)


def confidence_sequence(values, alpha: float = 0.05, c: float = 1.0) -> tuple[float, float]:
    """(low, high) of the (1 − α) confidence sequence for the mean after these values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return -math.inf, math.inf
    mean = float(x.mean())
    r = float(cs_radius(len(x), float(((x - mean) ** 2).sum()), alpha, c))
    return mean - r, mean + r


def decide_against(values, reference: float, alpha: float = 0.05, c: float = 1.0) -> Decision:
    """Decide whether the mean is below or above `reference` once the sequence excludes it."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    low, high = confidence_sequence(x, alpha, c)
    verdict = "below" if high < reference else "above" if low > reference else None
    mean = float(x.mean()) if len(x) else None
    return Decision(len(x), mean, low, high, reference, alpha, verdict)


def sequential_decision(values, target: float | None = None, alpha: float = 0.05, *, plan=None):
    """The stopping rule, in two forms.

    values = an array of final losses: returns the Decision for "mean below/above target" (with
    target None the reference is 0, e.g. for timing deltas).

    values = the runs DataFrame (`read_runs`) and `plan` given (the orchestrator's `--until-decided`):
    the A/B is decided on the *blocked timing deltas* (per block: baseline − candidate train time, s)
    and, when the plan has a target, also on the candidate's final loss against the target; returns a
    one-line verdict once both sequences have left their reference, else None (keep running).
    """
    if plan is None:
        return decide_against(values, 0.0 if target is None else float(target), alpha)
    return _ab_verdict(values, plan, alpha)


def ab_sequences(runs: pd.DataFrame, baseline: str, candidate: str, target, alpha: float = 0.05):
    """(timing Decision on blocked deltas in s, loss Decision of the candidate or None) of an A/B."""
    from analysis.stats import block_diffs

    ok = runs[runs["status"] == "ok"]
    deltas = block_diffs(ok["train_time_ms"] / 1000.0, ok["arm"], ok["block"], baseline, candidate)
    timing = decide_against(deltas, 0.0, alpha)
    loss = None
    if target is not None:
        loss = decide_against(ok.loc[ok["arm"] == candidate, "final_val_loss"], float(target), alpha)
    return timing, loss


def _ab_verdict(runs: pd.DataFrame, plan, alpha: float) -> str | None:
    if runs is None or len(runs) == 0:
        return None
    baseline = plan.baseline_arm
    candidate = next(a for a in plan.arms if a != baseline)
    timing, loss = ab_sequences(runs, baseline, candidate, plan.target_val_loss, alpha)
    if timing.verdict is None or (loss is not None and loss.verdict is None):
        return None
    speed = "faster" if timing.verdict == "above" else "slower"
    text = f"{candidate} {speed} than {baseline} by {timing.mean:.3f} s/run (blocks={timing.n})"
    if loss is not None:
        text += f"; loss {'below' if loss.verdict == 'below' else 'above'} {plan.target_val_loss}"
    return text
