"""Numbers of a report as plain data and stable text: the A/B summary (the seed's lines first) and the
grid table of configurations against the baseline. Pure functions; `report` and `cli` render them.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from analysis import knobdiff, sequential, stats
from analysis.resultsdir import RETRYABLE_STATUSES

if TYPE_CHECKING:  # the grid table's pandas is imported where it is built: `ablate compare` never needs it
    import pandas as pd

ALPHA_RECORD = 0.01
BOOTSTRAP_SEED = 20250905
"""Fixed: the same logs or results give the same bootstrap interval, run after run: `ablate compare`'s
numbers and the report (byte for byte) use it."""


def counted(n: int, noun: str) -> str:
    """`1 run`, `2 runs`: a count with its noun in the singular or the plural (an `s` added)."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _f(x, spec: str = ".4f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def _p(x, exact: bool) -> str:
    """A p-value as the seed prints it (4 decimals); with `exact`, the value too when that reads 0.0000."""
    text = _f(x)
    if exact and text == "0.0000":
        text += f" ({x:.1e})" if x > 0 else " (0)"
    return text


def arm_numbers(loss, times, target: float | None) -> dict:
    """One arm's record rule (None fields without a target) and train time. loss: final val losses;
    times: train times in s."""
    loss, times = np.asarray(loss, float), np.asarray(times, float)
    # Without a target the test is skipped; the descriptive fields (n, mean, sd, upper bound) remain.
    rec = stats.record_test(loss, stats.DEFAULT_TARGET if target is None else target)
    return {
        "n": rec.n,
        "mean_val_loss": rec.mean,
        "sd_val_loss": rec.sd,
        "t": rec.t if target is not None else None,
        "p_value": rec.p if target is not None else None,
        "upper99_val_loss": rec.upper99,
        "mean_train_time_s": float(np.mean(times)) if len(times) else None,
        "sd_train_time_s": float(np.std(times, ddof=1)) if len(times) > 1 else None,
    }


def ab_summary(arms: dict[str, dict], target: float | None, rng: np.random.Generator, blocks=None) -> dict:
    """Everything an A/B report says. arms = {"baseline": {"loss": [...], "time_s": [...]}, "candidate": ...}.

    blocks: optional {"time_s": per-block deltas, "loss": per-block deltas} (baseline − candidate).
    """
    out = {"target": target, "arms": {}}
    for name in ("baseline", "candidate"):
        out["arms"][name] = arm_numbers(arms[name]["loss"], arms[name]["time_s"], target)
    b, c = arms["baseline"], arms["candidate"]
    tcmp = stats.compare(b["time_s"], c["time_s"], rng)
    lcmp = stats.compare(b["loss"], c["loss"], rng)
    out["time_delta"] = {
        "mean_s": tcmp.diff, "welch_t": tcmp.welch_t, "welch_df": tcmp.welch_df,
        "p_one_sided": tcmp.p_one_sided, "p_two_sided": tcmp.p_two_sided,
        "ci95_low_s": tcmp.ci95_low, "ci95_high_s": tcmp.ci95_high,
        "bootstrap95_low_s": tcmp.boot_low, "bootstrap95_high_s": tcmp.boot_high,
        "mann_whitney_p": tcmp.mw_p, "prob_improvement": tcmp.prob_improvement,
    }  # fmt: skip
    out["loss_delta"] = lcmp.as_dict()
    out["paired"] = None
    if blocks is not None and len(blocks.get("time_s", [])) >= 1:
        out["paired"] = {k: stats.paired_test(v).as_dict() for k, v in blocks.items()}
    out["runs_needed"] = _runs_needed(out, tcmp, target)
    seq_time = blocks["time_s"] if blocks is not None else None
    out["sequential"] = _sequential(c["loss"], seq_time, target)
    return out


def one_arm_summary(loss, times, target: float | None) -> dict:
    """The record rule and train time of one set of runs (`ablate compare --logs`): the A/B summary's
    keys that need no second arm. loss: final val losses; times: train times in s."""
    arm = arm_numbers(loss, times, target)
    return {"target": target, "arms": {"runs": arm}, "runs_needed": _loss_needed(arm, target),
            "sequential": _sequential(loss, None, target)}  # fmt: skip


def _loss_needed(arm: dict, target: float | None) -> dict:
    """{"loss_vs_target": runs for the record rule at the arm's observed spread}, or {} without a target
    or a spread."""
    if target is None or not arm["sd_val_loss"]:
        return {}
    return {"loss_vs_target": stats.runs_needed(target - arm["mean_val_loss"], arm["sd_val_loss"])}


def _runs_needed(out, tcmp, target) -> dict:
    res = _loss_needed(out["arms"]["candidate"], target)
    if tcmp.diff is not None and tcmp.welch_t:
        sd = abs(tcmp.diff / tcmp.welch_t) * math.sqrt(1.0 / (1.0 / tcmp.n_baseline + 1.0 / tcmp.n_candidate))
        res["time_delta"] = stats.runs_needed(tcmp.diff, sd, two_sample=True)
    return res


def _sequential(cand_loss, time_deltas, target) -> dict:
    res = {}
    if target is not None:
        res["loss_vs_target"] = sequential.decide_against(cand_loss, target).__dict__
    if time_deltas is not None:
        res["time_delta_blocks"] = sequential.decide_against(time_deltas, 0.0).__dict__
    return res


def ab_lines(s: dict, *, exact: bool = False) -> list[str]:
    """Stable text of an A/B summary: the seed's lines first (p per arm, mean times, time improvement).

    exact: a p-value that prints as 0.0000 is followed by its value, `p=0.0000 (1.4e-05)`.
    """
    a, t = s["arms"], s["time_delta"]
    lines = _record_rule_lines(s, ("candidate", "baseline"), exact)
    lines.append("mean train time (s):")
    for name in ("candidate", "baseline"):
        lines.append(f"{name}: {_f(a[name]['mean_train_time_s'])}  (sd {_f(a[name]['sd_train_time_s'])})")
    lines.append(f"Time improve: {_f(t['mean_s'])} sec  (baseline - candidate; positive = candidate faster)")
    if t["welch_t"] is None:
        lines.append("timing test: no test (an arm has n < 2)")
        return lines
    lines.append(
        f"Welch t={_f(t['welch_t'], '.3f')} df={_f(t['welch_df'], '.1f')} p(one-sided, candidate faster)="
        f"{_p(t['p_one_sided'], exact)} p(two-sided)={_p(t['p_two_sided'], exact)}"
    )
    lines.append(
        f"95% interval of the improvement: [{_f(t['ci95_low_s'])}, {_f(t['ci95_high_s'])}] s (Welch)"
    )
    lines.append(f"bootstrap 95% interval: [{_f(t['bootstrap95_low_s'])}, {_f(t['bootstrap95_high_s'])}] s")
    lines.append(
        f"Mann-Whitney p(one-sided)={_p(t['mann_whitney_p'], exact)}  "
        f"probability of improvement={_f(t['prob_improvement'], '.3f')}"
    )
    return lines


def _record_rule_lines(s: dict, arms: tuple[str, ...], exact: bool) -> list[str]:
    """The record rule's heading, then each arm's p and figures; one line saying it was skipped without a
    target."""
    if s["target"] is None:
        return ["record rule: skipped (no target: synthetic data)"]
    heading = f"record rule: one-sample t-test of final val loss against {s['target']}, alternative less"
    a = s["arms"]
    return [heading, *(f"{name}: p={_p(a[name]['p_value'], exact)}" + _arm_detail(a[name]) for name in arms)]


def _arm_detail(arm: dict) -> str:
    if arm["n"] < 2:
        return f"  (n={arm['n']}: no test, mean {_f(arm['mean_val_loss'], '.5f')})"
    return (
        f"  (n={arm['n']}, mean {_f(arm['mean_val_loss'], '.5f')}, sd {_f(arm['sd_val_loss'], '.5f')}, "
        f"t={_f(arm['t'], '.3f')}, 99% upper bound {_f(arm['upper99_val_loss'], '.5f')})"
    )


def ab_extra_lines(s: dict, *, exact: bool = False) -> list[str]:
    """Paired view, loss comparison, runs needed and the sequential test, as stable text."""
    lines = []
    ld = s["loss_delta"]
    if ld["welch_t"] is not None:
        lines.append(
            f"loss: baseline - candidate = {_f(ld['diff'], '.5f')} "
            f"(Welch p two-sided {_p(ld['p_two_sided'], exact)}, "
            f"95% [{_f(ld['ci95_low'], '.5f')}, {_f(ld['ci95_high'], '.5f')}])"
        )
    if s["paired"]:
        for what, p in s["paired"].items():
            if p["t"] is None:
                lines.append(f"paired by block ({what}): {counted(p['n_blocks'], 'block')}: no test (n < 2)")
                continue
            spec = ".5f" if what == "loss" else ".4f"  # losses differ in the 4th decimal
            lines.append(
                f"paired by block ({what}): {p['n_blocks']} blocks, mean {_f(p['mean_diff'], spec)}, "
                f"t={_f(p['t'], '.3f')}, p(one-sided, candidate lower)={_p(p['p_one_sided'], exact)}, "
                f"95% [{_f(p['ci95_low'], spec)}, {_f(p['ci95_high'], spec)}]"
            )
    return lines + _needed_and_sequential_lines(s)


def _needed_and_sequential_lines(s: dict) -> list[str]:
    lines = []
    for what, n in s["runs_needed"].items():
        text = "n/a (no effect in the tested direction)" if n is None else f"{n} runs per arm"
        lines.append(f"runs needed for p<0.01 at 80% power ({what}, observed spread): {text}")
    for what, d in s["sequential"].items():
        verdict = d["verdict"] or "undecided"
        bounded = math.isfinite(d["low"]) and math.isfinite(d["high"])
        cs = f"[{_f(d['low'], '.5f')}, {_f(d['high'], '.5f')}]" if bounded else "unbounded (too few runs)"
        lines.append(
            f"sequential test ({what}, alpha={d['alpha']}): n={d['n']}, confidence sequence {cs} "
            f"vs {d['reference']}: {verdict}"
        )
    return lines


def _record_verdict(s: dict, arm: str, verbs: tuple[str, str], exact: bool) -> str | None:
    """`<arm> passes the record rule (p=... vs 3.28)`, or None without a target; verbs: (pass, fail)."""
    a = s["arms"][arm]
    if s["target"] is None:
        return None
    if a["p_value"] is None:
        return f"record rule: no test ({arm} n={a['n']})"
    verb = verbs[0] if a["p_value"] < ALPHA_RECORD else verbs[1]
    return f"{verb} the record rule (p={_p(a['p_value'], exact)} vs {s['target']})"


def ab_verdict(s: dict, *, exact: bool = False) -> str:
    """One line: record rule and timing, 'not significant' said plainly."""
    record = _record_verdict(s, "candidate", ("candidate passes", "candidate does not pass"), exact)
    parts = [record] if record else []
    t = s["time_delta"]
    if t["p_one_sided"] is None:
        parts.append("timing: no test (n < 2)")
    elif t["p_two_sided"] < 0.05:
        way = "faster" if t["mean_s"] > 0 else "slower"
        parts.append(
            f"candidate {way} by {abs(t['mean_s']):.4f} s (p two-sided={_p(t['p_two_sided'], exact)})"
        )
    else:
        parts.append(
            f"timing difference not significant ({_f(t['mean_s'])} s, p={_p(t['p_two_sided'], exact)})"
        )
    return "; ".join(parts)


def one_arm_verdict(s: dict, *, exact: bool = False) -> str:
    """One line for one set of runs: the record rule, or their number and mean time without a target."""
    verdict = _record_verdict(s, "runs", ("the runs pass", "the runs do not pass"), exact)
    a = s["arms"]["runs"]
    return verdict or f"no target: {counted(a['n'], 'run')}, mean train time {_f(a['mean_train_time_s'])} s"


def one_arm_lines(s: dict, *, exact: bool = False) -> list[str]:
    """Stable text of `one_arm_summary`: the record rule, mean time, runs needed, the sequential test."""
    a = s["arms"]["runs"]
    lines = _record_rule_lines(s, ("runs",), exact)
    lines.append(f"mean train time (s): {_f(a['mean_train_time_s'])}  (sd {_f(a['sd_train_time_s'])})")
    return lines + _needed_and_sequential_lines(s)


FAILED_STATUSES = RETRYABLE_STATUSES
"""Outcomes that are failures, the ones `--retry-failed` runs again (a diverged run is a result)."""


def failed(runs: pd.DataFrame) -> pd.DataFrame:
    """The failed and timed-out runs (FAILED_STATUSES); none when the table has no status column."""
    return runs[runs["status"].isin(FAILED_STATUSES)] if "status" in runs else runs.iloc[0:0]


def failure_reason(error) -> str:
    """Why a run did not end ok: the first line of its `error` column (the orchestrator writes the
    reason there, then the output's last lines)."""
    if not isinstance(error, str) or not error.strip():
        return "no reason recorded"
    return error.strip().splitlines()[0]


def failure_lines(runs: pd.DataFrame) -> list[str]:
    """The failed and timed-out runs as stable text, one line per status and reason (most runs first):
    `  4 failed (base 2, cand 2; 1c9ad08b40f73fb6 and 3 more): exit code 2: python: can't open file ...`."""
    bad = failed(runs)
    if bad.empty:
        return []
    errors = bad["error"] if "error" in bad else [None] * len(bad)
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for run_id, arm, status, error in zip(bad["run_id"], bad["arm"], bad["status"], errors, strict=True):
        groups.setdefault((status, failure_reason(error)), []).append((str(run_id), str(arm)))
    lines = [
        f"failed runs: {len(bad)} (reason: the first line of each run's error; its whole output: "
        "logs/<run_id>.txt)"
    ]
    for (status, reason), members in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        arms = Counter(arm for _, arm in members)
        ids = sorted(r for r, _ in members)
        which = ids[0] if len(ids) == 1 else f"{ids[0]} and {len(ids) - 1} more"
        arm_text = ", ".join(f"{a} {n}" for a, n in sorted(arms.items()))
        lines.append(f"  {len(members)} {status} ({arm_text}; {which}): {reason}")
    return lines


def config_names(runs: pd.DataFrame, baseline_arm: str | None = None) -> pd.Series:
    """A name per run: its arm, and with `baseline_arm` how its configuration differs from the baseline
    arm's, knob by knob (`attn3 (attn_off: [7] -> [3])`, from the runs' resolved `params`); for runs
    without recorded knobs (other programs), or without `baseline_arm`, the grid point's values (the
    `label` column) or the knob values that vary within the arm."""
    names = runs["arm"].astype(str).copy()
    base = _arm_params(runs, baseline_arm)
    # seed differs per replicate by design: replicates of one configuration must stay one group
    knobs = [c for c in runs.columns if c.startswith("knob_") and c != "knob_seed"]
    for arm, g in runs.groupby("arm"):
        params = [_params(p) for p in g["params"]] if "params" in g else []
        if base is not None and arm != baseline_arm and params and all(params):
            names[g.index] = [f"{arm} ({knobdiff.diff_text(base, p)})" for p in params]
            continue
        source = g["label"] if "label" in g and g["label"].notna().any() else None
        if source is not None:
            names[g.index] = [f"{arm} {_label_text(x)}" if x else str(arm) for x in source]
            continue
        varying = [k for k in knobs if g[k].astype(str).nunique() > 1]
        if varying:
            names[g.index] = [f"{arm} " + ",".join(f"{k[5:]}={g.at[i, k]}" for k in varying) for i in g.index]
    return names


def _params(text) -> dict | None:
    """A run's resolved knobs (its `params` JSON), or None when it has none (another program's run)."""
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) and value else None


def arm_difference(runs: pd.DataFrame, baseline_arm: str, arm: str) -> str | None:
    """How `arm`'s configuration differs from the baseline arm's, knob by knob, or None when either has
    no recorded knobs (runs of other programs)."""
    base, other = _arm_params(runs, baseline_arm), _arm_params(runs, arm)
    return None if base is None or other is None else knobdiff.diff_text(base, other)


def _arm_params(runs: pd.DataFrame, arm: str | None) -> dict | None:
    """An arm's knobs: the configuration most of its runs have (its only one, for an arm without a
    grid); None without the arm or recorded knobs."""
    if arm is None or "params" not in runs:
        return None
    texts = list(runs.loc[runs["arm"] == arm, "params"])
    parsed = sorted((t for t in texts if _params(t) is not None), key=lambda t: (-texts.count(t), t))
    return _params(parsed[0]) if parsed else None


def _label_text(x) -> str:
    d = json.loads(x) if isinstance(x, str) else x
    if not d:
        return ""
    return ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(d.items()))


def baseline_row(runs: pd.DataFrame, baseline_arm: str) -> dict:
    """The grid table's first row: the baseline arm's own n and means over its ok runs (what every delta
    is taken from); its delta and p cells say "-", its name is the arm's, "(baseline)" added unless the arm
    is named so."""
    base = runs[(runs["status"] == "ok") & (runs["arm"] == baseline_arm)]
    loss, secs = base["final_val_loss"].dropna(), base["train_time_ms"].dropna() / 1000.0
    dash = dict.fromkeys(
        ("loss_delta", "loss_p", "time_delta_s", "time_p", "loss_p_holm", "time_p_holm"), "-"
    )
    name = baseline_arm if baseline_arm == "baseline" else f"{baseline_arm} (baseline)"
    return {"config": name, "n": len(base),
            "mean_val_loss": float(loss.mean()) if len(loss) else None,
            "mean_time_s": float(secs.mean()) if len(secs) else None, **dash}  # fmt: skip


def grid_table(
    runs: pd.DataFrame, baseline_arm: str, rng: np.random.Generator, time_fit: stats.NodeFit | None = None
) -> pd.DataFrame:
    """Each configuration against the baseline arm on final loss and time, sorted by loss effect.

    delta = mean(baseline) − mean(config): positive = lower loss / faster. p is Welch two-sided,
    Holm-corrected across configurations. A configuration with one run gets its mean and "no test (n=1)".
    With `time_fit` (a sweep on several nodes; `runs` then hold the node-adjusted times), the time delta
    and its p are the fit's (`stats.NodeFit.test`), which counts the error of the offsets taken off.
    """
    import pandas as pd

    ok = runs[runs["status"] == "ok"]
    ok = ok.assign(config=config_names(ok, baseline_arm))
    base = ok[ok["arm"] == baseline_arm]
    base_name = base["config"].iloc[0] if base["config"].nunique() == 1 else None  # the fit's name of it
    rows = []
    for name, g in ok[ok["arm"] != baseline_arm].groupby("config", sort=True):
        lc = stats.compare(base["final_val_loss"], g["final_val_loss"], rng)
        tc = stats.compare(base["train_time_ms"] / 1000.0, g["train_time_ms"] / 1000.0, rng)
        time_delta, time_p = tc.diff, tc.p_two_sided
        if time_fit is not None and base_name in time_fit.effects and name in time_fit.effects:
            time_delta, time_p = time_fit.test({base_name: 1.0, name: -1.0})
            # tested where the loss is (two runs a side), so that Holm's m is the same for both
            time_p = time_p if tc.p_two_sided is not None else None
        rows.append(
            {"config": name, "n": len(g), "mean_val_loss": lc.mean_candidate, "loss_delta": lc.diff,
             "loss_p": lc.p_two_sided, "mean_time_s": tc.mean_candidate, "time_delta_s": time_delta,
             "time_p": time_p}
        )  # fmt: skip
    table = pd.DataFrame(rows, columns=["config", "n", "mean_val_loss", "loss_delta", "loss_p", "mean_time_s",
                                        "time_delta_s", "time_p"])  # fmt: skip
    if table.empty:
        return table.assign(loss_p_holm=[], time_p_holm=[])
    table["loss_p_holm"] = stats.holm(table["loss_p"].to_numpy(float))
    table["time_p_holm"] = stats.holm(table["time_p"].to_numpy(float))
    return table.sort_values(["loss_delta", "config"], ascending=[False, True], kind="stable").reset_index(
        drop=True
    )


SPREAD_EFFECTS = (0.005, 0.01, 0.02)
"""Loss differences (final val loss) the repeats line asks runs for: at GPT-2 small's ~3.28, a record's
margins and the seed's layer effects are of this size."""


def spread_lines(
    runs: pd.DataFrame, baseline_arm: str | None, time_fit: stats.NodeFit | None = None
) -> list[str]:
    """What a grid's repeats can tell apart, by the table's own test (Welch, two-sided, 80 % power,
    simulated: `stats.welch_power`): the run-to-run sd (pooled over every configuration with two or
    more ok runs, seeds apart; with few degrees of freedom that sd is itself rough, and the line says
    how many it has), the smallest difference from the baseline each point size shows, uncorrected
    and at the table's Holm bar (its strongest point needs p < 5 %/m over m configurations), and how
    many runs a point would need for the differences of SPREAD_EFFECTS. Points of one run get no test
    in the table (a contrast over several points tests them together): said, not priced. Empty without a
    baseline arm. With `time_fit` (several nodes), the time sd is the node fit's residual sd, with its
    degrees of freedom (pooling the adjusted times would not count the offsets fitted from them)."""
    ok = runs[(runs["status"] == "ok") & runs["final_val_loss"].notna()]
    if baseline_arm is None or not (ok["arm"] == baseline_arm).any():
        return []
    ok = ok.assign(config=config_names(ok, baseline_arm), train_time_s=ok["train_time_ms"] / 1000.0)
    groups = ok.groupby("config")
    sd, df = stats.pooled_sd(g.to_numpy(float) for _, g in groups["final_val_loss"])
    if sd is None:
        return ["run-to-run spread: unknown (no configuration has two runs yet): a grid point's difference "
                "from the baseline has no test until repeats run"]  # fmt: skip
    repeated = int((groups.size() > 1).sum())
    t_sd, _ = stats.pooled_sd(g.dropna().to_numpy(float) for _, g in groups["train_time_s"])
    t_text = f"; of train time: {t_sd:.4f} s" if t_sd is not None else ""
    if time_fit is not None and time_fit.residual_sd is not None:
        t_sd = time_fit.residual_sd
        t_text = (f"; of train time: {t_sd:.4f} s (the node fit's residual sd, "
                  f"{counted(time_fit.df, 'degree')} of freedom)")  # fmt: skip
    lines = [
        f"run-to-run sd of final val loss: {sd:.5f} (pooled over {counted(repeated, 'configuration')} with "
        f"repeats, {counted(df, 'degree')} of freedom)" + t_text
    ]
    n_base = int((ok["arm"] == baseline_arm).sum())
    points = ok[ok["arm"] != baseline_arm].groupby("config").size()
    m = max(1, len(points))
    holm = f"at the table's Holm bar (5 %/{m})"  # said only where m > 1: one configuration, no correction
    lines += _point_size_lines(points, n_base, sd, t_sd, m, holm)

    def needed(alpha: float) -> str:
        ns = [stats.welch_runs_needed(effect, sd, alpha=alpha) for effect in SPREAD_EFFECTS]
        return " / ".join("over 1000" if n is None else str(n) for n in ns)

    line = (
        "runs a point needs, with as many baseline runs, for a loss difference of "
        + " / ".join(f"{e:g}" for e in SPREAD_EFFECTS)
        + f" (Welch, 5 % two-sided, 80 % power at this sd): {needed(0.05)}"
    )
    lines.append(line + (f" uncorrected; {needed(0.05 / m)} {holm}" if m > 1 else ""))
    return lines


def _point_size_lines(points, n_base: int, sd: float, t_sd: float | None, m: int, holm: str) -> list[str]:
    """`spread_lines`' middle: per point size, the smallest difference from the baseline it shows."""
    if n_base < 2:
        return [f"the baseline has {counted(n_base, 'run')}: no point has a test against it yet"]
    lines = []
    singles = int((points == 1).sum())
    if singles:
        lines.append(f"points of 1 run ({singles}): no test in the table (a contrast over several points, "
                     "the spec's `contrasts`, tests them together)")  # fmt: skip
    for n in sorted(set(points[points > 1])):
        loss = [stats.welch_detectable(sd, int(n), n_base, alpha=a) for a in (0.05, 0.05 / m)]
        time = stats.welch_detectable(t_sd, int(n), n_base) if t_sd is not None else None
        text = f"a loss difference of {_f(loss[0])}" + (f" ({_f(loss[1])} {holm})" if m > 1 else "")
        text += f", a time difference of {time:.2f} s" if time is not None else ""
        lines.append(
            f"points of {n} runs ({int((points == n).sum())}) against the baseline's {n_base}: Welch, "
            f"5 % two-sided, shows with 80 % power at this sd {text}"
        )
    return lines


CONTRAST_COLUMNS = ["contrast", "points", "n", "mean_val_loss", "against", "against_points", "n_against",
                    "against_mean_val_loss", "loss_delta", "loss_ci95", "loss_p", "time_delta_s",
                    "time_p"]  # fmt: skip


def _side(g: pd.DataFrame, col: str) -> pd.Series:
    """A contrast side's sample: one mean per point when it holds several (each point counts once, however
    many repeats it has), its runs when it holds one point (or is the baseline arm)."""
    vals = g[["_layer", col]].dropna(subset=[col])
    if vals["_layer"].nunique() > 1:
        return vals.groupby("_layer")[col].mean()
    return vals[col]


def contrast_table(
    runs: pd.DataFrame,
    contrasts,
    point_layers: dict[str, dict[str, int]] | None,
    baseline_arm: str | None,
    time_fit: stats.NodeFit | None = None,
) -> pd.DataFrame:
    """The spec's contrasts (sweep.json's `contrasts`), one row each: the ok runs at the contrast's
    layers against those at its `against` layers (same arm) or the baseline arm's runs.

    delta = mean(against) − mean(layers), as the grid table's: positive = the layers' runs end lower /
    run faster. A side of several points is one mean per point (Welch over the point means: the test
    asks whether the group's points differ, each point counted once whatever its repeats, the spread
    between points counted as noise); a side of one point, or the baseline, is its runs. `points` says
    how many of a side's layers have a run yet; fewer than 2 values on a side: its mean, no test. Not
    corrected for several contrasts: each is a question the spec asked before the runs. With `time_fit`
    (several nodes; node-adjusted times in `runs`), the time delta and p are the fit's test of the
    same contrast (each point's effect counted once; the offsets' own error counted)."""
    import pandas as pd

    ok = runs[(runs["status"] == "ok") & runs["final_val_loss"].notna()]
    ok = ok.assign(train_time_s=ok["train_time_ms"] / 1000.0)
    names = config_names(ok, baseline_arm) if time_fit is not None else None
    layer_of = point_layers or {}
    rows = []
    for c in contrasts or ():
        arm = ok[ok["arm"] == c["arm"]]
        at = arm.assign(_layer=[(layer_of.get(r) or {}).get(c["knob"]) for r in arm["run_id"]])
        side = at[at["_layer"].isin(c["layers"])]
        if c["against"] == "baseline":
            other = ok[ok["arm"] == baseline_arm].assign(_layer=None)
            other_name = baseline_arm if baseline_arm == "baseline" else f"{baseline_arm} (baseline)"
            other_points = "-"
        else:
            other = at[at["_layer"].isin(c["against"])]
            other_name = f"layers {knobdiff.layer_ranges(sorted(c['against']))}"
            other_points = f"{other['_layer'].nunique()} of {len(c['against'])}"
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        lc = stats.compare(_side(other, "final_val_loss"), _side(side, "final_val_loss"), rng)
        tc = stats.compare(_side(other, "train_time_s"), _side(side, "train_time_s"), rng)
        time_delta, time_p = tc.diff, tc.p_two_sided
        if time_fit is not None and len(side) and len(other):
            time_delta, time_p = _fit_contrast(time_fit, other, side, names)
        loss_n = f"no test (n={min(lc.n_baseline, lc.n_candidate)})"
        tested = lc.p_two_sided is not None
        rows.append(
            {"contrast": c["label"], "points": f"{side['_layer'].nunique()} of {len(c['layers'])}",
             "n": len(side), "mean_val_loss": lc.mean_candidate, "against": other_name,
             "against_points": other_points, "n_against": len(other),
             "against_mean_val_loss": lc.mean_baseline, "loss_delta": lc.diff,
             "loss_ci95": f"[{lc.ci95_low:.4f}, {lc.ci95_high:.4f}]" if tested else loss_n,
             "loss_p": lc.p_two_sided if tested else loss_n, "time_delta_s": time_delta,
             "time_p": time_p if time_p is not None
             else f"no test (n={min(tc.n_baseline, tc.n_candidate)})"}
        )  # fmt: skip
    return pd.DataFrame(rows, columns=CONTRAST_COLUMNS)


def _fit_contrast(fit: stats.NodeFit, other: pd.DataFrame, side: pd.DataFrame, names: pd.Series):
    """A contrast's time by the node fit: mean(against's point effects) − mean(the layers' point
    effects), each point (configuration) once, as the loss side counts them; (delta, p)."""
    weights: dict = {}
    for rows, sign in ((other, 1.0), (side, -1.0)):
        configs = names.loc[rows.index].unique()
        for c in configs:
            weights[c] = weights.get(c, 0.0) + sign / len(configs)
    if not all(c in fit.effects for c in weights):
        return None, None
    return fit.test(weights)
