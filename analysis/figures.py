"""Figures over run and step tables. Each function returns the figure; the report saves it.

Inputs are the DataFrames of `analysis.store` (`read_runs`, `read_steps`) with a `config` column (the
configuration's name, `summary.config_names`), or the small long tables built from them in
`analysis.report`; nothing here reads files or touches global RNG state. Colours come from one
`Colors` for every figure of a report, so a configuration has the same colour in each of them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from scipy import stats as st

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
BASELINE_COLOR = "#000000"
ARM_COLORMAPS = ("Blues", "Oranges", "Greens", "Reds", "Purples", "YlOrBr", "RdPu", "GnBu")
"""One hue per arm after the baseline's black (then they repeat); an arm's configurations are shades of it."""


@dataclass(frozen=True)
class Colors:
    """A colour (hex) per configuration and per arm, shared by every figure of a report: the baseline arm
    black, each other arm a hue of its own, its configurations shades of that hue from light to dark in
    the order given (a drop-one grid reads light to dark by layer)."""

    config: dict[str, str]
    arm: dict[str, str]


def colors_for(configs: Sequence[tuple[str, str]], baseline_arm: str | None) -> Colors:
    """`Colors` of (configuration, arm) pairs, in the order the figures list them (baseline first)."""
    by_arm: dict[str, list[str]] = {}
    for config, arm in configs:
        names = by_arm.setdefault(arm, [])
        if config not in names:
            names.append(config)
    hues = itertools.cycle(ARM_COLORMAPS)
    config_colors, arm_colors = {}, {}
    for arm, names in by_arm.items():
        is_base = arm == baseline_arm
        cmap = matplotlib.colormaps["Greys" if is_base else next(hues)]
        top = 1.0 if is_base else 0.75  # Greys at 1.0 is black; a hue at 0.75 is strong but not dark
        shades = [top] if len(names) == 1 else np.linspace(0.45 if not is_base else 0.6, 0.95, len(names))
        arm_colors[arm] = to_hex(cmap(top))
        config_colors.update({name: to_hex(cmap(x)) for name, x in zip(names, shades, strict=True)})
    return Colors(config_colors, arm_colors)


def _mean_ci(values: np.ndarray) -> tuple[float, float]:
    """(mean, half-width of the 95 % t interval; 0 for n == 1)."""
    n = len(values)
    if n < 2:
        return float(values.mean()), 0.0
    half = st.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n)
    return float(values.mean()), float(half)


def _runs_of_adjacent(x: np.ndarray) -> list[slice]:
    """Slices of sorted layer indices that follow one another: [0, 1, 2, 5, 6, 11] -> 0:3, 3:5, 5:6."""
    cuts = [0, *(np.flatnonzero(np.diff(x) != 1) + 1), len(x)]
    return [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def layer_ablation(
    points: pd.DataFrame,
    baseline_mean: float | None,
    target: float | None,
    baseline_time_s: float | None = None,
    num_layers: int | None = None,
    colors: dict[str, str] | None = None,
    baseline_runs: dict[str, Sequence[float]] | None = None,
    time_label: str = "train time (s)",
):
    """The seed's drop-one plot: x layer index; y final val loss and, below it, train time (mean ± 95 %
    interval when n > 1), each against the baseline's mean.

    points: columns `series`, `layer` (int), `final_val_loss`, and optionally `train_time_s`; one line
    per series. A line joins adjacent layers only: a grid of layers 0 and 11 is two points, not a line
    drawn through ten layers that never ran. With `num_layers` the axis shows every layer of the model
    (the ones left out of the grid too); `colors` maps a series to its colour (its arm's, in a report).
    `baseline_runs` maps a panel's column to the baseline's runs: with two or more, their range is
    shaded, so a point inside it is seen to be within what the baseline itself does from run to run.
    `time_label`: the time panel's axis label (a report's says when the times are node-adjusted).
    Returns (figure, [loss axes, time axes]); the time panel is there only when `train_time_s` is.
    """
    panels = [("final_val_loss", "final val loss", baseline_mean)]
    if "train_time_s" in points.columns and points["train_time_s"].notna().any():
        panels.append(("train_time_s", time_label, baseline_time_s))
    fig = Figure(figsize=(10, 4.5 if len(panels) == 1 else 6.5))
    axes = list(fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0])
    for ax, (col, ylabel, ref) in zip(axes, panels, strict=True):
        for i, (name, grp) in enumerate(points.groupby("series", sort=True)):
            vals = grp.dropna(subset=[col])
            rows = [(layer, *_mean_ci(g[col].to_numpy(float))) for layer, g in vals.groupby("layer")]
            if not rows:
                continue
            x, y, err = (np.array(v) for v in zip(*rows, strict=True))
            color = (colors or {}).get(str(name), f"C{i}")
            ax.errorbar(
                x,
                y,
                yerr=err,
                marker=MARKERS[i % len(MARKERS)],
                linestyle="none",
                capsize=3,
                color=color,
                label=str(name),
            )
            for part in _runs_of_adjacent(x):
                if part.stop - part.start > 1:
                    ax.plot(x[part], y[part], color=color, linewidth=1.2)
        if ref is not None:
            ax.axhline(ref, color=BASELINE_COLOR, linestyle="--", linewidth=1, label="baseline mean")
        spread = np.asarray((baseline_runs or {}).get(col, ()), dtype=float)
        spread = spread[np.isfinite(spread)]
        if len(spread) > 1:
            ax.axhspan(spread.min(), spread.max(), color=BASELINE_COLOR, alpha=0.12, linewidth=0,
                       label=f"baseline runs' range (n={len(spread)})")  # fmt: skip
        if target is not None and col == "final_val_loss":
            ax.axhline(target, color="red", linestyle=":", linewidth=1, label=f"target {target}")
        ax.set_ylabel(ylabel)
        # beside the panel, not in it: inside, "best" still sat on the baseline's line and shading
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    layers = points["layer"]
    if len(layers):
        lo, hi = int(layers.min()), int(layers.max())
        if num_layers and lo >= 0 and hi < num_layers:
            lo, hi = 0, num_layers - 1
        if hi - lo <= 48:  # a tick a layer while they can be read
            axes[-1].set_xticks(np.arange(lo, hi + 1))
            axes[-1].set_xlim(lo - 0.5, hi + 0.5)
    axes[-1].set_xlabel("layer index")
    axes[0].set_title("Layer ablation (mean, 95 % interval where n > 1)")
    fig.tight_layout()
    return fig, axes


def curve_deltas(steps: pd.DataFrame, runs: pd.DataFrame, baseline_arm: str) -> pd.DataFrame:
    """Each run's validation loss minus the baseline arm's mean at the same step.

    steps: run_id, step, val_loss; runs: run_id, arm, config. Returns run_id, config, arm, step, delta
    (positive = higher loss than the baseline); steps the baseline did not validate at are left out.
    """
    val = steps.dropna(subset=["val_loss"]).merge(runs[["run_id", "config", "arm"]], on="run_id")
    base = val[val["arm"] == baseline_arm].groupby("step", as_index=False)["val_loss"].mean()
    out = val.merge(base.rename(columns={"val_loss": "base_loss"}), on="step", how="inner")
    out = out.assign(delta=out["val_loss"] - out["base_loss"])
    return out[["run_id", "config", "arm", "step", "delta"]].sort_values(["config", "run_id", "step"])


def loss_curves(steps: pd.DataFrame, runs: pd.DataFrame, baseline_arm: str, colors: Colors):
    """Validation loss as the difference to the baseline arm's mean at each step (absolute curves of
    an ablation lie on top of each other), one colour per configuration: its mean difference thick,
    each of its runs thin when it has more than one; the baseline's own runs show the run-to-run noise
    around 0. With nothing to compare (no other configuration, or no baseline curve) the absolute curves.
    steps: run_id, step, val_loss; runs: run_id, arm, config. Returns (figure, axes), or None without
    any validation."""
    val = steps.dropna(subset=["val_loss"]).merge(runs[["run_id", "config"]], on="run_id")
    if val.empty:
        return None
    deltas = curve_deltas(steps, runs, baseline_arm)
    fig = Figure(figsize=(9, 4.8))
    ax = fig.subplots()
    if (deltas["arm"] != baseline_arm).any():
        _delta_curves(ax, deltas, baseline_arm, colors)
    else:
        _absolute_curves(ax, val, colors)
    ax.set_xlabel("step")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig, ax


def _delta_curves(ax, deltas: pd.DataFrame, baseline_arm: str, colors: Colors) -> None:
    n_base = deltas.loc[deltas["arm"] == baseline_arm, "run_id"].nunique()
    ax.axhline(
        0.0, color=BASELINE_COLOR, linestyle="--", linewidth=1, label=f"{baseline_arm} mean (n={n_base})"
    )
    for config in (c for c in colors.config if c in set(deltas["config"])):
        g = deltas[deltas["config"] == config]
        color, is_base = colors.config[config], bool((g["arm"] == baseline_arm).all())
        if g["run_id"].nunique() > 1 or is_base:
            for _, run in g.groupby("run_id"):
                ax.plot(run["step"], run["delta"], color=color, alpha=0.35, linewidth=0.8)
        if not is_base:
            mean = g.groupby("step")["delta"].mean()
            ax.plot(mean.index, mean.to_numpy(), color=color, linewidth=1.8, marker="o", markersize=3,
                    label=config)  # fmt: skip
    ax.set_ylabel(f"val loss - {baseline_arm} mean")
    ax.set_title(f"Validation loss against the {baseline_arm} arm (below 0: lower loss)")


def _absolute_curves(ax, val: pd.DataFrame, colors: Colors) -> None:
    """Every run's validation loss, coloured by configuration. The first validation (an untrained
    model, ~ln(vocab)) would flatten everything after it: when it sits far above the later ones, the
    axis shows the later ones (two or more of them) and the title says so."""
    for (config, _run), g in val.groupby(["config", "run_id"], sort=True):
        ax.plot(g["step"], g["val_loss"], color=colors.config[config], alpha=0.6, linewidth=1)
    for config in (c for c in colors.config if c in set(val["config"])):
        ax.plot([], [], color=colors.config[config], label=config)
    title = "Validation loss per run, coloured by configuration"
    first = val["step"].min()
    later = val.loc[val["step"] > first]
    if later["step"].nunique() >= 2 and np.isfinite(later["val_loss"]).all():
        lo, hi = float(later["val_loss"].min()), float(later["val_loss"].max())
        pad = max(0.05 * (hi - lo), 0.01)
        if float(val["val_loss"].max()) > hi + 4 * (hi - lo + pad):
            ax.set_ylim(lo - pad, hi + pad)
            x0, x1 = float(later["step"].min()), float(later["step"].max())
            ax.set_xlim(x0 - 0.03 * max(x1 - x0, 1.0), x1 + 0.03 * max(x1 - x0, 1.0))
            title += f" (step {int(first)} off the scale)"
    ax.set_ylabel("val loss")
    ax.set_title(title)


def block_marks(runs: pd.DataFrame) -> list[tuple[int, int, int, bool]]:
    """(block, first, last, back_to_back) in run order (positions of `runs`' rows) for each block of
    more than one run (an A/B's pairs); back_to_back: no other run came between its runs. [] when no
    block holds more than one run (one run a block: nothing to mark)."""
    return [(b, int(p[0]), int(p[-1]), together) for b, p, together in _block_positions(runs)]


def _block_positions(runs: pd.DataFrame) -> list[tuple[int, np.ndarray, bool]]:
    """(block, its runs' positions in run order, back_to_back) per block of more than one run, sorted
    by its first run."""
    if "block" not in runs or runs["block"].isna().all():
        return []
    blocks = runs["block"].reset_index(drop=True).dropna()  # labels are now positions in run order
    out = []
    for block, idx in blocks.groupby(blocks).groups.items():
        p = np.sort(np.asarray(idx, dtype=int))
        if len(p) > 1:
            out.append((int(block), p, int(p[-1] - p[0]) + 1 == len(p)))
    return sorted(out, key=lambda m: m[1][0])


FEW_BLOCKS = 40
"""Up to this many blocks each gets its own artist (a band with its number, or a line); more are drawn
as one collection each kind, so a report of thousands of blocks draws in a second, not minutes."""


def _draw_blocks(ax, runs: pd.DataFrame, seconds: np.ndarray) -> None:
    """Shade each block of back-to-back runs (alternating greys, its number on top); join the runs of
    a block that others came between (blocks of several nodes interleave) with a grey line."""
    marks = _block_positions(runs)
    few = len(marks) <= FEW_BLOCKS
    bands, shades, joins = [], [], []
    for i, (block, p, together) in enumerate(marks):
        first, last, shade = int(p[0]), int(p[-1]), "0.93" if i % 2 == 0 else "0.86"
        if together and few:
            ax.axvspan(first - 0.45, last + 0.45, color=shade, zorder=0, gid=f"block {block}")
            ax.text((first + last) / 2, 0.98, str(block), transform=ax.get_xaxis_transform(),
                    ha="center", va="top", fontsize=7, color="0.35")  # fmt: skip
        elif together:
            bands.append([(first - 0.45, 0), (first - 0.45, 1), (last + 0.45, 1), (last + 0.45, 0)])
            shades.append(shade)
        elif few:
            ax.plot(p, seconds[p], color="0.6", linewidth=0.8, zorder=1, gid=f"block {block}")
        else:
            joins.append(np.column_stack([p, seconds[p]]))
    if bands:
        ax.add_collection(PolyCollection(bands, facecolors=shades, edgecolors="none", zorder=0,
                                         transform=ax.get_xaxis_transform()), autolim=False)  # fmt: skip
    if joins:
        ax.add_collection(LineCollection(joins, colors="0.6", linewidths=0.8, zorder=1))


def train_times(runs: pd.DataFrame, colors: Colors):
    """Train time (s) per run in run order: colour = configuration, marker = node, and an A/B's blocks
    marked (numbered bands): shows interleaving, drift and how each pair ran."""
    fig = Figure(figsize=(9, 4.8))
    ax = fig.subplots()
    # Ray node ids are 56 hex characters: their first 8 tell nodes apart and keep the legend readable.
    node = runs["node_id"].fillna(runs["hostname"]).fillna("?").astype(str).str.slice(0, 8).to_numpy()
    seconds = (runs["train_time_ms"] / 1000.0).to_numpy()
    nodes = sorted(set(node))
    config = runs["config"].to_numpy()
    for name, n in sorted({(c, x) for c, x in zip(config, node, strict=True)}):
        mask = (config == name) & (node == n)
        ax.scatter(np.flatnonzero(mask), seconds[mask], color=colors.config[name],
                   marker=MARKERS[nodes.index(n) % len(MARKERS)], zorder=3)  # fmt: skip
    _draw_blocks(ax, runs, seconds)
    present = [c for c in colors.config if c in set(config)]
    handles = [Line2D([], [], color=colors.config[c], marker="o", linestyle="none", label=c) for c in present]
    legend = ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                       title="configuration", title_fontsize=7)  # fmt: skip
    if len(nodes) > 1:
        ax.add_artist(legend)
        marks = [Line2D([], [], color="0.3", marker=MARKERS[i % len(MARKERS)], linestyle="none", label=n)
                 for i, n in enumerate(nodes)]  # fmt: skip
        ax.legend(handles=marks, fontsize=7, loc="lower left", bbox_to_anchor=(1.01, 0.0), title="node",
                  title_fontsize=7)  # fmt: skip
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("run order" + (" (bands: blocks, numbered)" if block_marks(runs) else ""))
    ax.set_ylabel("train time (s)")
    ax.set_title("Train time per run")
    fig.tight_layout()
    return fig, ax


def loss_distribution(runs: pd.DataFrame, colors: Colors):
    """Final val loss, one box per configuration (a grid arm's points are different configurations, not
    replicates), in the order of `colors` (baseline first, at the top), every run a point over its box."""
    data = [
        (c, runs.loc[runs["config"] == c, "final_val_loss"].dropna().to_numpy(float)) for c in colors.config
    ]
    data = [(c, d) for c, d in data if len(d)]
    fig = Figure(figsize=(9, max(3.0, 1.2 + 0.3 * len(data))))
    ax = fig.subplots()
    pos = np.arange(len(data))[::-1]  # the first configuration on top
    boxes = ax.boxplot([d for _, d in data], positions=pos, orientation="horizontal", widths=0.6,
                       showfliers=False, patch_artist=True)  # fmt: skip
    for box, median, (name, d), y in zip(boxes["boxes"], boxes["medians"], data, pos, strict=True):
        box.set(facecolor=colors.config[name], alpha=0.3, edgecolor=colors.config[name])
        median.set_color(colors.config[name])
        # Fixed, evenly spaced offsets instead of random jitter: the figure is deterministic.
        ys = y + np.linspace(-0.15, 0.15, len(d)) if len(d) > 1 else [y]
        ax.scatter(d, ys, s=14, color=colors.config[name], zorder=3)
    ax.set_yticks(pos, [c for c, _ in data], fontsize=7)
    ax.set_xlabel("final val loss")
    ax.set_title("Final val loss per configuration (a box of its runs)")
    fig.tight_layout()
    return fig, ax
