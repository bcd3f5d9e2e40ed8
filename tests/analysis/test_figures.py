"""Figure functions return the figure and axes, draw what the data holds, and never save."""

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from analysis import figures


def test_layer_ablation_lines_intervals_and_reference_lines():
    pts = pd.DataFrame(
        {
            "series": ["drop one"] * 3 + ["drop 0 and one"] * 4,
            "layer": [1, 2, 3, 1, 1, 2, 2],
            "final_val_loss": [3.29, 3.30, 3.31, 3.30, 3.31, 3.32, 3.34],
        }
    )
    fig, axes = figures.layer_ablation(pts, baseline_mean=3.278, target=3.28)
    (ax,) = axes  # no train_time_s column: the loss panel alone
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(labels) == ["baseline mean", "drop 0 and one", "drop one", "target 3.28"]
    hlines = {line.get_label(): line.get_ydata()[0] for line in ax.lines if line.get_label() in labels}
    assert hlines["baseline mean"] == 3.278 and hlines["target 3.28"] == 3.28
    assert ax.get_xlabel() == "layer index" and fig.axes == [ax]
    assert list(ax.get_xticks()) == [1, 2, 3]
    # n == 2 points get an error bar, n == 1 points a zero one
    ebar = next(c for c in ax.containers if c.get_label() == "drop 0 and one")
    assert list(ebar.lines[0].get_ydata()) == pytest.approx([3.305, 3.33])
    half = [abs(seg[1][1] - seg[0][1]) / 2 for seg in ebar.lines[2][0].get_segments()]
    assert half[0] == pytest.approx(12.7062 * 0.0070711 / 2**0.5, rel=1e-3)  # t(0.975, df=1) * sd / sqrt(2)
    single = next(c for c in ax.containers if c.get_label() == "drop one")
    assert all(seg[1][1] == seg[0][1] for seg in single.lines[2][0].get_segments())
    fig2, _ = figures.layer_ablation(pts, None, None)
    assert sorted(t.get_text() for t in fig2.axes[0].get_legend().get_texts()) == [
        "drop 0 and one",
        "drop one",
    ]


def _joining_lines(ax):
    """x data of the lines that join points (not markers alone, not reference lines)."""
    return [
        list(line.get_xdata())
        for line in ax.lines
        if line.get_linestyle() != "None" and not line.get_label().startswith(("baseline", "target"))
    ]


def test_layer_ablation_joins_adjacent_layers_only_and_draws_train_time():
    pts = pd.DataFrame(
        {
            "series": ["drop one"] * 5,
            "layer": [0, 1, 2, 5, 11],
            "final_val_loss": [3.27, 3.30, 3.31, 3.30, 3.29],
            "train_time_s": [150.1, 152.0, 152.3, 151.9, 150.0],
        }
    )
    fig, (loss_ax, time_ax) = figures.layer_ablation(pts, 3.28, None, baseline_time_s=153.0)
    assert fig.axes == [loss_ax, time_ax]
    # 0-1-2 is one line; 5 and 11 stand alone (no line drawn across layers that never ran)
    assert _joining_lines(loss_ax) == [[0, 1, 2]] and _joining_lines(time_ax) == [[0, 1, 2]]
    assert time_ax.get_ylabel() == "train time (s)" and loss_ax.get_ylabel() == "final val loss"
    ref = {line.get_label(): line.get_ydata()[0] for line in time_ax.lines}
    assert ref["baseline mean"] == 153.0
    times = next(c for c in time_ax.containers if c.get_label() == "drop one")
    assert list(times.lines[0].get_ydata()) == [150.1, 152.0, 152.3, 151.9, 150.0]
    assert list(time_ax.get_xticks()) == list(range(12)) and time_ax.get_xlabel() == "layer index"
    # the model's layer count puts every layer on the axis, those left out of the grid too
    _, axes = figures.layer_ablation(pts[pts["layer"] < 6], 3.28, None, num_layers=12)
    assert list(axes[-1].get_xticks()) == list(range(12))
    _, axes = figures.layer_ablation(pts[pts["layer"] < 6], 3.28, None)
    assert list(axes[-1].get_xticks()) == list(range(6))


def test_layer_ablation_takes_each_series_colour():
    pts = pd.DataFrame(
        {"series": ["a (mlp_off)", "b (mlp_off)"], "layer": [0, 3], "final_val_loss": [3.3, 3.2]}
    )
    _, (ax,) = figures.layer_ablation(pts, 3.25, None, colors={"a (mlp_off)": "#123456"})
    drawn = {c.get_label(): to_hex(c.lines[0].get_color()) for c in ax.containers}
    assert drawn == {"a (mlp_off)": "#123456", "b (mlp_off)": "#ff7f0e"}  # b: the default cycle's C1


def test_layer_ablation_shades_the_baseline_runs_range_when_it_has_two_or_more():
    pts = pd.DataFrame(
        {
            "series": ["drop one"] * 2,
            "layer": [0, 1],
            "final_val_loss": [3.14, 3.15],
            "train_time_s": [39.9, 39.8],
        }
    )
    runs = {"final_val_loss": [3.1542, 3.1299, np.nan], "train_time_s": [40.98]}
    _, (loss_ax, time_ax) = figures.layer_ablation(pts, 3.142, None, 40.98, baseline_runs=runs)
    (band,) = [p for p in loss_ax.patches if p.get_label().startswith("baseline runs")]
    ys = band.get_patch_transform().transform(band.get_path().vertices)[:, 1]  # Rectangle or Polygon
    assert (ys.min(), ys.max()) == pytest.approx((3.1299, 3.1542))  # the NaN run left out
    assert band.get_label() == "baseline runs' range (n=2)"
    assert "baseline runs' range (n=2)" in [t.get_text() for t in loss_ax.get_legend().get_texts()]
    assert not [p for p in time_ax.patches if p.get_label().startswith("baseline runs")]  # one run: no band


def test_colors_baseline_black_an_arm_a_hue_its_configurations_shades():
    pairs = [("baseline", "baseline"), ("mlp0", "mlp0"), ("drop [3]", "drop"), ("drop [6]", "drop"),
             ("drop [11]", "drop")]  # fmt: skip
    colors = figures.colors_for(pairs, "baseline")
    assert list(colors.config) == [c for c, _ in pairs]  # the order given: what the figures list
    assert colors.config["baseline"] == colors.arm["baseline"] == figures.BASELINE_COLOR == "#000000"
    blues, oranges = matplotlib.colormaps["Blues"], matplotlib.colormaps["Oranges"]
    assert colors.config["mlp0"] == colors.arm["mlp0"] == to_hex(blues(0.75))
    assert [colors.config[f"drop [{k}]"] for k in (3, 6, 11)] == [
        to_hex(oranges(x)) for x in (0.45, 0.7, 0.95)
    ]
    assert colors.arm["drop"] == to_hex(oranges(0.75))
    assert len(set(colors.config.values())) == len(pairs)  # one colour per configuration


def _runs(configs, **cols):
    n = len(configs)
    base = {"run_id": [f"r{i}" for i in range(n)], "config": configs, "arm": [c.split()[0] for c in configs],
            "node_id": ["n0"] * n, "hostname": ["h0"] * n, "train_time_ms": 1000.0 + 10 * np.arange(n),
            "final_val_loss": 3.3 - 0.01 * np.arange(n)}  # fmt: skip
    return pd.DataFrame({**base, **cols})


def test_train_times_colour_per_configuration_marker_per_node_blocks_marked():
    runs = _runs(["base", "cand x", "cand x", "base"], node_id=["n0", "n0", "n1", None], block=[0, 0, 1, 1])
    colors = figures.colors_for([("base", "base"), ("cand x", "cand")], "base")
    _, ax = figures.train_times(runs, colors)
    dots = {tuple(c.get_offsets()[:, 0]): to_hex(c.get_facecolor()[0]) for c in ax.collections}
    assert dots == {(0.0,): "#000000", (3.0,): "#000000", (1.0,): colors.config["cand x"],
                    (2.0,): colors.config["cand x"]}  # fmt: skip
    legends = [ax.get_legend(), *(a for a in ax.artists if a is not ax.get_legend())]
    texts = sorted(sorted(t.get_text() for t in lg.get_texts()) for lg in legends)
    assert texts == [["base", "cand x"], ["h0", "n0", "n1"]]  # configurations, and nodes (markers)
    # the two A/B blocks ran back to back: a numbered band each over its two runs
    bands = sorted((p.get_gid(), p.get_x(), p.get_x() + p.get_width()) for p in ax.patches)
    assert bands == [("block 0", -0.45, 1.45), ("block 1", 1.55, 3.45)]
    assert [t.get_text() for t in ax.texts] == ["0", "1"]


def test_block_marks_back_to_back_or_interleaved():
    one_run_blocks = _runs(["a", "b", "a"], block=[0, 1, 2])
    assert figures.block_marks(one_run_blocks) == []  # a grid's one-run blocks: nothing to mark
    # blocks on two nodes interleave in run order: not back to back, drawn as a line joining their runs
    runs = _runs(["a", "a", "b x", "b x"], block=[0, 1, 0, 1])
    assert figures.block_marks(runs) == [(0, 0, 2, False), (1, 1, 3, False)]
    _, ax = figures.train_times(runs, figures.colors_for([("a", "a"), ("b x", "b")], "a"))
    joins = {line.get_gid(): list(line.get_xdata()) for line in ax.lines if line.get_gid()}
    assert joins == {"block 0": [0, 2], "block 1": [1, 3]} and not ax.patches
    assert figures.block_marks(_runs(["a"])) == []  # no block column (logs ingested from elsewhere)


def test_many_blocks_are_one_collection_each_kind_with_the_same_places():
    from matplotlib.collections import LineCollection, PolyCollection

    n = 2 * (figures.FEW_BLOCKS + 10)
    colors = figures.colors_for([("a", "a"), ("b x", "b")], "a")
    together = _runs(["a", "b x"] * (n // 2), block=np.arange(n) // 2)
    _, ax = figures.train_times(together, colors)
    (bands,) = [c for c in ax.collections if type(c) is PolyCollection]
    spans = sorted(
        (float(v[:, 0].min()), float(v[:, 0].max())) for v in (q.vertices for q in bands.get_paths())
    )
    assert spans == [(2 * b - 0.45, 2 * b + 1.45) for b in range(n // 2)]  # one band per block, as when few
    assert not ax.patches and not ax.texts  # no per-block artists, no numbers
    interleaved = _runs(["a", "b x"] * (n // 2), block=np.arange(n) % (n // 2))
    _, ax = figures.train_times(interleaved, colors)
    (joins,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert sorted(tuple(seg[:, 0]) for seg in joins.get_segments()) == [
        (b, b + n // 2) for b in range(n // 2)
    ]


def test_loss_distribution_one_box_per_configuration_baseline_first():
    runs = _runs(["base", "base", "drop [3]", "drop [6]", "mlp0"])
    pairs = [("base", "base"), ("mlp0", "mlp0"), ("drop [3]", "drop"), ("drop [6]", "drop")]
    colors = figures.colors_for(pairs, "base")
    _, ax = figures.loss_distribution(runs, colors)
    # one box per configuration (not one per arm: a grid arm's points are not replicates), top to bottom
    # in the order of the colours: the baseline first
    assert [t.get_text() for t in ax.get_yticklabels()] == ["base", "mlp0", "drop [3]", "drop [6]"]
    assert list(ax.get_yticks()) == [3, 2, 1, 0]
    assert [to_hex(p.get_facecolor(), keep_alpha=False) for p in ax.patches] == list(colors.config.values())
    points = {to_hex(c.get_facecolor()[0]): sorted(c.get_offsets()[:, 0]) for c in ax.collections}
    assert points[colors.config["base"]] == pytest.approx([3.29, 3.3]) and len(points) == 4


def test_loss_curves_are_differences_to_the_baseline_mean():
    runs = _runs(["base", "base", "cand x"])
    steps = pd.DataFrame({
        "run_id": ["r0", "r0", "r1", "r1", "r2", "r2", "r2"],
        "step": [0, 10, 0, 10, 0, 10, 20],  # the baseline never validated at step 20: left out
        "val_loss": [10.0, 4.0, 10.0, 4.2, 10.1, 4.0, 3.9],
    })  # fmt: skip
    deltas = figures.curve_deltas(steps, runs, "base")
    assert deltas.loc[deltas["run_id"] == "r2", "delta"].tolist() == pytest.approx([0.1, -0.1])
    colors = figures.colors_for([("base", "base"), ("cand x", "cand")], "base")
    _, ax = figures.loss_curves(steps, runs, "base", colors)
    cand = next(line for line in ax.lines if line.get_label() == "cand x")
    assert (
        list(cand.get_ydata()) == pytest.approx([0.1, -0.1]) and cand.get_color() == colors.config["cand x"]
    )
    zero = next(line for line in ax.lines if line.get_label() == "base mean (n=2)")
    assert list(zero.get_ydata()) == [0.0, 0.0]
    # the baseline's own runs, thin around 0: its run-to-run noise
    thin = sorted(list(line.get_ydata()) for line in ax.lines if line.get_color() == "#000000"
                  and line.get_label().startswith("_"))  # fmt: skip
    assert thin == [pytest.approx([0.0, -0.1]), pytest.approx([0.0, 0.1])]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["base mean (n=2)", "cand x"]
    # nothing to compare with (no baseline curve, or the baseline alone): the absolute curves
    _, ax = figures.loss_curves(steps[steps["run_id"] == "r2"], runs, "base", colors)
    assert [list(line.get_ydata()) for line in ax.lines if len(line.get_xdata())] == [[10.1, 4.0, 3.9]]
    assert ax.get_ylabel() == "val loss" and [t.get_text() for t in ax.get_legend().get_texts()] == ["cand x"]
    assert figures.loss_curves(steps.iloc[0:0], runs, "base", colors) is None  # no validation at all


def test_absolute_loss_curves_keep_the_untrained_first_validation_off_the_scale():
    runs = _runs(["a", "a"])
    steps = pd.DataFrame(
        {
            "run_id": ["r0"] * 3 + ["r1"] * 3,
            "step": [0, 100, 200] * 2,
            "val_loss": [10.8, 3.02, 2.75, 10.8, 3.01, 2.76],
        }
    )
    colors = figures.colors_for([("a", "a")], "a")
    _, ax = figures.loss_curves(steps, runs, "a", colors)
    lo, hi = ax.get_ylim()
    assert lo < 2.75 and 3.02 < hi < 4.0  # the later validations fill the axis
    assert ax.get_title().endswith("(step 0 off the scale)") and 0 < ax.get_xlim()[0] < 100
    # a curve without such a jump keeps every point on the axis
    gradual = steps.assign(val_loss=[3.4, 3.3, 3.2, 3.41, 3.31, 3.21])
    _, ax = figures.loss_curves(gradual, runs, "a", colors)
    assert ax.get_ylim()[1] >= 3.41 and "off the scale" not in ax.get_title()
    # a first and a last validation only: nothing would be left to draw, so nothing is cut
    _, ax = figures.loss_curves(steps[steps["step"] != 100], runs, "a", colors)
    assert ax.get_ylim()[1] >= 10.8 and "off the scale" not in ax.get_title()
