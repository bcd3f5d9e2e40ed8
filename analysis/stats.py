"""Statistics over final val losses and train times: pure functions of arrays, scipy underneath.

Sign convention (the seed's "Time improve"): a difference is mean(baseline) − mean(candidate), so a
positive value means the candidate is lower, i.e. better for both loss and time. `welch_t` has the same
sign and `p_one_sided` tests "candidate lower". Randomness (bootstrap) only through an explicit
`numpy.random.Generator`.

The tests are written over `scipy.special` (Student t: `stdtr`/`stdtrit`, noncentral t: `nctdtr`, normal:
`ndtr`) and numpy, not `scipy.stats`: they give scipy.stats' figures (tests/analysis/test_stats.py checks
them against it), and `ablate compare` on 20 logs takes about half the time of importing scipy.stats
alone (0.52x: `python3 benchmarks/compare_speed.py --repeats 9 --upstream ...`, 2-core AMD EPYC,
2026-12-01; README.md has the run). scipy.special is imported where a test needs it, so importing this
module (the CLI does, for `DEFAULT_TARGET`) costs only numpy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

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


def _ratio(num, den) -> float:
    """num / den as scipy.stats' tests divide: a zero denominator gives ±inf or nan, not an error."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(num) / np.float64(den))


def _t_cdf(t: float, df: float) -> float:
    from scipy import special  # lazily: see the module docstring

    return float(special.stdtr(df, t))


def _t_interval(estimate: float, se: float, df: float, level: float = 0.95) -> tuple[float, float]:
    """Two-sided t interval of `estimate` with standard error `se` (scipy.stats' `confidence_interval`)."""
    from scipy import special

    tail = (1 - level) / 2
    low, high = special.stdtrit(df, np.array([tail, 1 - tail])) * se + estimate
    return float(low), float(high)


def record_test(values, target: float = DEFAULT_TARGET) -> RecordTest:
    """The record rule over one arm's final val losses (non-finite values dropped)."""
    from scipy import special

    a = _clean(values)
    n = len(a)
    if n == 0:
        return RecordTest(0, None, None, None, None, None, None, target)
    if n < 2:
        return RecordTest(n, float(a.mean()), None, None, None, None, None, target)
    mean, sd = float(a.mean()), float(a.std(ddof=1))
    t = _ratio(mean - target, sd / math.sqrt(n))
    upper = float(mean + special.stdtrit(n - 1, 0.99) * sd / math.sqrt(n))
    return RecordTest(n, mean, sd, t, n - 1, _t_cdf(t, n - 1), upper, target)


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


def welch(b: np.ndarray, c: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """Welch's t-test of mean(b) − mean(c): (t, df, p one-sided "b greater", p two-sided, 95 % low, high)."""
    vb, vc = b.var(ddof=1) / len(b), c.var(ddof=1) / len(c)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = float((vb + vc) ** 2 / (vb**2 / (len(b) - 1) + vc**2 / (len(c) - 1)))
    df = 1.0 if math.isnan(df) else df  # both variances 0: any df gives the same (degenerate) answer
    diff, se = float(b.mean() - c.mean()), math.sqrt(vb + vc)
    t = _ratio(diff, se)
    return (t, df, _t_cdf(-t, df), 2 * _t_cdf(-abs(t), df), *_t_interval(diff, se, df))


def _average_ranks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rank of each value, 1-based with ties averaged; the size of each group of equal values)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1], True])
    counts = np.diff(starts)
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(starts[:-1] + (counts + 1) / 2.0, counts)
    return ranks, counts


def _mw_exact_sf(u: int, n1: int, n2: int) -> float:
    """P(U ≥ u) under the null. The counts of U are the coefficients of the Gaussian binomial
    [n1 + n2 choose n1]_q = Π_{i=1..m} (1 − q^(n+i)) / (1 − q^i) (m, n = the smaller, larger size),
    kept as exact integers; truncating at degree m·n is safe, as both factors are power series."""
    m, n = min(n1, n2), max(n1, n2)
    top = m * n
    counts = [1] + [0] * top
    for i in range(1, m + 1):
        for k in range(top, n + i - 1, -1):
            counts[k] -= counts[k - n - i]
        for k in range(i, top + 1):
            counts[k] += counts[k - i]
    return sum(counts[u:]) / sum(counts)


def mann_whitney_greater(b: np.ndarray, c: np.ndarray) -> tuple[float, float]:
    """(U of b, one-sided p of "b tends larger"), as scipy.stats.mannwhitneyu(b, c, alternative="greater"):
    the exact null distribution when an arm has at most 8 values and none tie, else the normal
    approximation with the tie and continuity corrections."""
    from scipy import special

    n1, n2 = len(b), len(c)
    ranks, ties = _average_ranks(np.concatenate([b, c]))
    u = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)
    if (n1 > 8 and n2 > 8) or (ties > 1).any():
        n = n1 + n2
        spread = math.sqrt(n1 * n2 / 12 * ((n + 1) - float(np.sum(ties**3 - ties)) / (n * (n - 1))))
        p = float(special.ndtr(-_ratio(u - n1 * n2 / 2 - 0.5, spread)))
    else:
        p = _mw_exact_sf(round(u), n1, n2)
    return u, min(max(p, 0.0), 1.0)


def _difference(mb: float, mc: float) -> float:
    """mb − mc, with a difference at the level of rounding (two means of the same 4-decimal losses
    summed in another order: 4.4e-16) said as the 0 it is."""
    diff = mb - mc
    return 0.0 if abs(diff) <= 16 * np.finfo(float).eps * max(abs(mb), abs(mc)) else diff


def compare(baseline, candidate, rng: np.random.Generator, n_boot: int = 4000) -> Comparison:
    """Two-sample comparison of candidate against baseline (see `Comparison`)."""
    b, c = _clean(baseline), _clean(candidate)
    mb = float(b.mean()) if len(b) else None
    mc = float(c.mean()) if len(c) else None
    diff = _difference(mb, mc) if mb is not None and mc is not None else None
    if len(b) < 2 or len(c) < 2:
        return Comparison(len(b), len(c), mb, mc, diff, *([None] * 11))
    t, df, p_one, p_two, low, high = welch(b, c)
    boot = bootstrap_diff_ci(b, c, rng, n_boot)
    u, mw_p = mann_whitney_greater(b, c)
    return Comparison(
        len(b), len(c), mb, mc, diff, t, df, p_one, p_two, low, high, *boot, u, mw_p, u / (len(b) * len(c))
    )


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
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    t = _ratio(mean, se)
    return PairedTest(
        n, mean, sd, t, n - 1, _t_cdf(-t, n - 1), 2 * _t_cdf(-abs(t), n - 1), *_t_interval(mean, se, n - 1)
    )


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
    """Smallest runs per arm giving `power` for a one-sided t-test at `alpha` (noncentral t, scipy.special).

    effect: the true difference to detect (target − mean for the record rule; diff for two arms), in
    the units of `sd`. Returns None when the effect is not in the tested direction or n_max is not enough.
    """
    from scipy import special

    if not (effect > 0 and sd > 0 and math.isfinite(effect) and math.isfinite(sd)):
        return None

    def achieved(n: int) -> float:
        df = 2 * n - 2 if two_sample else n - 1
        se = sd * math.sqrt(2.0 / n if two_sample else 1.0 / n)
        return 1.0 - float(special.nctdtr(df, effect / se, special.stdtrit(df, 1 - alpha)))

    return _smallest_n(lambda n: achieved(n) >= power, n_max)


def _smallest_n(enough, n_max: int) -> int | None:
    """The smallest n in 2..n_max for which `enough(n)` holds, `enough` growing with n (power does):
    doubling from 2, n_max itself tried before giving up, then bisecting. None when n_max is not enough."""
    lo, hi = 2, 2
    while not enough(hi):
        if hi >= n_max:
            return None
        lo, hi = hi, min(hi * 2, n_max)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if not enough(mid) else (lo, mid)
    return hi


def pooled_sd(groups: Iterable[Sequence[float]]) -> tuple[float | None, int]:
    """(the pooled standard deviation of groups of repeats, its degrees of freedom): every group of two
    or more values adds its squared deviations from its own mean and its n − 1. (None, 0) without one."""
    ss, df = 0.0, 0
    for g in groups:
        v = np.asarray([x for x in g if x is not None and math.isfinite(x)], dtype=float)
        if len(v) > 1:
            ss += float(((v - v.mean()) ** 2).sum())
            df += len(v) - 1
    return (math.sqrt(ss / df), df) if df else (None, 0)


WELCH_DRAWS = 20_000
"""Simulated experiments per power figure of `welch_power`: its power is within ~0.006 (one sd) of the
exact one; the same seeded draws serve every effect and run count, so the searches below are stable."""


def welch_power(
    effect: float,
    sd: float,
    n1: int,
    n2: int,
    *,
    alpha: float = 0.05,
    draws: int = WELCH_DRAWS,
    seed: int = 0,
) -> float | None:
    """Power of Welch's two-sided t-test at `alpha` (the report's test of a grid point against the
    baseline) for two groups of n1 and n2 runs whose means differ by `effect`, each run's sd `sd`:
    simulated (seeded), since at a few runs a side Welch's own degrees of freedom are random and the
    noncentral t of a pooled test overstates it (2 runs against 3, at the effect that t puts at 0.80:
    0.58). None when a side
    has fewer than two runs (no test)."""
    from scipy import special

    if n1 < 2 or n2 < 2 or not (sd > 0 and math.isfinite(sd)):
        return None
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((2, draws))
    chi = [rng.chisquare(n - 1, draws) / (n - 1) for n in (n1, n2)]
    v1, v2 = sd**2 * chi[0] / n1, sd**2 * chi[1] / n2  # each mean's estimated variance
    diff = effect + sd * (z[0] / math.sqrt(n1) - z[1] / math.sqrt(n2))
    t = diff / np.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    p = 2 * special.stdtr(df, -np.abs(t))
    return float(np.mean(p < alpha))


def welch_detectable(
    sd: float, n1: int, n2: int, *, alpha: float = 0.05, power: float = 0.8, limit: float = 1e6
) -> float | None:
    """The smallest difference of two means (n1 and n2 runs, run sd `sd`) that Welch's two-sided test at
    `alpha` shows with `power` (`welch_power`, bisected on the effect). None without a test, or when
    `limit` standard deviations do not reach it."""
    if welch_power(0.0, sd, n1, n2, alpha=alpha) is None:
        return None
    lo, hi = 0.0, sd
    while welch_power(hi, sd, n1, n2, alpha=alpha) < power:
        lo, hi = hi, hi * 2
        if hi > limit * sd:
            return None
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if welch_power(mid, sd, n1, n2, alpha=alpha) < power else (lo, mid)
    return hi


def welch_runs_needed(
    effect: float, sd: float, *, alpha: float = 0.05, power: float = 0.8, n_max: int = 1000
) -> int | None:
    """Runs a side (as many on both) for Welch's two-sided test at `alpha` to show `effect` with `power`
    (`welch_power`). None when the effect is not positive or `n_max` runs do not reach it."""
    if not (effect > 0 and sd > 0 and math.isfinite(effect) and math.isfinite(sd)):
        return None

    return _smallest_n(lambda n: welch_power(effect, sd, n, n, alpha=alpha) >= power, n_max)


@dataclass(frozen=True, eq=False)
class NodeFit:
    """`node_offsets`' answer. `offsets`: each node's (their run-weighted mean is 0, so the values keep
    their overall mean once the offsets are taken off); `effects`: each group's mean on that scale (the
    mean of its adjusted values); the residual sd and its degrees of freedom (None and 0 when the fit has
    none left); `cov`: the covariance of the groups' effects, in `effects`' order (residual variance
    times the groups' block of (XᵀX)⁻¹), from which `test` tells contrasts of groups apart, the offsets'
    own error counted."""

    offsets: dict
    effects: dict
    residual_sd: float | None
    df: int
    cov: np.ndarray | None = None

    def test(self, weights: dict) -> tuple[float, float | None]:
        """(estimate, two-sided p) of sum(w · effect) over `weights` (group -> weight, summing to 0:
        a difference of groups or of group means), by the fit's own t-test; p None without residual
        degrees of freedom. A group the fit does not know raises KeyError."""
        names = list(self.effects)
        w = np.zeros(len(names))
        for g, weight in weights.items():
            w[names.index(g)] += weight
        estimate = float(w @ np.array(list(self.effects.values())))
        if self.cov is None or self.df < 1:
            return estimate, None
        se = math.sqrt(max(float(w @ self.cov @ w), 0.0))
        if se == 0.0:
            return estimate, None
        return estimate, 2 * _t_cdf(-abs(estimate) / se, self.df)


def linked(pairs: Iterable[tuple]) -> bool:
    """Whether the (group, node) pairs join every node to every other through shared groups (a group that
    ran on two nodes links them): only then are the nodes' offsets told apart from the groups' effects."""
    parent: dict = {}

    def root(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for g, n in pairs:
        parent[root(("g", g))] = root(("n", n))
    return len({root(k) for k in parent}) <= 1


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def node_offsets(values, groups, nodes) -> NodeFit | None:
    """A two-way additive fit by least squares, value = group + node (one effect per group, one offset per
    node; no interaction: a node that is 1 % faster is taken to be as much faster for every group, which
    holds for a node's speed, well under a percent apart between configurations). For a sweep that ran on
    several nodes, each configuration on some of them: the offsets taken off its train times make them
    compare like for like. Values that are not finite, or have no node, are left out. None without two
    nodes, or when the nodes are not `linked`."""
    v = np.asarray(values, dtype=float)
    g, n = np.asarray(groups, dtype=object), np.asarray(nodes, dtype=object)
    keep = np.isfinite(v) & np.array([not _missing(x) for x in n], dtype=bool)
    v, g, n = v[keep], g[keep], n[keep]
    node_names = list(dict.fromkeys(n.tolist()))
    if len(node_names) < 2 or not linked(zip(g.tolist(), n.tolist(), strict=True)):
        return None
    group_names = list(dict.fromkeys(g.tolist()))
    k = len(group_names)
    gi = {x: i for i, x in enumerate(group_names)}
    ni = {x: i for i, x in enumerate(node_names)}
    x = np.zeros((len(v), k + len(node_names) - 1))
    x[np.arange(len(v)), [gi[a] for a in g]] = 1.0
    for row, node in enumerate(n):  # the first node is the reference; its offset is 0 before centring
        if ni[node]:
            x[row, k + ni[node] - 1] = 1.0
    xtx_inv = np.linalg.inv(x.T @ x)  # full rank: the nodes are linked
    coef = xtx_inv @ (x.T @ v)
    raw = np.concatenate([[0.0], coef[k:]])
    shift = float(raw[[ni[a] for a in n]].mean())
    resid = v - x @ coef
    df = len(v) - x.shape[1]
    sd = math.sqrt(float(resid @ resid) / df) if df > 0 else None
    return NodeFit(
        offsets={name: float(raw[i] - shift) for name, i in ni.items()},
        effects={name: float(coef[i] + shift) for name, i in gi.items()},
        residual_sd=sd,
        df=df,
        cov=sd**2 * xtx_inv[:k, :k] if sd is not None else None,
    )
