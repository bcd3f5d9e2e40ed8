"""Figures over run and step tables. Each function returns the figure; the report saves it.

Inputs are the DataFrames of `analysis.store` (`read_runs`, `read_steps`) or the small long tables
built from them in `analysis.report`; nothing here reads files or touches global RNG state.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats as st

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


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
):
    """The seed's drop-one plot: x layer index; y final val loss and, below it, train time (mean ± 95 %
    interval when n > 1), each against the baseline's mean.

    points: columns `series`, `layer` (int), `final_val_loss`, and optionally `train_time_s`; one line
    per series. A line joins adjacent layers only: a grid of layers 0 and 11 is two points, not a line
    drawn through ten layers that never ran. With `num_layers` the axis shows every layer of the model
    (the ones left out of the grid too). Returns (figure, [loss axes, time axes]); the time panel is
    there only when `train_time_s` is.
    """
    panels = [("final_val_loss", "final val loss", baseline_mean)]
    if "train_time_s" in points.columns and points["train_time_s"].notna().any():
        panels.append(("train_time_s", "train time (s)", baseline_time_s))
    fig = Figure(figsize=(8, 4.5 if len(panels) == 1 else 6.5))
    axes = list(fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0])
    for ax, (col, ylabel, ref) in zip(axes, panels, strict=True):
        for i, (name, grp) in enumerate(points.groupby("series", sort=True)):
            vals = grp.dropna(subset=[col])
            rows = [(layer, *_mean_ci(g[col].to_numpy(float))) for layer, g in vals.groupby("layer")]
            if not rows:
                continue
            x, y, err = (np.array(v) for v in zip(*rows, strict=True))
            color = f"C{i}"
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
            ax.axhline(ref, color="black", linestyle="--", linewidth=1, label="baseline mean")
        if target is not None and col == "final_val_loss":
            ax.axhline(target, color="red", linestyle=":", linewidth=1, label=f"target {target}")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
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


def loss_curves(steps: pd.DataFrame, runs: pd.DataFrame):
    """Validation loss against step, one colour per arm (every run drawn thin)."""
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    val = steps.dropna(subset=["val_loss"]).merge(runs[["run_id", "arm"]], on="run_id")
    colors = _arm_colors(runs["arm"])
    for (arm, _run), g in val.groupby(["arm", "run_id"], sort=True):
        ax.plot(g["step"], g["val_loss"], color=colors[arm], alpha=0.6, linewidth=1)
    for arm, color in colors.items():
        ax.plot([], [], color=color, label=str(arm))
    ax.set_xlabel("step")
    ax.set_ylabel("val loss")
    title = "Validation loss per run, coloured by arm"
    # The first validation (an untrained model, ~ln(vocab)) would flatten everything after it: when it
    # sits far above the later ones, the axis shows the later ones and the title says so.
    first = val["step"].min()
    later = val.loc[val["step"] > first]
    # (only with a curve left to show: two or more later validations)
    if later["step"].nunique() >= 2 and np.isfinite(later["val_loss"]).all():
        lo, hi = float(later["val_loss"].min()), float(later["val_loss"].max())
        pad = max(0.05 * (hi - lo), 0.01)
        if float(val["val_loss"].max()) > hi + 4 * (hi - lo + pad):
            ax.set_ylim(lo - pad, hi + pad)
            x0, x1 = float(later["step"].min()), float(later["step"].max())
            ax.set_xlim(x0 - 0.03 * max(x1 - x0, 1.0), x1 + 0.03 * max(x1 - x0, 1.0))
            title += f" (step {int(first)} off the scale)"
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, ax


def train_times(runs: pd.DataFrame):
    """Train time (s) per run in run order, colour = arm, marker = node: shows interleaving and drift."""
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    # Ray node ids are 56 hex characters: their first 8 tell nodes apart and keep the legend readable.
    node = runs["node_id"].fillna(runs["hostname"]).fillna("?").astype(str).str.slice(0, 8)
    df = runs.assign(order=np.arange(len(runs)), node=node)
    colors = _arm_colors(runs["arm"])
    nodes = sorted(df["node"].astype(str).unique())
    for (arm, node), g in df.groupby(["arm", df["node"].astype(str)], sort=True):
        marker = MARKERS[nodes.index(node) % len(MARKERS)]
        ax.scatter(
            g["order"], g["train_time_ms"] / 1000.0, color=colors[arm], marker=marker, label=f"{arm} @ {node}"
        )
    ax.set_xlabel("run order")
    ax.set_ylabel("train time (s)")
    ax.set_title("Train time per run")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="arm @ node", title_fontsize=7)
    fig.tight_layout()
    return fig, ax


def loss_distribution(runs: pd.DataFrame):
    """Final val loss of every run per arm (points over a box)."""
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    arms = sorted(runs["arm"].unique())
    data = [runs.loc[runs["arm"] == a, "final_val_loss"].dropna().to_numpy(float) for a in arms]
    ax.boxplot(data, tick_labels=arms, showfliers=False)
    for i, d in enumerate(data, start=1):
        # Fixed, evenly spaced offsets instead of random jitter: the figure is deterministic.
        ax.scatter(i + np.linspace(-0.15, 0.15, len(d)) if len(d) > 1 else [i], d, s=12, alpha=0.7)
    ax.set_ylabel("final val loss")
    ax.set_title("Final val loss per arm")
    ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    return fig, ax


def _arm_colors(arms: pd.Series) -> dict:
    names = sorted(pd.unique(arms))
    palette = [f"C{i % 10}" for i in range(len(names))]
    return dict(zip(names, palette, strict=True))
