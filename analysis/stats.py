"""Statistics over final val losses and train times: pure functions of arrays, scipy underneath.

Sign convention (the seed's "Time improve"): a difference is mean(baseline) − mean(candidate), so a
positive value means the candidate is lower, i.e. better for both loss and time. `welch_t` has the same
sign and `p_one_sided` tests "candidate lower". Randomness (bootstrap) only through an explicit
`numpy.random.Generator`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as st

DEFAULT_TARGET = 3.28


def _clean(values) -> np.ndarray:
    a = np.asarray(values, dtype=float).ravel()
    return a[np.isfinite(a)]


@dataclass(frozen=True)
class RecordTest:
    """One-sample t-test of final val loss against the target, alternative "less" (the record rule).

    `upper99` is the 99 % one-sided upper confidence bound of the mean. Test fields are None when n < 2.
    """

    n: int
    mean: float | None
    sd: float | None
    t: float | None
    df: int | None
    p: float | None
    upper99: float | None
    target: float

    def as_dict(self) -> dict:
        return asdict(self)


def record_test(values, target: float = DEFAULT_TARGET) -> RecordTest:
    """The record rule over one arm's final val losses (non-finite values dropped)."""
    a = _clean(values)
    n = len(a)
    if n == 0:
        return RecordTest(0, None, None, None, None, None, None, target)
    if n < 2:
        return RecordTest(n, float(a.mean()), None, None, None, None, None, target)
    res = st.ttest_1samp(a, target, alternative="less")
    sd = float(a.std(ddof=1))
    upper = float(a.mean() + st.t.ppf(0.99, n - 1) * sd / math.sqrt(n))
    return RecordTest(n, float(a.mean()), sd, float(res.statistic), n - 1, float(res.pvalue), upper, target)


@dataclass(frozen=True)
class Comparison:
    """Candidate against baseline on one measure; `diff` = mean(baseline) − mean(candidate).

    Welch t (df, one- and two-sided p, 95 % interval of diff), a percentile bootstrap 95 % interval,
    Mann–Whitney U (one-sided "candidate lower") and the probability of improvement
    P(candidate < baseline) over all cross pairs (ties count half). Fields are None when either arm has
    fewer than 2 finite values.
    """

    n_baseline: int
    n_candidate: int
    mean_baseline: float | None
    mean_candidate: float | None
    diff: float | None
    welch_t: float | None
    welch_df: float | None
    p_one_sided: float | None
    p_two_sided: float | None
    ci95_low: float | None
    ci95_high: float | None
    boot_low: float | None
    boot_high: float | None
    mw_u: float | None
    mw_p: float | None
    prob_improvement: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def bootstrap_diff_ci(b, c, rng: np.random.Generator, n_boot: int = 4000, level: float = 0.95):
    """Percentile bootstrap interval of mean(b) − mean(c), resampling each arm on its own."""
    bi = rng.integers(0, len(b), size=(n_boot, len(b)))
    ci = rng.integers(0, len(c), size=(n_boot, len(c)))
    diffs = b[bi].mean(axis=1) - c[ci].mean(axis=1)
    lo, hi = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def compare(baseline, candidate, rng: np.random.Generator, n_boot: int = 4000) -> Comparison:
    """Two-sample comparison of candidate against baseline (see `Comparison`)."""
    b, c = _clean(baseline), _clean(candidate)
    mb = float(b.mean()) if len(b) else None
    mc = float(c.mean()) if len(c) else None
    diff = mb - mc if mb is not None and mc is not None else None
    if len(b) < 2 or len(c) < 2:
        return Comparison(len(b), len(c), mb, mc, diff, *([None] * 11))
    two = st.ttest_ind(b, c, equal_var=False)
    one = st.ttest_ind(b, c, equal_var=False, alternative="greater")
    ci = two.confidence_interval(0.95)
    boot = bootstrap_diff_ci(b, c, rng, n_boot)
    mw = st.mannwhitneyu(b, c, alternative="greater")
    prob = float(mw.statistic) / (len(b) * len(c))
    return Comparison(
        len(b), len(c), mb, mc, diff, float(two.statistic), float(two.df), float(one.pvalue),
        float(two.pvalue), float(ci.low), float(ci.high), *boot, float(mw.statistic), float(mw.pvalue), prob,
    )  # fmt: skip


@dataclass(frozen=True)
class PairedTest:
    """Blocked comparison: per-block mean(baseline) − mean(candidate), then a one-sample t-test on 0."""

    n_blocks: int
    mean_diff: float | None
    sd_diff: float | None
    t: float | None
    df: int | None
    p_one_sided: float | None
    p_two_sided: float | None
    ci95_low: float | None
    ci95_high: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def paired_test(diffs) -> PairedTest:
    """Test of per-block differences (baseline − candidate): positive mean = candidate lower."""
    d = _clean(diffs)
    n = len(d)
    if n < 2:
        mean = float(d.mean()) if n else None
        return PairedTest(n, mean, None, None, None, None, None, None, None)
    two = st.ttest_1samp(d, 0.0)
    one = st.ttest_1samp(d, 0.0, alternative="greater")
    ci = two.confidence_interval(0.95)
    return PairedTest(
        n, float(d.mean()), float(d.std(ddof=1)), float(two.statistic), n - 1, float(one.pvalue),
        float(two.pvalue), float(ci.low), float(ci.high),
    )  # fmt: skip


def block_diffs(values, arms, blocks, baseline: str, candidate: str) -> np.ndarray:
    """Per block holding both arms: mean(baseline values) − mean(candidate values), in block order."""
    v, a, k = np.asarray(values, dtype=float), np.asarray(arms), np.asarray(blocks)
    out = []
    for blk in sorted(set(k[~_isnull(k)].tolist())):
        sel = (k == blk) & np.isfinite(v)
        bv, cv = v[sel & (a == baseline)], v[sel & (a == candidate)]
        if len(bv) and len(cv):
            out.append(bv.mean() - cv.mean())
    return np.asarray(out, dtype=float)


def _isnull(a: np.ndarray) -> np.ndarray:
    return np.array([x is None or (isinstance(x, float) and math.isnan(x)) for x in a.tolist()], dtype=bool)


def holm(pvalues) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (same order as given; NaN stays NaN)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = len(idx)
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adj, 1.0)
    return out


def runs_needed(
    effect: float,
    sd: float,
    *,
    alpha: float = 0.01,
    power: float = 0.8,
    two_sample: bool = False,
    n_max=10_000,
) -> int | None:
    """Smallest runs per arm giving `power` for a one-sided t-test at `alpha` (noncentral t, scipy).

    effect: the true difference to detect (target − mean for the record rule; diff for two arms), in
    the units of `sd`. Returns None when the effect is not in the tested direction or n_max is not enough.
    """
    if not (effect > 0 and sd > 0 and math.isfinite(effect) and math.isfinite(sd)):
        return None

    def achieved(n: int) -> float:
        df = 2 * n - 2 if two_sample else n - 1
        se = sd * math.sqrt(2.0 / n if two_sample else 1.0 / n)
        return float(st.nct.sf(st.t.ppf(1 - alpha, df), df, effect / se))

    lo, hi = 2, 2
    while achieved(hi) < power:
        lo, hi = hi, hi * 2
        if hi > n_max:
            return None
    while lo < hi:  # power grows with n: bisect for the first n that reaches it
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if achieved(mid) < power else (lo, mid)
    return hi
