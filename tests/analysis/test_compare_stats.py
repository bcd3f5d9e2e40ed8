"""The statistics of `ablate compare`, written over scipy.special and numpy, give scipy.stats' figures.

analysis.stats avoids scipy.stats (its import alone takes ~1.9 s on a 2-core machine); these tests hold
it to scipy.stats on random samples, ties, tiny and zero spreads, and both Mann-Whitney methods.
"""

import math

import numpy as np
import pytest
from scipy import stats as st

from analysis import stats

RTOL = 1e-9  # relative; the figures agree to ~1e-14, an interval's end near 0 to ~1e-12 absolute


def _close(ours, ref, rtol=RTOL, atol=1e-12):
    ref = float(ref)
    if math.isnan(ref) or math.isinf(ref):
        return ours == ref or (math.isnan(ours) and math.isnan(ref))
    return abs(ours - ref) <= atol + rtol * abs(ref)


def _samples(seed: int, count: int = 300):
    """Pairs of arms as runs give them: losses rounded to 4 decimals (ties), times in s, mixed sizes."""
    rng = np.random.default_rng(seed)
    for k in range(count):
        n1, n2 = (int(x) for x in rng.integers(2, 14, 2))
        if k % 3 == 0:  # final losses, printed with 4 decimals: ties are common
            yield np.round(rng.normal(3.278, 0.0012, n1), 4), np.round(rng.normal(3.2785, 0.0012, n2), 4)
        else:  # train times in s, no ties
            yield rng.normal(164.4, 0.2, n1), rng.normal(163.0 + k % 2, 0.2, n2)


def test_welch_and_mann_whitney_match_scipy_stats():
    for b, c in _samples(0):
        r = stats.compare(b, c, np.random.default_rng(0), n_boot=10)
        two = st.ttest_ind(b, c, equal_var=False)
        one = st.ttest_ind(b, c, equal_var=False, alternative="greater")
        ci = two.confidence_interval(0.95)
        mw = st.mannwhitneyu(b, c, alternative="greater")
        pairs = [
            (r.welch_t, two.statistic), (r.welch_df, two.df), (r.p_one_sided, one.pvalue),
            (r.p_two_sided, two.pvalue), (r.ci95_low, ci.low), (r.ci95_high, ci.high),
            (r.mw_u, mw.statistic), (r.mw_p, mw.pvalue),
        ]  # fmt: skip
        assert all(_close(ours, ref) for ours, ref in pairs), (b, c, pairs)


@pytest.mark.parametrize(("n1", "n2"), [(2, 2), (3, 8), (8, 8), (8, 30), (9, 9), (5, 40)])
def test_mann_whitney_exact_and_normal_branches(n1, n2):
    rng = np.random.default_rng(n1 * 100 + n2)
    for _ in range(20):
        b, c = rng.normal(0, 1, n1), rng.normal(0.5, 1, n2)
        u, p = stats.mann_whitney_greater(b, c)
        ref = st.mannwhitneyu(b, c, alternative="greater")
        assert u == ref.statistic and _close(p, ref.pvalue), (n1, n2, p, ref.pvalue)


@pytest.mark.filterwarnings("ignore:Precision loss occurred")  # scipy.stats on near-equal samples
def test_record_rule_and_paired_test_match_scipy_stats():
    for b, c in _samples(1, 150):
        rec = stats.record_test(c, 3.28)
        ref = st.ttest_1samp(c, 3.28, alternative="less")
        upper = c.mean() + st.t.ppf(0.99, len(c) - 1) * c.std(ddof=1) / math.sqrt(len(c))
        assert _close(rec.t, ref.statistic) and _close(rec.p, ref.pvalue) and _close(rec.upper99, upper)
        d = b[: min(len(b), len(c))] - c[: min(len(b), len(c))]
        pt = stats.paired_test(d)
        two, one = st.ttest_1samp(d, 0.0), st.ttest_1samp(d, 0.0, alternative="greater")
        ci = two.confidence_interval(0.95)
        assert _close(pt.p_two_sided, two.pvalue) and _close(pt.p_one_sided, one.pvalue)
        assert _close(pt.ci95_low, ci.low) and _close(pt.ci95_high, ci.high)


@pytest.mark.filterwarnings("ignore:Precision loss occurred")
def test_degenerate_spreads_behave_as_scipy_stats():
    same = np.array([3.27, 3.27, 3.27])
    rec = stats.record_test(same, 3.28)  # sd 0: t = -inf, p = 0, as scipy.stats says
    ref = st.ttest_1samp(same, 3.28, alternative="less")
    assert rec.t == ref.statistic == -math.inf and rec.p == ref.pvalue == 0.0
    r = stats.compare(same, same, np.random.default_rng(0), n_boot=10)
    two = st.ttest_ind(same, same, equal_var=False)
    assert math.isnan(r.welch_t) and math.isnan(two.statistic) and r.welch_df == two.df == 1.0
    assert r.mw_p == st.mannwhitneyu(same, same, alternative="greater").pvalue == 1.0


def test_runs_needed_matches_the_noncentral_t_of_scipy_stats():
    def reference(effect, two_sample):
        def power(n):
            df = 2 * n - 2 if two_sample else n - 1
            se = math.sqrt(2.0 / n if two_sample else 1.0 / n)
            return st.nct.sf(st.t.ppf(0.99, df), df, effect / se)

        return next(n for n in range(2, 100_000) if power(n) >= 0.8)

    for effect in np.geomspace(0.05, 8, 40):
        for two_sample in (False, True):
            assert stats.runs_needed(effect, 1.0, two_sample=two_sample) == reference(effect, two_sample)


def test_importing_stats_costs_no_scipy():
    import subprocess
    import sys

    code = "import sys, analysis.stats; print(sorted(m for m in sys.modules if m.startswith('scipy')))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "[]", res.stdout + res.stderr
