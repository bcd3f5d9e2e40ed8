"""`write_report(results_dir)`: report.md, a self-contained report.html and figures/*.png.

Verdict first, then the numbers (the seed's lines first for an A/B, the arms table for a grid), then
figures, per-run overhead and provenance. The text is stable (fixed formats, sorted rows, a fixed
bootstrap seed) so tests compare it with stored expected text.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import figures, knobdiff, stats, summary
from analysis.resultsdir import ResultsDir, SweepInfo
from analysis.summary import BOOTSTRAP_SEED, counted


def run_order(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs in the order they ran: started_at when known, else (block, order_index), then run_id."""
    keys = [
        k for k in ("started_at", "block", "order_index", "run_id") if k in runs and runs[k].notna().any()
    ]
    return runs.sort_values(keys, kind="stable", na_position="last").reset_index(drop=True)


def infer_kind(sweep: SweepInfo | dict, runs: pd.DataFrame) -> str:
    """sweep.json's kind; without it, "ab" when two arms share blocks (interleaved), else "grid"."""
    sweep = SweepInfo.of(sweep)
    if sweep.kind in ("ab", "grid"):
        return sweep.kind
    two_arms = runs["arm"].nunique() == 2 and runs["block"].notna().any()
    return "ab" if two_arms and (runs.groupby("block")["arm"].nunique() == 2).any() else "grid"


def baseline_arm(sweep: SweepInfo | dict, runs: pd.DataFrame) -> str | None:
    sweep = SweepInfo.of(sweep)
    if sweep.baseline_arm:
        return sweep.baseline_arm
    arms = sorted(runs["arm"].dropna().unique())
    return "baseline" if "baseline" in arms else (arms[0] if arms else None)


def split_blocks(ok: pd.DataFrame) -> list:
    """Blocks whose runs ran on more than one node (a sweep resumed elsewhere, a block re-run after
    its node was lost): their pair is not like for like, so the paired test leaves them out."""
    if "block" not in ok or "node_id" not in ok:
        return []
    nodes = ok.dropna(subset=["block", "node_id"]).groupby("block")["node_id"].nunique()
    return sorted(nodes[nodes > 1].index.tolist())


def block_deltas(ok: pd.DataFrame, base: str, cand: str) -> dict | None:
    """Per-block baseline − candidate deltas of time (s) and loss, when runs share blocks."""
    from analysis.stats import block_diffs

    if "block" not in ok or ok["block"].isna().all():
        return None
    ok = ok[~ok["block"].isin(split_blocks(ok))]
    t = block_diffs(ok["train_time_ms"] / 1000.0, ok["arm"], ok["block"], base, cand)
    if len(t) == 0:
        return None
    return {"time_s": t, "loss": block_diffs(ok["final_val_loss"], ok["arm"], ok["block"], base, cand)}


def ab_section(runs: pd.DataFrame, sweep: SweepInfo | dict, target) -> tuple[str, list[str]]:
    """(verdict, lines) of an A/B results folder."""
    sweep = SweepInfo.of(sweep)
    ok = runs[runs["status"] == "ok"]
    base = baseline_arm(sweep, runs)
    others = [a for a in (sweep.arms or sorted(runs["arm"].unique())) if a != base]
    if not others:
        return "no candidate arm has finished runs yet", []
    cand = others[0]
    arms = {
        role: {
            "loss": ok.loc[ok["arm"] == a, "final_val_loss"],
            "time_s": ok.loc[ok["arm"] == a, "train_time_ms"] / 1000,
        }
        for role, a in (("baseline", base), ("candidate", cand))
    }
    s = summary.ab_summary(arms, target, np.random.default_rng(BOOTSTRAP_SEED), block_deltas(ok, base, cand))
    differs = summary.arm_difference(ok, base, cand) if len(ok) else None
    lines = [
        f"baseline = {base}, candidate = {cand}",
        *([f"candidate vs baseline: {differs}"] if differs else []),
        *summary.ab_lines(s),
        *summary.ab_extra_lines(s),
    ]
    split = split_blocks(ok)
    if split:
        names = ", ".join(str(int(b)) for b in split)
        lines.append(
            f"left out of the paired test: {len(split)} block(s) whose runs ran on different nodes ({names})"
        )
    return summary.ab_verdict(s), lines


def grid_section(
    runs: pd.DataFrame, sweep: SweepInfo | dict, target, time_fit: stats.NodeFit | None = None
) -> tuple[str, pd.DataFrame]:
    """(verdict, table) of a grid: the baseline arm's own row first, then each configuration against it
    (`time_fit`: `node_adjusted`'s, for a grid on several nodes)."""
    base = baseline_arm(sweep, runs)
    table = summary.grid_table(runs, base, np.random.default_rng(BOOTSTRAP_SEED), time_fit)
    if table.empty:
        return f"no configuration to compare with the baseline arm {base!r} yet", table
    ref = summary.baseline_row(runs, base)
    n_base = ref["n"]
    untested = (table["n"] < 2) | (n_base < 2)
    tested = table[~untested]
    better = tested[(tested["loss_p_holm"] < 0.05) & (tested["loss_delta"] > 0)]
    worse = tested[(tested["loss_p_holm"] < 0.05) & (tested["loss_delta"] < 0)]
    untested_text = (
        f"no test (the baseline has n={n_base})"
        if n_base < 2
        else f"{int(untested.sum())} with n=1 (no test)"
    )
    verdict = (
        f"{len(table)} configuration{'' if len(table) == 1 else 's'} against {base} (n={n_base}): "
        f"{len(better)} significantly lower loss, {len(worse)} significantly higher (Holm-corrected, 5 %); "
        + untested_text
    )
    for col in ("loss_p", "loss_p_holm", "time_p", "time_p_holm"):
        # Said plainly: a configuration with one run has a mean but no test (the seed's own plot had n=1).
        table[col] = ["no test (n=1)" if u else _fmt(p) for u, p in zip(untested, table[col], strict=True)]
    return verdict, pd.concat([pd.DataFrame([ref], columns=table.columns), table], ignore_index=True)


ABOUT_HEADING = "About this sweep (the spec's description)"
"""Its text is prose, not a table or lines: a paragraph in both reports."""
SPREAD_HEADING = "Run-to-run spread: what the repeats can tell apart"
CONTRASTS_HEADING = (
    "Contrasts the spec asks (delta = against - layers, positive = the layers' runs end lower or run "
    "faster; a side of several points is one mean per point, of one point or the baseline its runs; "
    "p: Welch, two-sided, not corrected)"
)

NODE_HEADING = "Node speed: train times compared like for like (a sweep on several nodes)"


def node_adjusted(
    runs: pd.DataFrame, base: str | None
) -> tuple[pd.DataFrame, list[str], stats.NodeFit | None]:
    """(runs, lines, fit): a grid that ran on several nodes (a sweep in parts, one machine a session) has
    configurations that ran on one node only, and a node's speed would read as theirs. Each node's offset
    is fitted over all its ok runs (`stats.node_offsets`: train time = configuration + node) and taken
    off its runs' train times, so that the table, the spread, the contrasts and the layer figure compare
    like for like; their time tests are the fit's own (`stats.NodeFit.test`), which count the offsets'
    error. The lines say the offsets. On one node: the runs as they are, no lines, no fit. Nodes that no
    configuration links, or ok runs without a node id: the runs as they are, a line saying why."""
    if "node_id" not in runs or base is None:
        return runs, [], None
    ok = runs[(runs["status"] == "ok") & runs["train_time_ms"].notna()]
    nodes = list(dict.fromkeys(run_order(ok)["node_id"].dropna()))
    if len(nodes) < 2:
        return runs, [], None
    if ok["node_id"].isna().any():
        missing = counted(int(ok["node_id"].isna().sum()), "ok run")
        return runs, [f"runs on {len(nodes)} nodes, but {missing} without a node id: train times compare "
                      "as they ran, node speed included"], None  # fmt: skip
    fit = stats.node_offsets(ok["train_time_ms"] / 1000.0, summary.config_names(ok, base), ok["node_id"])
    if fit is None:
        return runs, [f"runs on {len(nodes)} nodes that no configuration links into one group (none ran on "
                      "nodes of both groups): their speeds cannot be told apart from the configurations', "
                      "and train times compare as they ran, node speed included (a baseline run on each "
                      "node links them, as every part of a sweep in parts has)"], None  # fmt: skip
    out = runs.copy()
    out.loc[ok.index, "train_time_ms"] = ok["train_time_ms"] - ok["node_id"].map(fit.offsets) * 1000.0
    resid = f"residual sd {fit.residual_sd:.3f} s, " if fit.residual_sd is not None else ""
    lines = [
        f"{counted(len(ok), 'ok run')} on {len(nodes)} nodes. Each node's offset is fitted over all its ok "
        f"runs (least squares, train time = configuration + node; {resid}{counted(fit.df, 'degree')} of "
        "freedom) and taken off its runs' train times: the table, the spread, the contrasts and the layer "
        "figure compare these, and the time deltas' p are the fit's own t-tests (which count the offsets' "
        "error); the train-time figure and the overhead table show the times as they ran"
    ]
    lines += [_node_line(ok[ok["node_id"] == node], node, fit.offsets[node]) for node in nodes]
    return out, lines, fit


def _node_line(on: pd.DataFrame, node, offset: float) -> str:
    when = on["started_at"].dropna() if "started_at" in on else pd.Series([], dtype=object)
    span = ""
    if len(when):
        end = "%H:%M" if when.min().date() == when.max().date() else "%Y-%m-%d %H:%M"
        span = f", {when.min():%Y-%m-%d %H:%M} to {when.max().strftime(end)} UTC"
    host = on["hostname"].dropna() if "hostname" in on else pd.Series([], dtype=object)
    where = f" on {host.iloc[0]}" if len(host) else ""
    count = counted(len(on), "run")
    return f"node {str(node)[:8]}{where} ({count}{span}): {offset:+.3f} s against the runs' mean"


LAYER_POINT_COLUMNS = ["series", "arm", "layer", "final_val_loss", "train_time_s"]


def layer_points(
    runs: pd.DataFrame,
    point_layers: dict[str, dict[str, int]] | None = None,
    baseline_arm: str | None = None,
) -> pd.DataFrame:
    """(series, arm, layer, final_val_loss, train_time_s) of the ok runs that sit at a layer.

    `point_layers` is what the plan recorded (sweep.json: run_id -> {knob: layer}); a series is an arm
    and its knob, e.g. "drop_one (mlp_off)". Without it (results written before the plan recorded it)
    the layers are inferred from the knob values: the element of a run's list not common to every run
    of its arm (`mlp_off=[3]` gives 3 in "drop one", `[0, 3]` gives 3 in "drop MLP 0 and one more").
    With `baseline_arm`, an arm of one configuration that differs from the baseline's by one layer of
    one list knob is that layer's point too (`mlp_off: [0]` against `[]`: layer 0).
    """
    ok = runs[(runs["status"] == "ok") & runs["final_val_loss"].notna()]
    if point_layers is None:
        rows = _inferred_layer_rows(ok)
    else:
        layers = [point_layers.get(r) or {} for r in ok["run_id"]]
        rows = []
        for knob in sorted({k for d in layers for k in d}):
            for arm, g in ok.assign(_layer=[d.get(knob) for d in layers]).groupby("arm"):
                g = g[g["_layer"].notna()]
                rows += _point_rows(f"{arm} ({knob})", arm, [int(x) for x in g["_layer"]], g)
    if baseline_arm is not None:
        rows += _single_layer_arm_rows(ok, baseline_arm, skip={r[1] for r in rows})
    return pd.DataFrame(rows, columns=LAYER_POINT_COLUMNS)


def _point_rows(series: str, arm: str, layers: list[int], g: pd.DataFrame) -> list[tuple]:
    times = g["train_time_ms"] / 1000.0
    return [(series, arm, x, v, t) for x, v, t in zip(layers, g["final_val_loss"], times, strict=True)]


def _inferred_layer_rows(ok: pd.DataFrame) -> list[tuple]:
    """layer_points of results without recorded layers: arms varying a list-valued knob by one layer,
    by the plan's own guess (`knobdiff.layer_axis`; other arms are left out)."""
    rows = []
    for col in _knob_columns(ok):
        for arm, g in ok.groupby("arm"):
            lists = [_as_list(v) for v in g[col]]
            layer_of = None if any(x is None for x in lists) else knobdiff.layer_axis(lists)
            if layer_of is not None:
                layers = [layer_of[knobdiff.canonical(x)] for x in lists]
                rows += _point_rows(f"{arm} ({col[5:]})", arm, layers, g)
    return rows


def _knob_columns(runs: pd.DataFrame) -> list[str]:
    return [c for c in runs.columns if c.startswith("knob_") and c != "knob_seed"]


def _single_layer_arm_rows(ok: pd.DataFrame, baseline_arm: str, skip: set[str]) -> list[tuple]:
    """Points of the arms (not in `skip`) whose runs share one configuration that adds one layer to one
    list knob of the baseline arm's and differs in nothing else: a plain `set: {mlp_off: [0]}` arm."""
    cols = _knob_columns(ok)
    ref = _one_config(ok[ok["arm"] == baseline_arm], cols)
    rows = []
    for arm, g in ok.groupby("arm"):
        cfg = _one_config(g, cols)
        if arm == baseline_arm or arm in skip or ref is None or cfg is None:
            continue
        differ = [c for c in cols if cfg[c] != ref[c]]
        new, old = (_as_list(cfg[differ[0]]), _as_list(ref[differ[0]])) if len(differ) == 1 else (None, None)
        if new is None or old is None or not set(old) <= set(new):
            continue
        extra = sorted(set(new) - set(old))
        if len(extra) == 1 and isinstance(extra[0], int) and not isinstance(extra[0], bool):
            rows += _point_rows(f"{arm} ({differ[0][5:]})", str(arm), [extra[0]] * len(g), g)
    return rows


def _one_config(g: pd.DataFrame, cols: list[str]) -> dict[str, str] | None:
    """The knob values (as text) that every run of `g` shares, or None when they differ or `g` is empty."""
    if g.empty:
        return None
    values = {c: set(g[c].astype(str)) for c in cols}
    return None if any(len(v) > 1 for v in values.values()) else {c: v.pop() for c, v in values.items()}


def _num_layers(runs: pd.DataFrame) -> int | None:
    """The model's layer count from the runs' trainer parameters (ours record it; other scripts: None)."""
    if "params" not in runs.columns:
        return None
    counts = {json.loads(p).get("num_layers") for p in runs["params"].dropna()} - {None}
    return counts.pop() if len(counts) == 1 else None


def _as_list(v):
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except json.JSONDecodeError:
            return None
    return list(v) if isinstance(v, list) else None


OVERHEAD_PHASES = {
    "cold": "cold: empty compile cache",
    "seeded": "seeded: cache restored from another node",
    "new_config": "new config on a warm cache",
    "elsewhere": "config compiled elsewhere before, on a seeded cache",
    "warm": "warm: config compiled on this node before",
    "unused": "no compile: the run cached nothing",
    "none": "no compile cache (--no-compile-cache)",
}


def overhead_table(runs: pd.DataFrame) -> pd.DataFrame:
    """startup_s = wall_s − train time, by what the run's compile cache held when it started.

    The executor records the node cache's state before a run (cold / seeded / warm); `_cache_states`
    refines a warm one by config (arm and knobs, not the seed): the first run of its config on that
    cache compiles its own graphs (a new config); on a cache that began seeded, the first run of a
    config that an earlier cache compiled (a sweep in parts, each on a fresh machine) may find its
    graphs in the seed, and its start-up says whether it did; else it is warm.
    """
    df = run_order(runs)
    startup = df["startup_s"] if "startup_s" in df else pd.Series(np.nan, index=df.index)
    startup = startup.fillna(df["wall_s"] - df["train_time_ms"] / 1000.0)
    state = _cache_states(df)
    out = pd.DataFrame({"state": state, "startup_s": startup}).dropna()
    out = out[out["state"].isin(list(OVERHEAD_PHASES))]
    if out.empty:
        return pd.DataFrame(columns=["phase", "runs", "mean_startup_s", "max_startup_s"])
    g = out.groupby("state")["startup_s"]
    table = pd.DataFrame({"runs": g.size(), "mean_startup_s": g.mean(), "max_startup_s": g.max()})
    # where it went, when the runs said (our trainer's end event): compile, warm-up steps, validations
    for part in ("compile_s", "warmup_s", "val_s"):
        if part in df and df[part].notna().any():
            table[f"mean_{part}"] = df.loc[out.index, part].groupby(out["state"]).mean()
    table = table.reindex([k for k in OVERHEAD_PHASES if k in table.index])
    table.insert(0, "phase", [OVERHEAD_PHASES[k] for k in table.index])
    return table.reset_index(drop=True)


def _cache_states(df: pd.DataFrame) -> pd.Series:
    """Each run's compile-cache phase (a key of OVERHEAD_PHASES), the runs in the order they ran.

    A cache lives on a host (hostname; the node id where none is recorded: a new embedded Ray gives
    the same machine a new node id, its cache stays) from a cold or seeded start, or the host's first
    run, to the next such start; its runs are told apart by config within that life. Where a run
    recorded no state, the first of its config in the life counts as cold, later ones as warm.
    """
    host = df["hostname"] if "hostname" in df else pd.Series(None, index=df.index, dtype=object)
    if "node_id" in df:
        host = host.fillna(df["node_id"])
    host = host.fillna("?").astype(str)
    # a config: the arm's knobs (trainer arms; their command carries the seed) or its command (scripts)
    what = df["params"].fillna(df["command"]) if "command" in df else df["params"]
    config = df["arm"].astype(str) + "|" + what.astype(str)
    cache = df["compile_cache"] if "compile_cache" in df else pd.Series(None, index=df.index, dtype=object)
    life_of: dict[str, int] = {}
    began: list[str] = []
    seen: set[tuple[int, str]] = set()
    lives_of_config: dict[str, set[int]] = {}
    states = []
    for h, c, st in zip(host, config, cache, strict=True):
        st = st if isinstance(st, str) else None
        if st in ("cold", "seeded") or h not in life_of:
            life_of[h] = len(began)
            began.append(st or "cold")
        life = life_of[h]
        first = (life, c) not in seen
        if st is None:
            st = "cold" if first else "warm"
        elif st == "warm" and first:
            earlier = any(other < life for other in lives_of_config.get(c, ()))
            st = "elsewhere" if began[life] == "seeded" and earlier else "new_config"
        states.append(st)
        seen.add((life, c))
        lives_of_config.setdefault(c, set()).add(life)
    return pd.Series(states, index=df.index)


def overhead_ratios(table: pd.DataFrame) -> list[str]:
    """One line per start that a cold one is measured against: what a warm (or seeded, or new-config)
    start costs as a fraction of a cold compile. Empty without a cold run."""
    by = table.set_index("phase")
    cold = OVERHEAD_PHASES["cold"]
    if cold not in by.index:
        return []
    c = float(by.loc[cold, "mean_startup_s"])
    lines = []
    for key in ("warm", "seeded", "new_config", "elsewhere"):
        phase = OVERHEAD_PHASES[key]
        if phase in by.index and c > 0:
            m, n = float(by.loc[phase, "mean_startup_s"]), int(by.loc[phase, "runs"])
            what = phase.split(":")[0]
            lines.append(f"{what}: {m / c:.3f} of a cold start ({m:.1f} s mean over {n} run(s) vs {c:.1f} s)")
    return lines


def blocks_line(runs: pd.DataFrame) -> list[str]:
    """How the blocks ran, by their runs' start and end times on each node: one at a time per node (as
    an exclusive_node A/B asks, the timings undisturbed) or side by side (their runs shared a node)."""
    cols = ["block", "node_id", "started_at", "ended_at"]
    timed = runs.dropna(subset=cols) if set(cols) <= set(runs.columns) else runs.iloc[0:0]
    if timed.empty:
        return []
    spans = timed.groupby(["node_id", "block"]).agg(start=("started_at", "min"), end=("ended_at", "max"))
    most = 1
    for _, node in spans.groupby(level="node_id"):
        edges = sorted([(t, 1) for t in node["start"]] + [(t, -1) for t in node["end"]])
        at_once = 0
        for _, step in edges:  # at equal times an end (-1) sorts before a start: back to back is not at once
            at_once += step
            most = max(most, at_once)
    n_blocks, n_nodes = timed["block"].nunique(), timed["node_id"].nunique()
    how = "one at a time on each node" if most == 1 else f"up to {most} at once on one node (sharing it)"
    return [f"blocks: {n_blocks} on {n_nodes} node(s), {how}"]


def provenance(runs: pd.DataFrame) -> list[str]:
    """Hosts, GPUs, versions and dates the numbers come from."""

    def values(col):
        if col not in runs:
            return "n/a"
        vals = sorted({str(v) for v in runs[col].dropna()})
        return ", ".join(vals) if vals else "n/a"

    dates = runs["started_at"].dropna() if "started_at" in runs else pd.Series([], dtype=object)
    span = f"{dates.min():%Y-%m-%d %H:%M} to {dates.max():%Y-%m-%d %H:%M} UTC" if len(dates) else "n/a"
    return [
        f"hosts: {values('hostname')}",
        f"GPUs: {values('gpu_name')} (per run: {values('gpus')})",
        f"driver: {values('driver_version')}; CUDA: {values('cuda_version')}",
        f"torch: {values('torch_version')}; ablate: {values('ablate_version')}",
        f"runs started: {span}",
    ]


def status_line(runs: pd.DataFrame, planned) -> str:
    counts = runs["status"].value_counts().sort_index()
    text = ", ".join(f"{k}={v}" for k, v in counts.items()) or "none"
    return f"runs: {len(runs)}" + (f" of {planned} planned" if planned else "") + f" ({text})"


FAILED_HEADING = (
    "Failed runs (reason: the first line of the run's error; its whole output: logs/<run_id>.txt)"
)


def failed_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per failed or timed-out run, in run order: run_id, arm, status, attempt, reason."""
    cols = ["run_id", "arm", "status", "attempt", "reason"]
    bad = summary.failed(runs)
    if bad.empty:
        return pd.DataFrame(columns=cols)
    bad = run_order(bad)
    errors = bad["error"] if "error" in bad else pd.Series(None, index=bad.index)
    attempts = bad["attempt"] if "attempt" in bad else pd.Series(None, index=bad.index)
    return pd.DataFrame(
        {"run_id": bad["run_id"], "arm": bad["arm"], "status": bad["status"],
         "attempt": [None if pd.isna(a) else int(a) for a in attempts],
         "reason": [summary.failure_reason(e) for e in errors]},
        columns=cols,
    )  # fmt: skip


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, (float, np.floating)):
        return f"{x:.4f}" if abs(x) >= 1e-4 or x == 0 else f"{x:.2e}"
    return str(x)


def config_order(ok: pd.DataFrame, base: str | None, arms=()) -> list[tuple[str, str]]:
    """(configuration, arm) of the runs in `ok` (a `config` column) as the figures list them: the
    baseline arm first, then the arms in the spec's order (`arms`), each arm's configurations in plan
    order (their first run's block and position: a drop-one grid by layer)."""
    rank = {a: i for i, a in enumerate(arms)}
    pos = pd.DataFrame({
        "config": ok["config"], "arm": ok["arm"].astype(str),
        "block": ok.get("block", np.nan), "order": ok.get("order_index", np.nan),
    }).fillna({"block": np.inf, "order": np.inf})  # fmt: skip
    first = pos.groupby(["arm", "config"], sort=False)[["block", "order"]].min().reset_index()
    keys = sorted(
        first.itertuples(index=False),
        key=lambda r: (r.arm != base, rank.get(r.arm, len(rank)), r.arm, r.block, r.order, r.config),
    )
    return [(r.config, r.arm) for r in keys]


def make_figures(
    runs: pd.DataFrame,
    steps: pd.DataFrame,
    base: str | None,
    target,
    point_layers=None,
    arms=(),
    kind=None,
    layer_runs: pd.DataFrame | None = None,
) -> dict:
    """name -> figure; only the figures the data supports (`point_layers`: see `layer_points`). One
    colour per configuration in all of them (`figures.colors_for`), arms listed in the order of `arms`
    (the spec's); an A/B (`kind` "ab") has no layer figure. `layer_runs`: the runs with node-adjusted
    train times (`node_adjusted`) for the layer figure, whose time panel then says so; the train-time
    figure shows the times as they ran."""
    ok = runs[runs["status"] == "ok"]
    if not len(ok):
        return {}
    ok = ok.assign(config=summary.config_names(ok, base))
    colors = figures.colors_for(config_order(ok, base, arms), base)
    figs = {
        "train_time": figures.train_times(run_order(ok), colors)[0],
        "final_loss": figures.loss_distribution(ok, colors)[0],
    }
    if layer_runs is not None:
        ok = layer_runs[layer_runs["status"] == "ok"]
        ok = ok.assign(config=summary.config_names(ok, base))
    pts = layer_points(ok, point_layers, base) if kind != "ab" else pd.DataFrame()
    if len(pts):
        base_runs = ok[ok["arm"] == base]
        base_loss = base_runs["final_val_loss"].dropna()
        base_time = base_runs["train_time_ms"].dropna() / 1000.0
        figs["layer_ablation"] = figures.layer_ablation(
            pts,
            base_loss.mean() if len(base_loss) else None,
            target,
            base_time.mean() if len(base_time) else None,
            num_layers=_num_layers(ok),
            colors={s: colors.arm[a] for s, a in zip(pts["series"], pts["arm"], strict=True)},
            baseline_runs={"final_val_loss": base_loss.to_numpy(), "train_time_s": base_time.to_numpy()},
            time_label="train time (s), node-adjusted" if layer_runs is not None else "train time (s)",
        )[0]
    curves = figures.loss_curves(steps, ok, base, colors) if len(steps) and base is not None else None
    if curves is not None:
        figs["loss_curves"] = curves[0]
    return figs


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    return buf.getvalue()


def build_sections(results_dir: Path) -> tuple[str, list[tuple[str, object]], dict]:
    """(title, [(heading, lines | DataFrame)], figures) of a results folder; verdict first."""
    folder = ResultsDir(results_dir)
    sweep = folder.read_sweep()
    runs, stale = sweep.current_runs(folder.read_runs())
    name = sweep.name or (runs["sweep"].dropna().iloc[0] if runs["sweep"].notna().any() else results_dir.name)
    target = sweep.target_val_loss
    if runs.empty:
        return name, [("Verdict", ["no finished runs yet"])], {}
    kind = infer_kind(sweep, runs)
    about = [(ABOUT_HEADING, [" ".join(sweep.description.split())])] if sweep.description else []
    layer_runs = None  # the layer figure's runs, when they are not `runs` (node-adjusted times)
    if kind == "ab":
        verdict, body = ab_section(runs, sweep, target)
        sections = [("Verdict", [verdict]), *about, ("A/B summary", body)]
    else:
        cmp, node_lines, fit = node_adjusted(runs, baseline_arm(sweep, runs))
        adjusted = fit is not None
        verdict, table = grid_section(cmp, sweep, target, fit)
        sections = [
            ("Verdict", [verdict]),
            *about,
            (
                "Configurations against the baseline (its own row first, then sorted by loss effect; "
                "delta = baseline - config, "
                "positive = lower loss or faster; p: Welch, two-sided"
                + ("; train times node-adjusted, their p the node fit's, see Node speed" if adjusted else "")
                + ")",
                table,
            ),
        ]
        if node_lines:
            sections.append((NODE_HEADING, node_lines))
        if spread := summary.spread_lines(cmp, baseline_arm(sweep, runs), fit):
            sections.append((SPREAD_HEADING, spread))
        if sweep.contrasts:
            note = "; times node-adjusted, their p the node fit's" if adjusted else ""
            heading = CONTRASTS_HEADING[:-1] + note + ")"
            sections.append((heading, summary.contrast_table(
                cmp, sweep.contrasts, sweep.point_layers, baseline_arm(sweep, runs), fit)))  # fmt: skip
        layer_runs = cmp if adjusted else None
    stale_line = (
        [f"{stale} run(s) of an earlier plan (another version of the code or spec) are kept in runs/ "
         "and left out of this report"]
        if stale else []
    )  # fmt: skip
    sections.append(("Runs", [status_line(runs, sweep.planned_runs), *blocks_line(runs), *stale_line]))
    failed = failed_runs(runs)
    if len(failed):
        sections.append((FAILED_HEADING, failed))
    steps = folder.read_steps(val_only=True)
    base = baseline_arm(sweep, runs)
    figs = make_figures(runs, steps, base, target, sweep.point_layers, sweep.arms, kind, layer_runs)
    overhead = overhead_table(runs)
    sections += [("Per-run overhead (startup_s = wall_s - train time)", overhead)]
    if ratios := overhead_ratios(overhead):
        sections += [("Start-up against a cold compile", ratios)]
    sections += [("Provenance", provenance(runs))]
    return name, sections, figs


def _md_table(df: pd.DataFrame) -> list[str]:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    # a cell's "|" (a reason quoting a shell pipe) would end it: escaped, as Markdown tables read it
    lines += [
        "| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |"
        for row in df.itertuples(index=False)
    ]
    return lines


def _md_prose(text: str) -> str:
    """`text` as a Markdown paragraph that shows what it says: <, > and & escaped (a renderer would take
    `<a ...>` for a tag and drop it), and a leading #, >, -, +, * or "1." not read as a heading, quote,
    list or rule (a backslash before the mark)."""
    text = html.escape(text, quote=False)  # a leading ">" is now "&gt;": no quote
    if text[:1] in ("#", "-", "+", "*"):
        return "\\" + text
    return re.sub(r"^(\d+)([.)])(?=\s)", r"\1\\\2", text)  # "1. " -> "1\. "


def render_markdown(title: str, sections, fig_names) -> str:
    out = [f"# Report: {title}", ""]
    for heading, body in sections:
        out += [f"## {heading}", ""]
        if heading == ABOUT_HEADING:
            out += [_md_prose(line) for line in body]
        else:
            out += _md_table(body) if isinstance(body, pd.DataFrame) else ["```", *body, "```"]
        out.append("")
    if fig_names:
        out += ["## Figures", ""] + [f"![{n}](figures/{n}.png)" for n in fig_names] + [""]
    return "\n".join(out)


def render_html(title: str, sections, pngs: dict[str, bytes]) -> str:
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Report: {esc(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px;text-align:right}"
        "pre{background:#f4f4f4;padding:8px;white-space:pre-wrap}.verdict{font-size:1.2em;font-weight:bold}"
        ".wide{overflow-x:auto}td:first-child,th:first-child{text-align:left;min-width:12em}</style>",
        "</head><body>",
        f"<h1>Report: {esc(title)}</h1>",
    ]
    for heading, body in sections:
        out.append(f"<h2>{esc(heading)}</h2>")
        if isinstance(body, pd.DataFrame):
            out.append(_html_table(body))
        elif heading == "Verdict":
            out.append(f'<p class="verdict" id="verdict">{esc(" ".join(body))}</p>')
        elif heading == ABOUT_HEADING:
            out.append(f"<p>{esc(' '.join(body))}</p>")
        else:
            out.append("<pre>" + esc("\n".join(body)) + "</pre>")
    if pngs:
        out.append("<h2>Figures</h2>")
        for name, data in pngs.items():
            b64 = base64.b64encode(data).decode("ascii")
            out.append(f'<figure><img alt="{esc(name)}" src="data:image/png;base64,{b64}"></figure>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _html_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
        for row in df.itertuples(index=False)
    )
    # a wide table scrolls in its own box, not the page
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'


def write_report(results_dir: str | Path) -> dict[str, Path]:
    """Write report.md, report.html and figures/*.png into the sweep folder; returns their paths.

    Keys: "md", "html" and "figure:<name>" for each figure.
    """
    return write_report_verdict(results_dir)[0]


def write_report_verdict(results_dir: str | Path) -> tuple[dict[str, Path], str]:
    """`write_report`, also returning the verdict line (for the CLI, without building the report twice)."""
    folder = ResultsDir(results_dir).require()
    title, sections, figs = build_sections(folder.root)
    pngs = {name: _png(fig) for name, fig in figs.items()}
    paths: dict[str, Path] = {}
    for name, data in pngs.items():
        paths[f"figure:{name}"] = folder.write_bytes(folder.figure_file(name), data)
    paths["md"] = folder.write_text(folder.report_md, render_markdown(title, sections, list(pngs)))
    paths["html"] = folder.write_text(folder.report_html, render_html(title, sections, pngs))
    return paths, " ".join(sections[0][1])
